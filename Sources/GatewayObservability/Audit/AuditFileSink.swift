import Foundation
import GatewayCore
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes audit records to `observability.audit.path` (CONTRACT.md, "Audit log") from one dedicated writer
/// thread, so the NIO event loops never wait for the disk: the request path only appends an `AuditEvent` to a
/// bounded in-memory queue. The writer assigns `seq`, computes the hash chain, and writes each record with its
/// own `write(2)` straight to the file (no user-space buffer), so a record is in the kernel's page cache, and
/// survives a crash of the process, as soon as the writer takes it: at once when idle, within about a
/// millisecond under load (see `coalescingPauseMicroseconds`).
///
/// It does not `fsync` per record: that costs a disk flush (milliseconds) per call and would bound the
/// gateway's call rate by the disk. It does `fsync` at rotation and at close, so a power loss can lose at most
/// the records written since the last rotation's sync, and the chain then shows exactly where the log ends.
///
/// Rotation is by size: when the next record would take the file past `max_bytes`, the file becomes
/// `PATH.1` (older ones shift up to `PATH.keep`; the oldest beyond that is deleted) and a new file starts whose
/// first `prev` is the old file's last `hash`. On start the chain resumes from the last record on disk.
///
/// An I/O error marks the sink unhealthy (logged once per transition, with the error; every lost record is
/// counted); the next record retries, reopening the file. A queue longer than `maxPending` means the writer
/// cannot keep up: records are refused and counted rather than held in unbounded memory, and the sink is
/// unhealthy until the queue drains.
public final class AuditFileSink: @unchecked Sendable {
    public struct Settings: Sendable {
        public var path: String
        public var redact: [String]
        public var maxBytes: Int
        public var keep: Int
        public var maxPending: Int

        public init(path: String, redact: [String], maxBytes: Int, keep: Int, maxPending: Int = 10_000) {
            self.path = path
            self.redact = redact
            self.maxBytes = maxBytes
            self.keep = keep
            self.maxPending = maxPending
        }
    }

    public struct Counters: Sendable, Equatable {
        public var written = 0
        /// Records lost: a write that failed, or a record refused because the queue was full.
        public var failed = 0
        public var rotations = 0
    }

    /// At most this long between a call's end and its record reaching the kernel, beyond the writing itself.
    static let coalescingPauseMicroseconds: UInt32 = 1000

    public let settings: Settings
    private let redaction: AuditRedaction
    private let logger: Logger

    // Shared between the request path and the writer: guarded by `condition`.
    private let condition = NSCondition()
    private var pending: [AuditEvent] = []
    private var healthy = true
    private var counters = Counters()
    private var closing = false
    private var exited = false
    private var started = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []

    // Owned by the writer thread once it runs (and by `start` before it does).
    private var descriptor: Int32 = -1
    private var fileSize = 0
    private var chain = AuditChain()

    public init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.redaction = AuditRedaction(keys: settings.redact)
        self.logger = logger
    }

    /// Opens the file (resuming the chain from its last record) and starts the writer thread. A file that
    /// cannot be opened leaves the sink unhealthy from the start; the first record retries.
    public func start() {
        condition.lock()
        guard !started else { condition.unlock(); return }
        started = true
        condition.unlock()
        do {
            chain = try Self.resumeChain(path: settings.path)
        } catch {
            // The file's end is not a record (edited, or cut short by a full disk): a new chain starts, and
            // `audit verify` reports the break exactly there. Refusing every call would not repair the file.
            logger.error("audit log: cannot continue the hash chain; a new chain starts at seq 1", metadata: [
                "path": "\(settings.path)", "error": "\(error)",
            ])
        }
        do {
            try openFile()
        } catch {
            setHealth(false, error: "\(error)")
        }
        let thread = Thread { [self] in writerLoop() }
        thread.name = "mcp-gateway-audit"
        thread.start()
    }

    /// False after a failed write, or while the queue is full: what `on_failure: refuse` checks per call.
    public var isHealthy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return healthy
    }

    public var snapshot: Counters {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    /// Queues one record. Never blocks on I/O: safe on an event loop.
    public func record(_ event: AuditEvent) {
        condition.lock()
        guard !closing else {
            counters.failed += 1
            condition.unlock()
            return
        }
        guard pending.count < settings.maxPending else {
            counters.failed += 1
            let wasHealthy = healthy
            healthy = false
            condition.unlock()
            if wasHealthy {
                logger.error("audit log unhealthy: the writer is more than \(settings.maxPending) records behind; records are dropped until it catches up", metadata: [
                    "path": "\(settings.path)",
                ])
            }
            return
        }
        pending.append(event)
        condition.signal()
        condition.unlock()
    }

    /// Writes every queued record, syncs and closes the file, and stops the writer thread. Records after this
    /// are counted as lost.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if exited || !started {
                closing = true
                condition.unlock()
                continuation.resume()
                return
            }
            closing = true
            exitWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    // MARK: - Writer thread

    private func writerLoop() {
        while true {
            condition.lock()
            while pending.isEmpty && !closing { condition.wait() }
            if pending.isEmpty && closing {
                condition.unlock()
                break
            }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            condition.unlock()
            for event in batch { write(event) }
            // Under load, waking this thread once per record costs more CPU (context switches) than the
            // records themselves. A short pause after a batch lets the next records gather: an idle sink still
            // writes a lone record at once, a busy one takes them in batches, each still with its own write(2).
            usleep(Self.coalescingPauseMicroseconds)
        }
        if descriptor >= 0 {
            _ = fsync(descriptor)
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
        condition.lock()
        exited = true
        let waiters = exitWaiters
        exitWaiters = []
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    private func write(_ event: AuditEvent) {
        var next = chain
        let line = next.seal(event, redaction: redaction)
        do {
            if descriptor < 0 { try openFile() }
            if fileSize > 0, fileSize + line.count > settings.maxBytes { try rotate() }
            try append(line)
            chain = next
            condition.lock()
            counters.written += 1
            let caughtUp = pending.count < settings.maxPending
            condition.unlock()
            if caughtUp { setHealth(true, error: nil) }
        } catch {
            condition.lock()
            counters.failed += 1
            condition.unlock()
            setHealth(false, error: "\(error)")
            if descriptor >= 0 {
                _ = Glibc.close(descriptor)
                descriptor = -1
            }
        }
    }

    private func setHealth(_ value: Bool, error: String?) {
        condition.lock()
        let changed = healthy != value
        healthy = value
        condition.unlock()
        guard changed else { return }
        if value {
            logger.notice("audit log healthy again: records are being written", metadata: ["path": "\(settings.path)"])
        } else {
            logger.error("audit log unhealthy: records cannot be written", metadata: [
                "path": "\(settings.path)", "error": "\(error ?? "unknown")",
            ])
        }
    }

    private func openFile() throws {
        let fd = open(settings.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AuditIOError(operation: "open", path: settings.path, errno: errno) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            _ = Glibc.close(fd)
            throw AuditIOError(operation: "stat", path: settings.path, errno: code)
        }
        descriptor = fd
        fileSize = Int(status.st_size)
    }

    /// Writes the whole line; on a failure part-way, cuts the file back to where the line began, so no torn
    /// record is left in the middle of the chain.
    private func append(_ line: [UInt8]) throws {
        var offset = 0
        let result: Int32 = line.withUnsafeBytes { raw in
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return 0
        }
        guard result == 0 else {
            if offset > 0 { _ = ftruncate(descriptor, off_t(fileSize)) }
            throw AuditIOError(operation: "write", path: settings.path, errno: result)
        }
        fileSize += line.count
    }

    private func rotate() throws {
        _ = fsync(descriptor)
        _ = Glibc.close(descriptor)
        descriptor = -1
        let path = settings.path
        _ = unlink("\(path).\(settings.keep)")
        if settings.keep > 1 {
            for index in stride(from: settings.keep - 1, through: 1, by: -1) {
                if rename("\(path).\(index)", "\(path).\(index + 1)") != 0, errno != ENOENT {
                    throw AuditIOError(operation: "rename", path: "\(path).\(index)", errno: errno)
                }
            }
        }
        guard rename(path, "\(path).1") == 0 else { throw AuditIOError(operation: "rename", path: path, errno: errno) }
        condition.lock()
        counters.rotations += 1
        condition.unlock()
        try openFile()
    }

    /// The chain state after the last record on disk: the current file's last line, or, when the current file
    /// is empty or missing (just rotated), `PATH.1`'s.
    static func resumeChain(path: String) throws -> AuditChain {
        for candidate in [path, "\(path).1"] {
            guard let line = try lastLine(of: candidate) else { continue }
            guard let value = try? JSONParser.parse(line, maxDepth: AuditVerifier.maxDepth),
                  let hash = value["hash"]?.stringValue, let seq = value["seq"]?.intValue
            else {
                throw AuditIOError(operation: "resume the chain from", path: candidate, errno: 0, detail: "its last line is not an audit record")
            }
            return AuditChain(lastHash: hash, lastSeq: seq)
        }
        return AuditChain()
    }

    /// The last non-empty line of a file, read backwards from its end in growing chunks; nil when the file is
    /// missing or empty.
    static func lastLine(of path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw AuditIOError(operation: "open", path: path, errno: errno)
        }
        defer { _ = Glibc.close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw AuditIOError(operation: "stat", path: path, errno: errno) }
        let size = Int(status.st_size)
        var chunk = 64 * 1024
        while true {
            let start = max(0, size - chunk)
            var buffer = [UInt8](repeating: 0, count: size - start)
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
            guard count == buffer.count else { throw AuditIOError(operation: "read", path: path, errno: errno) }
            var end = buffer.count
            while end > 0, buffer[end - 1] == UInt8(ascii: "\n") { end -= 1 }
            if end == 0 && start == 0 { return nil }
            if let newline = buffer[..<end].lastIndex(of: UInt8(ascii: "\n")) {
                return Array(buffer[(newline + 1)..<end])
            }
            if start == 0 { return Array(buffer[..<end]) }
            chunk *= 4
        }
    }
}

public struct AuditIOError: Error, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32
    public var detail: String?

    public init(operation: String, path: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        "cannot \(operation) \(path): \(detail ?? String(cString: strerror(errno)))"
    }
}

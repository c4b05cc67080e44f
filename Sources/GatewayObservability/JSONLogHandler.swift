import Foundation
import Synchronization
import GatewayCore
import Logging

/// A swift-log handler writing the contract's log lines (CONTRACT.md, "Logs"): one JSON object per line on
/// stderr with `ts` (RFC 3339 UTC, milliseconds), `level`, `msg`, `service`, then the metadata (`trace_id`,
/// `span_id`, `session`, `backend`, `tool`, ...), or a readable text line with `log.format: text`.
/// Lines are written with one `write(2)` under a lock, so records from many threads never interleave.
public struct GatewayLogHandler: LogHandler {
    public enum Format: Sendable { case json, text }

    public var metadata: Logger.Metadata = [:]
    /// The process-wide level from `control` (changed on SIGHUP), unless this logger set its own.
    public var logLevel: Logger.Level {
        get { ownLevel ?? control.level }
        set { ownLevel = newValue }
    }
    private var ownLevel: Logger.Level?
    private let control: LogLevelControl
    private let label: String
    private let format: Format
    private let service: String
    private let sink: LogSink

    public init(
        label: String, format: Format, level: Logger.Level, service: String = "mcp-gateway", sink: LogSink = .standardError,
        control: LogLevelControl? = nil
    ) {
        self.label = label
        self.format = format
        self.control = control ?? LogLevelControl(level)
        self.service = service
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line: [UInt8]
        switch format {
        case .json: line = jsonLine(level: event.level, message: "\(event.message)", metadata: merged)
        case .text: line = textLine(level: event.level, message: "\(event.message)", metadata: merged)
        }
        sink.write(line)
    }

    /// Written straight into bytes: this runs for every access line, where building a `JSONObject` and a
    /// `String` timestamp cost a third of a request's CPU in `make bench`.
    private func jsonLine(level: Logger.Level, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        out.append(contentsOf: #"{"ts":""#.utf8)
        Timestamp.appendRFC3339Milliseconds(Date(), to: &out)
        out.append(contentsOf: #"","level":""#.utf8)
        out.append(contentsOf: level.rawValue.utf8)
        out.append(contentsOf: #"","msg":"#.utf8)
        JSONLine.appendString(message, to: &out)
        out.append(contentsOf: #","service":"#.utf8)
        JSONLine.appendString(service, to: &out)
        for key in ["trace_id", "span_id"] {
            out.append(contentsOf: ",\"\(key)\":".utf8)
            if let value = metadata[key] { JSONLine.append(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        for key in metadata.keys.sorted() where !JSONLine.fixedKeys.contains(key) {
            out.append(UInt8(ascii: ","))
            JSONLine.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONLine.append(metadata[key]!, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    private func textLine(level: Logger.Level, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var text = "\(Timestamp.rfc3339Milliseconds(Date())) \(level.rawValue.uppercased()) \(message)"
        for key in metadata.keys.sorted() { text += " \(key)=\(metadata[key]!)" }
        text += "\n"
        return Array(text.utf8)
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible):
            if let number = convertible as? Int { return .number(JSONNumber(number)) }
            if let number = convertible as? Double, number.isFinite { return .number(JSONNumber(number)) }
            if let flag = convertible as? Bool { return .bool(flag) }
            return .string(convertible.description)
        case .array(let values): return .array(values.map(json))
        case .dictionary(let dictionary):
            return .object(JSONObject(dictionary.keys.sorted().map { (key: $0, value: json(dictionary[$0]!)) }))
        }
    }
}

/// Where log lines go: a file descriptor written with whole-line `write(2)` calls under a lock.
public final class LogSink: Sendable {
    private let descriptor: Int32
    private let lock = NSLock()

    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    public static let standardError = LogSink(descriptor: 2)

    public func write(_ bytes: [UInt8]) {
        lock.lock()
        defer { lock.unlock() }
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    if written < 0, errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// The byte-level JSON writing of log lines: strings escaped as RFC 8259 requires (quote, backslash, control
/// characters), numbers and booleans bare, nested values through `JSONValue`.
enum JSONLine {
    /// Fields every record has; metadata with these names cannot replace them.
    static let fixedKeys: Set<String> = ["ts", "level", "msg", "service", "trace_id", "span_id"]

    static func append(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .stringConvertible(let convertible):
            if let number = convertible as? Int {
                out.append(contentsOf: String(number).utf8)
            } else if let number = convertible as? Double, number.isFinite {
                out.append(contentsOf: JSONNumber(number).text.utf8)
            } else if let flag = convertible as? Bool {
                out.append(contentsOf: (flag ? "true" : "false").utf8)
            } else {
                appendString(convertible.description, to: &out)
            }
        case .array, .dictionary:
            out.append(contentsOf: GatewayLogHandler.json(value).serialized())
        }
    }

    static func appendString(_ text: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

public enum Timestamp {
    /// `rfc3339Milliseconds`, written as bytes without building a `String`.
    public static func appendRFC3339Milliseconds(_ date: Date, to out: inout [UInt8]) {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(48 + (rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        out.append(UInt8(ascii: "."))
        digits(Int(milliseconds % 1000), 3)
        out.append(UInt8(ascii: "Z"))
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-29T07:12:03.250Z`.
    public static func rfc3339Milliseconds(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(milliseconds % 1000)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }
}

extension Logger.Level {
    public init(configName: String) {
        self = Logger.Level(rawValue: configName) ?? .info
    }
}

/// The log level every handler of the process reads, so a reload (SIGHUP) changes it in one place.
public final class LogLevelControl: Sendable {
    private let raw: Atomic<Int>
    private static let levels = Logger.Level.allCases

    public init(_ level: Logger.Level) {
        raw = Atomic(Self.levels.firstIndex(of: level) ?? 2)
    }

    public var level: Logger.Level {
        get { Self.levels[raw.load(ordering: .relaxed)] }
    }

    public func set(_ level: Logger.Level) {
        raw.store(Self.levels.firstIndex(of: level) ?? 2, ordering: .relaxed)
    }
}

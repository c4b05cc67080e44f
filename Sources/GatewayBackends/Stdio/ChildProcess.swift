import CGatewayShims
import Foundation
import GatewayConfig

/// A spawned child with its three pipes. The parent's ends are created close-on-exec, so no other child ever
/// inherits them (otherwise a sibling holding a copy of a write end would keep a pipe from reaching EOF).
/// Foundation's `Process` spawns and reaps (its termination handler runs after `waitpid`), so no child is
/// left a zombie.
struct ChildProcess: @unchecked Sendable {
    let process: Process
    let pid: Int32
    /// Parent's ends: write to the child's stdin, read its stdout and stderr.
    let stdinWrite: Int32
    let stdoutRead: Int32
    let stderrRead: Int32

    enum SpawnError: Error, CustomStringConvertible {
        case notFound(String)
        case pipe(Int32)
        case launch(String)

        var description: String {
            switch self {
            case .notFound(let command): return "command not found: \(command)"
            case .pipe(let code): return "cannot create a pipe (errno \(code))"
            case .launch(let message): return message
            }
        }
    }

    /// Exit status as reported by Foundation after reaping.
    struct Exit: Sendable, CustomStringConvertible {
        let status: Int32
        let bySignal: Bool
        var description: String { bySignal ? "killed by signal \(status)" : "exited with status \(status)" }
    }

    static func spawn(_ config: StdioBackendConfig, onExit: @escaping @Sendable (Exit) -> Void) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in config.env { environment[key] = value }
        guard let executable = resolve(config.command[0], path: environment["PATH"] ?? "/usr/bin:/bin", cwd: config.cwd) else {
            throw SpawnError.notFound(config.command[0])
        }
        let stdin = try makePipe(), stdout = try makePipe(), stderr = try makePipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(config.command.dropFirst())
        process.environment = environment
        if let cwd = config.cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd, isDirectory: true) }
        process.standardInput = FileHandle(fileDescriptor: stdin.read, closeOnDealloc: false)
        process.standardOutput = FileHandle(fileDescriptor: stdout.write, closeOnDealloc: false)
        process.standardError = FileHandle(fileDescriptor: stderr.write, closeOnDealloc: false)
        process.terminationHandler = { finished in
            onExit(Exit(status: finished.terminationStatus, bySignal: finished.terminationReason == .uncaughtSignal))
        }
        do {
            try process.run()
        } catch {
            for fd in [stdin.read, stdin.write, stdout.read, stdout.write, stderr.read, stderr.write] { close(fd) }
            throw SpawnError.launch("cannot start \(executable): \(error.localizedDescription)")
        }
        // The child has its copies now; the parent keeps only its own ends.
        close(stdin.read)
        close(stdout.write)
        close(stderr.write)
        return ChildProcess(process: process, pid: process.processIdentifier, stdinWrite: stdin.write, stdoutRead: stdout.read, stderrRead: stderr.read)
    }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(pid, signal) }
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard gateway_pipe_cloexec(&fds) == 0 else { throw SpawnError.pipe(errno) }
        return (fds[0], fds[1])
    }

    /// A command with a slash is a path (relative to `cwd` when given); otherwise it is looked up in PATH.
    static func resolve(_ command: String, path: String, cwd: String?) -> String? {
        let fileManager = FileManager.default
        if command.contains("/") {
            let candidate = command.hasPrefix("/") || cwd == nil ? command : (cwd! as NSString).appendingPathComponent(command)
            return fileManager.isExecutableFile(atPath: candidate) ? candidate : nil
        }
        for directory in path.split(separator: ":") {
            let candidate = String(directory) + "/" + command
            if fileManager.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

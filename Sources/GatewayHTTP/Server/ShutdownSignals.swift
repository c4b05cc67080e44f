#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import UnixSignals

/// SIGTERM and SIGINT: the first starts the graceful shutdown (the drain, then the backends, then exit 0);
/// the second exits at once, for an operator (or an orchestrator) who will not wait for the drain.
///
/// This is the one place the process traps them: a signal can have only one handler (UnixSignalsSequence's
/// documented limit), and ServiceLifecycle's own `gracefulShutdownSignals` stops listening after the first
/// signal, so a second one would be swallowed. The serve command therefore leaves that list empty and calls
/// `ServiceGroup.triggerGracefulShutdown()` from here.
public final class ShutdownSignals: Sendable {
    private let signals: UnixSignalsSequence
    private let logger: Logger

    private init(signals: UnixSignalsSequence, logger: Logger) {
        self.signals = signals
        self.logger = logger
    }

    /// Traps SIGTERM and SIGINT (their handlers are registered when this returns).
    public static func install(logger: Logger) async -> ShutdownSignals {
        ShutdownSignals(signals: await UnixSignalsSequence(trapping: .sigterm, .sigint), logger: logger)
    }

    /// The exit status of a forced exit: 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), what a
    /// shell reports for a process the signal ended, so a supervisor can tell a cut-short drain from a clean stop.
    public static func forcedExitStatus(_ signal: UnixSignal) -> Int32 { 128 + signal.rawValue }

    /// Runs until cancelled: `beginShutdown` on the first signal; on the second, exits the process at once
    /// without waiting for calls in flight or backends (stdio children see their stdin close and exit on EOF).
    public func run(beginShutdown: @escaping @Sendable () async -> Void) async {
        var received = 0
        for await signal in signals {
            received += 1
            if received == 1 {
                logger.notice("\(signal) received: shutting down gracefully; send it again to exit at once", metadata: ["signal": "\(signal)"])
                await beginShutdown()
                continue
            }
            let status = Self.forcedExitStatus(signal)
            logger.warning("\(signal) received again: exiting at once, calls in flight are abandoned", metadata: [
                "signal": "\(signal)", "exit_status": "\(status)",
            ])
            // `_exit`, not `exit`: no atexit handlers or static destructors racing the event loop threads still
            // running. Log records are already written (stderr is unbuffered).
            _exit(status)
        }
    }
}

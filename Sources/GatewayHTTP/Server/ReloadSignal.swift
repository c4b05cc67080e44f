import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP, the daemon convention for "re-read what you loaded from disk" (nginx, HAProxy, sshd), delivered to
/// every part that reloads something.
///
/// This is the one place the process traps SIGHUP: a signal can have only one handler (UnixSignalsSequence's
/// documented limit), so each reloadable part calls `subscribe()` instead of trapping it again. Today the only
/// subscriber is the TLS certificate reload (`TLSContextProvider.watch`); the configuration reload subscribes
/// the same way. `install()` traps the signal before it returns, so a SIGHUP after startup never takes the
/// default action (terminating the process); run it as a service so signals are fanned out until shutdown.
public final class ReloadSignal: Service, Sendable {
    private let signals: UnixSignalsSequence
    private let logger: Logger
    private let subscribers = Mutex<(next: Int, all: [Int: AsyncStream<Void>.Continuation])>((0, [:]))

    private init(signals: UnixSignalsSequence, logger: Logger) {
        self.signals = signals
        self.logger = logger
    }

    /// Traps SIGHUP (its handler is registered when this returns).
    public static func install(logger: Logger) async -> ReloadSignal {
        ReloadSignal(signals: await UnixSignalsSequence(trapping: .sighup), logger: logger)
    }

    /// One element per SIGHUP received after this call. Signals that arrive while the subscriber is still busy
    /// with the previous one collapse into one (a reload reads the latest files anyway).
    public func subscribe() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = subscribers.withLock { state in
            let id = state.next
            state.next += 1
            state.all[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.all.removeValue(forKey: id) }
        }
        return stream
    }

    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            let receivers = subscribers.withLock { Array($0.all.values) }
            logger.info("SIGHUP received: reloading", metadata: ["subscribers": "\(receivers.count)"])
            for receiver in receivers { receiver.yield() }
        }
        let receivers = subscribers.withLock { state in
            defer { state.all.removeAll() }
            return Array(state.all.values)
        }
        for receiver in receivers { receiver.finish() }
    }
}

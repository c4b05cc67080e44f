import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A stdio backend with `isolation: session` (issue "spine" §5): one process per client session, started on
/// the session's first call and stopped when the session ends or idles out, at most `max_sessions` at once.
/// For servers that keep per-user state (a shell, a browser, a working directory). The tool list comes from
/// a probe process started once at boot and then stopped.
public final class SessionStdioBackend: Backend, @unchecked Sendable {
    public let name: String
    public let kind = "stdio"
    public let callTimeout: Duration
    private let config: StdioBackendConfig
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let handshakeTimeout: Duration
    private let shutdownGrace: Duration

    // Confined to `eventLoop`.
    private var processes: [String: StdioProcess] = [:]
    private var stopping = false
    private let published = NIOLockedValueBox<(tools: [JSONObject], ready: Bool)>(([], false))

    public init(
        name: String, config: StdioBackendConfig, callTimeout: Duration, eventLoop: any EventLoop, logger: Logger,
        handshakeTimeout: Duration = .seconds(30), shutdownGrace: Duration = .seconds(2)
    ) {
        self.name = name
        self.config = config
        self.callTimeout = callTimeout
        self.eventLoop = eventLoop
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
        self.shutdownGrace = shutdownGrace
    }

    public var tools: [JSONObject] { published.withLockedValue { $0.tools } }
    public var isReady: Bool { published.withLockedValue { $0.ready } }

    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let probe = StdioProcess(backendName: self.name, config: self.config, eventLoop: self.eventLoop, logger: self.logger)
            return probe.start(handshakeTimeout: self.handshakeTimeout).flatMap {
                self.published.withLockedValue { $0 = (probe.tools, true) }
                return probe.terminate(grace: self.shutdownGrace)
            }
        }
    }

    public func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        let handle = StdioInFlight(eventLoop: eventLoop)
        eventLoop.execute { self.dispatch(call, sink: sink, handle: handle) }
        return handle
    }

    private func dispatch(_ call: BackendCall, sink: any BackendCallSink, handle: StdioInFlight) {
        guard !stopping else {
            sink.backendFinished(.error(.backendUnavailable(name, "the gateway is shutting down")))
            return
        }
        guard let session = call.context.sessionID else {
            sink.backendFinished(.error(.backendUnavailable(name, "it runs one process per session and this request has no session")))
            return
        }
        if let process = processes[session], process.state != .exited, process.state != .stopping {
            process.send(call, sink: sink, handle: handle)
            return
        }
        processes[session] = nil
        guard processes.count < config.maxSessions else {
            sink.backendFinished(.error(.backendUnavailable(name, "it is at its cap of \(config.maxSessions) session processes (backends.\(name).max_sessions); retry when a session ends")))
            return
        }
        let process = StdioProcess(backendName: name, config: config, eventLoop: eventLoop, logger: logger.with(session: session))
        processes[session] = process
        process.onExit = { [weak self, weak process] _ in
            guard let self, let process, self.processes[session] === process else { return }
            self.processes[session] = nil
        }
        process.send(call, sink: sink, handle: handle)
        _ = process.start(handshakeTimeout: handshakeTimeout)
    }

    public func sessionEnded(_ sessionID: String) {
        eventLoop.execute {
            guard let process = self.processes.removeValue(forKey: sessionID) else { return }
            _ = process.terminate(grace: self.shutdownGrace)
        }
    }

    public func shutdown() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.stopping = true
            let stops = self.processes.values.map { $0.terminate(grace: self.shutdownGrace) }
            self.processes.removeAll()
            return EventLoopFuture.andAllComplete(stops, on: self.eventLoop)
        }
    }
}

extension Logger {
    func with(session: String) -> Logger {
        var copy = self
        copy[metadataKey: "session"] = "\(SessionLogID.short(session))"
        return copy
    }
}

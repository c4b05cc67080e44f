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
    private weak var observer: (any BackendObserver)?

    // Confined to `eventLoop`.
    private var processes: [String: StdioProcess] = [:]
    private var stopping = false
    private let published = NIOLockedValueBox<(tools: [JSONObject], ready: Bool)>(([], false))

    public init(
        name: String, config: StdioBackendConfig, callTimeout: Duration, eventLoop: any EventLoop, logger: Logger,
        observer: (any BackendObserver)?, handshakeTimeout: Duration = .seconds(30), shutdownGrace: Duration = .seconds(2)
    ) {
        self.name = name
        self.observer = observer
        self.config = config
        self.callTimeout = callTimeout
        self.eventLoop = eventLoop
        self.logger = logger
        self.handshakeTimeout = handshakeTimeout
        self.shutdownGrace = shutdownGrace
    }

    public var tools: [JSONObject] { published.withLockedValue { $0.tools } }
    /// What the probe process listed (each session's own process is not re-listed).
    private let probedListings = NIOLockedValueBox(BackendListings())
    public var listings: BackendListings { probedListings.withLockedValue { $0 } }
    public var isReady: Bool { published.withLockedValue { $0.ready } }

    /// Starts a probe process to learn the tool list, then stops it. A failed probe is retried with backoff
    /// until one succeeds, so a backend whose command is fixed later (or was slow to come up) joins the catalog.
    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { self.probe() }
    }

    private var probeBackoff = RestartBackoff()

    private func probe() -> EventLoopFuture<Void> {
        guard !stopping else { return eventLoop.makeSucceededVoidFuture() }
        let probe = StdioProcess(backendName: name, config: config, eventLoop: eventLoop, logger: logger)
        return probe.start(handshakeTimeout: handshakeTimeout).flatMap {
            self.probedListings.withLockedValue { $0 = probe.listings }
            self.published.withLockedValue { $0 = (probe.tools, true) }
            self.observer?.backendToolsChanged(self.name)
            return probe.terminate(grace: self.shutdownGrace)
        }.flatMapErrorThrowing { error in
            let delay = self.probeBackoff.failed(now: Int64(NIODeadline.now().uptimeNanoseconds), random: Double.random(in: 0..<1))
            self.logger.warning("backend probe failed; retrying", metadata: ["delay_ms": "\(delay.nanoseconds / 1_000_000)", "error": "\(error)"])
            self.eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { _ = self.probe() }
            throw error
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
        process.relaysToLastCaller = true
        // This process serves one session: its resource updates are for that session alone.
        process.onFeatureNotification = { [weak self] method, params in
            guard let self, method == "notifications/resources/updated", let params,
                  let observer = self.observer as? any BackendResourceObserver else { return }
            observer.backendResourceUpdated(self.name, params: params, session: session)
        }
        process.onExit = { [weak self, weak process] _ in
            guard let self, let process, self.processes[session] === process else { return }
            self.processes[session] = nil
        }
        // A session's process that stops answering pings is killed; the session's next call starts a new one.
        process.onUnresponsive = { [weak self, weak process] reason in
            guard let self, let process else { return }
            self.logger.with(session: session).error("backend session process unhealthy; killing it", metadata: [
                "pid": "\(process.pid ?? 0)", "error": "\(reason)",
            ])
            if self.processes[session] === process { self.processes[session] = nil }
            _ = process.terminate(grace: min(self.shutdownGrace, self.config.health.timeout), reason: "its process \(reason)")
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

import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A stdio backend with `isolation: shared` (issue "spine" §5): `instances` long-lived processes, each
/// serving every session, supervised: a process that dies fails its calls at once and is restarted with
/// exponential backoff and jitter, and the catalog is refreshed from the new process's tool list.
///
/// Supervision (issue 7, item 4; `backends.<name>.health`): an instance silent for `interval` is pinged, and
/// one that leaves the ping unanswered for `timeout` (hung, or stopped with SIGSTOP) is killed and replaced
/// like a crashed one. The backoff starts over only after `stable_after` of uptime (`RestartBackoff`). More
/// than `max_restarts` restarts within `restart_window` open the crash-loop breaker (`CrashLoopBreaker`,
/// shared by the instances): nothing is restarted, calls fail at once saying when the next attempt is, and
/// after `crash_loop_cooldown` one attempt is made; its handshake closes the breaker, its death reopens it.
public final class SharedStdioBackend: Backend, @unchecked Sendable {
    public let name: String
    public let kind = "stdio"
    public let callTimeout: Duration
    private let config: StdioBackendConfig
    private let eventLoop: any EventLoop
    private let logger: Logger
    private weak var observer: (any BackendObserver)?
    private let handshakeTimeout: Duration
    private let shutdownGrace: Duration

    // Confined to `eventLoop`.
    private var slots: [Slot] = []
    private var nextSlot = 0
    private var stopping = false
    private var crashLoop: CrashLoopBreaker
    // Read from any thread.
    private let published = NIOLockedValueBox<(tools: [JSONObject], state: BackendHealthState)>(([], .starting))
    /// Capabilities, resources, templates and prompts of the first ready instance, published with the tools.
    private let publishedListings = NIOLockedValueBox(BackendListings())

    private struct Slot {
        var process: StdioProcess?
        var backoff: RestartBackoff
        var restartAt: NIODeadline?
        var restartTask: Scheduled<Void>?
        /// Processes launched in this slot so far: after the first, a slot that is not ready is restarting.
        var launches = 0
        /// Set while the process that failed its health ping is being killed.
        var unhealthyReason: String?
    }

    public init(
        name: String, config: StdioBackendConfig, callTimeout: Duration, eventLoop: any EventLoop, logger: Logger,
        observer: (any BackendObserver)?, handshakeTimeout: Duration = .seconds(30), shutdownGrace: Duration = .seconds(2)
    ) {
        self.name = name
        self.config = config
        self.callTimeout = callTimeout
        self.eventLoop = eventLoop
        self.logger = logger
        self.observer = observer
        self.handshakeTimeout = handshakeTimeout
        self.shutdownGrace = shutdownGrace
        self.crashLoop = CrashLoopBreaker(
            maxRestarts: config.health.maxRestarts, window: config.health.restartWindow, cooldown: config.health.crashLoopCooldown
        )
    }

    public var tools: [JSONObject] { published.withLockedValue { $0.tools } }
    public var listings: BackendListings {
        var listings = publishedListings.withLockedValue { $0 }
        listings.tools = tools
        return listings
    }
    public var isReady: Bool { published.withLockedValue { $0.state.isReady } }
    public var healthState: BackendHealthState { published.withLockedValue { $0.state } }

    /// Process ids of the running instances (for tests and diagnostics).
    public var pids: EventLoopFuture<[Int32]> {
        eventLoop.submit { self.slots.compactMap { $0.process?.state == .ready ? $0.process?.pid : nil } }
    }

    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let backoff = RestartBackoff(resetAfter: self.config.health.stableAfter)
            self.slots = Array(repeating: Slot(backoff: backoff), count: self.config.instances)
            let starts = (0..<self.config.instances).map { self.launch(slot: $0) }
            // Ready as soon as one instance is.
            let promise = self.eventLoop.makePromise(of: Void.self)
            let failures = NIOLoopBoundBox(0, eventLoop: self.eventLoop)
            for start in starts {
                start.whenComplete { result in
                    switch result {
                    case .success: promise.succeed()
                    case .failure(let error):
                        failures.value += 1
                        if failures.value == starts.count { promise.fail(error) }
                    }
                }
            }
            return promise.futureResult
        }
    }

    private func launch(slot index: Int) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        let process = StdioProcess(backendName: name, config: config, eventLoop: eventLoop, logger: logger)
        slots[index].process = process
        slots[index].restartAt = nil
        slots[index].unhealthyReason = nil
        slots[index].launches += 1
        process.onExit = { [weak self] _ in self?.instanceExited(slot: index, process: process) }
        process.onUnresponsive = { [weak self, weak process] reason in
            guard let self, let process else { return }
            self.instanceUnresponsive(slot: index, process: process, reason: reason)
        }
        process.onToolsListChanged = { [weak self, weak process] in
            guard let self, let process else { return }
            process.refreshTools().whenSuccess { self.publish() }
        }
        process.onFeatureNotification = { [weak self, weak process] method, params in
            guard let self, let process else { return }
            if method == "notifications/resources/updated" {
                guard let params, let observer = self.observer as? any BackendResourceObserver else { return }
                observer.backendResourceUpdated(self.name, params: params, session: nil)
            } else {
                process.refreshFeatures(after: method).whenSuccess { self.publish() }
            }
        }
        process.onUnrelatedLog = { [weak self] params in
            guard let self, let observer = self.observer as? any BackendLogObserver else { return }
            observer.backendLogMessage(self.name, params: params)
        }
        let started = process.start(handshakeTimeout: handshakeTimeout)
        started.whenComplete { result in
            switch result {
            case .success:
                let now = Int64(NIODeadline.now().uptimeNanoseconds)
                self.slots[index].backoff.started(now: now)
                if self.crashLoop.state == .probing {
                    self.logger.notice("backend recovered from its crash loop; normal supervision resumes", metadata: ["instance": "\(index)"])
                }
                self.crashLoop.instanceStarted(now: now)
                if self.slots[index].launches > 1, let observer = self.observer as? any BackendResourceObserver {
                    // A restarted process knows no subscriptions: the gateway renews those its sessions hold.
                    observer.backendLostSubscriptions(self.name)
                }
                self.publish()
            case .failure:
                // The process is terminated by StdioProcess; its exit schedules the restart.
                break
            }
        }
        return started
    }

    /// The instance failed its health ping: kill it (the usual stop sequence, each step `health.timeout`,
    /// since a hung process will not honour a longer one) and let its exit restart it. Its calls in flight
    /// fail now with the reason.
    private func instanceUnresponsive(slot index: Int, process: StdioProcess, reason: String) {
        guard index < slots.count, slots[index].process === process, !stopping else { return }
        logger.error("backend instance unhealthy; killing and replacing it", metadata: [
            "instance": "\(index)", "pid": "\(process.pid ?? 0)", "error": "\(reason)",
        ])
        slots[index].unhealthyReason = reason
        _ = process.terminate(grace: min(shutdownGrace, config.health.timeout), reason: "its process \(reason)")
        publish()
    }

    private func instanceExited(slot index: Int, process: StdioProcess) {
        guard index < slots.count, slots[index].process === process else { return }
        slots[index].unhealthyReason = nil
        guard !stopping else {
            publish()
            return
        }
        observer?.backendRestarting(name)
        let now = NIODeadline.now()
        let nowNanoseconds = Int64(now.uptimeNanoseconds)
        let delay = slots[index].backoff.failed(now: nowNanoseconds, random: Double.random(in: 0..<1))
        let deadline: NIODeadline
        let wasProbing = crashLoop.state == .probing
        switch crashLoop.instanceDied(now: nowNanoseconds) {
        case .restart:
            deadline = now + .nanoseconds(delay.nanoseconds)
            logger.warning("backend instance will be restarted", metadata: [
                "instance": "\(index)", "delay_ms": "\(delay.nanoseconds / 1_000_000)", "consecutive_failures": "\(slots[index].backoff.consecutiveFailures)",
            ])
        case .tripped(let retryAt) where wasProbing:
            deadline = NIODeadline.uptimeNanoseconds(UInt64(retryAt))
            logger.error("backend still crash-looping after its cooldown; no restarts until the next cooldown ends", metadata: [
                "instance": "\(index)", "retry_in_ms": "\((retryAt - nowNanoseconds) / 1_000_000)",
            ])
        case .tripped(let retryAt):
            deadline = NIODeadline.uptimeNanoseconds(UInt64(retryAt))
            logger.error("backend is in a crash loop; no restarts until its cooldown ends", metadata: [
                "instance": "\(index)", "restarts": "\(crashLoop.restartCount(now: nowNanoseconds))",
                "restart_window": "\(DurationFormat.describe(config.health.restartWindow))",
                "retry_in_ms": "\((retryAt - nowNanoseconds) / 1_000_000)",
            ])
        case .held(let retryAt):
            deadline = NIODeadline.uptimeNanoseconds(UInt64(retryAt))
            logger.warning("backend instance died during its crash-loop cooldown; it waits with the others", metadata: [
                "instance": "\(index)", "retry_in_ms": "\((retryAt - nowNanoseconds) / 1_000_000)",
            ])
        }
        scheduleRestart(slot: index, at: deadline)
        publish()
    }

    /// Restarts the slot at `deadline`, or, if the crash-loop breaker has opened in the meantime (another
    /// instance's deaths), when its cooldown ends.
    private func scheduleRestart(slot index: Int, at deadline: NIODeadline) {
        slots[index].restartAt = deadline
        slots[index].restartTask = eventLoop.scheduleTask(deadline: deadline) {
            guard !self.stopping else { return }
            let wasOpen = self.crashLoop.retryAt != nil
            guard self.crashLoop.cooldownElapsed(now: Int64(NIODeadline.now().uptimeNanoseconds)) else {
                if let retryAt = self.crashLoop.retryAt { self.scheduleRestart(slot: index, at: .uptimeNanoseconds(UInt64(retryAt))) }
                return
            }
            if wasOpen {
                self.logger.notice("crash-loop cooldown over; trying the backend again", metadata: ["instance": "\(index)"])
            }
            _ = self.launch(slot: index)
            self.publish()
        }
    }

    /// The backend's state for `/readyz`: ready if any instance is; otherwise the most telling reason why not.
    private func currentState() -> BackendHealthState {
        if slots.contains(where: { $0.process?.state == .ready }) { return .ready }
        if crashLoop.retryAt != nil { return .crashLoop }
        if slots.contains(where: { $0.unhealthyReason != nil }) { return .unhealthy }
        if slots.contains(where: { $0.restartAt != nil || $0.launches > 1 }) { return .restarting }
        return .starting
    }

    /// Publishes readiness and the tool list (from the first ready instance) for other threads, and tells the
    /// observer when the list changed.
    private func publish() {
        let ready = slots.compactMap(\.process).filter { $0.state == .ready }
        let tools = ready.first?.tools
        let state = currentState()
        let changed = published.withLockedValue { current -> Bool in
            let newTools = tools ?? current.tools
            let changed = newTools != current.tools
            current = (newTools, state)
            return changed
        }
        var listings = ready.first?.listings ?? publishedListings.withLockedValue { $0 }
        listings.tools = []
        let listingsChanged = publishedListings.withLockedValue { current -> Bool in
            defer { current = listings }
            return current != listings
        }
        if changed || listingsChanged { observer?.backendToolsChanged(name) }
    }

    public func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        let handle = StdioInFlight(eventLoop: eventLoop)
        if eventLoop.inEventLoop {
            dispatch(call, sink: sink, handle: handle)
        } else {
            eventLoop.execute { self.dispatch(call, sink: sink, handle: handle) }
        }
        return handle
    }

    /// Round-robin over ready instances; when none is ready the call fails fast, saying when a restart is due.
    private func dispatch(_ call: BackendCall, sink: any BackendCallSink, handle: StdioInFlight) {
        let count = slots.count
        for offset in 0..<count {
            let index = (nextSlot + offset) % count
            if let process = slots[index].process, process.state == .ready {
                nextSlot = (index + 1) % count
                process.send(call, sink: sink, handle: handle)
                return
            }
        }
        if stopping {
            sink.backendFinished(.error(.backendUnavailable(name, "the gateway is shutting down")))
            return
        }
        let nowNanoseconds = Int64(NIODeadline.now().uptimeNanoseconds)
        if let retryAt = crashLoop.retryAt {
            let milliseconds = max(0, (retryAt - nowNanoseconds) / 1_000_000)
            var error = JSONRPCError.backendUnavailable(name, """
                it is in a crash loop (more than \(config.health.maxRestarts) restarts within \(DurationFormat.describe(config.health.restartWindow))); \
                it will be retried in \(DurationFormat.describe(.milliseconds(milliseconds))) (backends.\(name).health.crash_loop_cooldown)
                """)
            error.data = ["backend": .string(name), "retry_after_ms": .number(JSONNumber(Int(milliseconds)))]
            sink.backendFinished(.error(error))
            return
        }
        if let reason = slots.lazy.compactMap(\.unhealthyReason).first {
            sink.backendFinished(.error(.backendUnavailable(name, "its process \(reason) and is being replaced")))
            return
        }
        let soonest = slots.compactMap(\.restartAt).min()
        if let soonest {
            let milliseconds = max(0, (soonest.uptimeNanoseconds &- NIODeadline.now().uptimeNanoseconds) / 1_000_000)
            sink.backendFinished(.error(.backendUnavailable(name, "its process is restarting (next attempt in \(milliseconds)ms)")))
        } else {
            sink.backendFinished(.error(.backendUnavailable(name, "its process is starting")))
        }
    }

    public func sessionEnded(_ sessionID: String) {}

    public func shutdown() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.stopping = true
            var stops: [EventLoopFuture<Void>] = []
            for index in self.slots.indices {
                self.slots[index].restartTask?.cancel()
                if let process = self.slots[index].process { stops.append(process.terminate(grace: self.shutdownGrace)) }
            }
            return EventLoopFuture.andAllComplete(stops, on: self.eventLoop).map { self.publish() }
        }
    }
}

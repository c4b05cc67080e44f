import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A stdio backend with `isolation: shared` (issue "spine" §5): `instances` long-lived processes, each
/// serving every session, supervised: a process that dies fails its calls at once and is restarted with
/// exponential backoff and jitter, and the catalog is refreshed from the new process's tool list.
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
    // Read from any thread.
    private let published = NIOLockedValueBox<(tools: [JSONObject], ready: Bool)>(([], false))

    private struct Slot {
        var process: StdioProcess?
        var backoff = RestartBackoff()
        var restartAt: NIODeadline?
        var restartTask: Scheduled<Void>?
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
    }

    public var tools: [JSONObject] { published.withLockedValue { $0.tools } }
    public var isReady: Bool { published.withLockedValue { $0.ready } }

    /// Process ids of the running instances (for tests and diagnostics).
    public var pids: EventLoopFuture<[Int32]> {
        eventLoop.submit { self.slots.compactMap { $0.process?.state == .ready ? $0.process?.pid : nil } }
    }

    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.slots = Array(repeating: Slot(), count: self.config.instances)
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
        process.onExit = { [weak self] _ in self?.instanceExited(slot: index, process: process) }
        process.onToolsListChanged = { [weak self, weak process] in
            guard let self, let process else { return }
            process.refreshTools().whenSuccess { self.publish() }
        }
        let started = process.start(handshakeTimeout: handshakeTimeout)
        started.whenComplete { result in
            switch result {
            case .success:
                self.slots[index].backoff.started(now: Int64(NIODeadline.now().uptimeNanoseconds))
                self.publish()
            case .failure:
                // The process is terminated by StdioProcess; its exit schedules the restart.
                break
            }
        }
        return started
    }

    private func instanceExited(slot index: Int, process: StdioProcess) {
        guard index < slots.count, slots[index].process === process else { return }
        publish()
        guard !stopping else { return }
        observer?.backendRestarting(name)
        let delay = slots[index].backoff.failed(now: Int64(NIODeadline.now().uptimeNanoseconds), random: Double.random(in: 0..<1))
        let deadline = NIODeadline.now() + .nanoseconds(delay.nanoseconds)
        slots[index].restartAt = deadline
        logger.warning("backend instance will be restarted", metadata: [
            "instance": "\(index)", "delay_ms": "\(delay.nanoseconds / 1_000_000)", "consecutive_failures": "\(slots[index].backoff.consecutiveFailures)",
        ])
        slots[index].restartTask = eventLoop.scheduleTask(deadline: deadline) {
            guard !self.stopping else { return }
            _ = self.launch(slot: index)
        }
    }

    /// Publishes readiness and the tool list (from the first ready instance) for other threads, and tells the
    /// observer when the list changed.
    private func publish() {
        let ready = slots.compactMap(\.process).filter { $0.state == .ready }
        let tools = ready.first?.tools
        let changed = published.withLockedValue { current -> Bool in
            let newTools = tools ?? current.tools
            let changed = newTools != current.tools
            current = (newTools, !ready.isEmpty)
            return changed
        }
        if changed { observer?.backendToolsChanged(name) }
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

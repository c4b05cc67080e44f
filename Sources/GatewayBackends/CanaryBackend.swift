import GatewayConfig
import GatewayCore
import GatewayObservability
import Logging
import NIOCore
import Synchronization

/// A stdio backend with `versions` (issue 7, item 7; the seed's lifecycle chapter on canary deployments):
/// one supervised `SharedStdioBackend` per version, all under the backend's one name, with each call sent to
/// the version the weighted split picks. The pure `CanaryRollout` decides; this shell measures and acts.
///
/// - Catalog and readiness are the stable version's: a canary never changes what clients see listed, and the
///   backend is ready when its stable version is.
/// - Each call's outcome and duration are recorded when it ends (the sink is wrapped). A JSON-RPC error of
///   any code, a crash (the supervisor fails the call with -32001) and a `call_timeout` are failures; a
///   result, `isError: true` included, is a success; a client's cancellation is not recorded.
/// - On a rollback the canary's weight goes to the stable version at once (every later call goes there), the
///   rollback is logged at error level with the numbers it was decided on and counted
///   (`mcp_canary_rollbacks_total`, `mcp_canary_weight`), and the canary's processes are stopped once its calls
///   in flight have ended (at most `call_timeout` later), so a rollback fails no call that was still running.
///
/// Calls are routed under one short lock (the split and the windows), on whatever event loop the call
/// arrives on: no hop is added to the hot path.
public final class CanaryBackend: Backend, Sendable {
    public let name: String
    public let kind = "stdio"
    public let callTimeout: Duration
    private let versions: [SharedStdioBackend]
    private let versionNames: [String]
    private let stableIndex: Int
    private let logger: Logger
    private let metrics: GatewayMetrics?
    /// Where the drain timers of rolled-back canaries run.
    private let controlLoop: any EventLoop
    private let state: Mutex<State>

    private struct State {
        var rollout: CanaryRollout
        /// Calls dispatched to each version and not yet ended.
        var inFlight: [Int]
        /// Rolled-back versions whose processes are still to be stopped (waiting for their calls in flight).
        var draining: Set<Int> = []
        var stopped: Set<Int> = []
    }

    /// A cancellation this close to `call_timeout` after the call reached the backend is taken for the
    /// gateway's timeout (which ends a call by cancelling it) rather than the client's own cancellation.
    static let timeoutTolerance: Duration = .milliseconds(10)

    /// - Precondition: `config.versions` has two or more entries (the configuration guarantees it).
    public init(
        name: String, config: StdioBackendConfig, callTimeout: Duration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        observer: (any BackendObserver)?, metrics: GatewayMetrics?, shutdownGrace: Duration = .seconds(2)
    ) {
        precondition(config.versions.count >= 2, "a canary backend needs two or more versions")
        self.name = name
        self.callTimeout = callTimeout
        self.logger = logger
        self.metrics = metrics
        self.controlLoop = eventLoopGroup.next()
        let stableIndex = config.stableVersionIndex ?? 0
        self.stableIndex = stableIndex
        self.versionNames = config.versions.map(\.name)
        self.versions = config.versions.indices.map { index in
            var versionLogger = logger
            versionLogger[metadataKey: "version"] = "\(config.versions[index].name)"
            return SharedStdioBackend(
                name: name, config: config.forVersion(index), callTimeout: callTimeout, eventLoop: eventLoopGroup.next(),
                logger: versionLogger, observer: observer, shutdownGrace: shutdownGrace
            )
        }
        let rollout = CanaryRollout(
            names: config.versions.map(\.name), weights: config.versions.map(\.weight), stableIndex: stableIndex, policy: config.canary.policy
        )
        self.state = Mutex(State(rollout: rollout, inFlight: Array(repeating: 0, count: config.versions.count)))
        publishWeights(rollout.weights)
    }

    public var tools: [JSONObject] { versions[stableIndex].tools }
    public var listings: BackendListings { versions[stableIndex].listings }
    public var isReady: Bool { versions[stableIndex].isReady }
    public var healthState: BackendHealthState { versions[stableIndex].healthState }

    /// Each version's current weight, in configuration order (for tests and diagnostics).
    public var weights: [(version: String, weight: Int)] {
        let weights = state.withLock { $0.rollout.weights }
        return zip(versionNames, weights).map { ($0, $1) }
    }

    /// Starts every version. Completes when the stable version is ready and every canary has either started
    /// or failed to (a canary that cannot start fails the calls routed to it and is rolled back for it), so
    /// the first calls do not find a canary still starting; fails only when the stable version cannot start.
    public func start() -> EventLoopFuture<Void> {
        let starts = versions.map { $0.start() }
        for (index, start) in starts.enumerated() where index != stableIndex {
            start.whenFailure { [logger, versionNames] error in
                logger.error("canary version did not start; calls routed to it fail until its supervisor restarts it", metadata: [
                    "version": "\(versionNames[index])", "error": "\(error)",
                ])
            }
        }
        let canaries = starts.enumerated().filter { $0.offset != stableIndex }.map(\.element)
        return EventLoopFuture.andAllComplete(canaries, on: controlLoop).flatMap { starts[self.stableIndex] }
    }

    public func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        let version = state.withLock { state -> Int in
            let version = state.rollout.route()
            state.inFlight[version] += 1
            return version
        }
        let tracked = CanaryCall(owner: self, version: version, sink: sink)
        tracked.attach(versions[version].call(call, sink: tracked))
        return tracked
    }

    public func sessionEnded(_ sessionID: String) {
        for version in versions { version.sessionEnded(sessionID) }
    }

    public func shutdown() -> EventLoopFuture<Void> {
        EventLoopFuture.andAllComplete(versions.map { $0.shutdown() }, on: controlLoop)
    }

    // MARK: - Outcomes

    /// A call ended: record it (nil outcome: a client's cancellation, not recorded), perform the rollback it
    /// may cause, and stop a drained canary.
    fileprivate func callEnded(version: Int, outcome: CanaryOutcome?, duration: Duration) {
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        let (rollback, stopNow) = state.withLock { state -> (CanaryRollback?, Bool) in
            state.inFlight[version] -= 1
            var rollback: CanaryRollback?
            if let outcome {
                rollback = state.rollout.record(outcome, version: version, durationNanoseconds: duration.nanoseconds, now: now)
                if let rollback { state.draining.insert(rollback.version) }
            }
            // A rolled-back version (by this call, or earlier) stops once this was its last call in flight.
            let stop = state.draining.contains(version) && state.inFlight[version] == 0 && state.stopped.insert(version).inserted
            if stop { state.draining.remove(version) }
            return (rollback, stop)
        }
        if let rollback { performRollback(rollback) }
        if stopNow { stopVersion(version, reason: "its calls in flight have ended") }
    }

    private func performRollback(_ rollback: CanaryRollback) {
        let canary = versionNames[rollback.version]
        let policy = state.withLock { $0.rollout.policy }
        logger.error("canary rolled back: all calls go to the stable version", metadata: [
            "version": "\(canary)",
            "stable_version": "\(versionNames[stableIndex])",
            "reason": "\(rollback.reason.rawValue)",
            "window": "\(DurationFormat.describe(policy.window))",
            "canary_calls": "\(rollback.canary.calls)",
            "canary_errors": "\(rollback.canary.failures)",
            "canary_error_ratio": "\(Self.ratio(rollback.canary.errorRatio))",
            "stable_calls": "\(rollback.stable.calls)",
            "stable_errors": "\(rollback.stable.failures)",
            "stable_error_ratio": "\(Self.ratio(rollback.stable.errorRatio))",
            "max_error_ratio_increase": "\(policy.maxErrorRatioIncrease)",
            "canary_p95_ms": "\(rollback.canary.p95Nanoseconds.map(Self.milliseconds) ?? "none")",
            "stable_p95_ms": "\(rollback.stable.p95Nanoseconds.map(Self.milliseconds) ?? "none")",
            "sla_p95_ms": "\(Self.milliseconds(policy.slaP95.nanoseconds))",
            "weights": "\(zip(versionNames, rollback.weights).map { "\($0)=\($1)" }.joined(separator: ","))",
        ])
        metrics?.canaryRollbacks(backend: name, version: canary).increment()
        publishWeights(rollback.weights)
        // Calls still running on the canary finish; the last one to end stops it (callEnded). If one never
        // ends (a lost reply), the gateway's call_timeout ends it, and this timer is the backstop.
        controlLoop.scheduleTask(in: .nanoseconds(callTimeout.nanoseconds + Self.timeoutTolerance.nanoseconds)) { [self] in
            let stop = state.withLock { state -> Bool in
                guard state.draining.remove(rollback.version) != nil else { return false }
                return state.stopped.insert(rollback.version).inserted
            }
            if stop { stopVersion(rollback.version, reason: "call_timeout passed since the rollback") }
        }
    }

    private func stopVersion(_ version: Int, reason: String) {
        let versionName = versionNames[version]
        logger.notice("stopping the rolled-back canary version's processes", metadata: ["version": "\(versionName)", "why_now": "\(reason)"])
        versions[version].shutdown().whenComplete { [logger] _ in
            logger.notice("rolled-back canary version stopped", metadata: ["version": "\(versionName)"])
        }
    }

    private func publishWeights(_ weights: [Int]) {
        guard let metrics else { return }
        for (version, weight) in zip(versionNames, weights) {
            metrics.canaryWeight(backend: name, version: version).set(to: Double(weight))
        }
    }

    /// Nanoseconds as milliseconds to three decimals, for the log line (sub-millisecond calls are common).
    private static func milliseconds(_ nanoseconds: Int64) -> String { "\(Double(nanoseconds / 1_000) / 1_000)" }

    /// A ratio to three decimals, for the log line.
    private static func ratio(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
}

/// One call through a `CanaryBackend`: passes progress and the reply on, and reports how and when the call
/// ended, exactly once (a reply, or a cancellation, whichever comes first).
private final class CanaryCall: BackendCallSink, BackendInFlight, Sendable {
    let owner: CanaryBackend
    let version: Int
    let sink: any BackendCallSink
    let started = NIODeadline.now()
    private let state = Mutex<(ended: Bool, inner: (any BackendInFlight)?, pendingCancel: String?)>((false, nil, nil))

    init(owner: CanaryBackend, version: Int, sink: any BackendCallSink) {
        self.owner = owner
        self.version = version
        self.sink = sink
    }

    /// The version's own handle; a cancellation that arrived before it is passed on now.
    func attach(_ inner: any BackendInFlight) {
        let pending = state.withLock { state -> String? in
            state.inner = inner
            return state.pendingCancel
        }
        if let pending { inner.cancel(reason: pending) }
    }

    func backendProgress(_ params: JSONObject) {
        sink.backendProgress(params)
    }

    func backendFinished(_ reply: BackendReply) {
        guard end() else { return }
        let outcome: CanaryOutcome
        switch reply {
        case .result: outcome = .success
        case .error: outcome = .failure
        }
        owner.callEnded(version: version, outcome: outcome, duration: elapsed)
        sink.backendFinished(reply)
    }

    /// The gateway ends a timed-out call by cancelling it: a cancellation once the call has run for its whole
    /// `call_timeout` counts as a timeout (a failure); an earlier one is the client's and is not judged.
    func cancel(reason: String) {
        let inner = state.withLock { state -> (any BackendInFlight)? in
            if state.inner == nil, !state.ended { state.pendingCancel = reason }
            return state.inner
        }
        inner?.cancel(reason: reason)
        guard end() else { return }
        let duration = elapsed
        let timedOut = duration + CanaryBackend.timeoutTolerance >= owner.callTimeout
        owner.callEnded(version: version, outcome: timedOut ? .failure : nil, duration: duration)
    }

    private var elapsed: Duration {
        .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds &- started.uptimeNanoseconds))
    }

    private func end() -> Bool {
        state.withLock { state -> Bool in
            guard !state.ended else { return false }
            state.ended = true
            return true
        }
    }
}

import GatewayBackends
import GatewayCore
import NIOCore
import Synchronization

/// One backend's `max_concurrency` and `queue`: the pure `ConcurrencyLimiter` behind one lock, plus the
/// waiting calls it hands slots to. A call's ticket is its object identity: unique while the call is
/// waiting, because `waiting` holds it.
final class ConcurrencyGate: Sendable {
    let backend: String
    private let state: Mutex<State>

    struct State {
        var limiter: ConcurrencyLimiter<ObjectIdentifier>
        var waiting: [ObjectIdentifier: GatedCall] = [:]
    }

    init(backend: String, maxConcurrency: Int, queue: Int) {
        self.backend = backend
        self.state = Mutex(State(limiter: ConcurrencyLimiter(maxConcurrency: maxConcurrency, queueCapacity: queue)))
    }

    func acquire(_ call: GatedCall, session: String) -> ConcurrencyLimiter<ObjectIdentifier>.Admission {
        state.withLock { state in
            let admission = state.limiter.acquire(session: session, ticket: call.ticket)
            if admission == .queued { state.waiting[call.ticket] = call }
            return admission
        }
    }

    /// A running call ended: its slot goes to the next waiting call (fair across sessions), started on its
    /// own event loop.
    func release() {
        let next = state.withLock { state -> GatedCall? in
            guard let ticket = state.limiter.release() else { return nil }
            return state.waiting.removeValue(forKey: ticket)
        }
        guard let next else { return }
        next.call.eventLoop.execute { next.slotGranted() }
    }

    /// A waiting call gave up. False when it was not waiting any more (a slot is already on its way to it).
    func cancelWaiting(_ ticket: ObjectIdentifier) -> Bool {
        state.withLock { state in
            guard state.limiter.cancel(ticket: ticket) else { return false }
            state.waiting[ticket] = nil
            return true
        }
    }

    var load: BackendLoad { state.withLock { BackendLoad(inflight: $0.limiter.inflight, queued: $0.limiter.queued) } }
}

/// Told by `ToolCallExecution` when `call_timeout` ends a call, so the breaker can count it as a failure
/// (a client's cancellation is not).
protocol CallTimeoutObserving {
    func callTimedOut()
}

/// A backend behind its concurrency gate, reporting call outcomes to its circuit breaker. Everything but
/// `call` passes through.
final class GatedBackend: Backend {
    let inner: any Backend
    let gate: ConcurrencyGate
    let breaker: BreakerCell

    init(inner: any Backend, gate: ConcurrencyGate, breaker: BreakerCell) {
        self.inner = inner
        self.gate = gate
        self.breaker = breaker
    }

    var name: String { inner.name }
    var kind: String { inner.kind }
    var tools: [JSONObject] { inner.tools }
    var isReady: Bool { inner.isReady }
    var callTimeout: Duration { inner.callTimeout }
    func start() -> EventLoopFuture<Void> { inner.start() }
    func sessionEnded(_ sessionID: String) { inner.sessionEnded(sessionID) }
    func shutdown() -> EventLoopFuture<Void> { inner.shutdown() }

    func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        let gated = GatedCall(backend: self, call: call, sink: sink)
        switch gate.acquire(gated, session: call.context.sessionID ?? "") {
        case .run:
            gated.slotGranted()
        case .queued:
            break
        case .rejected:
            gated.rejectSaturated()
        }
        return gated
    }
}

/// One call through a gate: waiting for a slot, running at the backend, or ended. Whichever way it ends
/// (the backend's reply, the client's cancellation, `call_timeout`) it releases its slot exactly once and
/// tells the breaker what the outcome says about the backend. A call cancelled while waiting leaves the queue;
/// `call_timeout` covers the wait, since the execution's timer starts before the call reaches the gate.
final class GatedCall: BackendCallSink, BackendInFlight, CallTimeoutObserving, Sendable {
    enum Phase { case waiting, running, ended }

    struct State {
        var phase = Phase.waiting
        var inner: (any BackendInFlight)?
        /// A cancellation that arrived while the backend call was being made, before its handle existed.
        var pendingCancel: String?
        var timedOut = false
        /// Whether the backend was ready when the call was sent. A backend that is not (crashed, restarting,
        /// not started) is refused at once by its supervisor, whose restart backoff already keeps calls off
        /// it: those -32001 answers say nothing the supervisor does not already act on, and counting them
        /// would keep the circuit open for `open_for` after the backend is back. They are neutral.
        var sentWhileReady = true
    }

    let backend: GatedBackend
    let call: BackendCall
    let sink: any BackendCallSink
    private let state = Mutex(State())

    init(backend: GatedBackend, call: BackendCall, sink: any BackendCallSink) {
        self.backend = backend
        self.call = call
        self.sink = sink
    }

    var ticket: ObjectIdentifier { ObjectIdentifier(self) }

    /// This call holds a slot now: send it to the backend, unless it ended while the slot was on its way.
    func slotGranted() {
        let ready = backend.inner.isReady
        let proceed = state.withLock { state -> Bool in
            guard state.phase == .waiting else { return false }
            state.phase = .running
            state.sentWhileReady = ready
            return true
        }
        guard proceed else {
            backend.gate.release()
            return
        }
        let handle = backend.inner.call(call, sink: self)
        let cancelReason = state.withLock { state -> String? in
            // A call answered synchronously has already ended: keeping its handle would form a cycle.
            if state.phase == .running { state.inner = handle }
            return state.pendingCancel
        }
        if let cancelReason { handle.cancel(reason: cancelReason) }
    }

    func rejectSaturated() {
        state.withLock { $0.phase = .ended }
        backend.breaker.record(.neutral, now: Resilience.now())
        sink.backendFinished(.error(.backendUnavailable(
            backend.gate.backend, "backend saturated: max_concurrency calls are running and the queue of waiting calls is full; retry later"
        )))
    }

    func backendProgress(_ params: JSONObject) {
        sink.backendProgress(params)
    }

    func backendFinished(_ reply: BackendReply) {
        let (wasRunning, sentWhileReady) = state.withLock { state -> (Bool, Bool) in
            guard state.phase == .running else { return (false, false) }
            state.phase = .ended
            state.inner = nil  // the handle may hold this call as its sink: break the cycle
            return (true, state.sentWhileReady)
        }
        guard wasRunning else { return }
        let outcome: CircuitOutcome
        switch reply {
        case .result: outcome = .success
        case .error(let error) where error.code == JSONRPCErrorCode.backendUnavailable && !sentWhileReady: outcome = .neutral
        case .error(let error): outcome = .ofError(code: error.code)
        }
        backend.breaker.record(outcome, now: Resilience.now())
        backend.gate.release()
        sink.backendFinished(reply)
    }

    func callTimedOut() {
        state.withLock { $0.timedOut = true }
    }

    func cancel(reason: String) {
        let (previous, handle, timedOut) = state.withLock { state -> (Phase, (any BackendInFlight)?, Bool) in
            let previous = state.phase
            if state.phase == .running, state.inner == nil { state.pendingCancel = reason }
            state.phase = .ended
            defer { state.inner = nil }
            return (previous, state.inner, state.timedOut)
        }
        switch previous {
        case .waiting:
            // Not waiting any more means a slot is on its way: `slotGranted` will see the end and pass it on.
            _ = backend.gate.cancelWaiting(ticket)
        case .running:
            handle?.cancel(reason: reason)
            backend.breaker.record(timedOut ? .failure : .neutral, now: Resilience.now())
            backend.gate.release()
        case .ended:
            break
        }
    }
}

import GatewayBackends
import GatewayCore
import GatewayObservability
import Logging
import NIOCore

/// One client request being served by a backend. Lives on the client connection's event loop: backend events
/// hop here, the timeout fires here, and the reply channel is only touched here, so it needs no lock.
///
/// It ends exactly once, by the backend's reply, by `call_timeout` (-32004, with `notifications/cancelled` sent
/// to the backend: MUST item 8; the timer is not reset by progress, so it is a hard maximum), or by the
/// client's cancellation (no response at all, basic/utilities/cancellation). Whichever way it ends, its audit
/// record (when the audit log is on) is emitted there, once, with the outcome and the call's duration.
final class ToolCallExecution: BackendCallSink, @unchecked Sendable {
    let eventLoop: any EventLoop
    let requestID: RequestID
    let backendName: String
    let method: String
    private let reply: any ReplyChannel
    private let session: SessionState
    private let timeout: Duration
    private let outputCheck: OutputSchemaCheck?
    private let onDone: @Sendable (ToolCallExecution) -> Void
    private let audit: AuditedCall?
    private let observation: RequestObservation?
    private let backendSpan: TracedSpan?
    private var inFlight: (any BackendInFlight)?
    private var timer: Scheduled<Void>?
    private var finished = false

    init(
        eventLoop: any EventLoop, requestID: RequestID, backendName: String, method: String, reply: any ReplyChannel,
        session: SessionState, timeout: Duration, outputCheck: OutputSchemaCheck? = nil, audit: AuditedCall? = nil,
        observation: RequestObservation? = nil, backendSpan: TracedSpan? = nil,
        onDone: @escaping @Sendable (ToolCallExecution) -> Void
    ) {
        self.observation = observation
        self.backendSpan = backendSpan
        self.outputCheck = outputCheck
        self.audit = audit
        self.eventLoop = eventLoop
        self.requestID = requestID
        self.backendName = backendName
        self.method = method
        self.reply = reply
        self.session = session
        self.timeout = timeout
        self.onDone = onDone
    }

    func start(backend: any Backend, call: BackendCall) {
        eventLoop.preconditionInEventLoop()
        timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [self] in
            guard !finished else { return }
            (inFlight as? any CallTimeoutObserving)?.callTimedOut()
            inFlight?.cancel(reason: "the gateway's call_timeout of \(DurationFormat.describe(timeout)) elapsed")
            let error = JSONRPCError.backendTimeout(backendName, method: method, after: timeout)
            complete(JSONRPCEncoder.error(id: requestID, error), outcome: .timeout, error: error)
        }
        let handle = backend.call(call, sink: self)
        if finished { return }
        inFlight = handle
    }

    func backendProgress(_ params: JSONObject) {
        onLoop { [self] in
            guard !finished else { return }
            reply.sendRelated(JSONRPCNotification(method: "notifications/progress", params: params).serialized())
        }
    }

    func backendFinished(_ backendReply: BackendReply) {
        onLoop { [self] in
            guard !finished else { return }
            switch backendReply {
            case .result(let raw):
                outputCheck?.check(raw)
                complete(JSONRPCEncoder.response(id: requestID, rawResult: raw), outcome: audit == nil && observation == nil ? .ok : .ofToolResult(raw))
            case .error(let error): complete(JSONRPCEncoder.error(id: requestID, error), outcome: .error, error: error)
            }
        }
    }

    /// Sends a message related to this call (a backend's request to the client, its log message) on the call's
    /// own stream, on the event loop; false once the call has ended, when the message must go elsewhere.
    func sendRelatedIfOpen(_ message: [UInt8]) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard !finished else { return false }
        reply.sendRelated(message)
        return true
    }

    /// The client cancelled (or its session ended): tell the backend, send nothing.
    func cancel(reason: String) {
        onLoop { [self] in
            guard !finished else { return }
            finished = true
            timer?.cancel()
            inFlight?.cancel(reason: reason)
            release()
            reply.finishWithoutResponse()
            audit?.finish(.cancelled)
            backendSpan?.end()
            observation?.finish(.cancelled)
            onDone(self)
        }
    }

    /// The gateway cannot wait for the backend any longer (a drain past `server.shutdown_grace`): the client gets
    /// `error` as the response and the backend is told the call is cancelled.
    func abort(_ error: JSONRPCError) {
        onLoop { [self] in
            guard !finished else { return }
            inFlight?.cancel(reason: error.message)
            complete(JSONRPCEncoder.error(id: requestID, error), outcome: .error, error: error)
        }
    }

    private func complete(_ message: [UInt8], outcome: AuditOutcome, error: JSONRPCError? = nil) {
        finished = true
        timer?.cancel()
        release()
        if let error { backendSpan?.fail(error.message) }
        backendSpan?.end()
        reply.sendResponse(message)
        audit?.finish(outcome)
        observation?.finish(ToolCallOutcome(rawValue: outcome.rawValue) ?? .error, error: error)
        onDone(self)
    }

    /// Drops the backend's handle and the timer: a handle may hold this execution as its sink, and the cycle
    /// would otherwise keep every finished call (and its reply, responder and audit record) alive.
    private func release() {
        inFlight = nil
        timer = nil
    }

    private func onLoop(_ work: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { work() } else { eventLoop.execute(work) }
    }
}

/// Checks a result's `structuredContent` against the tool's declared `outputSchema` (2025-11-25/server/tools#
/// output-schema: servers MUST conform). A mismatch is reported, and the result still passes unchanged: the
/// gateway observes a backend's contract, it does not rewrite answers.
struct OutputSchemaCheck: Sendable {
    let tool: CatalogTool
    let schema: JSONSchema
    let report: @Sendable (CatalogTool, [String]) -> Void

    func check(_ raw: [UInt8]) {
        guard let result = try? JSONParser.parse(raw, maxDepth: 512) else { return }
        if result["isError"]?.boolValue == true { return }
        guard let structured = result["structuredContent"] else {
            report(tool, ["the tool declares an outputSchema but the result has no structuredContent"])
            return
        }
        let violations = schema.validate(structured, limit: 10)
        if !violations.isEmpty { report(tool, violations.map(\.description)) }
    }
}

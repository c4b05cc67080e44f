import GatewayBackends
import GatewayCore
import NIOConcurrencyHelpers
import NIOCore

/// The RFC 5424 severities MCP logging uses (2025-11-25/server/utilities/logging), least severe first.
enum LogSeverity: Int, Comparable, Sendable, CaseIterable {
    case debug, info, notice, warning, error, critical, alert, emergency

    init?(name: String) {
        guard let severity = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = severity
    }

    var name: String { "\(self)" }

    static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension JSONRPCError {
    /// What a backend is told when the client its request was for cannot take it (-32001, as for an unavailable
    /// backend: the other end of the relay is gone or has no stream to carry the request).
    static func clientUnreachable(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.backendUnavailable, message: "The client cannot be reached: \(detail)")
    }
}

/// What one session holds for backend-to-client traffic: the server-to-client requests sent to the client and
/// not answered yet (under gateway ids unique in the session, each with the answer that goes back to the
/// backend that asked), and the level the client chose with `logging/setLevel`.
final class ClientRequestTable: Sendable {
    /// A client that never answers cannot make the table grow without bound.
    static let maximumOutstanding = 64

    private struct Outstanding {
        let method: String
        let answer: @Sendable (BackendReply) -> Void
        var timer: Scheduled<Void>?
    }

    private struct Mutable {
        var nextID = 1
        var outstanding: [RequestID: Outstanding] = [:]
        var logLevel: LogSeverity?
        var ended = false
    }

    private let state = NIOLockedValueBox(Mutable())

    /// The level set by `logging/setLevel`; nil until the client sets one.
    var logLevel: LogSeverity? {
        get { state.withLockedValue { $0.logLevel } }
        set { state.withLockedValue { $0.logLevel = newValue } }
    }

    /// A fresh gateway id for a request to the client, or an error when none can be sent. The request fails
    /// with -32004 when the client has not answered within `timeout` (the timeout of the call that caused it).
    func register(
        method: String, timeout: Duration, on eventLoop: any EventLoop, answer: @escaping @Sendable (BackendReply) -> Void
    ) -> Result<RequestID, JSONRPCError> {
        let registered = state.withLockedValue { state -> Result<RequestID, JSONRPCError> in
            guard !state.ended else { return .failure(.clientUnreachable("its session has ended")) }
            guard state.outstanding.count < Self.maximumOutstanding else {
                return .failure(.internalError("the client has \(Self.maximumOutstanding) requests from servers unanswered; the gateway sends no more until it answers"))
            }
            let id = RequestID(state.nextID)
            state.nextID += 1
            state.outstanding[id] = Outstanding(method: method, answer: answer)
            return .success(id)
        }
        guard case .success(let id) = registered else { return registered }
        let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [weak self] () -> Void in
            guard let answer = self?.take(id) else { return }
            answer(.error(JSONRPCError(
                code: JSONRPCErrorCode.backendTimeout,
                message: "The client did not answer \(method) within the call's timeout of \(DurationFormat.describe(timeout))"
            )))
        }
        let stillOutstanding = state.withLockedValue { state -> Bool in
            guard state.outstanding[id] != nil else { return false }
            state.outstanding[id]?.timer = timer
            return true
        }
        if !stillOutstanding { timer.cancel() }
        return .success(id)
    }

    /// Removes an outstanding request and returns where its answer goes (nil: unknown, answered or timed out).
    func take(_ id: RequestID) -> (@Sendable (BackendReply) -> Void)? {
        let entry = state.withLockedValue { $0.outstanding.removeValue(forKey: id) }
        entry?.timer?.cancel()
        return entry?.answer
    }

    /// The session ended: every backend still waiting for this client gets an error now.
    func end() {
        let entries = state.withLockedValue { state -> [Outstanding] in
            state.ended = true
            defer { state.outstanding.removeAll() }
            return Array(state.outstanding.values)
        }
        for entry in entries {
            entry.timer?.cancel()
            entry.answer(.error(.clientUnreachable("its session ended before it answered \(entry.method)")))
        }
    }
}

/// The client side of one call, handed to its backend: the backend's requests to the client and its log
/// messages go on the call's own stream while its response is still to come (a POST's answer switches to SSE:
/// transports#sending-messages-to-the-server, MUST item 42), else on the session's GET stream. Touched on the
/// call's event loop only.
final class CallRelay: ClientRelay, @unchecked Sendable {
    private weak var execution: ToolCallExecution?
    private weak var session: SessionState?
    private let eventLoop: any EventLoop
    private let timeout: Duration

    init(execution: ToolCallExecution, session: SessionState, eventLoop: any EventLoop, timeout: Duration) {
        self.execution = execution
        self.session = session
        self.eventLoop = eventLoop
        self.timeout = timeout
    }

    @discardableResult
    func relayRequest(method: String, params: JSONObject?, answer: @escaping @Sendable (BackendReply) -> Void) -> any RelayedRequest {
        let handle = RelayedClientRequest(relay: self)
        onLoop { [self] in
            guard let session else {
                answer(.error(.clientUnreachable("its session has ended")))
                return
            }
            if let refusal = Self.refusal(method: method, params: params, capabilities: session.claims.clientCapabilities) {
                answer(.error(refusal))
                return
            }
            let id: RequestID
            switch session.clientRequests.register(method: method, timeout: timeout, on: eventLoop, answer: answer) {
            case .success(let registered): id = registered
            case .failure(let error):
                answer(.error(error))
                return
            }
            guard !handle.isCancelled else {
                _ = session.clientRequests.take(id)
                return
            }
            handle.id = id
            let message = JSONRPCRequest(id: id, method: method, params: params).serialized()
            if send(message, in: session) { return }
            session.clientRequests.take(id)?(.error(.clientUnreachable(
                "the call that caused \(method) has already been answered and the session has no GET stream open to carry it"
            )))
        }
        return handle
    }

    /// The backend cancelled a request it had sent: if the client has not answered yet, it is told under the
    /// gateway's id (basic/utilities/cancellation) and its answer, should one still come, is dropped.
    fileprivate func cancelClientRequest(_ id: RequestID, reason: String?) {
        guard let session, session.clientRequests.take(id) != nil else { return }
        var params: JSONObject = ["requestId": id.json]
        if let reason { params["reason"] = .string(reason) }
        _ = send(JSONRPCNotification(method: "notifications/cancelled", params: params).serialized(), in: session)
    }

    /// On the call's own stream while its response is still to come, else on the session's GET stream.
    private func send(_ message: [UInt8], in session: SessionState) -> Bool {
        execution?.sendRelatedIfOpen(message) == true || session.sendToClient(message)
    }

    func relayLog(_ params: JSONObject) {
        onLoop { [self] in
            guard let session else { return }
            let severity = params["level"]?.stringValue.flatMap(LogSeverity.init(name:)) ?? .info
            // No level set: the session gets its own calls' messages, as a direct connection to the server would.
            if let threshold = session.clientRequests.logLevel, severity < threshold { return }
            _ = send(JSONRPCNotification(method: "notifications/message", params: params).serialized(), in: session)
        }
    }

    /// Why the client must not be sent this request: it did not declare the capability the method needs in its
    /// `initialize` (lifecycle#capability-negotiation), a URL-mode elicitation without `elicitation.url`
    /// (2025-11-25/client/elicitation: servers MUST NOT send a mode the client did not declare), or sampling
    /// with tools without `sampling.tools` (2025-11-25/client/sampling).
    static func refusal(method: String, params: JSONObject?, capabilities: JSONObject) -> JSONRPCError? {
        guard let capability = RelayedServerRequest.capabilityByMethod[method] else { return .methodNotFound(method) }
        guard case .object(let declared)? = capabilities[capability] else {
            return JSONRPCError(
                code: JSONRPCErrorCode.methodNotFound,
                message: "The client did not declare the '\(capability)' capability in its initialize, so the gateway does not send it \(method)"
            )
        }
        if method == "elicitation/create", params?["mode"]?.stringValue == "url", declared["url"] == nil {
            return .invalidParams("The client did not declare elicitation.url in its initialize, so it cannot be sent a URL-mode elicitation/create")
        }
        if method == "sampling/createMessage", params?["tools"] != nil || params?["toolChoice"] != nil, declared["tools"] == nil {
            return .invalidParams("The client did not declare sampling.tools in its initialize, so it cannot be sent sampling/createMessage with tools")
        }
        return nil
    }

    fileprivate func onLoop(_ work: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { work() } else { eventLoop.execute(work) }
    }
}

/// One relayed request, as its backend can cancel it. Confined to the call's event loop; it keeps the relay
/// alive (which holds the call and the session only weakly) until the request is answered or cancelled.
final class RelayedClientRequest: RelayedRequest, @unchecked Sendable {
    private let relay: CallRelay
    /// The gateway's id, once the request has been sent to the client.
    var id: RequestID?
    private(set) var isCancelled = false

    init(relay: CallRelay) {
        self.relay = relay
    }

    func cancel(reason: String?) {
        relay.onLoop { [self] in
            isCancelled = true
            if let id { relay.cancelClientRequest(id, reason: reason) }
        }
    }
}

extension Gateway {
    /// `logging/setLevel` (server/utilities/logging): the level is kept per session and the gateway filters
    /// backends' `notifications/message` by it centrally; backends, shared by many sessions, are not told.
    func setLogLevel(_ request: JSONRPCRequest, session: SessionState) -> Result<JSONValue, JSONRPCError> {
        guard let name = request.params?["level"]?.stringValue, let level = LogSeverity(name: name) else {
            let names = LogSeverity.allCases.map(\.name).joined(separator: ", ")
            return .failure(.invalidParams("logging/setLevel params.level must be one of \(names)"))
        }
        session.clientRequests.logLevel = level
        return .success(.object(JSONObject()))
    }

    /// A client's response to a request the gateway relayed from a backend: back to that backend, under the
    /// backend's own id (MUST item 42). An id the session has no request under is logged and dropped.
    func routeClientResponse(_ response: JSONRPCResponse, session: SessionState) {
        guard let answer = session.clientRequests.take(response.id) else {
            logger.debug("client response without a pending request dropped", metadata: ["id": "\(response.id)", "session": "\(session.logID)"])
            return
        }
        switch response.outcome {
        case .result(let value): answer(.result(value.serialized()))
        case .error(let error): answer(.error(error))
        }
    }

    /// A log message a shared backend sent while serving no single call: to every session that set a level
    /// admitting it (a session that never set a level did not ask for other sessions' backends' logs).
    func deliverUnrelatedLog(_ params: JSONObject) {
        let severity = params["level"]?.stringValue.flatMap(LogSeverity.init(name:)) ?? .info
        let targets = sessions.withLockedValue { table in table.entries.values.map(\.attachment) }
        let message = JSONRPCNotification(method: "notifications/message", params: params).serialized()
        for session in targets {
            guard let threshold = session.clientRequests.logLevel, severity >= threshold else { continue }
            _ = session.sendToClient(message)
        }
    }
}

extension ObserverRelay: BackendLogObserver {
    func backendLogMessage(_ backend: String, params: JSONObject) { target?.deliverUnrelatedLog(params) }
}

import GatewayConfig
import GatewayCore
import GatewayObservability
import GatewayRuntime
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The HTTP+SSE transport of protocol 2024-11-05 (2024-11-05/basic/transports#http-with-sse; digest §2.7,
/// MUST item 23), served beside Streamable HTTP when `server.legacy_sse` is on, for clients that predate it.
///
/// - `GET /sse` opens a `text/event-stream` whose first event is `endpoint`, its data the URI to POST to:
///   `/messages?sessionId=<id>` (absolute under `server.public_url` when set, else relative, as the Python
///   SDK's server sends it). Keep-alive comments follow every `server.sse_keepalive`.
/// - `POST /messages?sessionId=<id>` carries one JSON-RPC message. It is answered 202 Accepted at once; the
///   JSON-RPC response travels on the stream as `event: message`, and so does everything else the session
///   receives (progress, `notifications/tools/list_changed`): the stream is the session's `ServerStream`.
///
/// Sessions. The transport names its session before `initialize` exists, so the id in the URI is not the
/// gateway's sealed session id but a handle minted at `GET /sse`: 128 random bits, known only to the client
/// that opened the stream, valid only on this replica (the stream lives here, so nothing else could serve
/// the session anyway) and only on `/messages` (it is no `Mcp-Session-Id`). The stream records the principal
/// that opened it. The first `initialize` POSTed for it creates a normal gateway session through
/// `Gateway.initialize` (sealed id bound to that principal, the negotiated version and the client's
/// capabilities, transport label `sse`), which the stream then carries. Every POST must come from the
/// stream's principal and is looked up with `Gateway.lookupSession`, so the binding, the lifetime limit and
/// the session's end are the same as on `/mcp`; anything else is 404, indistinguishably
/// (SBP-2025-11-25#session-hijacking, MUST item 33). The transport has no DELETE: the stream closing ends the
/// session, and the session ending (eviction, `sessions.max_lifetime`, shutdown) closes the stream.
/// A stream not initialized within `sessions.idle_timeout` is closed.
struct LegacySSEEndpoint: Sendable {
    static let streamPath = "/sse"
    static let messagesPath = "/messages"
    static let paths: Set<String> = [streamPath, messagesPath]
    /// The label of `mcp_sessions_active` / `mcp_sessions_total` for sessions of this transport.
    static let transportLabel = "sse"
    static let sessionIDParameter = "sessionId"

    let gateway: Gateway
    let streams: LegacySSEStreams
    let maxJSONDepth: Int
    let keepAliveInterval: TimeAmount
    let initializeTimeout: TimeAmount
    /// `/messages?sessionId=`, or `<server.public_url>/messages?sessionId=`.
    let messagesURIPrefix: String
    let logger: Logger

    /// Nil when `server.legacy_sse` is off: `/sse` and `/messages` are then unknown paths (404).
    init?(gateway: Gateway, configuration: GatewayConfiguration, logger: Logger) {
        guard configuration.server.legacySSE else { return nil }
        self.gateway = gateway
        self.streams = LegacySSEStreams()
        self.maxJSONDepth = configuration.server.maxJSONDepth
        self.keepAliveInterval = .nanoseconds(configuration.server.sseKeepalive.nanoseconds)
        self.initializeTimeout = .nanoseconds(configuration.sessions.idleTimeout.nanoseconds)
        var base = configuration.server.publicURL ?? ""
        while base.hasSuffix("/") { base.removeLast() }
        self.messagesURIPrefix = base + Self.messagesPath + "?" + Self.sessionIDParameter + "="
        var logger = logger
        logger[metadataKey: "transport"] = "sse"
        self.logger = logger
    }

    func handle(_ request: HTTPRequestContext, body: ByteBuffer?, responder: HTTPResponder) {
        switch (request.path, request.head.method) {
        case (Self.streamPath, .GET): openStream(request, responder: responder)
        case (Self.messagesPath, .POST): post(request, body: body, responder: responder)
        case (Self.streamPath, _): methodNotAllowed(request, allow: "GET", responder: responder)
        default: methodNotAllowed(request, allow: "POST", responder: responder)
        }
    }

    // MARK: - GET /sse

    private func openStream(_ request: HTTPRequestContext, responder: HTTPResponder) {
        let accept = request.headers["accept"].joined(separator: ",")
        if !accept.isEmpty, !MediaTypes.accepts(accept, "text/event-stream") {
            responder.respond(Self.error(.notAcceptable, .invalidRequest("GET \(Self.streamPath) opens an event stream: Accept must include text/event-stream")))
            return
        }
        if refuseWhileDraining(responder) { return }
        let stream = LegacySSEStream(
            id: Self.mintStreamID(), principal: request.principal, responder: responder, gateway: gateway, streams: streams, logger: logger
        )
        streams.insert(stream)
        stream.open(endpointURI: messagesURIPrefix + stream.id, keepAliveEvery: keepAliveInterval, initializeWithin: initializeTimeout)
        logger.debug("legacy SSE stream opened", metadata: ["principal": "\(request.principal.id)"])
    }

    /// 128 bits from the system's CSPRNG (`getrandom` on Linux), as 32 hex digits: the URI is the only
    /// credential for the stream besides the principal's own, so it must not be guessable.
    static func mintStreamID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<2 {
            let word = generator.next() as UInt64
            for shift in stride(from: 60, through: 0, by: -4) { bytes.append(digits[Int((word >> UInt64(shift)) & 0xF)]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - POST /messages

    private func post(_ request: HTTPRequestContext, body: ByteBuffer?, responder: HTTPResponder) {
        guard let id = Self.sessionID(fromQuery: request.query) else {
            gateway.telemetry.metrics.sessionFailures(reason: "missing").increment()
            responder.respond(Self.error(.badRequest, .invalidRequest("the sessionId query parameter is required: POST to the URI of the endpoint event of your GET \(Self.streamPath) stream")))
            return
        }
        guard let stream = streams.stream(id: id), !stream.isClosed else {
            gateway.telemetry.metrics.sessionFailures(reason: "not_found").increment()
            responder.respond(Self.notFound)
            return
        }
        // Another principal's stream is answered exactly like an unknown one.
        guard stream.principalID == request.principal.id else {
            gateway.telemetry.metrics.sessionFailures(reason: "forbidden").increment()
            responder.respond(Self.notFound)
            return
        }
        guard let contentType = request.headers.first(name: "content-type"), MediaTypes.isJSON(contentType) else {
            responder.respond(Self.error(.unsupportedMediaType, .invalidRequest("Content-Type must be application/json")))
            return
        }
        guard let value = MessageBody.parse(body, maxDepth: maxJSONDepth, responder: responder) else { return }
        // 2024-11-05 has no batching (digest §1.7): one message per POST.
        if case .array = value {
            responder.respond(Self.error(.badRequest, .invalidRequest("JSON-RPC batches are not part of the HTTP+SSE transport (protocol 2024-11-05); POST one message at a time")))
            return
        }
        let message: JSONRPCMessage
        switch JSONRPCMessage.classify(value) {
        case .success(let classified): message = classified
        case .failure(let error):
            responder.respond(Self.error(.badRequest, error))
            return
        }
        let trace = gateway.telemetry.tracing.incoming(
            traceparent: request.headers.first(name: "traceparent"), tracestate: request.headers.first(name: "tracestate")
        )
        guard let session = stream.session else {
            beforeInitialize(message, stream: stream, request: request, responder: responder, trace: trace)
            return
        }
        switch gateway.lookupSession(id: session.id, principal: request.principal) {
        case .found(let found) where found === session: break
        default:
            responder.respond(Self.notFound)
            return
        }
        switch message {
        case .request(let rpc):
            if rpc.method == "initialize" {
                responder.respond(status: .accepted)
                stream.send(JSONRPCEncoder.error(id: rpc.id, .invalidRequest("this session is already initialized; open a new \(Self.streamPath) stream for a new session")))
                return
            }
            if refuseWhileDraining(responder) { return }
            responder.respond(status: .accepted)
            let principal = request.principal
            stream.eventLoop.execute { [gateway] in
                gateway.handleRequest(rpc, session: session, principal: principal, eventLoop: stream.eventLoop, reply: LegacySSEReply(stream: stream), trace: trace)
            }
        case .notification(let notification):
            responder.respond(status: .accepted)
            stream.eventLoop.execute { [gateway] in gateway.handleNotification(notification, session: session) }
        case .response(let response):
            responder.respond(status: .accepted)
            stream.eventLoop.execute { [gateway] in gateway.handleResponse(response, session: session) }
        }
    }

    /// The stream has no session yet: `initialize` creates it (2024-11-05/basic/lifecycle#initialization);
    /// before that the client may only ping. Refusals that start no session (at `sessions.max`, draining) are
    /// HTTP 503 on the POST, like `initialize` on `/mcp`; a handshake the lifecycle rejects is answered on the
    /// stream, and the client may try again.
    private func beforeInitialize(_ message: JSONRPCMessage, stream: LegacySSEStream, request: HTTPRequestContext, responder: HTTPResponder, trace: TraceLink) {
        guard case .request(let rpc) = message else {
            responder.respond(status: .accepted)
            return
        }
        switch rpc.method {
        case "initialize":
            break
        case "ping":
            responder.respond(status: .accepted)
            stream.send(JSONRPCEncoder.response(id: rpc.id, result: .object(JSONObject())))
            return
        default:
            responder.respond(status: .accepted)
            stream.send(JSONRPCEncoder.error(id: rpc.id, .invalidRequest("send initialize first: this session has not been initialized")))
            return
        }
        switch gateway.initialize(rpc, principal: request.principal, transport: Self.transportLabel, trace: trace) {
        case .created(let session, let response):
            // Claimed here, before the 202, so the client's next POST already finds the session.
            guard stream.claim(session) else {
                gateway.endSession(session)
                if stream.isClosed {
                    responder.respond(Self.notFound)
                } else {
                    responder.respond(status: .accepted)
                    stream.send(JSONRPCEncoder.error(id: rpc.id, .invalidRequest("this session is already initialized; open a new \(Self.streamPath) stream for a new session")))
                }
                return
            }
            stream.eventLoop.execute { stream.attach(session, initializeResponse: response) }
            responder.respond(status: .accepted)
        case .rejected(let response):
            responder.respond(status: .accepted)
            stream.send(response)
        case .full(let retryAfter):
            var headers = HTTPHeaders()
            headers.add(name: "retry-after", value: String(retryAfter))
            responder.respond(Self.error(.serviceUnavailable, JSONRPCError(code: JSONRPCErrorCode.internalError, message: "The gateway is at its session limit (sessions.max) and no session is idle; retry after \(retryAfter)s"), headers: headers))
        case .draining:
            refuseWhileDraining(responder)
        }
    }

    /// The `sessionId` parameter of the query string; nil when absent or empty.
    static func sessionID(fromQuery query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, parts[0] == Self.sessionIDParameter, !parts[1].isEmpty { return String(parts[1]) }
        }
        return nil
    }

    // MARK: - Refusals

    static let notFound = error(.notFound, JSONRPCError(
        code: JSONRPCErrorCode.invalidRequest,
        message: "Session not found: its stream closed, it expired, or it was never issued here; open a new stream with GET \(streamPath)"
    ))

    /// While draining (docs/operations.md, "Drain and restart"): new streams and requests get 503 with
    /// `Retry-After`, so the client goes to another replica.
    @discardableResult
    private func refuseWhileDraining(_ responder: HTTPResponder) -> Bool {
        guard gateway.isDraining else { return false }
        var headers = HTTPHeaders()
        headers.add(name: "retry-after", value: String(HTTPServer.reconnectDelay.components.seconds))
        responder.respond(Self.error(.serviceUnavailable, JSONRPCError(
            code: JSONRPCErrorCode.internalError, message: "The gateway is shutting down and takes no new requests; retry on another replica"
        ), headers: headers))
        return true
    }

    private func methodNotAllowed(_ request: HTTPRequestContext, allow: String, responder: HTTPResponder) {
        var headers = HTTPHeaders()
        headers.add(name: "allow", value: allow)
        responder.respond(Self.error(.methodNotAllowed, .invalidRequest("\(request.head.method.rawValue) is not supported on \(request.path); use \(allow)"), headers: headers))
    }

    static func error(_ status: HTTPResponseStatus, _ error: JSONRPCError, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        StreamableHTTPEndpoint.error(status, error, headers: headers)
    }
}

/// The open `/sse` streams of this replica, by the id in their endpoint URI.
final class LegacySSEStreams: Sendable {
    private let streams = NIOLockedValueBox<[String: LegacySSEStream]>([:])

    func insert(_ stream: LegacySSEStream) {
        streams.withLockedValue { $0[stream.id] = stream }
    }

    func remove(_ stream: LegacySSEStream) {
        streams.withLockedValue { table in
            if table[stream.id] === stream { table[stream.id] = nil }
        }
    }

    func stream(id: String) -> LegacySSEStream? {
        streams.withLockedValue { $0[id] }
    }
}

/// One `GET /sse` response: the endpoint event, then every message of its session as `event: message`, with
/// keep-alive comments in between. The responder and the timers are confined to the connection's event loop;
/// `send` and `close` may come from any thread and hop there. The session it carries is read under a lock by
/// the POSTs, which arrive on other connections.
final class LegacySSEStream: ServerStream, @unchecked Sendable {
    let id: String
    let principalID: String
    let eventLoop: any EventLoop
    private let responder: HTTPResponder
    private let gateway: Gateway
    private let streams: LegacySSEStreams
    private let logger: Logger
    private let binding = NIOLockedValueBox(Binding.pending)

    private enum Binding {
        case pending
        case bound(SessionState)
        case closed
    }

    // Event-loop confined.
    private var keepAlive: RepeatedTask?
    private var initializeDeadline: Scheduled<Void>?
    /// Set when the gateway drains: the stream ends once the session's calls in flight have answered.
    private var closeWhenIdle: Duration?
    private var finished = false
    /// The session carries this stream and counts it as busy (never idle while it is open).
    private var attached = false

    init(id: String, principal: Principal, responder: HTTPResponder, gateway: Gateway, streams: LegacySSEStreams, logger: Logger) {
        self.id = id
        self.principalID = principal.id
        self.responder = responder
        self.eventLoop = responder.eventLoop
        self.gateway = gateway
        self.streams = streams
        self.logger = logger
    }

    /// The session `initialize` created for this stream, nil before.
    var session: SessionState? {
        binding.withLockedValue { binding in
            if case .bound(let session) = binding { return session }
            return nil
        }
    }

    var isClosed: Bool {
        binding.withLockedValue { binding in
            if case .closed = binding { return true }
            return false
        }
    }

    /// Starts the response; the first event names the POST URI (2024-11-05/basic/transports#http-with-sse).
    func open(endpointURI: String, keepAliveEvery interval: TimeAmount, initializeWithin timeout: TimeAmount) {
        eventLoop.preconditionInEventLoop()
        responder.startEventStream()
        responder.writeStream(Self.endpointEvent(endpointURI))
        keepAlive = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            guard !finished else { return }
            responder.writeStream(ServerSentEvents.keepAlive)
        }
        initializeDeadline = eventLoop.scheduleTask(in: timeout) { [self] in
            guard session == nil else { return }
            finish(reason: "not initialized within sessions.idle_timeout")
        }
        responder.closeFuture.whenComplete { [self] _ in finish(reason: "the client closed the stream") }
    }

    static func endpointEvent(_ uri: String) -> [UInt8] {
        Array("event: endpoint\ndata: \(uri)\n\n".utf8)
    }

    /// From any thread: the session `initialize` created becomes this stream's. False when the stream has
    /// closed or a concurrent `initialize` claimed it first; the caller then ends the new session.
    func claim(_ session: SessionState) -> Bool {
        binding.withLockedValue { binding in
            guard case .pending = binding else { return false }
            binding = .bound(session)
            return true
        }
    }

    /// On the event loop, after `claim`: the stream becomes the session's server stream (notifications reach
    /// it) and the `initialize` response its next event. If the stream finished in between, `finish` has
    /// already ended the session.
    func attach(_ session: SessionState, initializeResponse: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard !finished else { return }
        initializeDeadline?.cancel()
        initializeDeadline = nil
        if session.attachGetStream(self) {
            attached = true
            gateway.adjustBusy(session, by: 1)
        }
        deliver(initializeResponse)
    }

    /// A JSON-RPC message as `event: message`. On the event loop only.
    func deliver(_ message: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard !finished else { return }
        responder.writeStream(ServerSentEvents.event(id: nil, data: message))
    }

    /// A request of this session was answered (or cancelled): if the gateway is draining and nothing else is
    /// in flight, the stream ends. Checked on the next turn of the loop, after the call has unregistered.
    func requestFinished() {
        guard closeWhenIdle != nil else { return }
        eventLoop.execute { [self] in endIfDrained() }
    }

    // MARK: ServerStream

    func send(_ message: [UInt8]) {
        if eventLoop.inEventLoop {
            deliver(message)
        } else {
            eventLoop.execute { [self] in deliver(message) }
        }
    }

    func close() {
        eventLoop.execute { [self] in finish(reason: "the session ended") }
    }

    /// The gateway is draining. On this transport the stream carries the responses too, so it stays open
    /// until the calls in flight have answered (or `server.shutdown_grace` answered them), then ends with an
    /// SSE `retry:` hint; the client's next `GET /sse` goes to another replica.
    func close(reconnectAfter delay: Duration) {
        eventLoop.execute { [self] in
            closeWhenIdle = delay
            endIfDrained()
        }
    }

    private func endIfDrained() {
        guard let delay = closeWhenIdle, !finished, (session?.inFlightCount ?? 0) == 0 else { return }
        responder.writeStream(ServerSentEvents.retry(after: delay))
        finish(reason: "the gateway is draining")
    }

    /// Ends the response and, with it, the session (this transport has no DELETE).
    private func finish(reason: String) {
        eventLoop.preconditionInEventLoop()
        guard !finished else { return }
        finished = true
        keepAlive?.cancel()
        initializeDeadline?.cancel()
        responder.endStream()
        streams.remove(self)
        let previous = binding.withLockedValue { binding -> Binding in
            defer { binding = .closed }
            return binding
        }
        guard case .bound(let session) = previous else {
            logger.debug("legacy SSE stream closed before initialize", metadata: ["reason": "\(reason)"])
            return
        }
        logger.debug("legacy SSE stream closed", metadata: ["reason": "\(reason)", "session": "\(session.logID)"])
        if attached {
            session.detachGetStream(self)
            gateway.adjustBusy(session, by: -1)
        }
        gateway.endSession(session)
    }
}

/// Where the answer to one POSTed request goes on this transport: the session's stream. The POST itself was
/// answered 202 before the request ran, so a step-up refusal cannot be an HTTP 403 challenge here; it is
/// the JSON-RPC error (-32005) naming the scopes, on the stream.
final class LegacySSEReply: ReplyChannel {
    private let stream: LegacySSEStream

    init(stream: LegacySSEStream) {
        self.stream = stream
    }

    func sendRelated(_ message: [UInt8]) {
        stream.deliver(message)
    }

    func sendResponse(_ message: [UInt8]) {
        stream.deliver(message)
        stream.requestFinished()
    }

    func finishWithoutResponse() {
        stream.requestFinished()
    }

    func sendInsufficientScope(_ scopes: [String], response: [UInt8]) {
        sendResponse(response)
    }
}

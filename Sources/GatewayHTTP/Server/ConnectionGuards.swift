import GatewayConfig
import GatewayCore
import NIOCore
import NIOHTTP1
import Synchronization

/// The per-connection limits of `server.limits` and the CORS response headers, installed around NIO's HTTP/1.1
/// codec so they hold whatever the endpoints do:
///
/// - `max_header_bytes`: NIO's decoder stops at that many bytes of header fields; the answer is 431
///   (RFC 6585 §5) rather than NIO's generic 400.
/// - `request_timeout`: from the first byte of a request until its end has been decoded. A client that
///   trickles bytes (slow loris) gets 408 (RFC 9110 §15.5.9) and the connection closes. Nothing waits on a
///   thread meanwhile: NIO reads whatever arrived and returns to the event loop, so a trickling client costs
///   a few hundred bytes of state and delays no one.
/// - `idle_timeout`: a keep-alive connection with no request arriving, none being answered and no open
///   stream (an SSE response is a response still in progress) is closed.
/// - `max_connections`: counted on the listening socket (`ConnectionLimiter`).
struct ConnectionGuards: Sendable {
    let requestTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxHeaderBytes: Int
    let cors: CORSPolicy
    let connections: ConnectionCounter

    init(configuration: ServerConfig) {
        requestTimeout = .nanoseconds(configuration.requestTimeout.nanoseconds)
        idleTimeout = .nanoseconds(configuration.idleTimeout.nanoseconds)
        maxHeaderBytes = configuration.maxHeaderBytes
        cors = CORSPolicy(allowedOrigins: configuration.allowedOrigins)
        connections = ConnectionCounter(limit: configuration.maxConnections)
    }

    /// NIO's HTTP/1.1 server pipeline with the header limit, plus the deadline handler on the byte side of the
    /// codec and the request/response observer on its message side. Call it after any TLS handler is added.
    func configureHTTPPipeline(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = maxHeaderBytes
        decoderLimits.maxHeaderListSize = maxHeaderBytes
        try pipeline.configureHTTPServerPipeline(withErrorHandling: true, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
        let activity = ConnectionActivity(requestTimeout: requestTimeout, idleTimeout: idleTimeout)
        let encoder = try pipeline.handler(type: HTTPResponseEncoder.self)
        try pipeline.addHandler(RequestDeadlineHandler(activity: activity), position: .before(encoder))
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try pipeline.addHandler(RequestBoundaryHandler(activity: activity, cors: cors, maxHeaderBytes: maxHeaderBytes), position: .after(decoder))
    }

    /// For each HTTP/2 stream channel (before `HTTPConnectionHandler`): the CORS response headers. The other
    /// guards are per connection there (NIO's HTTP/2 connection manager runs the idle timeout, the header
    /// limit is the `SETTINGS_MAX_HEADER_LIST_SIZE` it advertises).
    func configureHTTP2Stream(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(StreamCORSHandler(cors: cors))
    }

    /// For `ServerBootstrap.serverChannelInitializer`: the connection cap.
    func configureServerChannel(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionLimiter(counter: connections))
        }
    }
}

/// Open client connections, shared by the listening socket's loop (which counts up) and every child loop
/// (which counts down when a connection closes).
final class ConnectionCounter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    var current: Int { open.load(ordering: .relaxed) }

    /// Counts a new connection in if there is room.
    func admit() -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        open.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func release() { open.wrappingSubtract(1, ordering: .relaxed) }
}

/// `server.limits.max_connections`: sits on the listening socket before NIO's accept handler. A connection
/// beyond the cap has already been accepted by the kernel; it is closed at once, before any byte is read,
/// so the client sees its connection close (or reset) instead of waiting in the backlog.
final class ConnectionLimiter: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    let counter: ConnectionCounter

    init(counter: ConnectionCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard counter.admit() else {
            child.close(promise: nil)
            return
        }
        let counter = counter
        child.closeFuture.whenComplete { _ in counter.release() }
        context.fireChannelRead(data)
    }
}

/// What one connection is doing, shared by its two guard handlers and confined to its event loop.
final class ConnectionActivity {
    let requestTimeout: TimeAmount
    let idleTimeout: TimeAmount
    /// How long a refused connection keeps reading (and dropping) before it closes: closing with unread bytes
    /// makes the kernel send a reset, which can destroy the error response before the client reads it.
    static let lingerTime = TimeAmount.seconds(1)

    /// The deadline handler's context: the byte side of the codec, where a raw 408 is written.
    var byteContext: ChannelHandlerContext?
    /// Set once the connection has been refused: inbound bytes are dropped until it closes.
    private(set) var refused = false

    private var receiving = false
    private var requestsReceived = 0
    private var responsesStarted = 0
    private var responsesFinished = 0
    private var responsesStartedWhenRequestBegan = 0
    /// When the request now arriving began, and since when the connection has been idle.
    private var requestStartedAt: NIODeadline?
    private var idleSince: NIODeadline?
    /// One timer per connection, at the earliest time a deadline could have passed. Events only record
    /// times; the timer re-evaluates when it fires and re-arms itself. Scheduling and cancelling a timer for
    /// every request and response cost a tenth of a busy gateway's CPU in a profile; this costs a clock read.
    private var check: Scheduled<Void>?
    private var checkAt: NIODeadline?

    init(requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
    }

    /// No request arriving, every received request answered, no response (stream) still open.
    var isIdle: Bool { !receiving && responsesFinished == responsesStarted && responsesFinished >= requestsReceived }

    var responseInProgress: Bool { responsesStarted > responsesFinished }

    func connectionOpened() { becameIdleIfSo() }

    func bytesArrived() {
        guard !receiving else { return }
        receiving = true
        responsesStartedWhenRequestBegan = responsesStarted
        idleSince = nil
        let now = NIODeadline.now()
        requestStartedAt = now
        ensureCheck(at: now + requestTimeout)
    }

    func requestReceived() {
        receiving = false
        requestsReceived += 1
        requestStartedAt = nil
    }

    func responseStarted() {
        responsesStarted += 1
        idleSince = nil
    }

    func responseFinished() {
        responsesFinished += 1
        becameIdleIfSo()
    }

    func connectionClosed() {
        check?.cancel()
        check = nil
        checkAt = nil
        byteContext = nil
    }

    /// Stops reading requests: later bytes are dropped, the connection closes after `lingerTime`.
    func refuse(context: ChannelHandlerContext) {
        refused = true
        check?.cancel()
        check = nil
        checkAt = nil
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
    }

    private func becameIdleIfSo() {
        guard isIdle else { return }
        let now = NIODeadline.now()
        idleSince = now
        ensureCheck(at: now + idleTimeout)
    }

    /// Makes sure a check runs no later than `deadline`; an earlier pending check will re-arm as needed.
    private func ensureCheck(at deadline: NIODeadline) {
        if let checkAt, checkAt <= deadline { return }
        guard let context = byteContext, !refused else { return }
        check?.cancel()
        checkAt = deadline
        check = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in evaluate() }
    }

    private func evaluate() {
        check = nil
        checkAt = nil
        guard !refused, let context = byteContext else { return }
        let now = NIODeadline.now()
        if receiving, let started = requestStartedAt {
            if now >= started + requestTimeout {
                requestTimedOut()
            } else {
                ensureCheck(at: started + requestTimeout)
            }
        } else if isIdle, let since = idleSince {
            if now >= since + idleTimeout {
                context.close(promise: nil)
            } else {
                ensureCheck(at: since + idleTimeout)
            }
        }
    }

    private func requestTimedOut() {
        guard receiving, !refused, let context = byteContext else { return }
        // A response already went out for this request (413 while its body is being drained): just close.
        guard responsesStarted == responsesStartedWhenRequestBegan, !responseInProgress else {
            context.close(promise: nil)
            return
        }
        let seconds = Double(requestTimeout.nanoseconds) / 1e9
        let message = "The request was not received within server.limits.request_timeout (\(seconds)s)"
        let body = JSONRPCEncoder.error(id: nil, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: message))
        var response = context.channel.allocator.buffer(capacity: body.count + 128)
        response.writeString("HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\nconnection: close\r\n\r\n")
        response.writeBytes(body)
        refuse(context: context)
        context.writeAndFlush(NIOAny(IOData.byteBuffer(response)), promise: nil)
    }
}

/// On the byte side of the HTTP codec: sees a request begin before the decoder can (a trickled head is
/// invisible above the codec until complete), runs the request and idle deadlines, and drops input on a
/// refused connection.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let activity: ConnectionActivity

    init(activity: ConnectionActivity) { self.activity = activity }

    func handlerAdded(context: ChannelHandlerContext) {
        activity.byteContext = context
        if context.channel.isActive { activity.connectionOpened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        activity.connectionOpened()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if activity.refused { return }
        activity.bytesArrived()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        activity.connectionClosed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        activity.connectionClosed()
    }
}

/// On the message side of the HTTP codec: marks request ends and response starts/ends for the deadlines,
/// answers a header overflow with 431, and adds CORS headers to responses for allowed origins.
final class RequestBoundaryHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let activity: ConnectionActivity
    let cors: CORSPolicy
    let maxHeaderBytes: Int
    /// The `Origin` of each request whose response has not started yet, in order (requests may be pipelined).
    private var pendingOrigins: [String?] = []

    init(activity: ConnectionActivity, cors: CORSPolicy, maxHeaderBytes: Int) {
        self.activity = activity
        self.cors = cors
        self.maxHeaderBytes = maxHeaderBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): pendingOrigins.append(head.headers.first(name: "origin"))
        case .body: break
        case .end: activity.requestReceived()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            activity.responseStarted()
            cors.decorate(&head.headers, origin: pendingOrigins.isEmpty ? nil : pendingOrigins.removeFirst())
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            context.write(data, promise: promise)
            activity.responseFinished()
        default:
            context.write(data, promise: promise)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if activity.refused {
            // Bytes still in the decoder after the refusal: expected, not worth a log line or an early close.
            if error is ByteToMessageDecoderError { return }
        }
        if let parserError = error as? HTTPParserError, case .headerOverflow = parserError {
            refuseOversizedHeaders(context: context)
            return
        }
        context.fireErrorCaught(error)
    }

    private func refuseOversizedHeaders(context: ChannelHandlerContext) {
        activity.refuse(context: context)
        guard !activity.responseInProgress else { return }
        let message = "The request's header fields are larger than server.limits.max_header_bytes (\(maxHeaderBytes) bytes)"
        let body = JSONRPCEncoder.error(id: nil, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: message))
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        let headers: HTTPHeaders = ["content-type": "application/json", "content-length": String(body.count), "connection": "close"]
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .requestHeaderFieldsTooLarge, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// CORS response headers on an HTTP/2 stream, which carries exactly one request.
final class StreamCORSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let cors: CORSPolicy
    private var origin: String?

    init(cors: CORSPolicy) { self.cors = cors }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { origin = head.headers.first(name: "origin") }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), head.status.code >= 200 else {
            context.write(data, promise: promise)
            return
        }
        cors.decorate(&head.headers, origin: origin)
        context.write(wrapOutboundOut(.head(head)), promise: promise)
    }
}

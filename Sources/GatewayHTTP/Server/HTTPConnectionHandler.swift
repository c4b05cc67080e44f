import GatewayCore
import NIOCore
import NIOHTTP1

/// Reads one HTTP/1.1 request at a time (NIO's pipelining handler orders them), enforcing
/// `server.limits.max_body` while the body arrives, and hands complete requests to the router.
///
/// An oversized body gets 413 at once and is never buffered. The connection then closes, but only after the
/// rest of the body has been read and dropped (a lingering close, bounded in bytes and time): closing with
/// unread bytes makes the kernel send a reset, and the client would see a broken connection instead of the 413.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer?)
        case rejected(discarded: Int)
    }

    /// How much of a rejected body is read and dropped, and for how long, before closing anyway.
    private static let lingerBytes = 16 * 1024 * 1024
    private static let lingerTime = TimeAmount.seconds(5)

    private let router: HTTPRouter
    private let maxBody: Int
    private var state: State = .idle

    init(router: HTTPRouter, maxBody: Int) {
        self.router = router
        self.maxBody = maxBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxBody {
                reject(context: context, head: head)
                return
            }
            state = .receiving(head, nil)
            // curl and others wait for this before sending a large body (RFC 9110 §10.1.1).
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            if case .rejected(let discarded) = state {
                let total = discarded + chunk.readableBytes
                state = .rejected(discarded: total)
                if total > Self.lingerBytes { context.close(promise: nil) }
                return
            }
            guard case .receiving(let head, var body) = state else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > maxBody {
                reject(context: context, head: head)
                return
            }
            if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
            state = .receiving(head, body)
        case .end:
            if case .rejected = state {
                context.close(promise: nil)
                return
            }
            guard case .receiving(let head, let body) = state else {
                state = .idle
                return
            }
            state = .idle
            // While draining, each HTTP/1.1 response says `Connection: close` and its connection closes after it
            // (RFC 9112 §9.6), so clients move to another replica (Drain.swift).
            let keepAlive = head.isKeepAlive && !router.gateway.isDraining
            let responder = HTTPResponder(context: context, version: head.version, keepAlive: keepAlive)
            responder.exchange = HTTPExchange(metrics: router.gateway.telemetry.metrics, method: head.method)
            router.route(head: head, body: body, responder: responder)
        }
    }

    /// 413 with a message naming the limit; the connection closes afterwards.
    private func reject(context: ChannelHandlerContext, head: HTTPRequestHead) {
        state = .rejected(discarded: 0)
        let responder = HTTPResponder(context: context, version: head.version, keepAlive: false, closeAfterResponse: false)
        responder.exchange = HTTPExchange(metrics: router.gateway.telemetry.metrics, method: head.method)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.lingerTime) { channel.close(promise: nil) }
        let error = JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: "Request body is larger than server.limits.max_body (\(maxBody) bytes)")
        responder.respondJSON(status: .payloadTooLarge, JSONRPCEncoder.error(id: nil, error))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

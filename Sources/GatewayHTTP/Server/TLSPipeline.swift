import GatewayCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL

extension HTTPServer {
    /// A TLS connection's pipeline: plain-HTTP detection, then TLS with the certificate current at accept time,
    /// then whatever ALPN chose (RFC 7301).
    ///
    /// - "http/1.1", or no ALPN at all: the same HTTP/1.1 pipeline and connection guards as a plain connection.
    /// - "h2" (RFC 9113 §3.2): every stream gets its own child channel with `HTTP2FramePayloadToHTTP1ServerCodec`
    ///   in front of the same `HTTPConnectionHandler`, so routing, limits and SSE streams behave alike over both.
    ///   The header limit is sent as SETTINGS_MAX_HEADER_LIST_SIZE (§6.5.2) and enforced by the decoder; a
    ///   connection with no open stream for `idle_timeout` is closed with GOAWAY; each stream gets the CORS
    ///   headers (`ConnectionGuards.configureHTTP2Stream`) and its own `request_timeout`.
    ///
    /// The handshake itself must finish within `limits.request_timeout`: until ALPN has chosen, none of the
    /// HTTP guards is in the pipeline, so without this a client could hold a connection open by never finishing it.
    static func configureTLSConnection(
        _ channel: any Channel, tls: TLSContextProvider, guards: ConnectionGuards, router: HTTPRouter, maxBody: Int, connections: OpenConnections
    ) -> EventLoopFuture<Void> {
        do {
            try channel.pipeline.syncOperations.addHandlers([
                PlaintextOnTLSPortHandler(),
                NIOSSLServerHandler(context: tls.context),
            ])
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        let handshakeDeadline = channel.eventLoop.scheduleTask(in: guards.requestTimeout) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in handshakeDeadline.cancel() }
        return channel.configureHTTP2SecureUpgrade(
            h2ChannelConfigurator: { channel in
                handshakeDeadline.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    let manager = NIOHTTP2ServerConnectionManagementHandler(
                        eventLoop: channel.eventLoop,
                        configuration: .init(maxIdleTime: guards.idleTimeout, maxAge: nil, maxGraceTime: nil, keepalive: nil)
                    )
                    var connection = NIOHTTP2Handler.ConnectionConfiguration()
                    connection.initialSettings = [
                        HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: guards.maxHeaderBytes),
                    ]
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server,
                        connectionConfiguration: connection,
                        streamConfiguration: .init(),
                        streamDelegate: manager.http2StreamDelegate,
                        inboundStreamInitializer: { stream in
                            stream.eventLoop.makeCompletedFuture {
                                let sync = stream.pipeline.syncOperations
                                try sync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                try guards.configureHTTP2Stream(sync)
                                try sync.addHandlers([
                                    HTTP2StreamRequestDeadline(timeout: guards.requestTimeout),
                                    HTTPConnectionHandler(router: router, maxBody: maxBody),
                                ])
                            }
                        }
                    )
                    try channel.pipeline.syncOperations.addHandlers([manager, HTTP2ConnectionErrorHandler()])
                    // A drain sends GOAWAY through `manager` (Drain.swift).
                    connections.negotiatedHTTP2(channel)
                }
            },
            http1ChannelConfigurator: { channel in
                handshakeDeadline.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    try guards.configureHTTPPipeline(channel.pipeline.syncOperations)
                    try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(router: router, maxBody: maxBody))
                }
            }
        )
    }
}

/// Closes an HTTP/2 connection after a connection error (RFC 9113 §5.4.1): NIO's HTTP/2 handler has already sent
/// GOAWAY and leaves the close to the application; left open, the client would wait for an answer that never
/// comes (a header block over the limit did exactly that). A stream error has only reset its stream
/// (§5.4.2) and the connection goes on.
final class HTTP2ConnectionErrorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        context.close(promise: nil)
    }
}

/// `server.limits.request_timeout` for one HTTP/2 stream: the whole request (its HEADERS opened the stream)
/// must have arrived within it. Otherwise the stream gets 408 (RFC 9110 §15.5.9), or is reset if an answer
/// has already begun; the connection and its other streams go on.
final class HTTP2StreamRequestDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var responseStarted = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.expired(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        responseStarted = true
        context.write(data, promise: promise)
    }

    private func expired(context: ChannelHandlerContext) {
        deadline = nil
        guard !responseStarted else {
            context.close(promise: nil)
            return
        }
        responseStarted = true
        let seconds = Double(timeout.nanoseconds) / 1e9
        let message = "The request was not received within server.limits.request_timeout (\(seconds)s)"
        let body = JSONRPCEncoder.error(id: nil, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: message))
        let headers: HTTPHeaders = ["content-type": "application/json", "content-length": String(body.count)]
        let channel = context.channel
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http2, status: .requestTimeout, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Answers a plain-HTTP request sent to the TLS port with a readable 400 instead of a failed handshake, as
/// nginx does: an operator who typed `http://` learns what to type. A TLS connection starts with a handshake
/// record (content type 22, RFC 8446 §5.1); one that starts with an ASCII capital letter is an HTTP method.
/// Anything else goes on to the TLS handler, which refuses it. The handler leaves the pipeline after the
/// first read, so TLS traffic pays for it once per connection.
final class PlaintextOnTLSPortHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let handshakeRecord: UInt8 = 22
    private static let reply: [UInt8] = {
        let body = "This port serves HTTPS (server.tls is set): use an https:// URL.\n"
        let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n"
        return Array((head + body).utf8)
    }()

    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            context.fireChannelRead(data)
            return
        }
        if first != Self.handshakeRecord, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) {
            refused = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: Self.reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

import Foundation
import GatewayBackends
import GatewayCore
import GatewayObservability
import GatewayRuntime
import Logging
import NIOCore
import NIOPosix

/// `mcp-gateway stdio`: one local MCP client (a desktop app) on stdin/stdout, served by the same router,
/// catalog, validation and backends as the HTTP transport (2025-11-25/basic/transports#stdio). One message
/// per line; only MCP messages on stdout (logs go to stderr); the client's EOF ends the session and the
/// gateway shuts its backends down in the spec's order.
public final class StdioTransport: Sendable {
    private let gateway: Gateway
    private let logger: Logger
    private let maxJSONDepth: Int
    private let maxLineLength: Int

    public init(gateway: Gateway, logger: Logger, maxJSONDepth: Int, maxLineLength: Int) {
        self.gateway = gateway
        self.logger = logger
        self.maxJSONDepth = maxJSONDepth
        self.maxLineLength = maxLineLength
    }

    /// Serves until the client closes stdin.
    public func run(eventLoopGroup: any EventLoopGroup) async throws {
        let input = dup(STDIN_FILENO), output = dup(STDOUT_FILENO)
        guard input >= 0, output >= 0 else { throw StdioTransportError("cannot duplicate stdin/stdout (errno \(errno))") }
        let handler = StdioServerHandler(gateway: gateway, logger: logger, maxJSONDepth: maxJSONDepth)
        let lineLimit = maxLineLength
        let channel = try await NIOPipeBootstrap(group: eventLoopGroup)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLength: lineLimit)))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .takingOwnershipOfDescriptors(input: input, output: output)
            .get()
        try await handler.finished(on: channel.eventLoop).get()
        try? await channel.close()
    }
}

struct StdioTransportError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the client's lines and writes the gateway's answers, on the pipe channel's event loop.
final class StdioServerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let gateway: Gateway
    private let logger: Logger
    private let maxJSONDepth: Int
    private var context: ChannelHandlerContext?
    private var session: SessionState?
    private var done: EventLoopPromise<Void>?
    private var ended = false
    /// The client of a stdio gateway is the local user who started it: there is no credential to check
    /// (2025-11-25/basic/authorization: stdio does not use the HTTP flow).
    private let principal = Principal(id: "stdio", subject: "stdio")

    init(gateway: Gateway, logger: Logger, maxJSONDepth: Int) {
        self.gateway = gateway
        self.logger = logger
        self.maxJSONDepth = maxJSONDepth
    }

    /// Completes when the client has gone (stdin EOF or the pipe closed).
    func finished(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if self.ended { return eventLoop.makeSucceededVoidFuture() }
            let promise = self.done ?? eventLoop.makePromise(of: Void.self)
            self.done = promise
            return promise.futureResult
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let bytes = Array(line.readableBytesView)
        guard !bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) else { return }
        handle(bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            drainThenEnd(context: context, deadline: .now() + .seconds(10))
        } else if let oversized = event as? OversizedLine {
            write(JSONRPCEncoder.error(id: nil, .invalidRequest("a message of \(oversized.length) bytes is over the line limit (server.limits.max_body)")))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(reason: "stdin/stdout closed")
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("stdio transport error", metadata: ["error": "\(error)"])
    }

    /// stdin closed: answer what is still in flight (the client may be reading until stdout closes), then end.
    private func drainThenEnd(context: ChannelHandlerContext, deadline: NIODeadline) {
        guard let session, session.inFlightCount > 0, NIODeadline.now() < deadline else {
            end(reason: "the client closed stdin")
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(20)) { [self] in
            drainThenEnd(context: context, deadline: deadline)
        }
    }

    private func end(reason: String) {
        if let session {
            gateway.endSession(session)
            self.session = nil
            logger.info("stdio session ended", metadata: ["reason": "\(reason)"])
        }
        ended = true
        done?.succeed()
    }

    private func handle(_ bytes: [UInt8]) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: maxJSONDepth)
        } catch {
            let message: String
            if case .depthLimitExceeded(let limit) = error.kind {
                message = "JSON nested deeper than the limit of \(limit) (server.limits.max_json_depth)"
            } else {
                message = error.description
            }
            write(JSONRPCEncoder.error(id: nil, .parse(message)))
            return
        }
        if case .array(let elements) = value {
            handleBatch(elements)
            return
        }
        switch JSONRPCMessage.classify(value) {
        case .failure(let error): write(JSONRPCEncoder.error(id: nil, error))
        case .success(let message): dispatch(message, reply: LineReply(handler: self))
        }
    }

    /// 2025-03-26 batches (the only version that has them): one JSON array of the responses.
    private func handleBatch(_ elements: [JSONValue]) {
        guard let session, session.protocolVersion.allowsBatches else {
            write(JSONRPCEncoder.error(id: nil, .invalidRequest("JSON-RPC batches are only allowed after negotiating protocol version 2025-03-26")))
            return
        }
        let collector = BatchReply(handler: self)
        var requests = 0
        for element in elements {
            switch JSONRPCMessage.classify(element) {
            case .failure(let error): collector.add(JSONRPCEncoder.error(id: nil, error))
            case .success(let message):
                if case .request = message { requests += 1 }
                dispatch(message, reply: collector)
            }
        }
        collector.expect(requests)
    }

    private func dispatch(_ message: JSONRPCMessage, reply: any ReplyChannel) {
        guard let context else { return }
        switch message {
        case .request(let request) where request.method == "initialize":
            switch gateway.initialize(request, principal: principal, transport: "stdio") {
            case .created(let created, let response):
                if let old = session { gateway.endSession(old) }
                session = created
                // Server-initiated messages (tools/list_changed) go out on stdout like everything else.
                _ = created.attachGetStream(PipeStream(handler: self, eventLoop: context.eventLoop))
                // The one stdio session lives as long as the pipe: never idle-expired.
                gateway.adjustBusy(created, by: 1)
                reply.sendResponse(response)
            case .rejected(let response):
                reply.sendResponse(response)
            case .full, .draining:
                reply.sendResponse(JSONRPCEncoder.error(id: request.id, .internalError("the gateway takes no new sessions right now")))
            }
        case .request(let request):
            guard let session else {
                if request.method == "ping" {
                    reply.sendResponse(JSONRPCEncoder.response(id: request.id, result: .object(JSONObject())))
                } else {
                    reply.sendResponse(JSONRPCEncoder.error(id: request.id, .invalidRequest("send initialize first")))
                }
                return
            }
            // A stdio client has no headers: its trace context, if any, is in `params._meta` (the 2026-07-28 convention).
            let meta = request.params?["_meta"]?.objectValue
            let trace = gateway.telemetry.tracing.incoming(traceparent: meta?["traceparent"]?.stringValue, tracestate: meta?["tracestate"]?.stringValue)
            gateway.handleRequest(request, session: session, principal: principal, eventLoop: context.eventLoop, reply: reply, trace: trace)
        case .notification(let notification):
            if let session { gateway.handleNotification(notification, session: session) }
        case .response(let response):
            if let session { gateway.handleResponse(response, session: session) }
        }
    }

    fileprivate func write(_ message: [UInt8]) {
        guard let context, context.channel.isActive else { return }
        var buffer = context.channel.allocator.buffer(capacity: message.count + 1)
        buffer.writeBytes(message)
        buffer.writeInteger(UInt8(ascii: "\n"))
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}

/// The stdio session's channel for server-initiated messages: the same stdout, one line per message.
final class PipeStream: ServerStream, @unchecked Sendable {
    private let handler: StdioServerHandler
    private let eventLoop: any EventLoop

    init(handler: StdioServerHandler, eventLoop: any EventLoop) {
        self.handler = handler
        self.eventLoop = eventLoop
    }

    func send(_ message: [UInt8]) { eventLoop.execute { self.handler.write(message) } }
    func close() {}
    func close(reconnectAfter delay: Duration) {}
}

/// Answers one request with lines on stdout. A refusal for missing scopes has no HTTP status here: it is the
/// JSON-RPC error (-32005) naming the grant (issue "security" §3).
final class LineReply: ReplyChannel {
    private let handler: StdioServerHandler
    init(handler: StdioServerHandler) { self.handler = handler }
    func sendRelated(_ message: [UInt8]) { handler.write(message) }
    func sendResponse(_ message: [UInt8]) { handler.write(message) }
    func finishWithoutResponse() {}
    func sendInsufficientScope(_ scopes: [String], response: [UInt8]) { handler.write(response) }
}

/// Collects a batch's responses into one array line.
final class BatchReply: ReplyChannel {
    private let handler: StdioServerHandler
    private var responses: [[UInt8]] = []
    private var outstanding = 0
    private var expecting = false

    init(handler: StdioServerHandler) { self.handler = handler }

    func add(_ response: [UInt8]) { responses.append(response) }

    func expect(_ count: Int) {
        outstanding += count
        expecting = true
        finishIfDone()
    }

    func sendRelated(_ message: [UInt8]) { handler.write(message) }
    func sendResponse(_ message: [UInt8]) {
        responses.append(message)
        outstanding -= 1
        finishIfDone()
    }
    func finishWithoutResponse() {
        outstanding -= 1
        finishIfDone()
    }
    func sendInsufficientScope(_ scopes: [String], response: [UInt8]) { sendResponse(response) }

    private func finishIfDone() {
        guard expecting, outstanding <= 0 else { return }
        expecting = false
        guard !responses.isEmpty else { return }
        var line: [UInt8] = [UInt8(ascii: "[")]
        for (index, response) in responses.enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            line.append(contentsOf: response)
        }
        line.append(UInt8(ascii: "]"))
        handler.write(line)
    }
}

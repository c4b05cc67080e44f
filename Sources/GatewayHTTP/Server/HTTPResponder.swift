import NIOCore
import NIOHTTP1

/// Writes the response to one HTTP request: whole (JSON, empty) or as a stream (SSE). Confined to the
/// connection's event loop. After the client went away every write is a no-op: a legacy-era request keeps
/// running when its stream drops (MUST item 20), its answer just has nowhere to go.
final class HTTPResponder {
    enum State { case pending, streaming, done }

    private let context: ChannelHandlerContext
    private let version: HTTPVersion
    private let keepAlive: Bool
    private let closeAfterResponse: Bool
    private(set) var state: State = .pending
    let eventLoop: any EventLoop
    /// Told once, when the response has been handed to the channel in full (frees a `limits.max_inflight` place).
    var finishObserver: (any ResponseFinishObserver)?
    /// Metrics and span of this exchange, reported when the response ends.
    var exchange: HTTPExchange?
    private var status: HTTPResponseStatus = .ok
    private var streamedBody = false

    /// - Parameter closeAfterResponse: close the connection once the response is written; false for a
    ///   `Connection: close` response whose connection the caller closes later (a lingering close).
    init(context: ChannelHandlerContext, version: HTTPVersion, keepAlive: Bool, closeAfterResponse: Bool? = nil) {
        self.context = context
        self.version = version
        self.keepAlive = keepAlive
        self.closeAfterResponse = closeAfterResponse ?? !keepAlive
        self.eventLoop = context.eventLoop
    }

    var isActive: Bool { context.channel.isActive }

    var remoteAddress: SocketAddress? { context.channel.remoteAddress }

    var closeFuture: EventLoopFuture<Void> { context.channel.closeFuture }

    func respond(_ response: HTTPResponse) {
        respond(status: response.status, headers: response.headers, body: response.body)
    }

    func respond(status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8]? = nil, contentType: String? = nil) {
        guard state == .pending else { return }
        state = .done
        self.status = status
        var headers = headers
        if let contentType { headers.replaceOrAdd(name: "content-type", value: contentType) }
        headers.replaceOrAdd(name: "content-length", value: String(body?.count ?? 0))
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if let body, !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        }
        finish()
    }

    func respondJSON(status: HTTPResponseStatus = .ok, _ body: [UInt8], headers: HTTPHeaders = HTTPHeaders()) {
        respond(status: status, headers: headers, body: body, contentType: "application/json")
    }

    /// Starts a `text/event-stream` response (W3C Server-Sent Events). `X-Accel-Buffering: no` keeps nginx
    /// from buffering the stream.
    func startEventStream(headers extra: HTTPHeaders = HTTPHeaders()) {
        guard state == .pending else { return }
        state = .streaming
        streamedBody = true
        var headers = extra
        headers.replaceOrAdd(name: "content-type", value: "text/event-stream")
        headers.replaceOrAdd(name: "cache-control", value: "no-cache, no-transform")
        headers.replaceOrAdd(name: "x-accel-buffering", value: "no")
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        context.flush()
    }

    func writeStream(_ bytes: [UInt8]) {
        guard state == .streaming else { return }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
    }

    func endStream() {
        guard state == .streaming else { return }
        state = .done
        finish()
    }

    private func finish() {
        if let exchange {
            self.exchange = nil
            exchange.finish(status: status, streamed: state == .done && streamedBody)
        }
        if let observer = finishObserver {
            finishObserver = nil
            observer.responseFinished()
        }
        let close = closeAfterResponse
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }
}

/// A whole response, as middleware and simple endpoints produce it.
public struct HTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: HTTPResponseStatus, _ body: [UInt8], headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var headers = headers
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        return HTTPResponse(status: status, headers: headers, body: body)
    }
}

/// SSE framing (WHATWG HTML, "Server-sent events"): an event per JSON-RPC message, `event: message`, an id,
/// and the JSON on `data:` lines (split on newlines, which compact JSON never contains anyway).
/// Public for the SSE fuzz target (docs/fuzzing.md).
public enum ServerSentEvents {
    public static func event(id: String?, data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 48)
        out.append(contentsOf: "event: message\n".utf8)
        if let id {
            out.append(contentsOf: "id: ".utf8)
            out.append(contentsOf: id.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        var lineStart = true
        for byte in data {
            if lineStart {
                out.append(contentsOf: "data: ".utf8)
                lineStart = false
            }
            if byte == UInt8(ascii: "\n") {
                out.append(byte)
                lineStart = true
            } else if byte != UInt8(ascii: "\r") {
                out.append(byte)
            }
        }
        if lineStart { out.append(contentsOf: "data: ".utf8) }
        out.append(contentsOf: "\n\n".utf8)
        return out
    }

    static let keepAlive = Array(": keepalive\n\n".utf8)
}

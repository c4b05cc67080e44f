import AsyncHTTPClient
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// What one HTTP exchange with a remote MCP server reports, in order, on the backend's event loop.
enum UpstreamExchangeEvent {
    /// The response head: its status and headers (`Mcp-Session-Id` arrives here).
    case head(status: Int, headers: HTTPHeaders)
    /// One JSON-RPC message: an `application/json` body, or the data of one SSE `message` event
    /// (2025-11-25/basic/transports#sending-messages-to-the-server: the client MUST handle both).
    case message([UInt8])
    /// An SSE event of another type (the legacy transport's `endpoint` event).
    case event(ServerSentEvent)
    /// The response is complete.
    case end
    /// The exchange failed (connection refused, reset, deadline, or a malformed stream).
    case failed(any Error)
}

/// Reads one response for the remote backend: buffers a JSON body (up to a limit), or parses an SSE stream
/// as it arrives, so progress notifications reach the client while the call is still in flight. Every
/// callback runs on the backend's event loop (`EventLoopPreference.delegateAndChannel`), where the handler
/// owns its state.
final class UpstreamExchangeDelegate: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Void

    private let handler: @Sendable (UpstreamExchangeEvent) -> Void
    private let maximumBodyBytes: Int
    private var parser: ServerSentEventParser?
    private var isJSON = false
    private var body: [UInt8] = []
    private var finished = false

    init(maximumBodyBytes: Int, handler: @escaping @Sendable (UpstreamExchangeEvent) -> Void) {
        self.maximumBodyBytes = maximumBodyBytes
        self.handler = handler
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        let contentType = head.headers.first(name: "content-type")?.lowercased() ?? ""
        if (200..<300).contains(head.status.code) {
            if contentType.hasPrefix("text/event-stream") {
                parser = ServerSentEventParser(maximumEventBytes: maximumBodyBytes)
            } else if contentType.hasPrefix("application/json") {
                isJSON = true
            }
        }
        handler(.head(status: Int(head.status.code), headers: head.headers))
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        guard !finished else { return task.eventLoop.makeSucceededVoidFuture() }
        if parser != nil {
            do {
                let events = try parser!.feed(buffer.readableBytesView)
                for event in events {
                    if event.type != "message" {
                        handler(.event(event))
                    } else if !event.data.isEmpty {
                        // An empty one is a 2025-11-25 priming event (an id for resumption), not a message.
                        handler(.message(event.data))
                    }
                }
            } catch {
                fail(task: task, error)
            }
        } else if isJSON {
            body.append(contentsOf: buffer.readableBytesView)
            if body.count > maximumBodyBytes { fail(task: task, UpstreamProtocolError.bodyTooLarge(maximumBodyBytes)) }
        }
        // Other bodies (a 202's, an error page) are not read: the status says what happened.
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        guard !finished else { return }
        finished = true
        handler(.failed(error))
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        guard !finished else { return }
        finished = true
        if isJSON, !body.isEmpty { handler(.message(body)) }
        handler(.end)
    }

    private func fail(task: HTTPClient.Task<Void>, _ error: any Error) {
        finished = true
        handler(.failed(error))
        task.cancel()
    }
}

enum UpstreamProtocolError: Error, CustomStringConvertible {
    case bodyTooLarge(Int)
    /// The server answered with an HTTP status the exchange cannot use.
    case status(Int, String)
    case noEndpointEvent(String)
    case foreignEndpoint
    case unsupportedVersion(String)
    case closed(String)

    var description: String {
        switch self {
        case .bodyTooLarge(let limit): return "the server sent a response larger than \(limit) bytes"
        case .status(let code, let what): return "the server answered \(what) with HTTP \(code)"
        case .noEndpointEvent(let why): return "the legacy HTTP+SSE stream gave no endpoint event (\(why))"
        case .foreignEndpoint:
            return "the legacy HTTP+SSE endpoint event points at another origin; the gateway will not send its configured headers there"
        case .unsupportedVersion(let version):
            return "the server answered initialize with protocol version \"\(version)\", which the gateway does not speak (it speaks \(ProtocolVersion.supported.joined(separator: ", ")))"
        case .closed(let why): return why
        }
    }

    var httpStatus: Int? {
        if case .status(let code, _) = self { return code }
        return nil
    }
}

/// One MCP session with the remote server (2025-11-25/basic/transports#session-management): the shared one
/// that also lists tools, or one per gateway session (`session: per_client`). Confined to the backend's event
/// loop.
final class UpstreamSession: @unchecked Sendable {
    enum State { case connecting, ready, closed }
    enum Transport { case streamableHTTP, legacySSE }

    /// "shared", or the gateway session's short log id.
    let label: String
    let listsTools: Bool
    var state: State = .closed
    var transport: Transport = .streamableHTTP
    /// The server's `Mcp-Session-Id`, sent back on every request once issued.
    var sessionID: String?
    /// The negotiated version, sent as `MCP-Protocol-Version` on every request after `initialize`
    /// (2025-06-18+/basic/transports#protocol-version-header).
    var protocolVersion: ProtocolVersion?
    var handshake: EventLoopFuture<Void>?
    /// Legacy HTTP+SSE: the stream every response arrives on, and the URI from its `endpoint` event.
    var legacyStream: HTTPClient.Task<Void>?
    var legacyPostURL: String?
    /// Streamable HTTP: the GET stream the server sends messages unrelated to any request on (list_changed),
    /// and its generation, so a stale stream's end does not touch its successor.
    var serverStream: HTTPClient.Task<Void>?
    var serverStreamGeneration = 0
    var tools: [JSONObject] = []
    var capabilities = JSONObject()

    init(label: String, listsTools: Bool) {
        self.label = label
        self.listsTools = listsTools
    }
}

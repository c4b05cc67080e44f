import GatewayConfig
import GatewayCore
import GatewayObservability
import GatewayRuntime
import Logging
import NIOCore
import NIOHTTP1

/// MCP Streamable HTTP, legacy era (2025-03-26, 2025-06-18, 2025-11-25) on one endpoint
/// (2025-11-25/basic/transports#streamable-http; digest §2, MUST items 9-22).
struct StreamableHTTPEndpoint: Sendable {
    let gateway: Gateway
    let maxJSONDepth: Int
    let keepAliveInterval: TimeAmount
    let logger: Logger
    let challenges: AuthChallenges

    init(gateway: Gateway, configuration: GatewayConfiguration, challenges: AuthChallenges, logger: Logger) {
        self.gateway = gateway
        self.challenges = challenges
        self.maxJSONDepth = configuration.server.maxJSONDepth
        self.keepAliveInterval = .nanoseconds(configuration.server.sseKeepalive.nanoseconds)
        self.logger = logger
    }

    static let sessionHeader = "mcp-session-id"
    static let versionHeader = "mcp-protocol-version"

    func handle(_ request: HTTPRequestContext, body: ByteBuffer?, responder: HTTPResponder, trace: TraceLink = .none) {
        switch request.head.method {
        case .POST: post(request, body: body, responder: responder, trace: trace)
        case .GET: get(request, responder: responder)
        case .DELETE: delete(request, responder: responder)
        default:
            var headers = HTTPHeaders()
            headers.add(name: "allow", value: "GET, POST, DELETE")
            responder.respond(Self.error(.methodNotAllowed, .invalidRequest("\(request.head.method.rawValue) is not supported on the MCP endpoint; use POST, GET or DELETE"), headers: headers))
        }
    }

    // MARK: - POST

    private func post(_ request: HTTPRequestContext, body: ByteBuffer?, responder: HTTPResponder, trace: TraceLink) {
        let headers = request.headers
        // 415: the body must be JSON (the Python SDK's convention; the spec fixes the media type).
        guard let contentType = headers.first(name: "content-type"), MediaTypes.isJSON(contentType) else {
            responder.respond(Self.error(.unsupportedMediaType, .invalidRequest("Content-Type must be application/json")))
            return
        }
        // 406: the client MUST accept both answer forms (transports#sending-messages-to-the-server).
        if let accept = Self.acceptHeader(headers), !(MediaTypes.accepts(accept, "application/json") && MediaTypes.accepts(accept, "text/event-stream")) {
            responder.respond(Self.error(.notAcceptable, .invalidRequest("Accept must list both application/json and text/event-stream")))
            return
        }
        guard let versionHeader = checkVersionHeader(headers, responder: responder) else { return }

        guard let value = MessageBody.parse(body, maxDepth: maxJSONDepth, responder: responder) else { return }

        if case .array(let elements) = value {
            postBatch(elements, request: request, versionHeader: versionHeader, responder: responder, trace: trace)
            return
        }
        let message: JSONRPCMessage
        switch JSONRPCMessage.classify(value) {
        case .success(let classified): message = classified
        case .failure(let error):
            responder.respond(Self.error(.badRequest, error))
            return
        }

        if case .request(let rpc) = message, rpc.method == "initialize" {
            initialize(rpc, request: request, responder: responder, trace: trace)
            return
        }
        if case .request = message, refuseWhileDraining(responder) { return }
        guard let session = resolveSession(request, versionHeader: versionHeader, responder: responder) else { return }
        switch message {
        case .request(let rpc):
            let reply = PostReply(responder: responder, session: session, challenges: challenges)
            gateway.handleRequest(rpc, session: session, principal: request.principal, eventLoop: responder.eventLoop, reply: reply, trace: trace)
        case .notification(let notification):
            gateway.handleNotification(notification, session: session)
            responder.respond(status: .accepted)
        case .response(let response):
            gateway.handleResponse(response, session: session)
            responder.respond(status: .accepted)
        }
    }

    private func initialize(_ rpc: JSONRPCRequest, request: HTTPRequestContext, responder: HTTPResponder, trace: TraceLink) {
        switch gateway.initialize(rpc, principal: request.principal, trace: trace) {
        case .created(let session, let response):
            var headers = HTTPHeaders()
            headers.add(name: Self.sessionHeader, value: session.id)
            responder.respondJSON(response, headers: headers)
        case .rejected(let response):
            responder.respondJSON(response)
        case .full(let retryAfter):
            var headers = HTTPHeaders()
            headers.add(name: "retry-after", value: String(retryAfter))
            responder.respond(Self.error(.serviceUnavailable, JSONRPCError(code: JSONRPCErrorCode.internalError, message: "The gateway is at its session limit (sessions.max) and no session is idle; retry after \(retryAfter)s"), headers: headers))
        case .draining:
            var headers = HTTPHeaders()
            headers.add(name: "retry-after", value: "1")
            responder.respond(Self.error(.serviceUnavailable, JSONRPCError(code: JSONRPCErrorCode.internalError, message: "The gateway is shutting down and takes no new sessions; retry on another replica"), headers: headers))
        }
    }

    /// JSON-RPC batches exist only in 2025-03-26 (MUST item 7): elsewhere an array is 400 / -32600.
    /// `initialize` is never batched. Responses to the batch's requests come back as one JSON array.
    private func postBatch(_ elements: [JSONValue], request: HTTPRequestContext, versionHeader: ProtocolVersion?, responder: HTTPResponder, trace: TraceLink) {
        if elements.contains(where: { $0["method"] != nil && $0["id"] != nil }), refuseWhileDraining(responder) { return }
        guard let session = resolveSession(request, versionHeader: versionHeader, responder: responder) else { return }
        guard session.protocolVersion.allowsBatches else {
            responder.respond(Self.error(.badRequest, .invalidRequest("JSON-RPC batches are not allowed in protocol version \(session.protocolVersion.rawValue) (only in 2025-03-26); send one message per POST")))
            return
        }
        guard !elements.isEmpty else {
            responder.respond(Self.error(.badRequest, .invalidRequest("an empty batch")))
            return
        }
        let collector = BatchCollector(responder: responder)
        var requests: [JSONRPCRequest] = []
        for element in elements {
            switch JSONRPCMessage.classify(element) {
            case .failure(let error): collector.add(immediate: JSONRPCEncoder.error(id: nil, error))
            case .success(.request(let rpc)):
                if rpc.method == "initialize" {
                    collector.add(immediate: JSONRPCEncoder.error(id: rpc.id, .invalidRequest("initialize must not be part of a batch")))
                } else {
                    requests.append(rpc)
                }
            case .success(.notification(let notification)): gateway.handleNotification(notification, session: session)
            case .success(.response(let response)): gateway.handleResponse(response, session: session)
            }
        }
        collector.expect(requests.count)
        for rpc in requests {
            gateway.handleRequest(rpc, session: session, principal: request.principal, eventLoop: responder.eventLoop, reply: collector.slot(), trace: trace)
        }
    }

    // MARK: - GET

    /// The session's server-to-client stream (transports#listening-for-messages-from-the-server), with
    /// keep-alive comments every `server.sse_keepalive` so proxies do not cut it; with `Last-Event-ID`, the
    /// resumption of a stream (StreamResumption.swift).
    private func get(_ request: HTTPRequestContext, responder: HTTPResponder) {
        let accept = Self.acceptHeader(request.headers) ?? "*/*"
        guard MediaTypes.accepts(accept, "text/event-stream") else {
            responder.respond(Self.error(.notAcceptable, .invalidRequest("GET on the MCP endpoint opens an event stream: Accept must include text/event-stream")))
            return
        }
        guard let versionHeader = checkVersionHeader(request.headers, responder: responder) else { return }
        if refuseWhileDraining(responder) { return }
        guard let session = resolveSession(request, versionHeader: versionHeader, responder: responder) else { return }
        openServerStream(request, session: session, responder: responder)
    }

    // MARK: - DELETE

    private func delete(_ request: HTTPRequestContext, responder: HTTPResponder) {
        guard let versionHeader = checkVersionHeader(request.headers, responder: responder) else { return }
        guard let session = resolveSession(request, versionHeader: versionHeader, responder: responder) else { return }
        gateway.endSession(session)
        responder.respond(status: .ok)
    }

    // MARK: - Shared checks

    /// `MCP-Protocol-Version` (2025-06-18+/transports#protocol-version-header, MUST item 19): invalid or
    /// unsupported is 400. Returns nil after answering; `.some(nil)` when the header is absent.
    private func checkVersionHeader(_ headers: HTTPHeaders, responder: HTTPResponder) -> ProtocolVersion?? {
        guard let text = headers.first(name: Self.versionHeader) else { return .some(nil) }
        guard let version = ProtocolVersion(rawValue: text) else {
            responder.respond(Self.error(.badRequest, .invalidRequest("Unsupported MCP-Protocol-Version \"\(text)\"; supported: \(ProtocolVersion.supported.joined(separator: ", "))")))
            return nil
        }
        return .some(version)
    }

    /// The session a request names (MUST item 17): no header is 400; unknown, tampered, expired, ended or
    /// another principal's is 404; a version header that differs from the negotiated one is 400.
    private func resolveSession(_ request: HTTPRequestContext, versionHeader: ProtocolVersion?, responder: HTTPResponder) -> SessionState? {
        guard let id = request.headers.first(name: Self.sessionHeader), !id.isEmpty else {
            gateway.telemetry.metrics.sessionFailures(reason: "missing").increment()
            responder.respond(Self.error(.badRequest, .invalidRequest("Mcp-Session-Id header is required; send initialize first to start a session")))
            return nil
        }
        switch gateway.lookupSession(id: id, principal: request.principal) {
        case .found(let session):
            if let versionHeader, versionHeader != session.protocolVersion {
                responder.respond(Self.error(.badRequest, .invalidRequest("MCP-Protocol-Version \(versionHeader.rawValue) differs from the version negotiated for this session, \(session.protocolVersion.rawValue)")))
                return nil
            }
            return session
        case .notFound:
            responder.respond(Self.error(.notFound, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: "Session not found: it expired, was deleted, or was never issued here; send initialize to start a new one")))
            return nil
        case .full(let retryAfter):
            var headers = HTTPHeaders()
            headers.add(name: "retry-after", value: String(retryAfter))
            responder.respond(Self.error(.serviceUnavailable, JSONRPCError(code: JSONRPCErrorCode.internalError, message: "The gateway is at its session limit (sessions.max); retry after \(retryAfter)s"), headers: headers))
            return nil
        }
    }

    private static func acceptHeader(_ headers: HTTPHeaders) -> String? {
        let values = headers["accept"]
        if values.count <= 1 { return values.first }
        return values.joined(separator: ",")
    }

    /// An HTTP-level refusal carrying a JSON-RPC error with no id (transports#sending-messages-to-the-server).
    static func error(_ status: HTTPResponseStatus, _ error: JSONRPCError, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        .json(status, JSONRPCEncoder.error(id: nil, error), headers: headers)
    }
}

/// A POSTed JSON-RPC body, parsed under `server.limits.max_json_depth` (shared by both HTTP transports).
/// Malformed JSON is HTTP 400 with -32700; too deep names the limit (CONTRACT.md, "MCP behaviour").
enum MessageBody {
    static func parse(_ body: ByteBuffer?, maxDepth: Int, responder: HTTPResponder) -> JSONValue? {
        let bytes: [UInt8] = body.map { Array($0.readableBytesView) } ?? []
        do {
            return try JSONParser.parse(bytes, maxDepth: maxDepth)
        } catch {
            let message: String
            if case .depthLimitExceeded(let limit) = error.kind {
                message = "JSON nested deeper than the limit of \(limit) (server.limits.max_json_depth)"
            } else {
                message = error.description
            }
            responder.respond(StreamableHTTPEndpoint.error(.badRequest, .parse(message)))
            return nil
        }
    }
}

/// Media-type matching for `Content-Type` and `Accept` (RFC 9110 §8.3, §12.5.1), enough for MCP's two types.
/// Byte-level and allocation-free: it runs on every request, where String splitting and Foundation trimming
/// showed up as a sixth of the CPU in a profile.
enum MediaTypes {
    static func isJSON(_ contentType: String) -> Bool {
        var text = contentType
        return text.withUTF8 { bytes in
            let range = trimmed(bytes, upTo: bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count)
            return equalsIgnoringCase(bytes, range, "application/json")
        }
    }

    /// True when some media range in `accept` matches `type` (`type/subtype`, `type/*` or `*/*`) with q > 0.
    static func accepts(_ accept: String, _ type: String) -> Bool {
        var text = accept
        let slash = type.utf8.firstIndex(of: UInt8(ascii: "/")).map { type.utf8.distance(from: type.utf8.startIndex, to: $0) } ?? type.utf8.count
        let major = String(type.utf8.prefix(slash))! + "/*"
        return text.withUTF8 { bytes in
            var start = 0
            while start <= bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.count
                let parameters = bytes[start..<end].firstIndex(of: UInt8(ascii: ";")) ?? end
                let media = trimmed(bytes, start..<parameters)
                if !isZeroQuality(bytes, parameters..<end),
                   equalsIgnoringCase(bytes, media, type) || equalsIgnoringCase(bytes, media, "*/*") || equalsIgnoringCase(bytes, media, major) {
                    return true
                }
                start = end + 1
            }
            return false
        }
    }

    private static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>, upTo end: Int) -> Range<Int> {
        trimmed(bytes, 0..<end)
    }

    private static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, bytes[lower] == UInt8(ascii: " ") || bytes[lower] == UInt8(ascii: "\t") { lower += 1 }
        while upper > lower, bytes[upper - 1] == UInt8(ascii: " ") || bytes[upper - 1] == UInt8(ascii: "\t") { upper -= 1 }
        return lower..<upper
    }

    private static func equalsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ expected: String) -> Bool {
        guard range.count == expected.utf8.count else { return false }
        var index = range.lowerBound
        for byte in expected.utf8 {
            let actual = bytes[index]
            let lowered = actual >= 65 && actual <= 90 ? actual | 0x20 : actual
            guard lowered == byte else { return false }
            index += 1
        }
        return true
    }

    /// `;q=0` (or `0.0`, `0.000`) marks a range as not acceptable.
    private static func isZeroQuality(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        var index = range.lowerBound
        while index < range.upperBound {
            if (bytes[index] | 0x20) == UInt8(ascii: "q"), index + 1 < range.upperBound, bytes[index + 1] == UInt8(ascii: "=") {
                var value = index + 2
                guard value < range.upperBound, bytes[value] == UInt8(ascii: "0") else { return false }
                value += 1
                while value < range.upperBound, bytes[value] == UInt8(ascii: "0") || bytes[value] == UInt8(ascii: ".") { value += 1 }
                return value == range.upperBound || bytes[value] == UInt8(ascii: " ") || bytes[value] == UInt8(ascii: ";")
            }
            index += 1
        }
        return false
    }
}

import GatewayCore
import NIOCore
import NIOHTTP1

/// The per-HTTP-request state that middleware reads and refines (ARCHITECTURE.md, "Typed request context").
public struct HTTPRequestContext: Sendable {
    public var head: HTTPRequestHead
    public var path: String
    public var query: String?
    /// Set by authentication; `anonymous` when `auth.mode: none`.
    public var principal: Principal = .anonymous
    /// The TCP peer of the connection (a proxy's address when one stands in front).
    public var peerAddress: SocketAddress?
    /// The client as `ClientAddressPolicy` resolved it (the peer, or `X-Forwarded-For` from a trusted proxy),
    /// for logs and per-client limits; nil before that middleware ran or for a Unix-socket peer.
    public var clientAddress: IPAddress?

    public init(head: HTTPRequestHead, peerAddress: SocketAddress? = nil) {
        self.head = head
        self.peerAddress = peerAddress
        if let mark = head.uri.firstIndex(of: "?") {
            path = String(head.uri[..<mark])
            query = String(head.uri[head.uri.index(after: mark)...])
        } else {
            path = head.uri
            query = nil
        }
    }

    public var headers: HTTPHeaders { head.headers }
}

/// What a middleware says about a request: go on (with a possibly refined context), answer it now, or wait
/// for a future (a key fetch, an introspection call) and then decide, without blocking the event loop.
public enum MiddlewareOutcome: Sendable {
    case next(HTTPRequestContext)
    case respond(HTTPResponse)
    case suspend(EventLoopFuture<MiddlewareOutcome>)
}

/// One cross-cutting concern of the HTTP front (origin checks, authentication, rate limits), one small type each.
public protocol HTTPMiddleware: Sendable {
    func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome
}

/// Runs middleware in order, the order being visible in one place (`HTTPServer.middleware`).
public struct MiddlewareChain: Sendable {
    public let middleware: [any HTTPMiddleware]

    public init(_ middleware: [any HTTPMiddleware]) {
        self.middleware = middleware
    }

    /// Calls `done` on `eventLoop` with the final context, or the response that stopped the chain.
    public func run(_ request: HTTPRequestContext, eventLoop: any EventLoop, done: @escaping (Result<HTTPRequestContext, HTTPResponseBox>) -> Void) {
        run(from: 0, request, eventLoop: eventLoop, done: done)
    }

    private func run(from index: Int, _ request: HTTPRequestContext, eventLoop: any EventLoop, done: @escaping (Result<HTTPRequestContext, HTTPResponseBox>) -> Void) {
        var current = request
        var position = index
        while position < middleware.count {
            switch middleware[position].handle(current, eventLoop: eventLoop) {
            case .next(let refined):
                current = refined
                position += 1
            case .respond(let response):
                done(.failure(HTTPResponseBox(response)))
                return
            case .suspend(let future):
                let next = position
                let doneBox = NIOLoopBound(done, eventLoop: eventLoop)
                future.hop(to: eventLoop).whenComplete { result in
                    let done = doneBox.value
                    switch result {
                    case .success(.next(let refined)): self.run(from: next + 1, refined, eventLoop: eventLoop, done: done)
                    case .success(.respond(let response)): done(.failure(HTTPResponseBox(response)))
                    case .success(.suspend): done(.failure(HTTPResponseBox(.json(.internalServerError, JSONRPCEncoder.error(id: nil, .internalError("middleware suspended twice"))))))
                    case .failure(let error): done(.failure(HTTPResponseBox(.json(.internalServerError, JSONRPCEncoder.error(id: nil, .internalError("\(error)"))))))
                    }
                }
                return
            }
        }
        done(.success(current))
    }
}

/// A response carried as an error value through `Result`.
public struct HTTPResponseBox: Error, Sendable {
    public let response: HTTPResponse
    public init(_ response: HTTPResponse) { self.response = response }
}

/// DNS-rebinding defence (2025-11-25/basic/transports#security-warning, MUST item 10): a request whose `Origin`
/// is present and not allowed gets 403. With an empty `server.allowed_origins`, only loopback origins are
/// allowed. When the gateway listens on loopback, the `Host` header must name loopback too (or the host of
/// `server.public_url`), as the conformance suite's dns-rebinding scenario expects.
public struct OriginGuard: HTTPMiddleware {
    let allowedOrigins: Set<String>
    let allowAnyOrigin: Bool
    let checkHost: Bool
    let extraHosts: Set<String>

    public init(allowedOrigins: [String], listenIsLoopback: Bool, publicURL: String?) {
        self.allowedOrigins = Set(allowedOrigins.map { Self.normalise($0) })
        self.allowAnyOrigin = allowedOrigins.contains("*")
        self.checkHost = listenIsLoopback
        self.extraHosts = Set([publicURL.flatMap { Self.host(ofURL: $0) }].compactMap { $0 })
    }

    public func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        if let origin = request.headers.first(name: "origin"), !isAllowed(origin: origin) {
            return .respond(Self.forbidden("Origin \"\(origin)\" is not allowed; add it to server.allowed_origins if this browser app should reach the gateway"))
        }
        if checkHost, let host = request.headers.first(name: "host"), !Self.isLoopbackAuthority(host) {
            let name = Self.hostName(host)
            if !Self.isLoopbackName(name), !extraHosts.contains(name) {
                return .respond(Self.forbidden("Host \"\(host)\" is not allowed: the gateway listens on loopback, so only a loopback Host is accepted (set server.public_url for another name)"))
            }
        }
        return .next(request)
    }

    func isAllowed(origin: String) -> Bool {
        if allowAnyOrigin { return true }
        let normalised = Self.normalise(origin)
        if allowedOrigins.contains(normalised) { return true }
        if allowedOrigins.isEmpty, let host = Self.host(ofURL: normalised) { return Self.isLoopbackName(host) }
        return false
    }

    static func forbidden(_ message: String) -> HTTPResponse {
        .json(.forbidden, JSONRPCEncoder.error(id: nil, JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: "Forbidden: \(message)")))
    }

    static func normalise(_ origin: String) -> String {
        var text = origin.lowercased()
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    static func host(ofURL url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return hostName(String(authority.split(separator: "@").last ?? ""))
    }

    /// The host part of a `Host` header or URL authority, without the port, lowercased.
    static func hostName(_ authority: String) -> String {
        let lowered = authority.lowercased()
        if lowered.hasPrefix("[") {
            if let close = lowered.firstIndex(of: "]") { return String(lowered[lowered.index(after: lowered.startIndex)..<close]) }
            return lowered
        }
        if let colon = lowered.lastIndex(of: ":"), lowered.filter({ $0 == ":" }).count == 1 { return String(lowered[..<colon]) }
        return lowered
    }

    /// The common case without allocating: `127.x.x.x[:port]`, `localhost[:port]` or `[::1][:port]`.
    static func isLoopbackAuthority(_ authority: String) -> Bool {
        let bytes = authority.utf8
        if bytes.starts(with: "127.".utf8) {
            return bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: ":") }
        }
        if bytes.starts(with: "localhost".utf8) {
            let rest = bytes.dropFirst(9)
            return rest.isEmpty || (rest.first == UInt8(ascii: ":") && rest.dropFirst().allSatisfy { $0 >= 48 && $0 <= 57 })
        }
        if bytes.starts(with: "[::1]".utf8) {
            let rest = bytes.dropFirst(5)
            return rest.isEmpty || (rest.first == UInt8(ascii: ":") && rest.dropFirst().allSatisfy { $0 >= 48 && $0 <= 57 })
        }
        return false
    }

    /// `localhost`, `*.localhost` (RFC 6761 §6.3), `::1`, or an IPv4 literal in 127.0.0.0/8: four numeric labels,
    /// so `127.0.0.1.attacker.example` is not mistaken for loopback.
    static func isLoopbackName(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host.hasSuffix(".localhost") { return true }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.count == 4 && labels[0] == "127" && labels.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }
}

/// Authentication seam. With `auth.mode: none` every request is the anonymous principal; the security issue
/// replaces this with bearer-token and API-key verification.
public struct AnonymousAuthentication: HTTPMiddleware {
    public init() {}
    public func handle(_ request: HTTPRequestContext, eventLoop: any EventLoop) -> MiddlewareOutcome {
        var request = request
        request.principal = .anonymous
        return .next(request)
    }
}

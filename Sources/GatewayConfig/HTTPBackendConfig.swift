import Foundation
import Yams

/// `backends.<name>` with `type: http` (issue 4, item 11): a remote MCP server reached over Streamable HTTP
/// (2025-11-25/basic/transports#streamable-http), or over the legacy HTTP+SSE transport when the server is a
/// 2024-11-05 one (transports#backwards-compatibility).
public struct HTTPBackendConfig: Sendable, Equatable {
    /// `url`: the server's MCP endpoint. https, or plain http only for a loopback host.
    public var url: String
    /// `headers`: sent on every request to the server (credentials for it live here). Values are secrets: they
    /// never appear in logs, errors or `check` output.
    public var headers: [String: String] = [:]
    /// `session`: one upstream MCP session shared by every client (`shared`), or one per gateway session
    /// (`per_client`), ended with DELETE when the gateway session ends.
    public var session: UpstreamSessionMode = .shared

    public init(url: String, headers: [String: String] = [:], session: UpstreamSessionMode = .shared) {
        self.url = url
        self.headers = headers
        self.session = session
    }
}

/// `backends.<name>.session` of an http backend.
public enum UpstreamSessionMode: String, Sendable, CaseIterable {
    /// One upstream session for the whole gateway: calls from every client are multiplexed over it.
    case shared
    /// One upstream session per gateway session, for servers that keep per-user state in their session.
    case perClient = "per_client"
}

extension HTTPBackendConfig: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "HTTPBackendConfig(url: \(HTTPBackendConfig.redactedURL(url)), headers: \(headers.keys.sorted()) [values redacted], session: \(session.rawValue))"
    }
    public var debugDescription: String { description }

    /// The URL without user information or query, which may carry credentials.
    public static func redactedURL(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "[unparseable url]" }
        if components.user != nil || components.password != nil {
            components.user = nil
            components.password = nil
        }
        if components.query != nil { components.query = "[redacted]" }
        return components.string ?? "[unparseable url]"
    }
}

extension NodeReader {
    /// Headers the gateway sets itself on every upstream request (the transport's own: content negotiation,
    /// the session and the negotiated version), which configuration must not override.
    static let gatewayOwnedHeaders: Set<String> = [
        "accept", "content-type", "content-length", "transfer-encoding", "connection", "host", "mcp-session-id",
        "mcp-protocol-version", "last-event-id", "upgrade", "te", "keep-alive",
    ]

    /// `backends.<name>` of `type: http`: `url`, `headers`, `session`.
    mutating func readHTTPBackend(_ map: [String: Node], node: Node, path: String) -> HTTPBackendConfig? {
        guard let urlNode = map["url"] else {
            problem(node, path + ".url", "is required for an http backend (the server's MCP endpoint, for example https://mcp.example.com/mcp)")
            return nil
        }
        guard let url = string(urlNode, path: path + ".url") else { return nil }
        var valid = true
        if let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
           let host = components.host, !host.isEmpty {
            if !Self.isHTTPSOrLoopbackHTTP(url) {
                problem(urlNode, path + ".url", "must be an https URL (plain http only for a loopback host such as 127.0.0.1 or localhost)")
                valid = false
            }
            if components.fragment != nil {
                problem(urlNode, path + ".url", "must not have a fragment (#...)")
                valid = false
            }
        } else {
            problem(urlNode, path + ".url", "is not an absolute http(s) URL with a host (for example https://mcp.example.com/mcp)")
            valid = false
        }
        var config = HTTPBackendConfig(url: url)
        if let headersNode = map["headers"] {
            if let headers = stringMap(headersNode, path: path + ".headers") {
                for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
                    let keyPath = path + ".headers." + name
                    if name.isEmpty || !name.utf8.allSatisfy(Self.isHeaderNameByte) {
                        problem(headersNode, keyPath, "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only; RFC 9110 §5.1)")
                        valid = false
                    } else if Self.gatewayOwnedHeaders.contains(name.lowercased()) {
                        problem(headersNode, keyPath, "is set by the gateway itself on every request to the server and cannot be configured")
                        valid = false
                    } else if value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
                        // The value is a secret: say what is wrong without echoing it.
                        problem(headersNode, keyPath, "the value contains a line break or NUL, which HTTP header values cannot carry (check the ${VAR} or ${file:...} it comes from)")
                        valid = false
                    }
                }
                config.headers = headers
            } else {
                valid = false
            }
        }
        if let sessionNode = map["session"] {
            if let mode = enumeration(sessionNode, path: path + ".session", UpstreamSessionMode.self) { config.session = mode } else { valid = false }
        }
        return valid ? config : nil
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isHeaderNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

import GatewayConfig
import GatewayCore
import NIOHTTP1

/// OAuth 2.0 Protected Resource Metadata (RFC 9728), served without authentication at both well-known forms
/// (`/.well-known/oauth-protected-resource` and the path form with the MCP endpoint appended), as JSON, readable
/// from any origin (2025-11-25/basic/authorization#authorization-server-location; MUST item 27).
struct ProtectedResourceMetadata: Sendable {
    let paths: Set<String>
    let body: [UInt8]

    static let wellKnown = "/.well-known/oauth-protected-resource"

    init?(config: AuthConfig, endpoint: String) {
        guard config.mode == .oauth || config.mode == .oauthOrAPIKey, let metadata = config.resourceMetadata else { return nil }
        var document = JSONObject()
        document["resource"] = .string(metadata.resource)
        document["authorization_servers"] = .array(metadata.authorizationServers.map { .string($0) })
        if !metadata.scopesSupported.isEmpty { document["scopes_supported"] = .array(metadata.scopesSupported.map { .string($0) }) }
        document["bearer_methods_supported"] = ["header"]
        document["resource_name"] = "mcp-gateway"
        body = JSONValue.object(document).serialized()
        var paths: Set<String> = [Self.wellKnown, Self.wellKnown + endpoint]
        if let path = Self.path(ofResource: metadata.resource), path != "/", !path.isEmpty { paths.insert(Self.wellKnown + path) }
        self.paths = paths
    }

    func respond(_ responder: HTTPResponder) {
        var headers = HTTPHeaders()
        headers.add(name: "access-control-allow-origin", value: "*")
        headers.add(name: "cache-control", value: "max-age=300")
        responder.respondJSON(body, headers: headers)
    }

    /// RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
    static func metadataURL(forResource resource: String) -> String {
        guard let schemeEnd = resource.range(of: "://") else { return resource }
        let rest = resource[schemeEnd.upperBound...]
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        var path = String(rest[pathStart...])
        while path.hasSuffix("/") { path.removeLast() }
        return String(resource[..<pathStart]) + wellKnown + path
    }

    static func path(ofResource resource: String) -> String? {
        guard let schemeEnd = resource.range(of: "://") else { return nil }
        let rest = resource[schemeEnd.upperBound...]
        guard let pathStart = rest.firstIndex(of: "/") else { return nil }
        var path = String(rest[pathStart...])
        while path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

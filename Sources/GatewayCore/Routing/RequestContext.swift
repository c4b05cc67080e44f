/// Who is asking, on which session: the typed per-request value that travels from the middleware chain to the
/// router and the backends, instead of globals or re-parsed headers (ARCHITECTURE.md, "Typed request context").
public struct RequestContext: Sendable {
    public var principal: Principal
    public var sessionID: String?
    public var protocolVersion: ProtocolVersion
    /// W3C trace context from the client, when present (the tracing issue fills in spans).
    public var traceParent: String?

    public init(principal: Principal, sessionID: String?, protocolVersion: ProtocolVersion, traceParent: String? = nil) {
        self.principal = principal
        self.sessionID = sessionID
        self.protocolVersion = protocolVersion
        self.traceParent = traceParent
    }
}

/// An authenticated caller. With `auth.mode: none` every caller is `anonymous`.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    /// Stable identity that sessions are bound to: issuer + subject, or an API key's id.
    public var id: String
    public var subject: String
    public var issuer: String?
    public var tenant: String?
    public var scopes: Set<String>
    /// When the credential stops being valid (a token's `exp`), seconds since the epoch; nil for API keys.
    public var expiresAt: Double?

    public init(id: String, subject: String, issuer: String? = nil, tenant: String? = nil, scopes: Set<String> = [], expiresAt: Double? = nil) {
        self.id = id
        self.subject = subject
        self.issuer = issuer
        self.tenant = tenant
        self.scopes = scopes
        self.expiresAt = expiresAt
    }

    public static let anonymous = Principal(id: "anonymous", subject: "anonymous")

    public var description: String { id }
}

/// What a session id carries, sealed, so that any replica holding the keys can serve the session without
/// shared storage (issue "spine" §3): the principal it is bound to (SBP-2025-11-25#session-hijacking), the
/// negotiated protocol version, the client's declared capabilities, and when it was issued.
public struct SessionClaims: Sendable, Equatable {
    /// The authenticated principal (issuer + subject, or an API key's id); "anonymous" when auth is off.
    public var principal: String
    public var protocolVersion: ProtocolVersion
    /// The `capabilities` object the client sent in `initialize`, kept verbatim.
    public var clientCapabilities: JSONObject
    /// `clientInfo.name`, for logs.
    public var clientName: String
    /// Seconds since the Unix epoch.
    public var issuedAt: Int64

    public init(principal: String, protocolVersion: ProtocolVersion, clientCapabilities: JSONObject, clientName: String, issuedAt: Int64) {
        self.principal = principal
        self.protocolVersion = protocolVersion
        self.clientCapabilities = clientCapabilities
        self.clientName = clientName
        self.issuedAt = issuedAt
    }

    /// Compact JSON plaintext; short keys keep the sealed id small enough for a header.
    public func encoded() -> [UInt8] {
        var object = JSONObject()
        object["p"] = .string(principal)
        object["v"] = .string(protocolVersion.rawValue)
        object["c"] = .object(clientCapabilities)
        object["n"] = .string(clientName)
        object["i"] = .number(JSONNumber(Int(issuedAt)))
        return JSONValue.object(object).serialized()
    }

    public init?(decoding bytes: [UInt8]) {
        guard let value = try? JSONParser.parse(bytes),
              let principal = value["p"]?.stringValue,
              let versionText = value["v"]?.stringValue, let version = ProtocolVersion(rawValue: versionText),
              let capabilities = value["c"]?.objectValue,
              let issuedAt = value["i"]?.intValue
        else { return nil }
        self.init(
            principal: principal, protocolVersion: version, clientCapabilities: capabilities,
            clientName: value["n"]?.stringValue ?? "", issuedAt: Int64(issuedAt)
        )
    }

    public func clientDeclares(_ capability: String) -> Bool { clientCapabilities[capability] != nil }
}

/// Seals and opens session ids. The AEAD implementation lives in GatewayAuth (swift-crypto); the core only
/// needs the contract: an id opens to its claims under one of the configured keys, or not at all.
public protocol SessionSealing: Sendable {
    func seal(_ claims: SessionClaims) -> String
    func open(_ sessionID: String) -> SessionClaims?
}

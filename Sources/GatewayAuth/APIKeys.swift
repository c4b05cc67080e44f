import Crypto
import GatewayConfig
import GatewayCore

/// API keys matched by SHA-256 in constant time (issue "security" §1): the config holds only digests, and
/// every configured digest is compared in full whatever the input, so timing reveals nothing about which
/// bytes matched.
public struct APIKeyVerifier: Sendable {
    private let keys: [APIKeyConfig]

    public init(keys: [APIKeyConfig]) {
        self.keys = keys
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// The principal for a presented key, or nil.
    public func principal(for presented: String) -> Principal? {
        let digest = Array(SHA256.hash(data: Array(presented.utf8)))
        var match: APIKeyConfig?
        for key in keys where Self.constantTimeEquals(digest, key.sha256) && match == nil {
            match = key
        }
        guard let match else { return nil }
        return Principal(id: "api-key:\(match.id)", subject: match.id, issuer: nil, tenant: match.tenant, scopes: Set(match.scopes))
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

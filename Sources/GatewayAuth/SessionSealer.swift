import Crypto
import Foundation
import GatewayCore

/// Session ids as sealed tokens (issue "spine" §3): ChaCha20-Poly1305 over the session's claims under a raw
/// 32-byte key, so any replica holding the keys can serve the session and nobody can forge or alter one.
///
/// Format: `"g1."` + base64url(nonce ‖ ciphertext ‖ tag). The random 96-bit nonce makes every id unique and
/// unguessable (MUST item 16: visible ASCII, from a CSPRNG). The version prefix is bound as associated data, so
/// a token cannot be replayed under a future format. Key rotation: the first key seals; every key opens.
/// There is no password KDF: keys are random bytes, not passwords.
public struct SessionSealer: SessionSealing {
    private let keys: [SymmetricKey]
    private let maxLifetimeSeconds: Int64
    private let clock: @Sendable () -> Int64
    private static let prefix = "g1."
    private static let associatedData = Array("mcp-gateway session v1".utf8)

    /// - Parameters:
    ///   - keys: raw 32-byte keys; empty means one random key for this process (sessions then do not survive a
    ///     restart nor move between replicas).
    ///   - maxLifetime: a token older than this opens to nothing (an expired id is a 404).
    public init(keys: [[UInt8]], maxLifetime: Duration, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        if keys.isEmpty {
            self.keys = [SymmetricKey(size: .bits256)]
        } else {
            self.keys = keys.map { SymmetricKey(data: $0) }
        }
        self.maxLifetimeSeconds = max(1, maxLifetime.components.seconds)
        self.clock = clock
    }

    public func seal(_ claims: SessionClaims) -> String {
        let plaintext = claims.encoded()
        // Sealing with a fresh random nonce cannot fail for a 256-bit key.
        let box = try! ChaChaPoly.seal(plaintext, using: keys[0], authenticating: Self.associatedData)
        return Self.prefix + Self.base64URL(box.combined)
    }

    public func open(_ sessionID: String) -> SessionClaims? {
        guard sessionID.hasPrefix(Self.prefix), sessionID.utf8.count < 8192,
              let combined = Self.decodeBase64URL(sessionID.dropFirst(Self.prefix.count)),
              let box = try? ChaChaPoly.SealedBox(combined: combined)
        else { return nil }
        for key in keys {
            guard let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: Self.associatedData) else { continue }
            guard let claims = SessionClaims(decoding: Array(plaintext)) else { return nil }
            let age = clock() - claims.issuedAt
            guard age >= -300, age <= maxLifetimeSeconds else { return nil }
            return claims
        }
        return nil
    }

    public static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Only the canonical encoding decodes. Foundation ignores the unused low bits of the last character, so
    /// without the re-encoding check several texts open to the same sealed box; the session table keys
    /// sessions by the id's text, so a variant of a DELETEd id (RFC 4648 §3.5) would resume the ended session
    /// (MCP transports#session-management: a terminated id answers 404). Found by `FuzzSessionIDMutation`.
    static func decodeBase64URL(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), base64URL(data) == text else { return nil }
        return data
    }
}

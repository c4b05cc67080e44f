import Crypto
import Foundation
import GatewayConfig
import GatewayCore

/// Seals pagination cursors with HMAC-SHA256 (RFC 2104): `base64url(payload) "." base64url(tag)`, the tag cut
/// to 16 bytes. The payload (which list, its generation, the next offset) is not secret, only bound: a client
/// that edits it, or a cursor sealed with another key, gets -32602 (server/utilities/pagination).
///
/// The key is derived with HKDF-SHA256 (RFC 5869) from the first `sessions.keys` entry, so replicas that share
/// their session keys accept each other's cursors; without configured keys it is random per process.
struct HMACCursorSealer: CursorSealing {
    private let key: SymmetricKey

    init(sessionKeys: [[UInt8]]) {
        if let first = sessionKeys.first {
            key = HKDF<SHA256>.deriveKey(
                inputKeyMaterial: SymmetricKey(data: first), info: Array("mcp-gateway pagination cursor v1".utf8), outputByteCount: 32
            )
        } else {
            key = Self.processKey
        }
    }

    /// One random key for the life of the process, so cursors survive a reload that keeps no session keys.
    private static let processKey = SymmetricKey(size: .bits256)

    func seal(_ payload: [UInt8]) -> String {
        let tag = Array(HMAC<SHA256>.authenticationCode(for: payload, using: key)).prefix(16)
        return Self.base64url(payload) + "." + Self.base64url(Array(tag))
    }

    func open(_ cursor: String) -> [UInt8]? {
        let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.unbase64url(parts[0]), let tag = Self.unbase64url(parts[1]), tag.count == 16 else { return nil }
        let expected = Array(HMAC<SHA256>.authenticationCode(for: payload, using: key)).prefix(16)
        // Constant-time comparison: the time taken must not tell how much of a forged tag was right.
        var difference: UInt8 = 0
        for (a, b) in zip(expected, tag) { difference |= a ^ b }
        return difference == 0 ? payload : nil
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: Substring) -> [UInt8]? {
        guard text.count < 4096 else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Array($0) }
    }
}

extension Pagination {
    /// The pagination a configuration asks for: `tools.page_size` items a page, cursors sealed as above.
    static func configured(_ configuration: GatewayConfiguration) -> Pagination {
        Pagination(pageSize: configuration.tools.pageSize, sealer: HMACCursorSealer(sessionKeys: configuration.sessions.keys))
    }
}

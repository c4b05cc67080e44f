import FuzzChecks
import GatewayAuth
import GatewayCore

/// The session-id opener (`SessionSealer.open`), which runs on every request's `Mcp-Session-Id` header
/// before authentication state is known, so it sees attacker-chosen text.
public enum SessionIDCheck {
    /// A fixed key and clock, so every replay is deterministic.
    static let key = [UInt8](repeating: 0x5A, count: 32)
    static let now: Int64 = 1_800_000_000
    static let sealer = SessionSealer(keys: [key], maxLifetime: .seconds(3600), clock: { now })
    static let claims = SessionClaims(
        principal: "fuzz-principal", protocolVersion: .latest,
        clientCapabilities: ["roots": ["listChanged": true]], clientName: "fuzz", issuedAt: now - 10)
    /// `claims` sealed under the key once (sealing draws a random nonce), so that a saved mutation input
    /// replays the same id.
    public static let sealedID = "g1.LNFoeh-_ovR6pAmx-fYg1o3Gx1LCECHg9vPe8GH0lEpjcjclsAbSJMqUCVQMKtVNkWM4fIqmrip8vU9Wdp2X14pqjvWrpg5D6zzhaSNp3JyN6zwlpPentJSqs2-UcHOGGeJpDO04bJoumMg2S8q0Wz6N3VB0WUOmN5IKJAtQUvs"

    /// Arbitrary text as a session id: it must not trap, and must open to nothing (forging one means
    /// breaking ChaCha20-Poly1305).
    public static func checkArbitrary(_ input: [UInt8]) throws(FuzzFailure) {
        let text = String(decoding: input, as: UTF8.self)
        try expect(sealer.open(text) == nil, "an id not sealed by the key opened: \(text)")
        try expect(sealer.open("g1." + text) == nil, "an id not sealed by the key opened: g1.\(text)")
    }

    /// Structure-aware: the input is a list of edits to a valid sealed id, each two bytes (position, new
    /// byte). An edited id that differs from the original must open to nothing; the unedited id must still
    /// open to its claims.
    public static func checkMutation(_ input: [UInt8]) throws(FuzzFailure) {
        var id = Array(sealedID.utf8)
        var index = 0
        while index + 1 < input.count {
            let position = Int(input[index]) * id.count / 256
            id[position] = input[index + 1]
            index += 2
        }
        if input.count % 2 == 1 {
            // An odd trailing byte truncates the id to that fraction of its length.
            id.removeLast(id.count - Int(input[input.count - 1]) * id.count / 256)
        }
        let text = String(decoding: id, as: UTF8.self)
        let opened = sealer.open(text)
        if text == sealedID {
            try expect(opened == claims, "the sealed id no longer opens to its claims")
        } else {
            try expect(opened == nil, "an altered id opened: \(text) (sealed: \(sealedID))")
        }
    }
}

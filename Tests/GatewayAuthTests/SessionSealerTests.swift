import Foundation
import GatewayCore
import Testing

@testable import GatewayAuth

@Suite struct SessionSealerTests {
    let claims = SessionClaims(
        principal: "https://issuer.example|alice", protocolVersion: .v2025_06_18,
        clientCapabilities: ["sampling": .object(JSONObject())], clientName: "test-client", issuedAt: 1_000_000
    )
    let keyA = [UInt8](repeating: 0xA1, count: 32)
    let keyB = [UInt8](repeating: 0xB2, count: 32)

    func sealer(_ keys: [[UInt8]], now: Int64 = 1_000_010) -> SessionSealer {
        SessionSealer(keys: keys, maxLifetime: .seconds(3600), clock: { now })
    }

    @Test func sealedIdOpensToTheSameClaims() throws {
        let id = sealer([keyA]).seal(claims)
        #expect(sealer([keyA]).open(id) == claims)
    }

    @Test func idsAreVisibleASCIIAndUniquePerSeal() {
        let s = sealer([keyA])
        let ids = (0..<50).map { _ in s.seal(claims) }
        #expect(Set(ids).count == 50, "a fresh random nonce makes every id unique")
        for id in ids {
            #expect(id.utf8.allSatisfy { (0x21...0x7E).contains($0) }, "MUST item 16: visible ASCII only")
        }
    }

    @Test func anotherReplicaWithTheSameKeyOpensIt() {
        let id = sealer([keyA]).seal(claims)
        #expect(sealer([keyA]).open(id)?.principal == claims.principal)
    }

    @Test func aForeignKeyDoesNotOpenIt() {
        let id = sealer([keyA]).seal(claims)
        #expect(sealer([keyB]).open(id) == nil)
    }

    @Test func rotationTheFirstKeySealsEveryKeyOpens() {
        let oldID = sealer([keyA]).seal(claims)
        let rotated = sealer([keyB, keyA])
        #expect(rotated.open(oldID) == claims, "ids sealed under the old key still open")
        let newID = rotated.seal(claims)
        #expect(sealer([keyB]).open(newID) == claims, "new ids are sealed with the first key")
        #expect(sealer([keyA]).open(newID) == nil)
    }

    @Test func everyTamperedByteIsRejected() {
        let id = sealer([keyA]).seal(claims)
        var bytes = Array(id.utf8)
        for index in stride(from: 3, to: bytes.count, by: 7) {
            let original = bytes[index]
            bytes[index] = original == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(sealer([keyA]).open(String(decoding: bytes, as: UTF8.self)) == nil, "byte \(index) altered")
            bytes[index] = original
        }
        #expect(sealer([keyA]).open("g1.") == nil)
        #expect(sealer([keyA]).open("not-a-session") == nil)
        #expect(sealer([keyA]).open(String(id.dropLast(4))) == nil)
    }

    /// Regression (FuzzSessionIDMutation, Tests/fuzz/FuzzSessionIDMutation/regressions): Foundation's base64
    /// decoder ignores the unused low bits of the last character, so a variant of the id opened to the same
    /// session, and a DELETEd session could be resumed under the variant. Only the canonical text opens now.
    @Test func onlyTheCanonicalEncodingOpens() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        for _ in 0..<6 {
            let id = sealer([keyA]).seal(claims)
            #expect(sealer([keyA]).open(id) == claims)
            for variant in alphabet where variant != id.last {
                #expect(sealer([keyA]).open(String(id.dropLast()) + String(variant)) == nil, "last character \(variant)")
            }
        }
        #expect(SessionSealer.decodeBase64URL("QR") == nil, "QR decodes to \"A\" only by ignoring non-zero padding bits")
        #expect(SessionSealer.decodeBase64URL("QQ") == Data([0x41]))
    }

    @Test func anIdOlderThanTheMaximumLifetimeIsExpired() {
        let id = sealer([keyA]).seal(claims)
        #expect(sealer([keyA], now: claims.issuedAt + 3599).open(id) != nil)
        #expect(sealer([keyA], now: claims.issuedAt + 3601).open(id) == nil)
    }

    @Test func withoutKeysEachProcessHasItsOwnRandomKey() {
        let first = SessionSealer(keys: [], maxLifetime: .seconds(3600))
        let second = SessionSealer(keys: [], maxLifetime: .seconds(3600))
        let id = first.seal(SessionClaims(principal: "p", protocolVersion: .latest, clientCapabilities: JSONObject(), clientName: "", issuedAt: Int64(Date().timeIntervalSince1970)))
        #expect(first.open(id) != nil)
        #expect(second.open(id) == nil)
    }
}


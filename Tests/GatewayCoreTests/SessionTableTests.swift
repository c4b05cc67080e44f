import Testing

@testable import GatewayCore

@Suite struct SessionTableTests {
    let claims = SessionClaims(principal: "p", protocolVersion: .latest, clientCapabilities: JSONObject(), clientName: "", issuedAt: 0)
    let second: Int64 = 1_000_000_000

    @Test func admitsUpToCapacityThenEvictsTheOldestIdle() {
        var table = SessionTable<String>(capacity: 2, idleTimeout: .seconds(60))
        guard case .admitted(let none) = table.admit(id: "a", claims: claims, attachment: "A", now: 1 * second), none.isEmpty else {
            Issue.record("first admission")
            return
        }
        _ = table.admit(id: "b", claims: claims, attachment: "B", now: 2 * second)
        // "a" is touched later than "b", so "b" is now the least recently active.
        _ = table.lookup(id: "a", claims: claims, now: 3 * second) { "unused" }
        guard case .admitted(let evicted) = table.admit(id: "c", claims: claims, attachment: "C", now: 4 * second) else {
            Issue.record("third admission should evict")
            return
        }
        #expect(evicted.map(\.id) == ["b"])
        #expect(Set(table.entries.keys) == ["a", "c"])
        guard case .ended = table.lookup(id: "b", claims: claims, now: 5 * second, makeAttachment: { "resurrected" }) else {
            Issue.record("an evicted id stays ended on this replica")
            return
        }
    }

    @Test func refusesWhenNoSessionIsIdle() {
        var table = SessionTable<String>(capacity: 1, idleTimeout: .seconds(30))
        _ = table.admit(id: "a", claims: claims, attachment: "A", now: 0)
        table.adjustBusy(id: "a", by: 1, now: 0)
        guard case .full(let retryAfter) = table.admit(id: "b", claims: claims, attachment: "B", now: second) else {
            Issue.record("a busy session is never evicted")
            return
        }
        #expect(retryAfter >= 1 && retryAfter <= 60)
        table.adjustBusy(id: "a", by: -1, now: 2 * second)
        guard case .admitted(let evicted) = table.admit(id: "b", claims: claims, attachment: "B", now: 3 * second) else {
            Issue.record("idle again, so evictable")
            return
        }
        #expect(evicted.map(\.id) == ["a"])
    }

    @Test func idleSessionsExpireButBusyOnesDoNot() {
        var table = SessionTable<String>(capacity: 10, idleTimeout: .seconds(10))
        _ = table.admit(id: "idle", claims: claims, attachment: "I", now: 0)
        _ = table.admit(id: "busy", claims: claims, attachment: "B", now: 0)
        table.adjustBusy(id: "busy", by: 1, now: 0)
        #expect(table.expire(now: 9 * second).isEmpty)
        #expect(table.expire(now: 11 * second).map(\.id) == ["idle"])
        #expect(table.entries.keys.sorted() == ["busy"])
        guard case .ended = table.lookup(id: "idle", claims: claims, now: 12 * second, makeAttachment: { "x" }) else {
            Issue.record("an expired id is a 404 here")
            return
        }
    }

    @Test func anUnseenButValidSessionIsResumed() {
        var table = SessionTable<String>(capacity: 10, idleTimeout: .seconds(10))
        guard case .resumed(let attachment, _) = table.lookup(id: "from-elsewhere", claims: claims, now: 0, makeAttachment: { "fresh" }) else {
            Issue.record("a session sealed by another replica is rebuilt here")
            return
        }
        #expect(attachment == "fresh")
        guard case .live("fresh") = table.lookup(id: "from-elsewhere", claims: claims, now: 1, makeAttachment: { "other" }) else {
            Issue.record("and then found live")
            return
        }
    }

    @Test func endedSessionsAreNotResumed() {
        var table = SessionTable<String>(capacity: 10, idleTimeout: .seconds(10))
        _ = table.admit(id: "s", claims: claims, attachment: "S", now: 0)
        #expect(table.end("s", now: 1) == "S")
        guard case .ended = table.lookup(id: "s", claims: claims, now: 2, makeAttachment: { "x" }) else {
            Issue.record("DELETE makes the id a 404")
            return
        }
    }

    @Test func claimsRoundTrip() {
        let original = SessionClaims(
            principal: "iss|sub", protocolVersion: .v2025_03_26, clientCapabilities: ["roots": ["listChanged": true]],
            clientName: "client \"quoted\"", issuedAt: 1_764_000_000
        )
        #expect(SessionClaims(decoding: original.encoded()) == original)
        #expect(SessionClaims(decoding: Array("{}".utf8)) == nil)
    }
}

@Suite struct RestartBackoffTests {
    let second: Int64 = 1_000_000_000

    @Test func delaysGrowExponentiallyUpToTheMaximum() {
        var backoff = RestartBackoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), multiplier: 2, jitter: 0)
        let delays = (0..<6).map { _ in backoff.failed(now: 0, random: 0.5) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
    }

    @Test func jitterStaysWithinItsBand() {
        var low = RestartBackoff(initialDelay: .seconds(1), jitter: 0.2)
        var high = RestartBackoff(initialDelay: .seconds(1), jitter: 0.2)
        #expect(low.failed(now: 0, random: 0) == .milliseconds(800))
        #expect(high.failed(now: 0, random: 0.999_999) > .milliseconds(1199))
    }

    @Test func sustainedUptimeResetsTheBackoff() {
        var backoff = RestartBackoff(initialDelay: .milliseconds(100), multiplier: 2, jitter: 0, resetAfter: .seconds(60))
        _ = backoff.failed(now: 0, random: 0.5)
        _ = backoff.failed(now: 0, random: 0.5)
        backoff.started(now: 1 * second)
        #expect(backoff.failed(now: 5 * second, random: 0.5) == .milliseconds(400), "a short run does not reset")
        backoff.started(now: 10 * second)
        #expect(backoff.failed(now: 100 * second, random: 0.5) == .milliseconds(100), "a long run does")
    }
}

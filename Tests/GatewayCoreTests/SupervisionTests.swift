import Testing

@testable import GatewayCore

private let second: Int64 = 1_000_000_000

@Suite struct CrashLoopBreakerTests {
    @Test func restartsUpToTheLimitAreAllowed() {
        var breaker = CrashLoopBreaker(maxRestarts: 5, window: .seconds(60), cooldown: .seconds(60))
        for index in 0..<5 {
            #expect(breaker.instanceDied(now: Int64(index) * second) == .restart)
        }
        #expect(breaker.state == .closed)
        #expect(breaker.restartCount(now: 5 * second) == 5)
    }

    @Test func oneRestartMoreThanTheLimitWithinTheWindowTrips() {
        var breaker = CrashLoopBreaker(maxRestarts: 5, window: .seconds(60), cooldown: .seconds(60))
        for index in 0..<5 { _ = breaker.instanceDied(now: Int64(index) * second) }
        let decision = breaker.instanceDied(now: 10 * second)
        #expect(decision == .tripped(retryAt: 70 * second))
        #expect(breaker.state == .open(retryAt: 70 * second))
        #expect(breaker.retryAt == 70 * second)
    }

    @Test func restartsOutsideTheWindowAreForgotten() {
        var breaker = CrashLoopBreaker(maxRestarts: 2, window: .seconds(10), cooldown: .seconds(5))
        var decision = breaker.instanceDied(now: 0)
        #expect(decision == .restart)
        decision = breaker.instanceDied(now: 5 * second)
        #expect(decision == .restart)
        // The first restart is exactly one window old: outside it.
        decision = breaker.instanceDied(now: 10 * second)
        #expect(decision == .restart)
        #expect(breaker.restartCount(now: 10 * second) == 2)
        decision = breaker.instanceDied(now: 11 * second)
        #expect(decision == .tripped(retryAt: 16 * second))
    }

    @Test func whileOpenDeathsAreHeldAndNothingRestartsBeforeTheCooldown() {
        var breaker = CrashLoopBreaker(maxRestarts: 0, window: .seconds(60), cooldown: .seconds(30))
        var decision = breaker.instanceDied(now: 0)
        #expect(decision == .tripped(retryAt: 30 * second))
        decision = breaker.instanceDied(now: 1 * second)
        #expect(decision == .held(retryAt: 30 * second), "another instance dying does not extend the cooldown")
        let early = breaker.cooldownElapsed(now: 29 * second)
        #expect(early == false)
        #expect(breaker.state == .open(retryAt: 30 * second))
    }

    @Test func afterTheCooldownOneProbeThatStartsClosesTheBreaker() {
        var breaker = CrashLoopBreaker(maxRestarts: 1, window: .seconds(60), cooldown: .seconds(30))
        _ = breaker.instanceDied(now: 0)
        _ = breaker.instanceDied(now: 1 * second)
        let elapsed = breaker.cooldownElapsed(now: 31 * second)
        #expect(elapsed)
        #expect(breaker.state == .probing)
        breaker.instanceStarted(now: 32 * second)
        #expect(breaker.state == .closed)
        #expect(breaker.restartCount(now: 32 * second) == 0, "a successful probe starts from a clean slate")
        let decision = breaker.instanceDied(now: 33 * second)
        #expect(decision == .restart, "normal supervision resumes")
    }

    @Test func aProbeThatDiesReopensAtOnceForAnotherCooldown() {
        var breaker = CrashLoopBreaker(maxRestarts: 1, window: .seconds(60), cooldown: .seconds(30))
        _ = breaker.instanceDied(now: 0)
        _ = breaker.instanceDied(now: 1 * second)
        let elapsed = breaker.cooldownElapsed(now: 31 * second)
        #expect(elapsed)
        let decision = breaker.instanceDied(now: 32 * second)
        #expect(decision == .tripped(retryAt: 62 * second))
    }

    @Test func aHandshakeWhileClosedChangesNothing() {
        var breaker = CrashLoopBreaker(maxRestarts: 2, window: .seconds(60), cooldown: .seconds(30))
        _ = breaker.instanceDied(now: 0)
        _ = breaker.instanceDied(now: 1 * second)
        breaker.instanceStarted(now: 2 * second)
        #expect(breaker.restartCount(now: 2 * second) == 2, "only sustained uptime or a probe clears the count, not a handshake")
        let decision = breaker.instanceDied(now: 3 * second)
        #expect(decision == .tripped(retryAt: 33 * second))
    }
}

@Suite struct RestartBackoffStabilityTests {
    @Test func aHandshakeAloneDoesNotResetTheCount() {
        var backoff = RestartBackoff(initialDelay: .milliseconds(100), multiplier: 2, jitter: 0, resetAfter: .seconds(30))
        for round in 0..<4 {
            backoff.started(now: Int64(round) * 10 * second)
            _ = backoff.failed(now: Int64(round) * 10 * second + second, random: 0.5)
        }
        #expect(backoff.consecutiveFailures == 4)
        backoff.started(now: 100 * second)
        #expect(backoff.failed(now: 101 * second, random: 0.5) == .milliseconds(1600))
    }

    @Test func theResetHappensExactlyAtStableAfter() {
        var short = RestartBackoff(initialDelay: .milliseconds(100), multiplier: 2, jitter: 0, resetAfter: .seconds(30))
        var long = short
        _ = short.failed(now: 0, random: 0.5)
        _ = long.failed(now: 0, random: 0.5)
        short.started(now: second)
        long.started(now: second)
        #expect(short.isStable(now: 31 * second - 1) == false)
        #expect(long.isStable(now: 31 * second))
        #expect(short.failed(now: 31 * second - 1, random: 0.5) == .milliseconds(200))
        #expect(long.failed(now: 31 * second, random: 0.5) == .milliseconds(100))
    }

    @Test func notStableWhenNotRunning() {
        let backoff = RestartBackoff()
        #expect(backoff.isStable(now: 1_000 * second) == false)
    }
}

@Suite struct ReadinessQuorumTests {
    @Test func anyNeedsOneReadyBackend() {
        #expect(ReadinessQuorum.any.isMet(ready: 0, configured: 3) == false)
        #expect(ReadinessQuorum.any.isMet(ready: 1, configured: 3))
    }

    @Test func allNeedsEveryBackend() {
        #expect(ReadinessQuorum.all.isMet(ready: 2, configured: 3) == false)
        #expect(ReadinessQuorum.all.isMet(ready: 3, configured: 3))
    }

    @Test func aFractionRoundsTheNeededCountUp() {
        #expect(ReadinessQuorum.fraction(0.5).isMet(ready: 1, configured: 3) == false)
        #expect(ReadinessQuorum.fraction(0.5).isMet(ready: 2, configured: 3))
        #expect(ReadinessQuorum.fraction(0.5).isMet(ready: 2, configured: 4))
        #expect(ReadinessQuorum.fraction(0.7).isMet(ready: 7, configured: 10))
        #expect(ReadinessQuorum.fraction(1.0).isMet(ready: 9, configured: 10) == false)
        #expect(ReadinessQuorum.fraction(0).isMet(ready: 0, configured: 2), "0: ready whatever the backends")
    }

    @Test func statesNameThemselvesAsReadyzPrintsThem() {
        #expect(BackendHealthState.allCases.map(\.rawValue) == ["ready", "starting", "restarting", "crash_loop", "unhealthy"])
        #expect(BackendHealthState.allCases.filter(\.isReady) == [.ready])
    }
}

import Testing

@testable import GatewayCore

private let ms: Int64 = 1_000_000
private let second: Int64 = 1_000_000_000

@Suite struct TokenBucketTests {
    let policy = TokenBucketPolicy(name: "principal", rate: 2, per: .seconds(1), burst: 4)

    @Test func burstThenRefusedThenRefilledAtTheRate() {
        var limiter = RateLimiter(policies: [policy])
        let key = [RateLimitKey(policy: 0, subject: "alice")]
        for expectedRemaining in [3, 2, 1, 0] {
            let decision = limiter.take(key, now: 0)
            #expect(decision?.allowed == true)
            #expect(decision?.remaining == expectedRemaining)
        }
        let refused = limiter.take(key, now: 0)
        #expect(refused?.allowed == false)
        // 2 tokens a second: one token takes 500 ms.
        #expect(refused?.retryAfterNanoseconds == 500 * ms)
        #expect(refused?.retryAfterMilliseconds == 500)
        #expect(refused?.retryAfterSeconds == 1)
        #expect(refused?.resetSeconds == 2)
        let step1 = limiter.take(key, now: 499 * ms)
        #expect(step1?.allowed == false)
        let step2 = limiter.take(key, now: 500 * ms)
        #expect(step2?.allowed == true)
        let step3 = limiter.take(key, now: 500 * ms)
        #expect(step3?.allowed == false)
    }

    @Test func refillNeverExceedsTheBurst() {
        var limiter = RateLimiter(policies: [policy])
        let key = [RateLimitKey(policy: 0, subject: "alice")]
        _ = limiter.take(key, now: 0)
        let later = limiter.take(key, now: 3600 * second)
        #expect(later?.remaining == 3)
    }

    @Test func principalsHaveTheirOwnBuckets() {
        var limiter = RateLimiter(policies: [policy])
        for _ in 0..<4 { _ = limiter.take([RateLimitKey(policy: 0, subject: "alice")], now: 0) }
        let step4 = limiter.take([RateLimitKey(policy: 0, subject: "alice")], now: 0)
        #expect(step4?.allowed == false)
        let step5 = limiter.take([RateLimitKey(policy: 0, subject: "bob")], now: 0)
        #expect(step5?.allowed == true)
    }

    @Test func aRefusalByOneBucketSpendsNoTokenOfAnother() {
        let tenant = TokenBucketPolicy(name: "tenant", rate: 1, per: .seconds(10), burst: 1)
        var limiter = RateLimiter(policies: [policy, tenant])
        let alice = RateLimitKey(policy: 0, subject: "alice")
        let acme = RateLimitKey(policy: 1, subject: "acme")
        let step6 = limiter.take([alice, acme], now: 0)
        #expect(step6?.allowed == true)
        let refused = limiter.take([alice, acme], now: 0)
        #expect(refused?.allowed == false)
        #expect(refused?.policy == 1)
        #expect(refused?.retryAfterNanoseconds == 10 * second)
        // alice spent one token (the allowed call), not two.
        let step7 = limiter.take([alice], now: 0)
        #expect(step7?.remaining == 2)
    }

    @Test func theLongestWaitDecidesARefusal() {
        let slow = TokenBucketPolicy(name: "slow", rate: 1, per: .seconds(60), burst: 1)
        var limiter = RateLimiter(policies: [policy, slow])
        let keys = [RateLimitKey(policy: 0, subject: "a"), RateLimitKey(policy: 1, subject: "a")]
        _ = limiter.take(keys, now: 0)
        let refused = limiter.take(keys, now: 0)
        #expect(refused?.policy == 1)
        #expect(refused?.retryAfterSeconds == 60)
    }

    @Test func idleBucketsExpireInTheAmortisedSweep() {
        var limiter = RateLimiter(policies: [policy], sweepEvery: 4)
        for index in 0..<3 { _ = limiter.take([RateLimitKey(policy: 0, subject: "p\(index)")], now: 0) }
        #expect(limiter.buckets.count == 3)
        // The fourth call is due a sweep; at t=1s the three 1-token-spent buckets (2 tokens/s) are full again.
        _ = limiter.take([RateLimitKey(policy: 0, subject: "fresh")], now: second)
        #expect(limiter.buckets.count == 1)
        #expect(limiter.buckets.keys.first?.subject == "fresh")
    }

    @Test func aBucketStillRefillingSurvivesTheSweep() {
        var limiter = RateLimiter(policies: [policy], sweepEvery: 1)
        for _ in 0..<4 { _ = limiter.take([RateLimitKey(policy: 0, subject: "busy")], now: 0) }
        limiter.sweep(now: 1 * second)
        #expect(limiter.buckets.count == 1)
        limiter.sweep(now: 2 * second)
        #expect(limiter.buckets.isEmpty)
    }

    @Test func noKeysNoDecision() {
        var limiter = RateLimiter(policies: [policy])
        let step8 = limiter.take([RateLimitKey](), now: 0)
        #expect(step8 == nil)
    }

    @Test func headerFieldsFollowTheDraftSyntax() {
        let fifty = TokenBucketPolicy(name: "principal", rate: 50, per: .seconds(1), burst: 100)
        #expect(RateLimitHeaderFields.policy(fifty) == #""principal";q=100;w=2"#)
        var limiter = RateLimiter(policies: [fifty])
        let decision = limiter.take([RateLimitKey(policy: 0, subject: "a")], now: 0)!
        #expect(RateLimitHeaderFields.current(fifty, decision) == #""principal";r=99;t=1"#)
        let slow = TokenBucketPolicy(name: "tool", rate: 1, per: .seconds(1), burst: 1)
        #expect(RateLimitHeaderFields.policy(slow) == #""tool";q=1;w=1"#)
    }
}

@Suite struct CircuitBreakerTests {
    let policy = CircuitBreakerPolicy(failureRatio: 0.5, minCalls: 4, openFor: .seconds(30), probeTimeout: .seconds(10))

    @Test func staysClosedBelowMinCallsEvenIfAllFail() {
        var breaker = CircuitBreaker(policy: policy)
        for _ in 0..<3 {
            let transition = breaker.record(.failure, now: 0)
            #expect(transition == nil)
        }
        let step9 = breaker.admit(now: 0)
        #expect(step9 == .allowed)
        #expect(breaker.metricValue(now: 0) == 0)
    }

    @Test func opensWhenTheWindowReachesTheRatio() {
        var breaker = CircuitBreaker(policy: policy)
        breaker.record(.success, now: 0)
        breaker.record(.success, now: 0)
        breaker.record(.failure, now: 0)
        let step10 = breaker.record(.failure, now: 5 * second)
        #expect(step10 == .opened)
        #expect(breaker.metricValue(now: 5 * second) == 2)
        let step11 = breaker.admit(now: 6 * second)
        #expect(step11 == .refused(retryAfterNanoseconds: 29 * second, halfOpen: false))
    }

    @Test func theWindowSlides() {
        var breaker = CircuitBreaker(policy: policy)
        // F F S S: 2/4 would open at the 4th; use 3 successes first to keep it below.
        for outcome in [CircuitOutcome.failure, .success, .success, .success] { breaker.record(outcome, now: 0) }
        #expect(breaker.state == .closed)
        // The window is now F S S S; a failure pushes the oldest F out: S S S F (1/4).
        let step12 = breaker.record(.failure, now: 0)
        #expect(step12 == nil)
        // S S F F: 2/4 reaches 0.5.
        let step13 = breaker.record(.failure, now: 0)
        #expect(step13 == .opened)
    }

    @Test func neutralOutcomesAreNotCounted() {
        var breaker = CircuitBreaker(policy: policy)
        for _ in 0..<10 { breaker.record(.neutral, now: 0) }
        #expect(breaker.windowSummary.outcomes == 0)
    }

    @Test func halfOpenLetsExactlyOneProbeThroughAndItsSuccessCloses() {
        var breaker = tripped()
        let step14 = breaker.admit(now: 30 * second)
        #expect(step14 == .probe)
        #expect(breaker.metricValue(now: 30 * second) == 1)
        let step15 = breaker.admit(now: 30 * second)
        guard case .refused(_, let halfOpen) = step15 else {
            Issue.record("a second call while the probe runs is refused")
            return
        }
        #expect(halfOpen)
        // The probe's success closes the circuit, with an empty window.
        let step16 = breaker.record(.success, now: 31 * second)
        #expect(step16 == .closed)
        #expect(breaker.state == .closed)
        #expect(breaker.windowSummary.outcomes == 0)
        let step17 = breaker.admit(now: 31 * second)
        #expect(step17 == .allowed)
    }

    @Test func aFailedProbeReopensForAnotherPeriod() {
        var breaker = tripped()
        let step18 = breaker.admit(now: 30 * second)
        #expect(step18 == .probe)
        let step19 = breaker.record(.failure, now: 32 * second)
        #expect(step19 == .reopened)
        let step20 = breaker.admit(now: 33 * second)
        #expect(step20 == .refused(retryAfterNanoseconds: 29 * second, halfOpen: false))
        let step21 = breaker.admit(now: 62 * second)
        #expect(step21 == .probe)
    }

    @Test func anUnansweredProbeIsReplacedAfterTheProbeTimeout() {
        var breaker = tripped()
        let step22 = breaker.admit(now: 30 * second)
        #expect(step22 == .probe)
        let step23 = breaker.admit(now: 35 * second)
        #expect(step23 == .refused(retryAfterNanoseconds: second, halfOpen: true))
        let step24 = breaker.admit(now: 40 * second)
        #expect(step24 == .probe)
    }

    @Test func aNeutralProbeFreesTheSlot() {
        var breaker = tripped()
        let step25 = breaker.admit(now: 30 * second)
        #expect(step25 == .probe)
        breaker.record(.neutral, now: 31 * second)
        let step26 = breaker.admit(now: 31 * second)
        #expect(step26 == .probe)
    }

    @Test func outcomesWhileOpenAreIgnored() {
        var breaker = tripped()
        let step27 = breaker.record(.success, now: second)
        #expect(step27 == nil)
        #expect(breaker.metricValue(now: second) == 2)
        #expect(breaker.metricValue(now: 30 * second) == 1)
    }

    @Test func afterClosingItTakesAFullWindowAgainToOpen() {
        var breaker = tripped()
        _ = breaker.admit(now: 30 * second)
        breaker.record(.success, now: 30 * second)
        for _ in 0..<3 { breaker.record(.failure, now: 31 * second) }
        #expect(breaker.state == .closed)
        let transition = breaker.record(.failure, now: 31 * second)
        #expect(transition == .opened)
    }

    @Test func aLargeMinCallsNeverJudgesEarly() {
        var breaker = CircuitBreaker(policy: CircuitBreakerPolicy(failureRatio: 1.0, minCalls: 1_000_000, openFor: .seconds(1), probeTimeout: .seconds(1)))
        for _ in 0..<1000 { breaker.record(.failure, now: 0) }
        #expect(breaker.state == .closed)
        #expect(breaker.windowSummary == (failures: 1000, outcomes: 1000))
    }

    @Test func errorCodesClassify() {
        #expect(CircuitOutcome.ofError(code: -32001) == .failure)
        #expect(CircuitOutcome.ofError(code: -32004) == .failure)
        #expect(CircuitOutcome.ofError(code: -32603) == .failure)
        #expect(CircuitOutcome.ofError(code: -32602) == .success)
        #expect(CircuitOutcome.ofError(code: -32601) == .success)
    }

    private func tripped() -> CircuitBreaker {
        var breaker = CircuitBreaker(policy: policy)
        for _ in 0..<4 { breaker.record(.failure, now: 0) }
        return breaker
    }
}

@Suite struct ConcurrencyLimiterTests {
    @Test func runsUpToTheLimitThenQueuesThenRejects() {
        var limiter = ConcurrencyLimiter<Int>(maxConcurrency: 2, queueCapacity: 1)
        let step28 = limiter.acquire(session: "a", ticket: 1)
        #expect(step28 == .run)
        let step29 = limiter.acquire(session: "a", ticket: 2)
        #expect(step29 == .run)
        let step30 = limiter.acquire(session: "a", ticket: 3)
        #expect(step30 == .queued)
        let step31 = limiter.acquire(session: "b", ticket: 4)
        #expect(step31 == .rejected)
        #expect(limiter.inflight == 2)
        #expect(limiter.queued == 1)
        let step32 = limiter.release()
        #expect(step32 == 3)
        #expect(limiter.inflight == 2)
        let step33 = limiter.release()
        #expect(step33 == nil)
        let step34 = limiter.release()
        #expect(step34 == nil)
        #expect(limiter.inflight == 0)
    }

    @Test func aZeroQueueRejectsAtOnce() {
        var limiter = ConcurrencyLimiter<Int>(maxConcurrency: 1, queueCapacity: 0)
        let step35 = limiter.acquire(session: "a", ticket: 1)
        #expect(step35 == .run)
        let step36 = limiter.acquire(session: "a", ticket: 2)
        #expect(step36 == .rejected)
    }

    @Test func freedSlotsGoRoundRobinAcrossSessions() {
        var limiter = ConcurrencyLimiter<String>(maxConcurrency: 1, queueCapacity: 100)
        let step37 = limiter.acquire(session: "greedy", ticket: "g0")
        #expect(step37 == .run)
        for index in 1...5 {
            let admission = limiter.acquire(session: "greedy", ticket: "g\(index)")
            #expect(admission == .queued)
        }
        let step38 = limiter.acquire(session: "polite", ticket: "p1")
        #expect(step38 == .queued)
        let step39 = limiter.acquire(session: "third", ticket: "t1")
        #expect(step39 == .queued)
        let step40 = limiter.acquire(session: "polite", ticket: "p2")
        #expect(step40 == .queued)
        var order: [String] = []
        while let next = limiter.release() { order.append(next) }
        #expect(order == ["g1", "p1", "t1", "g2", "p2", "g3", "g4", "g5"])
        #expect(limiter.queued == 0)
        #expect(limiter.inflight == 0)
    }

    @Test func aCancelledWaiterLeavesTheQueue() {
        var limiter = ConcurrencyLimiter<Int>(maxConcurrency: 1, queueCapacity: 2)
        let step41 = limiter.acquire(session: "a", ticket: 1)
        #expect(step41 == .run)
        let step42 = limiter.acquire(session: "a", ticket: 2)
        #expect(step42 == .queued)
        let step43 = limiter.acquire(session: "b", ticket: 3)
        #expect(step43 == .queued)
        let step44 = limiter.cancel(ticket: 2)
        #expect(step44)
        let step45 = limiter.cancel(ticket: 2)
        #expect(!step45)
        #expect(limiter.queued == 1)
        // The freed place is usable again.
        let step46 = limiter.acquire(session: "c", ticket: 4)
        #expect(step46 == .queued)
        let step47 = limiter.release()
        #expect(step47 == 3)
        let step48 = limiter.release()
        #expect(step48 == 4)
        let step49 = limiter.release()
        #expect(step49 == nil)
        let step50 = limiter.cancel(ticket: 1)
        #expect(!step50)
    }
}

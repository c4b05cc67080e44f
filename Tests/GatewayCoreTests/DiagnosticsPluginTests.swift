import GatewayCore
import Synchronization
import Testing

@testable import GatewayPlugins

/// A scheduler driven by hand: tests advance time explicitly, so no test sleeps.
final class ManualScheduler: PluginScheduler, Sendable {
    private let pending = Mutex<[(at: Duration, work: @Sendable () -> Void, cancelled: Cancellation)]>([])
    private let now = Mutex(Duration.zero)

    final class Cancellation: ScheduledWork, Sendable {
        let flag = Mutex(false)
        func cancel() { flag.withLock { $0 = true } }
    }

    func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) -> any ScheduledWork {
        let token = Cancellation()
        let at = now.withLock { $0 } + delay
        pending.withLock { $0.append((at, work, token)) }
        return token
    }

    /// Runs everything due up to `now + delay`, in time order, including work scheduled meanwhile.
    func advance(by delay: Duration) {
        let target = now.withLock { $0 } + delay
        while true {
            let next = pending.withLock { list -> (at: Duration, work: @Sendable () -> Void, cancelled: Cancellation)? in
                guard let index = list.indices.filter({ list[$0].at <= target }).min(by: { list[$0].at < list[$1].at }) else { return nil }
                return list.remove(at: index)
            }
            guard let next else { break }
            now.withLock { $0 = next.at }
            if !next.cancelled.flag.withLock({ $0 }) { next.work() }
        }
        now.withLock { $0 = target }
    }
}

final class Recorder: Sendable {
    let results = Mutex<[ToolResult]>([])
    let progress = Mutex<[Double]>([])
}

@Suite struct DiagnosticsPluginTests {
    func run(_ tool: String, _ arguments: JSONObject, scheduler: ManualScheduler = ManualScheduler()) -> (ToolCallContext, Recorder) {
        let recorder = Recorder()
        let context = ToolCallContext(
            principal: .anonymous, sessionID: "s", scheduler: scheduler,
            progress: { value, _, _ in recorder.progress.withLock { $0.append(value) } },
            completion: { result in recorder.results.withLock { $0.append(result) } }
        )
        DiagnosticsPlugin().call(ToolCall(tool: tool, arguments: arguments), context: context)
        return (context, recorder)
    }

    @Test func echoReturnsItsText() {
        let (_, recorder) = run("echo", ["text": "héllo ✓"])
        #expect(recorder.results.withLock { $0 } == [.text("héllo ✓")])
    }

    @Test func echoWithoutTextIsAToolError() {
        let (_, recorder) = run("echo", [:])
        #expect(recorder.results.withLock { $0.first?.isError } == true)
    }

    @Test func failReturnsIsError() {
        let (_, recorder) = run("fail", ["message": "boom"])
        #expect(recorder.results.withLock { $0 } == [.text("boom", isError: true)])
    }

    @Test func sleepReportsIncreasingProgressThenFinishes() {
        let scheduler = ManualScheduler()
        let (_, recorder) = run("sleep", ["ms": 1000], scheduler: scheduler)
        scheduler.advance(by: .milliseconds(450))
        #expect(recorder.results.withLock { $0.isEmpty })
        #expect(recorder.progress.withLock { $0 } == [1, 2, 3, 4])
        scheduler.advance(by: .milliseconds(600))
        #expect(recorder.progress.withLock { $0 } == Array(1...10).map(Double.init))
        #expect(recorder.results.withLock { $0 } == [.text("slept 1000ms")])
    }

    @Test func sleepStopsWhenCancelledAndNeverAnswers() {
        let scheduler = ManualScheduler()
        let (context, recorder) = run("sleep", ["ms": 1000], scheduler: scheduler)
        scheduler.advance(by: .milliseconds(250))
        context.cancel()
        scheduler.advance(by: .seconds(5))
        #expect(recorder.results.withLock { $0.isEmpty }, "a cancelled request gets no response")
        #expect(recorder.progress.withLock { $0.count } == 2)
    }

    @Test func finishTakesEffectOnce() {
        let (context, recorder) = run("echo", ["text": "a"])
        context.finish(.text("b"))
        #expect(recorder.results.withLock { $0.count } == 1)
    }
}

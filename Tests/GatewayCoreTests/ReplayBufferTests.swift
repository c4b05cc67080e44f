import GatewayCore
import Testing

@Suite struct RingBufferTests {
    @Test func keepsTheNewestUpToCapacityOldestFirst() {
        var ring = RingBuffer<Int>(capacity: 3)
        #expect(ring.isEmpty && ring.first == nil && ring.last == nil)
        #expect(ring.append(1) == nil)
        #expect(ring.append(2) == nil)
        #expect(ring.append(3) == nil)
        #expect(ring.elements == [1, 2, 3])
        #expect(ring.append(4) == 1, "a full ring drops its oldest element")
        #expect(ring.append(5) == 2)
        #expect(ring.elements == [3, 4, 5] && ring.count == 3)
        #expect(ring.first == 3 && ring.last == 5)
    }

    @Test func wrapsManyTimesInOrder() {
        var ring = RingBuffer<Int>(capacity: 4)
        for value in 1...1001 { ring.append(value) }
        #expect(ring.elements == [998, 999, 1000, 1001])
    }

    @Test func removeFirstThenAppendKeepsOrder() {
        var ring = RingBuffer<Int>(capacity: 3)
        for value in 1...5 { ring.append(value) }
        #expect(ring.removeFirst() == 3)
        #expect(ring.elements == [4, 5])
        ring.append(6)
        ring.append(7)
        #expect(ring.elements == [5, 6, 7])
        #expect(ring.removeFirst() == 5 && ring.removeFirst() == 6 && ring.removeFirst() == 7)
        #expect(ring.removeFirst() == nil && ring.isEmpty)
        ring.append(8)
        #expect(ring.elements == [8])
    }

    @Test func removeFirstBeforeTheStorageIsFull() {
        var ring = RingBuffer<Int>(capacity: 5)
        ring.append(1)
        ring.append(2)
        #expect(ring.removeFirst() == 1)
        ring.append(3)
        ring.append(4)
        ring.append(5)
        ring.append(6)
        #expect(ring.elements == [2, 3, 4, 5, 6])
        #expect(ring.append(7) == 2)
        #expect(ring.elements == [3, 4, 5, 6, 7])
    }

    @Test func zeroCapacityKeepsNothing() {
        var ring = RingBuffer<String>(capacity: 0)
        #expect(ring.append("a") == "a")
        #expect(ring.isEmpty && ring.elements.isEmpty && ring.removeFirst() == nil)
    }
}

@Suite struct SessionReplayLogTests {
    private func event(_ stream: Int, _ number: Int, _ text: String = "") -> ReplayEvent {
        ReplayEvent(id: SSEEventID(stream: stream, event: number), data: Array((text.isEmpty ? "\(stream)-\(number)" : text).utf8))
    }

    private func replayed(_ replay: SessionReplayLog.Replay) -> [String] {
        guard case .stream(let events, _, _) = replay else { return [] }
        return events.map(\.id.description)
    }

    @Test func replaysOnlyTheNamedStreamAfterTheID() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 10))
        for number in 1...4 { log.record(event(1, number)) }
        for number in 1...3 { log.record(event(2, number)) }
        #expect(log.replay(after: SSEEventID(stream: 1, event: 2)) == .stream(events: [event(1, 3), event(1, 4)], missed: false, finished: false))
        #expect(replayed(log.replay(after: SSEEventID(stream: 2, event: 1))) == ["2-2", "2-3"])
        #expect(log.replay(after: SSEEventID(stream: 2, event: 3)) == .stream(events: [], missed: false, finished: false), "up to date: nothing to replay")
    }

    @Test func unknownStreamsAndIDsFromTheFutureNameNoStream() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 10))
        log.record(event(1, 1))
        #expect(log.replay(after: SSEEventID(stream: 3, event: 1)) == .unknownStream)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 2)) == .unknownStream, "an id the gateway never sent on this stream")
    }

    @Test func keepsOnlyTheNewestEventsPerStreamAndSaysWhenSomeWereMissed() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 2))
        for number in 1...5 { log.record(event(1, number)) }
        #expect(log.eventCount == 2)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .stream(events: [event(1, 4), event(1, 5)], missed: true, finished: false))
        #expect(log.replay(after: SSEEventID(stream: 1, event: 3)) == .stream(events: [event(1, 4), event(1, 5)], missed: false, finished: false))
    }

    @Test func finishedStreamsSaySo() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 4))
        log.record(event(5, 1))
        log.record(event(5, 2, "{\"result\":{}}"))
        log.finish(stream: 5)
        #expect(log.replay(after: SSEEventID(stream: 5, event: 1)) == .stream(events: [event(5, 2, "{\"result\":{}}")], missed: false, finished: true))
    }

    @Test func disabledKeepsNothing() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 0))
        log.record(event(1, 1))
        #expect(!log.isEnabled && log.streamCount == 0)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .unknownStream)
    }

    @Test func eventNumbersMustIncrease() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 4))
        log.record(event(1, 2))
        log.record(event(1, 2, "again"))
        log.record(event(1, 1))
        #expect(replayed(log.replay(after: SSEEventID(stream: 1, event: 1))) == ["1-2"])
        #expect(log.eventCount == 1)
    }

    @Test func tooManyStreamsDropFinishedOnesFirst() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 4, maxStreams: 2))
        log.record(event(1, 1))
        log.record(event(2, 1))
        log.finish(stream: 2)
        log.record(event(1, 2))
        log.record(event(3, 1))
        #expect(log.streamCount == 2)
        #expect(log.replay(after: SSEEventID(stream: 2, event: 1)) == .unknownStream, "the finished stream made room")
        #expect(replayed(log.replay(after: SSEEventID(stream: 1, event: 1))) == ["1-2"])
        log.record(event(4, 1))
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .unknownStream, "then the least recently written")
        #expect(replayed(log.replay(after: SSEEventID(stream: 3, event: 1))) == [])
    }

    @Test func theByteBudgetDropsTheSessionsOldestEvents() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 100, maxBytes: 10))
        log.record(event(1, 1, "aaaa"))
        log.record(event(2, 1, "bbbb"))
        log.record(event(1, 2, "cccc"))
        #expect(log.byteCount == 8)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .stream(events: [event(1, 2, "cccc")], missed: false, finished: false))
        #expect(log.replay(after: SSEEventID(stream: 2, event: 1)) == .stream(events: [], missed: false, finished: false))
        log.record(event(1, 3, "ddddddddd"))
        #expect(log.byteCount == 9 && log.eventCount == 1)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .stream(events: [event(1, 3, "ddddddddd")], missed: true, finished: false))
    }

    @Test func removeAllForgetsEverything() {
        var log = SessionReplayLog(limits: .init(eventsPerStream: 4))
        log.record(event(1, 1))
        log.removeAll()
        #expect(log.streamCount == 0 && log.byteCount == 0)
        #expect(log.replay(after: SSEEventID(stream: 1, event: 1)) == .unknownStream)
    }
}

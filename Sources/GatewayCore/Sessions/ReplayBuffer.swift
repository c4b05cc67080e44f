/// A first-in-first-out ring of at most `capacity` elements: appending to a full ring drops the oldest one.
/// Storage grows on demand up to `capacity` and a removed element's slot is cleared at once, so a ring that is
/// mostly empty holds next to nothing. A zero-capacity ring keeps nothing.
public struct RingBuffer<Element> {
    public let capacity: Int
    private var storage: [Element?] = []
    /// Index of the oldest element in `storage`.
    private var head = 0
    public private(set) var count = 0

    public init(capacity: Int) {
        precondition(capacity >= 0, "a ring's capacity cannot be negative")
        self.capacity = capacity
    }

    public var isEmpty: Bool { count == 0 }

    public var first: Element? { count == 0 ? nil : storage[head] }

    public var last: Element? { count == 0 ? nil : storage[(head + count - 1) % capacity] }

    /// Appends `element`; returns the element dropped to make room: the oldest one when the ring was full,
    /// `element` itself when the capacity is zero, nil otherwise.
    @discardableResult
    public mutating func append(_ element: Element) -> Element? {
        guard capacity > 0 else { return element }
        if count == capacity {
            let dropped = storage[head]
            storage[head] = element
            head = (head + 1) % capacity
            return dropped
        }
        let slot = (head + count) % capacity
        // Until the storage has grown to `capacity` the ring never wraps, so the free slot is the end.
        if slot == storage.count { storage.append(element) } else { storage[slot] = element }
        count += 1
        return nil
    }

    /// Removes and returns the oldest element.
    @discardableResult
    public mutating func removeFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % capacity
        count -= 1
        if count == 0 {
            storage.removeAll()
            head = 0
        }
        return element
    }

    /// The elements, oldest first.
    public var elements: [Element] {
        (0..<count).map { storage[(head + $0) % capacity]! }
    }
}

extension RingBuffer: Sendable where Element: Sendable {}

/// One server-sent event as it went out on a session's stream: its id and the JSON-RPC message (empty for a
/// 2025-11-25 priming event).
public struct ReplayEvent: Sendable, Equatable {
    public let id: SSEEventID
    public let data: [UInt8]

    public init(id: SSEEventID, data: [UInt8]) {
        self.id = id
        self.data = data
    }
}

/// What a session has sent on its SSE streams, kept so that a client that lost a connection can resume the
/// stream it was reading: it reconnects with a GET carrying `Last-Event-ID`, and the gateway replays what came
/// after that id on that stream only, never another stream's messages (2025-11-25/basic/transports#
/// resumability-and-redelivery; digest §2.5, MUST item 21). Pure state; the session wraps it in its lock.
///
/// Memory is bounded three ways: at most `eventsPerStream` events per stream (the oldest dropped first), at
/// most `maxStreams` streams (the least recently written dropped first, finished streams before live ones),
/// and at most `maxBytes` of event data in all (the oldest event of the session dropped first).
public struct SessionReplayLog: Sendable {
    public struct Limits: Sendable, Equatable {
        /// `sessions.replay_buffer`; zero keeps nothing, and then no stream can be resumed.
        public var eventsPerStream: Int
        public var maxStreams: Int
        public var maxBytes: Int

        public init(eventsPerStream: Int, maxStreams: Int = Self.defaultMaxStreams, maxBytes: Int = Self.defaultMaxBytes) {
            self.eventsPerStream = max(0, eventsPerStream)
            self.maxStreams = max(1, maxStreams)
            self.maxBytes = max(0, maxBytes)
        }

        /// A session rarely has more than a handful of streams whose connection was lost and not yet resumed.
        public static let defaultMaxStreams = 32
        /// Enough for the default 256 events of a few kilobytes each; a replica holds at most `sessions.max`
        /// MiB of replay data (in practice far less: only events of streams are kept, and a response goes on a
        /// stream only when progress preceded it). A larger tool result is not kept, and a resumption then
        /// says events were missed.
        public static let defaultMaxBytes = 1 << 20
    }

    /// The answer to a resumption request.
    public enum Replay: Sendable, Equatable {
        /// The stream is known. `events` are those after the id still held, oldest first; `missed` says some
        /// events after the id were already dropped (the buffer was too small for the time the client was
        /// away); `finished` says the stream has ended (a POST stream whose response or cancellation was sent),
        /// so nothing will follow the replay.
        case stream(events: [ReplayEvent], missed: Bool, finished: Bool)
        /// This session has no such stream here: never issued, dropped for space, issued by another replica, or
        /// the id's event is newer than anything sent on the stream.
        case unknownStream
    }

    private struct Stored: Sendable {
        var event: Int
        var data: [UInt8]
        /// Session-wide order of recording, to find the oldest event across streams.
        var sequence: UInt64
    }

    private struct StreamLog: Sendable {
        var events: RingBuffer<Stored>
        /// The highest event number recorded on the stream (kept even when the events themselves are dropped).
        var lastEvent = 0
        /// The highest event number dropped from the stream, 0 when none was.
        var droppedThrough = 0
        var finished = false
        var touched: UInt64 = 0
    }

    public let limits: Limits
    private var streams: [Int: StreamLog] = [:]
    private var sequence: UInt64 = 0
    public private(set) var byteCount = 0

    public init(limits: Limits) {
        self.limits = limits
    }

    public var isEnabled: Bool { limits.eventsPerStream > 0 }

    /// Streams held (live or finished).
    public var streamCount: Int { streams.count }

    /// Events held over all streams.
    public var eventCount: Int { streams.values.reduce(0) { $0 + $1.events.count } }

    /// Keeps an event that was just sent. Event numbers within a stream must increase; an event that does not
    /// is ignored (it would make the replay ambiguous).
    public mutating func record(_ event: ReplayEvent) {
        guard isEnabled else { return }
        sequence += 1
        let number = event.id.stream
        if streams[number] == nil {
            if streams.count >= limits.maxStreams { dropOneStream() }
            streams[number] = StreamLog(events: RingBuffer(capacity: limits.eventsPerStream))
        }
        guard event.id.event > streams[number]!.lastEvent else { return }
        streams[number]!.lastEvent = event.id.event
        streams[number]!.touched = sequence
        if let dropped = streams[number]!.events.append(Stored(event: event.id.event, data: event.data, sequence: sequence)) {
            byteCount -= dropped.data.count
            streams[number]!.droppedThrough = max(streams[number]!.droppedThrough, dropped.event)
        }
        byteCount += event.data.count
        while byteCount > limits.maxBytes, dropOldestEvent() {}
    }

    /// The stream has ended: a resumption replays what is left and then ends too.
    public mutating func finish(stream: Int) {
        guard streams[stream] != nil else { return }
        streams[stream]!.finished = true
    }

    /// The events of `id`'s stream after `id`.
    public func replay(after id: SSEEventID) -> Replay {
        guard let log = streams[id.stream], id.event <= log.lastEvent else { return .unknownStream }
        let events = log.events.elements.filter { $0.event > id.event }.map {
            ReplayEvent(id: SSEEventID(stream: id.stream, event: $0.event), data: $0.data)
        }
        return .stream(events: events, missed: log.droppedThrough > id.event, finished: log.finished)
    }

    /// Forgets everything (the session ended).
    public mutating func removeAll() {
        streams.removeAll()
        byteCount = 0
    }

    /// Makes room for a new stream: the least recently written finished stream, else the least recently written.
    private mutating func dropOneStream() {
        let victim = streams.filter(\.value.finished).min { $0.value.touched < $1.value.touched }
            ?? streams.min { $0.value.touched < $1.value.touched }
        guard let victim else { return }
        byteCount -= victim.value.events.elements.reduce(0) { $0 + $1.data.count }
        streams[victim.key] = nil
    }

    /// Drops the session's oldest event; false when there is none.
    private mutating func dropOldestEvent() -> Bool {
        var oldest: (stream: Int, sequence: UInt64)?
        for (number, log) in streams {
            guard let first = log.events.first else { continue }
            if oldest == nil || first.sequence < oldest!.sequence { oldest = (number, first.sequence) }
        }
        guard let oldest, let dropped = streams[oldest.stream]!.events.removeFirst() else { return false }
        byteCount -= dropped.data.count
        streams[oldest.stream]!.droppedThrough = max(streams[oldest.stream]!.droppedThrough, dropped.event)
        return true
    }
}

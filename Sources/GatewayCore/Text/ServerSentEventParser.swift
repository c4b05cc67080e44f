/// One event of a `text/event-stream` body, as dispatched by the parser.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` field; nil means the default type, "message".
    public var event: String?
    /// The `data:` lines joined with "\n".
    public var data: [UInt8]
    /// The last event id seen so far on the stream (the `id:` field persists across events).
    public var lastEventID: String?
    /// `retry:` in milliseconds, when this event carried one.
    public var retry: Int?

    public init(event: String? = nil, data: [UInt8], lastEventID: String? = nil, retry: Int? = nil) {
        self.event = event
        self.data = data
        self.lastEventID = lastEventID
        self.retry = retry
    }

    /// The event type, "message" when none was given.
    public var type: String { event ?? "message" }
}

/// An incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events", §9.2.6 "Event stream
/// interpretation"): bytes in as they arrive from the network, complete events out. Lines end with CRLF, LF or
/// CR (a CR at the end of one chunk and an LF at the start of the next are one line end); `:` lines are
/// comments (keep-alives); `data:` lines accumulate; a blank line dispatches. An event without data is not
/// dispatched (so MCP's 2025-11-25 priming event, an `id:` with empty data, only moves `lastEventID`).
///
/// The gateway uses it as the client of a remote MCP server: Streamable HTTP POST responses and GET streams,
/// and the legacy HTTP+SSE stream (2025-11-25/basic/transports). Pure: no I/O.
public struct ServerSentEventParser: Sendable {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// One line or one event's data grew past the limit (a server that never ends its lines).
        case eventTooLarge(limit: Int)

        public var description: String {
            switch self {
            case .eventTooLarge(let limit): return "an event on the stream is larger than \(limit) bytes"
            }
        }
    }

    public let maximumEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType: String?
    private var retry: Int?
    private var afterCR = false
    private var atStreamStart = true
    public private(set) var lastEventID: String?

    public init(maximumEventBytes: Int = 64 * 1024 * 1024) {
        self.maximumEventBytes = maximumEventBytes
    }

    /// Feeds the next bytes of the stream; returns the events completed by them, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(ParseError) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if atStreamStart {
                // A leading UTF-8 BOM (EF BB BF) is skipped; anything else ends the check.
                if line.count < 3, byte == [0xEF, 0xBB, 0xBF][line.count] {
                    line.append(byte)
                    if line.count == 3 {
                        line.removeAll(keepingCapacity: true)
                        atStreamStart = false
                    }
                    continue
                }
                atStreamStart = false
            }
            switch byte {
            case UInt8(ascii: "\n") where afterCR:
                afterCR = false
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                afterCR = byte == UInt8(ascii: "\r")
                if let event = try endOfLine() { events.append(event) }
            default:
                afterCR = false
                line.append(byte)
                if line.count + data.count > maximumEventBytes { throw .eventTooLarge(limit: maximumEventBytes) }
            }
        }
        return events
    }

    /// The stream ended: an event not followed by a blank line is discarded (§9.2.6: "incomplete event").
    public mutating func finish() {
        line.removeAll()
        resetEvent()
    }

    private mutating func endOfLine() throws(ParseError) -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        switch String(decoding: field, as: UTF8.self) {
        case "event":
            eventType = String(decoding: value, as: UTF8.self)
        case "data":
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            hasData = true
        case "id":
            if !value.contains(0) { lastEventID = String(decoding: value, as: UTF8.self) }
        case "retry":
            if !value.isEmpty, value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), value.count < 16 {
                retry = Int(String(decoding: value, as: UTF8.self))
            }
        default:
            break // Unknown fields are ignored.
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer { resetEvent() }
        guard hasData else { return nil }
        return ServerSentEvent(event: eventType.flatMap { $0.isEmpty ? nil : $0 }, data: data, lastEventID: lastEventID, retry: retry)
    }

    private mutating func resetEvent() {
        data.removeAll(keepingCapacity: true)
        hasData = false
        eventType = nil
        retry = nil
    }
}

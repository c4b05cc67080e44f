/// The id of one server-sent event on a session's streams: `"<stream>-<event>"`, both positive decimal numbers
/// (the stream from the session's counter, the event counted within that stream; see `PostReply`). A client that
/// reconnects sends the last id it saw as `Last-Event-ID` (WHATWG HTML §9.2 "Server-sent events";
/// MCP 2025-11-25/basic/transports#resumability-and-redelivery), and the stream number tells the gateway which
/// stream to resume, so the text must round-trip exactly.
public struct SSEEventID: Sendable, Hashable, CustomStringConvertible {
    /// Which stream of the session (each replica's copy of a session starts at a random number and counts up).
    public var stream: Int
    /// Which event within that stream (1 is the first).
    public var event: Int

    public init(stream: Int, event: Int) {
        self.stream = stream
        self.event = event
    }

    /// The wire form, exactly as `init?(lastEventID:)` accepts it.
    public var description: String { "\(stream)-\(event)" }

    /// Parses a `Last-Event-ID` header value. Surrounding spaces and tabs are ignored (they are not part of a
    /// field value, RFC 9110 §5.5); anything else that is not exactly two positive decimal numbers without
    /// leading zeros, joined by one `-` and each fitting in an `Int`, is nil: the gateway never issued such an
    /// id, so it names no stream.
    public init?(lastEventID value: some StringProtocol) {
        var bytes = Substring(value).utf8[...]
        while let first = bytes.first, first == 0x20 || first == 0x09 { bytes.removeFirst() }
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
        guard let dash = bytes.firstIndex(of: UInt8(ascii: "-")),
              let stream = Self.positiveDecimal(bytes[..<dash]),
              let event = Self.positiveDecimal(bytes[bytes.index(after: dash)...])
        else { return nil }
        self.init(stream: stream, event: event)
    }

    /// `[1-9][0-9]*` that fits in an `Int`, or nil.
    private static func positiveDecimal(_ digits: Substring.UTF8View.SubSequence) -> Int? {
        guard let first = digits.first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9") else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = shifted.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if overflowA || overflowB { return nil }
            value = sum
        }
        return value
    }
}

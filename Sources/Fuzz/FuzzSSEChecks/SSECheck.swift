import FuzzChecks
import GatewayCore
import GatewayHTTP

/// Server-sent events, both directions: the framing the gateway writes (`ServerSentEvents.event`) and the
/// `Last-Event-ID` parser (`SSEEventID(lastEventID:)`) that resumption will use. The input's first byte picks
/// the event-id form, the rest is the payload and the header value.
///
/// Framing invariant (WHATWG HTML §9.2.6 "Interpreting an event stream"): the output is one event, ending
/// in exactly one blank line, whose lines are only `event:`, `id:` and `data:` fields; a conforming client
/// reassembles the data lines (joined with LF) to the payload without its CRs, and reads back the id.
/// Parser invariant: whatever it accepts prints back to the same text (trimmed), and every id the gateway
/// prints parses back to itself.
public enum SSECheck {
    public static func check(_ input: [UInt8]) throws(FuzzFailure) {
        guard let selector = input.first else { return }
        let payload = Array(input.dropFirst())

        let id = SSEEventID(stream: Int(selector) + 1, event: payload.count + 1)
        let frame = ServerSentEvents.event(id: selector & 1 == 0 ? id.description : nil, data: payload)
        let parsed = try parseEvent(frame)
        try expect(parsed.data == payload.filter { $0 != UInt8(ascii: "\r") }, "the event's data lines do not reassemble to the payload")
        try expect(parsed.id == (selector & 1 == 0 ? id.description : nil), "the event's id reads back as \(parsed.id ?? "none")")
        try expect(SSEEventID(lastEventID: id.description) == id, "the printed id \(id) does not parse back")

        let header = String(decoding: payload, as: UTF8.self)
        if let parsedID = SSEEventID(lastEventID: header) {
            let trimmed = header.trimmingSpacesAndTabs()
            try expect(parsedID.description == trimmed, "accepted \(header.debugDescription) but it prints as \(parsedID)")
            try expect(parsedID.stream > 0 && parsedID.event > 0, "accepted a non-positive id \(header.debugDescription)")
        }
    }

    /// A strict reader of one event as the gateway frames it: LF line ends only, the final line empty.
    static func parseEvent(_ frame: [UInt8]) throws(FuzzFailure) -> (id: String?, data: [UInt8]) {
        try expect(frame.count >= 2 && frame.suffix(2) == [0x0A, 0x0A], "the event does not end with a blank line")
        try expect(!frame.contains(0x0D), "the event contains a CR, which a client reads as a line end")
        var lines = frame.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        try expect(lines.last?.isEmpty == true, "the event does not end with a blank line")
        lines.removeLast()
        try expect(!lines.contains { $0.isEmpty }, "a blank line inside the event splits it in two")
        var id: String?
        var dataLines: [ArraySlice<UInt8>] = []
        for line in lines {
            let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
            let field = String(decoding: line[..<colon], as: UTF8.self)
            var value = line[colon...].dropFirst()
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
            switch field {
            case "event": try expect(value.elementsEqual("message".utf8), "the event type is not message")
            case "id": id = String(decoding: value, as: UTF8.self)
            case "data": dataLines.append(value)
            default: throw FuzzFailure("unexpected field \(field.debugDescription) in the event")
            }
        }
        try expect(!dataLines.isEmpty, "the event has no data line (a client would dispatch nothing)")
        return (id, Array(dataLines.joined(separator: [0x0A])))
    }
}

extension String {
    func trimmingSpacesAndTabs() -> Substring {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

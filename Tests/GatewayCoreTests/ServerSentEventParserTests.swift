import GatewayCore
import Testing

/// The `text/event-stream` parser the remote backend reads server answers with (WHATWG HTML §9.2.6).
@Suite struct ServerSentEventParserTests {
    func parse(_ chunks: [String]) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for chunk in chunks { events += try parser.feed(Array(chunk.utf8)) }
        return events
    }

    func text(_ event: ServerSentEvent) -> String { String(decoding: event.data, as: UTF8.self) }

    @Test func messageEventsWithIdsAndTypes() throws {
        let events = try parse(["event: message\nid: 7\ndata: {\"a\":1}\n\n", "event: endpoint\ndata: /messages?session_id=x\n\n"])
        #expect(events.count == 2)
        #expect(events[0].type == "message" && text(events[0]) == "{\"a\":1}" && events[0].lastEventID == "7")
        #expect(events[1].type == "endpoint" && text(events[1]) == "/messages?session_id=x")
        #expect(events[1].lastEventID == "7", "the last event id persists across events")
    }

    @Test func eventsSplitAcrossChunksAnywhere() throws {
        let stream = "data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1}\r\n\r\n: keep-alive\r\n\r\ndata:x\r\r"
        let whole = try parse([stream])
        for split in 0...stream.utf8.count {
            let bytes = Array(stream.utf8)
            var parser = ServerSentEventParser()
            let events = try parser.feed(bytes[..<split]) + parser.feed(bytes[split...])
            #expect(events == whole, "split at \(split)")
        }
        #expect(whole.map(text) == ["{\"jsonrpc\":\"2.0\",\n\"id\":1}", "x"])
    }

    /// MCP 2025-11-25 priming events: an id with an empty `data:` line is an event with empty data (the
    /// reader skips it); an id alone dispatches nothing but still sets the last event id.
    @Test func primingEvents() throws {
        var parser = ServerSentEventParser()
        let primed = try parser.feed(Array("id: prime-1\ndata:\n\nretry: 500\n\n".utf8))
        #expect(primed == [ServerSentEvent(data: [], lastEventID: "prime-1")])
        var second = ServerSentEventParser()
        #expect(try second.feed(Array("id: prime-2\n\n".utf8)).isEmpty)
        #expect(second.lastEventID == "prime-2")
    }

    @Test func commentsUnknownFieldsAndBOMAreIgnored() throws {
        let events = try parse(["\u{FEFF}: hello\nfoo: bar\ndata\ndata: two\n\n"])
        #expect(events.count == 1)
        #expect(text(events[0]) == "\ntwo", "a bare `data` line is an empty data line")
    }

    @Test func retryIsParsedOnlyWhenDigits() throws {
        let events = try parse(["retry: 1500\ndata: a\n\nretry: soon\ndata: b\n\n"])
        #expect(events.map(\.retry) == [1500, nil])
    }

    @Test func anUnterminatedEventIsDiscardedAtTheEnd() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed(Array("data: partial\n".utf8)).isEmpty)
        parser.finish()
        #expect(try parser.feed(Array("\n".utf8)).isEmpty)
    }

    @Test func oversizedEventIsAnError() {
        var parser = ServerSentEventParser(maximumEventBytes: 16)
        #expect(throws: ServerSentEventParser.ParseError.eventTooLarge(limit: 16)) {
            _ = try parser.feed(Array("data: 0123456789abcdefghij\n\n".utf8))
        }
    }
}

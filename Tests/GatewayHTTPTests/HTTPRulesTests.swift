import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GatewayHTTP

@Suite struct MediaTypeTests {
    @Test func contentTypeIsJSONWithOrWithoutParameters() {
        #expect(MediaTypes.isJSON("application/json"))
        #expect(MediaTypes.isJSON("Application/JSON; charset=utf-8"))
        #expect(MediaTypes.isJSON(" application/json "))
        #expect(!MediaTypes.isJSON("text/plain"))
        #expect(!MediaTypes.isJSON("application/json-seq"))
        #expect(!MediaTypes.isJSON(""))
    }

    @Test func acceptMatchesExactTypesAndWildcards() {
        let both = "application/json, text/event-stream"
        #expect(MediaTypes.accepts(both, "application/json"))
        #expect(MediaTypes.accepts(both, "text/event-stream"))
        #expect(MediaTypes.accepts("*/*", "text/event-stream"))
        #expect(MediaTypes.accepts("application/*;q=0.5, text/*", "application/json"))
        #expect(MediaTypes.accepts("TEXT/EVENT-STREAM", "text/event-stream"))
        #expect(!MediaTypes.accepts("application/json", "text/event-stream"))
        #expect(!MediaTypes.accepts("text/event-stream;q=0, application/json", "text/event-stream"), "q=0 means not acceptable")
        #expect(MediaTypes.accepts("text/event-stream;q=0.1", "text/event-stream"))
    }
}

@Suite struct OriginGuardTests {
    let eventLoop = EmbeddedEventLoop()

    func outcome(_ guardian: OriginGuard, origin: String? = nil, host: String? = "127.0.0.1:8080") -> HTTPResponseStatus? {
        var headers = HTTPHeaders()
        if let origin { headers.add(name: "origin", value: origin) }
        if let host { headers.add(name: "host", value: host) }
        let request = HTTPRequestContext(head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/mcp", headers: headers))
        switch guardian.handle(request, eventLoop: eventLoop) {
        case .next: return nil
        case .respond(let response): return response.status
        case .suspend: return .internalServerError
        }
    }

    @Test func withoutAnAllowlistOnlyLoopbackOriginsPass() {
        let guardian = OriginGuard(allowedOrigins: [], listenIsLoopback: true, publicURL: nil)
        #expect(outcome(guardian) == nil, "no Origin: a non-browser client")
        #expect(outcome(guardian, origin: "http://localhost:3000") == nil)
        #expect(outcome(guardian, origin: "http://127.0.0.1:5173") == nil)
        #expect(outcome(guardian, origin: "http://evil.example") == .forbidden)
        #expect(outcome(guardian, origin: "null") == .forbidden)
    }

    @Test func anAllowlistIsExact() {
        let guardian = OriginGuard(allowedOrigins: ["https://app.example.com"], listenIsLoopback: false, publicURL: nil)
        #expect(outcome(guardian, origin: "https://app.example.com") == nil)
        #expect(outcome(guardian, origin: "https://APP.example.com/") == nil, "case and a trailing slash do not matter")
        #expect(outcome(guardian, origin: "https://app.example.com.evil.example") == .forbidden)
        #expect(outcome(guardian, origin: "http://localhost:3000") == .forbidden, "an allowlist replaces the loopback default")
    }

    @Test func onLoopbackTheHostMustBeLoopbackToo() {
        let guardian = OriginGuard(allowedOrigins: [], listenIsLoopback: true, publicURL: "https://mcp.example.com/mcp")
        #expect(outcome(guardian, host: "localhost:8080") == nil)
        #expect(outcome(guardian, host: "[::1]:8080") == nil)
        #expect(outcome(guardian, host: "mcp.example.com") == nil, "the public URL's host is allowed")
        #expect(outcome(guardian, host: "attacker.example:8080") == .forbidden, "DNS rebinding")
        #expect(outcome(guardian, host: "127.0.0.1.attacker.example") == .forbidden)
    }

    @Test func listeningOnAllInterfacesDoesNotCheckHost() {
        let guardian = OriginGuard(allowedOrigins: [], listenIsLoopback: false, publicURL: nil)
        #expect(outcome(guardian, host: "gateway.internal:8080") == nil)
    }
}

@Suite struct ServerSentEventTests {
    @Test func eventsAreFramedWithIdAndData() {
        let event = ServerSentEvents.event(id: "3-1", data: Array(#"{"a":1}"#.utf8))
        #expect(String(decoding: event, as: UTF8.self) == "event: message\nid: 3-1\ndata: {\"a\":1}\n\n")
    }

    @Test func newlinesInDataBecomeSeveralDataLines() {
        let event = ServerSentEvents.event(id: nil, data: Array("a\nb".utf8))
        #expect(String(decoding: event, as: UTF8.self) == "event: message\ndata: a\ndata: b\n\n")
    }
}

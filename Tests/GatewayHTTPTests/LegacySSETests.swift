import Testing

@testable import GatewayHTTP

/// The pure parts of the HTTP+SSE transport (2024-11-05/basic/transports#http-with-sse); the transport itself
/// is exercised end to end by Tests/interop/test_legacy_sse.py.
@Suite struct LegacySSETests {
    @Test func streamIDsAre128RandomBitsInHex() {
        let ids = (0..<1000).map { _ in LegacySSEEndpoint.mintStreamID() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.utf8.count == 32)
            #expect(id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
        }
    }

    @Test func sessionIDIsReadFromTheQuery() {
        #expect(LegacySSEEndpoint.sessionID(fromQuery: "sessionId=abc") == "abc")
        #expect(LegacySSEEndpoint.sessionID(fromQuery: "x=1&sessionId=abc&y=2") == "abc")
        #expect(LegacySSEEndpoint.sessionID(fromQuery: "sessionId=") == nil)
        #expect(LegacySSEEndpoint.sessionID(fromQuery: "session_id=abc") == nil)
        #expect(LegacySSEEndpoint.sessionID(fromQuery: "sessionIdx=abc") == nil)
        #expect(LegacySSEEndpoint.sessionID(fromQuery: nil) == nil)
    }

    @Test func theEndpointEventNamesTheURI() {
        let event = String(decoding: LegacySSEStream.endpointEvent("/messages?sessionId=0f"), as: UTF8.self)
        #expect(event == "event: endpoint\ndata: /messages?sessionId=0f\n\n")
    }
}

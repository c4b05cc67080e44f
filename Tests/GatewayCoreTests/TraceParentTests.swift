import GatewayCore
import Testing

/// W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header).
@Suite("W3C traceparent")
struct TraceParentTests {
    static let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test("a version-00 header is parsed and printed back unchanged")
    func roundTrip() throws {
        let parent = try #require(TraceParent(header: Self.valid, traceState: "congo=t61rcWkgMzE"))
        #expect(parent.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(parent.parentID == "b7ad6b7169203331")
        #expect(parent.sampled)
        #expect(parent.traceState == "congo=t61rcWkgMzE")
        #expect(parent.description == Self.valid)
    }

    @Test("malformed headers are rejected so the receiver starts a new trace", arguments: [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",        // no flags
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",     // upper-case hex
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",     // all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",     // all-zero parent id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xx",  // version 00 must be exactly 55 chars
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",     // wrong separator
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",     // not hex
    ])
    func rejects(_ header: String) {
        #expect(TraceParent(header: header) == nil)
    }

    @Test("a later version is read by its first four fields (trace-context#versioning)")
    func futureVersion() throws {
        let parent = try #require(TraceParent(header: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-future"))
        #expect(parent.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(!parent.sampled)
        #expect(TraceParent(header: "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00x") == nil)
    }

    @Test("injection sets _meta.traceparent and tracestate and keeps other _meta keys")
    func injection() throws {
        let parent = try #require(TraceParent(header: Self.valid, traceState: "a=b"))
        let params: JSONObject = ["name": "echo", "_meta": ["progressToken": 7, "tracestate": "stale"]]
        let injected = parent.injected(into: params)
        let meta = try #require(injected["_meta"]?.objectValue)
        #expect(meta["traceparent"]?.stringValue == Self.valid)
        #expect(meta["tracestate"]?.stringValue == "a=b")
        #expect(meta["progressToken"]?.intValue == 7)
        #expect(injected["name"]?.stringValue == "echo")
        let withoutState = try #require(TraceParent(header: Self.valid)).injected(into: params)
        #expect(withoutState["_meta"]?.objectValue?["tracestate"] == nil)
        #expect(TraceParent(meta: meta) == parent)
    }

    @Test("a child keeps the trace id and flags under a new parent")
    func child() throws {
        let parent = try #require(TraceParent(header: Self.valid))
        let child = try #require(parent.withParent("00f067aa0ba902b7", sampled: false))
        #expect(child.traceID == parent.traceID)
        #expect(child.description == "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-00")
        #expect(parent.withParent("0000000000000000") == nil)
    }
}

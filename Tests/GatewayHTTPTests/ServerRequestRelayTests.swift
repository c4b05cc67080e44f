import GatewayBackends
import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import GatewayRuntime

/// The per-session bookkeeping of requests relayed from backends to clients (GatewayRuntime/ServerRequests.swift):
/// ids, timeouts, the end of a session, and which requests a client may be sent. End to end, through real
/// backends and the Python SDK client: Tests/interop/test_server_requests.py.
@Suite struct ServerRequestRelayTests {
    /// Collects what reached the backend: a result's text, or an error's code and message.
    final class Answers: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        var all: [String] { box.withLockedValue { $0 } }

        func record(_ reply: BackendReply) {
            switch reply {
            case .result(let raw): box.withLockedValue { $0.append(String(decoding: raw, as: UTF8.self)) }
            case .error(let error): box.withLockedValue { $0.append("\(error.code) \(error.message)") }
            }
        }
    }

    private func register(_ table: ClientRequestTable, _ answers: Answers, loop: any EventLoop, timeout: Duration = .seconds(5)) throws -> RequestID {
        try table.register(method: "sampling/createMessage", timeout: timeout, on: loop) { answers.record($0) }.get()
    }

    @Test func idsAreFreshPerSessionAndAnAnswerIsTakenOnce() throws {
        let loop = EmbeddedEventLoop()
        let table = ClientRequestTable()
        let answers = Answers()
        let first = try register(table, answers, loop: loop)
        let second = try register(table, answers, loop: loop)
        #expect(first == RequestID(1))
        #expect(second == RequestID(2))
        table.take(first)?(.result(Array("{\"ok\":true}".utf8)))
        #expect(table.take(first) == nil)
        #expect(answers.all == ["{\"ok\":true}"])
        // The answered request's timer was cancelled: only the unanswered one times out.
        loop.advanceTime(by: .seconds(5))
        #expect(answers.all.count == 2)
        #expect(answers.all[1].hasPrefix("-32004 The client did not answer sampling/createMessage within the call's timeout"))
    }

    @Test func anUnansweredRequestFailsAtTheCallTimeout() throws {
        let loop = EmbeddedEventLoop()
        let table = ClientRequestTable()
        let answers = Answers()
        let id = try register(table, answers, loop: loop, timeout: .seconds(2))
        loop.advanceTime(by: .milliseconds(1999))
        #expect(answers.all.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(answers.all.count == 1)
        #expect(answers.all.first?.hasPrefix("-32004 ") == true)
        // A late answer from the client finds nothing to route.
        #expect(table.take(id) == nil)
    }

    @Test func endingTheSessionAnswersEveryBackendStillWaiting() throws {
        let loop = EmbeddedEventLoop()
        let table = ClientRequestTable()
        let answers = Answers()
        _ = try register(table, answers, loop: loop)
        _ = try register(table, answers, loop: loop)
        table.end()
        #expect(answers.all.count == 2)
        #expect(answers.all.allSatisfy { $0.hasPrefix("-32001 ") && $0.contains("session ended before it answered sampling/createMessage") })
        guard case .failure(let error) = table.register(method: "roots/list", timeout: .seconds(1), on: loop, answer: { answers.record($0) }) else {
            Issue.record("an ended session must refuse new requests")
            return
        }
        #expect(error.code == JSONRPCErrorCode.backendUnavailable)
        loop.advanceTime(by: .seconds(10))
        #expect(answers.all.count == 2)
    }

    @Test func aClientThatNeverAnswersCannotGrowTheTable() throws {
        let loop = EmbeddedEventLoop()
        let table = ClientRequestTable()
        let answers = Answers()
        for _ in 0..<ClientRequestTable.maximumOutstanding { _ = try register(table, answers, loop: loop) }
        guard case .failure(let error) = table.register(method: "roots/list", timeout: .seconds(1), on: loop, answer: { answers.record($0) }) else {
            Issue.record("expected a refusal at the cap")
            return
        }
        #expect(error.message.contains("unanswered"))
    }

    @Test func onlyDeclaredCapabilitiesAreAsked() {
        let none = JSONObject()
        let sampling = CallRelay.refusal(method: "sampling/createMessage", params: nil, capabilities: none)
        #expect(sampling?.code == JSONRPCErrorCode.methodNotFound)
        #expect(sampling?.message.contains("did not declare the 'sampling' capability") == true)
        #expect(CallRelay.refusal(method: "sampling/createMessage", params: nil, capabilities: ["sampling": .object(JSONObject())]) == nil)
        #expect(CallRelay.refusal(method: "roots/list", params: nil, capabilities: ["sampling": .object(JSONObject())])?.message.contains("'roots'") == true)
        let formOnly: JSONObject = ["elicitation": .object(JSONObject())]
        #expect(CallRelay.refusal(method: "elicitation/create", params: ["message": "hi"], capabilities: formOnly) == nil)
        let url = CallRelay.refusal(method: "elicitation/create", params: ["mode": "url"], capabilities: formOnly)
        #expect(url?.code == JSONRPCErrorCode.invalidParams)
        #expect(CallRelay.refusal(method: "elicitation/create", params: ["mode": "url"], capabilities: ["elicitation": ["url": .object(JSONObject())]]) == nil)
        let withTools: JSONObject = ["tools": .array([])]
        #expect(CallRelay.refusal(method: "sampling/createMessage", params: withTools, capabilities: ["sampling": .object(JSONObject())])?.code == JSONRPCErrorCode.invalidParams)
        #expect(CallRelay.refusal(method: "sampling/createMessage", params: withTools, capabilities: ["sampling": ["tools": .object(JSONObject())]]) == nil)
    }

    @Test func logSeveritiesFollowRFC5424() {
        #expect(LogSeverity.allCases.map(\.name) == ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"])
        #expect(LogSeverity(name: "warning")! < LogSeverity(name: "error")!)
        #expect(LogSeverity(name: "verbose") == nil)
    }
}

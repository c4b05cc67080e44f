import Testing

@testable import GatewayCore

@Suite struct RouterTests {
    let catalog = Catalog(separator: "__", backends: [
        (name: "diag", tools: [
            ["name": "echo", "title": "Echo", "inputSchema": ["type": "object"], "_meta": ["vendor/x": 1], "icons": [["src": "data:,"]]],
            ["name": "sleep", "inputSchema": ["type": "object"]],
        ]),
        (name: "time", tools: [
            ["name": "get_current_time", "inputSchema": ["type": "object"], "outputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ]),
    ])
    let context = RequestContext(principal: .anonymous, sessionID: "s", protocolVersion: .latest)

    func request(_ method: String, _ params: JSONObject? = nil) -> JSONRPCRequest {
        JSONRPCRequest(id: RequestID(1), method: method, params: params)
    }

    @Test func toolsAreNamespacedAndEveryOtherFieldPassesThrough() throws {
        #expect(catalog.exposedNames == ["diag__echo", "diag__sleep", "time__get_current_time"])
        let echo = try #require(catalog.tool(named: "diag__echo"))
        #expect(echo.backend == "diag")
        #expect(echo.originalName == "echo")
        #expect(echo.descriptor["title"] == "Echo")
        #expect(echo.descriptor["_meta"] == ["vendor/x": 1])
        #expect(echo.descriptor["icons"] == [["src": "data:,"]])
        let time = try #require(catalog.tool(named: "time__get_current_time"))
        #expect(time.descriptor["outputSchema"] == ["type": "object"])
        #expect(time.descriptor["annotations"] == ["readOnlyHint": true])
    }

    @Test func toolsListIsServedFromTheCachedSerialisation() throws {
        guard case .rawResult(let raw) = Router().route(request("tools/list"), catalog: catalog, context: context) else {
            Issue.record("tools/list answers from the catalog")
            return
        }
        let parsed = try JSONParser.parse(raw)
        #expect(parsed["tools"]?.arrayValue?.count == 3)
        #expect(parsed["tools"]?[0]?["name"] == "diag__echo")
    }

    @Test func toolsCallIsRoutedWithTheBackendsOwnName() {
        let params: JSONObject = ["name": "time__get_current_time", "arguments": ["timezone": "UTC"], "_meta": ["progressToken": "t1", "traceparent": "00-x"]]
        guard case .callTool(let route) = Router().route(request("tools/call", params), catalog: catalog, context: context) else {
            Issue.record("expected a tool call")
            return
        }
        #expect(route.tool.backend == "time")
        #expect(route.backendParams["name"] == "get_current_time")
        #expect(route.backendParams["arguments"] == ["timezone": "UTC"])
        #expect(route.backendParams["_meta"] == ["progressToken": "t1", "traceparent": "00-x"], "_meta passes through unchanged")
        #expect(route.progressToken == "t1")
    }

    @Test func unknownToolIsInvalidParamsNamingTheClosest() {
        guard case .error(let error) = Router().route(request("tools/call", ["name": "diag__ecko"]), catalog: catalog, context: context) else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == JSONRPCErrorCode.invalidParams)
        #expect(error.message.contains("'diag__echo'"))
        #expect(error.data?["suggestions"] == ["diag__echo"])
    }

    @Test func aMissingPrefixStillFindsTheTool() {
        guard case .error(let error) = Router().route(request("tools/call", ["name": "get_current_time"]), catalog: catalog, context: context) else {
            Issue.record("expected an error")
            return
        }
        #expect(error.message.contains("time__get_current_time"))
    }

    @Test func structurallyBrokenCallsAreInvalidParams() {
        for params: JSONObject? in [nil, ["name": 3], ["name": "diag__echo", "arguments": "text"]] {
            guard case .error(let error) = Router().route(request("tools/call", params), catalog: catalog, context: context) else {
                Issue.record("expected an error for \(String(describing: params))")
                continue
            }
            #expect(error.code == JSONRPCErrorCode.invalidParams)
        }
    }

    @Test func pingAndUnknownMethods() {
        guard case .result(let pong) = Router().route(request("ping"), catalog: catalog, context: context) else {
            Issue.record("ping answers {}")
            return
        }
        #expect(pong == .object(JSONObject()))
        for method in ["resources/list", "prompts/list", "no/such"] {
            guard case .error(let error) = Router().route(request(method), catalog: catalog, context: context) else {
                Issue.record("\(method) is not served")
                continue
            }
            #expect(error.code == JSONRPCErrorCode.methodNotFound, "undeclared capability methods are -32601 (MUST item 3)")
        }
    }

    @Test func toolsListRejectsACursorItNeverIssued() {
        guard case .error(let error) = Router().route(request("tools/list", ["cursor": "bogus"]), catalog: catalog, context: context) else {
            Issue.record("a cursor we never issued is -32602")
            return
        }
        #expect(error.code == JSONRPCErrorCode.invalidParams)
    }

    @Test func guardsRunBeforeTheBackend() {
        struct Refuse: ToolCallGuard {
            func check(_ route: ToolCallRoute, context: RequestContext) -> RouteDecision? {
                route.tool.backend == "time" ? .error(JSONRPCError(code: -32005, message: "no")) : nil
            }
        }
        let router = Router(guards: [Refuse()])
        guard case .error = router.route(request("tools/call", ["name": "time__get_current_time"]), catalog: catalog, context: context) else {
            Issue.record("guard refused")
            return
        }
        guard case .callTool = router.route(request("tools/call", ["name": "diag__echo"]), catalog: catalog, context: context) else {
            Issue.record("guard let it through")
            return
        }
    }

    @Test func duplicateNamesAreReported() {
        let duplicated = Catalog(backends: [(name: "a", tools: [["name": "x", "inputSchema": ["type": "object"]], ["name": "x"], ["title": "nameless"]])])
        #expect(duplicated.exposedNames == ["a__x"])
        #expect(duplicated.problems.count == 2)
        #expect(duplicated.problems.allSatisfy { $0.severity == .error })
    }
}

@Suite struct LifecycleTests {
    @Test func versionNegotiation() {
        #expect(ProtocolVersion.negotiate(requested: "2025-03-26") == .v2025_03_26)
        #expect(ProtocolVersion.negotiate(requested: "2024-11-05") == .v2024_11_05)
        #expect(ProtocolVersion.negotiate(requested: "2099-01-01") == .v2025_11_25, "unknown: answer our newest, never fail (MUST item 1)")
        #expect(ProtocolVersion.v2025_03_26.allowsBatches)
        #expect(!ProtocolVersion.v2025_06_18.allowsBatches)
    }

    @Test func initializeResultHasTheNegotiatedVersionAndOurIdentity() throws {
        let params: JSONObject = ["protocolVersion": "2025-06-18", "capabilities": ["sampling": [:]], "clientInfo": ["name": "c", "version": "1"]]
        let negotiated = try Lifecycle.negotiate(params, serverName: "mcp-gateway", serverVersion: "1.2.3").get()
        #expect(negotiated.version == .v2025_06_18)
        #expect(negotiated.clientName == "c")
        #expect(negotiated.clientCapabilities["sampling"] != nil)
        #expect(negotiated.result["protocolVersion"] == "2025-06-18")
        #expect(negotiated.result["serverInfo"]?["name"] == "mcp-gateway")
        #expect(negotiated.result["capabilities"] == ["tools": ["listChanged": true], "logging": .object(JSONObject())])
    }

    @Test func initializeWithoutAVersionIsInvalidParams() {
        guard case .failure(let error) = Lifecycle.negotiate(["capabilities": [:]], serverName: "g", serverVersion: "1") else {
            Issue.record("expected failure")
            return
        }
        #expect(error.code == JSONRPCErrorCode.invalidParams)
    }
}

@Suite struct JSONRPCMessageTests {
    func classify(_ text: String) throws -> Result<JSONRPCMessage, JSONRPCError> {
        JSONRPCMessage.classify(try JSONParser.parse(text))
    }

    @Test func requestsNotificationsAndResponses() throws {
        guard case .success(.request(let request)) = try classify(#"{"jsonrpc":"2.0","id":"a-1","method":"ping"}"#) else {
            Issue.record("request")
            return
        }
        #expect(request.id == .string("a-1"))
        guard case .success(.notification(let notification)) = try classify(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#) else {
            Issue.record("notification")
            return
        }
        #expect(notification.method == "notifications/initialized")
        guard case .success(.response(let response)) = try classify(#"{"jsonrpc":"2.0","id":7,"result":{}}"#) else {
            Issue.record("response")
            return
        }
        #expect(response.id == RequestID(7))
    }

    @Test func envelopesThatAreNotJSONRPCAreInvalidRequests() throws {
        for text in [#"{"foo":1}"#, "42", "[]", #"{"jsonrpc":"1.0","id":1,"method":"x"}"#, #"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                     #"{"jsonrpc":"2.0","id":1,"method":5}"#, #"{"jsonrpc":"2.0","id":1,"method":"x","params":"no"}"#, #"{"jsonrpc":"2.0","id":1}"#] {
            guard case .failure(let error) = try classify(text) else {
                Issue.record("\(text) should be invalid")
                continue
            }
            #expect(error.code == JSONRPCErrorCode.invalidRequest)
        }
    }

    @Test func idsAreEchoedExactly() throws {
        let request = JSONRPCRequest(id: .number(JSONNumber(text: "1.50")!), method: "x", params: nil)
        let response = JSONRPCEncoder.response(id: request.id, rawResult: Array("{}".utf8))
        #expect(String(decoding: response, as: UTF8.self) == #"{"jsonrpc":"2.0","id":1.50,"result":{}}"#)
        let error = JSONRPCEncoder.error(id: nil, .parse("bad"))
        #expect(try JSONParser.parse(error)["id"] == .null)
    }

    @Test func suggestions() {
        #expect(Suggestions.editDistance("kitten", "sitting") == 3)
        #expect(Suggestions.closest(to: "sever", among: ["server", "sessions", "tools"]) == ["server"])
        #expect(Suggestions.closest(to: "zzzzzz", among: ["server"]).isEmpty)
        #expect(DurationFormat.describe(.milliseconds(250)) == "250ms")
        #expect(DurationFormat.describe(.seconds(90)) == "1m30s")
        #expect(DurationFormat.describe(.seconds(3)) == "3s")
    }
}

import Testing

@testable import GatewayCore

/// A cursor sealer for tests: the payload in hex plus a checksum. Not cryptographic (the gateway's HMAC
/// sealer lives in GatewayRuntime); it is enough to tell the pager's handling of sealed, tampered and
/// foreign cursors apart.
struct ChecksumSealer: CursorSealing {
    var salt: UInt64 = 7

    func seal(_ payload: [UInt8]) -> String {
        payload.map { String($0, radix: 16).leftPadded(to: 2) }.joined() + "." + String(checksum(payload), radix: 16)
    }

    func open(_ cursor: String) -> [UInt8]? {
        let parts = cursor.split(separator: ".")
        guard parts.count == 2, parts[0].count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = parts[0].startIndex
        while index < parts[0].endIndex {
            let next = parts[0].index(index, offsetBy: 2)
            guard let byte = UInt8(parts[0][index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return String(checksum(bytes), radix: 16) == parts[1] ? bytes : nil
    }

    private func checksum(_ bytes: [UInt8]) -> UInt64 { FeatureCatalog.fnv1a64(bytes) ^ salt }
}

@Suite struct ResourceCatalogTests {
    static let subscribing: JSONObject = ["resources": ["subscribe": true, "listChanged": true], "prompts": [:], "completions": [:]]

    let features = FeatureCatalog(separator: "__", sources: [
        FeatureSource(
            backend: "docs", capabilities: subscribing,
            resources: [["uri": "file:///a.txt", "name": "a"], ["uri": "file:///shared.txt", "name": "shared-docs"]],
            resourceTemplates: [["uriTemplate": "docs://{section}/{page}", "name": "page"]],
            prompts: [["name": "summarise", "arguments": [["name": "topic", "required": true]]]]
        ),
        FeatureSource(
            backend: "wiki", capabilities: ["resources": [:], "prompts": [:]],
            resources: [["uri": "file:///shared.txt", "name": "shared-wiki"], ["uri": "wiki://home"]],
            prompts: [["name": "summarise"], ["name": "cite"]]
        ),
    ])

    @Test func aURIListedTwiceIsServedByTheFirstBackendAndReported() throws {
        #expect(features.resources.map(\.uri) == ["file:///a.txt", "file:///shared.txt", "wiki://home"])
        let shared = try #require(features.resource(uri: "file:///shared.txt"))
        #expect(shared.backend == "docs")
        #expect(shared.descriptor["name"] == "shared-docs")
        #expect(features.problems.count == 1)
        #expect(features.problems[0].backend == "wiki")
        #expect(features.problems[0].message.contains("file:///shared.txt"))
        #expect(features.problems[0].message.contains("'docs'"))
    }

    @Test func promptsAreNamespacedLikeTools() throws {
        #expect(features.prompts.map(\.exposedName) == ["docs__summarise", "wiki__summarise", "wiki__cite"])
        let prompt = try #require(features.prompt(named: "wiki__cite"))
        #expect(prompt.originalName == "cite")
        #expect(prompt.descriptor["name"] == "wiki__cite")
        let conditional = FeatureCatalog(separator: "__", prefixMode: .conditional, sources: [
            FeatureSource(backend: "a", capabilities: ["prompts": [:]], prompts: [["name": "p"], ["name": "only_a"]]),
            FeatureSource(backend: "b", capabilities: ["prompts": [:]], prompts: [["name": "p"]]),
        ])
        #expect(conditional.prompts.map(\.exposedName) == ["a__p", "only_a", "b__p"])
        let never = FeatureCatalog(separator: "__", prefixMode: .never, sources: [
            FeatureSource(backend: "a", capabilities: ["prompts": [:]], prompts: [["name": "p"]]),
            FeatureSource(backend: "b", capabilities: ["prompts": [:]], prompts: [["name": "p"]]),
        ])
        #expect(never.prompts.map(\.backend) == ["a"])
        #expect(never.problems.count == 1)
    }

    @Test func capabilitiesOnlyForWhatSomeBackendOffers() {
        #expect(features.capabilities["resources"] == ["subscribe": true, "listChanged": true])
        #expect(features.capabilities["prompts"] == ["listChanged": true])
        #expect(features.capabilities["completions"] == .object([:]))
        let none = FeatureCatalog(sources: [FeatureSource(backend: "t", capabilities: ["tools": [:]])])
        #expect(none.capabilities.isEmpty)
        let noSubscribe = FeatureCatalog(sources: [FeatureSource(backend: "r", capabilities: ["resources": [:]])])
        #expect(noSubscribe.capabilities["resources"] == ["listChanged": true])
    }

    @Test func templatesMatchByLevelOneExpansion() {
        let template = URITemplate("test://template/{id}/data")
        #expect(template.matches("test://template/42/data"))
        #expect(template.matches("test://template/a%2Fb/data"))
        #expect(!template.matches("test://template//data"))
        #expect(!template.matches("test://template/a/b/data"))
        #expect(!template.matches("test://template/42/data/more"))
        #expect(!template.matches("test://other/42/data"))
        let two = URITemplate("docs://{section}/{page}")
        #expect(two.matches("docs://intro/1"))
        #expect(!two.matches("docs://intro"))
        #expect(features.template(matching: "docs://intro/1")?.backend == "docs")
        #expect(features.template(matching: "docs://intro/1", where: { $0 != "docs" }) == nil)
        #expect(URITemplate("plain://x").matches("plain://x"))
    }

    @Test func generationsFollowContent() {
        let again = FeatureCatalog(separator: "__", sources: [
            FeatureSource(backend: "docs", capabilities: Self.subscribing, resources: [["uri": "file:///a.txt", "name": "a"], ["uri": "file:///shared.txt", "name": "shared-docs"]]),
            FeatureSource(backend: "wiki", capabilities: ["resources": [:]], resources: [["uri": "file:///shared.txt", "name": "shared-wiki"], ["uri": "wiki://home"]]),
        ])
        #expect(again.resourcesGeneration == features.resourcesGeneration)
        #expect(again.promptsGeneration != features.promptsGeneration)
    }
}

@Suite struct PaginationTests {
    let pagination = Pagination(pageSize: 2, sealer: ChecksumSealer())
    let items = ["a", "b", "c", "d", "e"]

    @Test func pagesFollowTheirCursorsToTheEnd() throws {
        var seen: [String] = []
        var cursor: JSONValue?
        var pages = 0
        repeat {
            let page = try pagination.page(items, list: "tools", generation: 9, cursor: cursor).get()
            seen += page.items
            cursor = page.next.map { .string($0) }
            pages += 1
        } while cursor != nil
        #expect(seen == items)
        #expect(pages == 3)
    }

    @Test func tamperedForeignStaleAndMistypedCursorsAreInvalidParams() throws {
        let first = try pagination.page(items, list: "tools", generation: 9, cursor: nil).get()
        let next = try #require(first.next)
        let codes: [JSONValue] = [.string(next + "0"), .string("garbage"), .number(JSONNumber(2))]
        for cursor in codes {
            guard case .failure(let error) = pagination.page(items, list: "tools", generation: 9, cursor: cursor) else {
                Issue.record("cursor \(cursor) was accepted")
                continue
            }
            #expect(error.code == JSONRPCErrorCode.invalidParams)
        }
        guard case .failure(let stale) = pagination.page(items, list: "tools", generation: 10, cursor: .string(next)) else {
            Issue.record("a cursor of an older list was accepted")
            return
        }
        #expect(stale.message.contains("changed"))
        guard case .failure = pagination.page(items, list: "prompts", generation: 9, cursor: .string(next)) else {
            Issue.record("a tools cursor was accepted for prompts")
            return
        }
        let otherKey = Pagination(pageSize: 2, sealer: ChecksumSealer(salt: 8))
        guard case .failure = otherKey.page(items, list: "tools", generation: 9, cursor: .string(next)) else {
            Issue.record("a cursor sealed with another key was accepted")
            return
        }
    }

    @Test func withoutASealerEverythingIsOnePage() throws {
        let page = try Pagination.onePage.page(items, list: "tools", generation: 1, cursor: nil).get()
        #expect(Array(page.items) == items)
        #expect(page.next == nil)
        let small = try Pagination(pageSize: 1, sealer: nil).page(items, list: "tools", generation: 1, cursor: nil).get()
        #expect(small.items.count == items.count)
    }
}

@Suite struct FeatureRoutingTests {
    let router = Router(pagination: Pagination(pageSize: 2, sealer: ChecksumSealer()))
    let context = RequestContext(principal: .anonymous, sessionID: "s", protocolVersion: .latest)
    let catalog: Catalog = {
        var catalog = Catalog(separator: "__", backends: [
            (name: "docs", tools: [["name": "a", "inputSchema": ["type": "object"]], ["name": "b", "inputSchema": ["type": "object"]], ["name": "c", "inputSchema": ["type": "object"]]]),
        ])
        catalog.attach(features: FeatureCatalog(separator: "__", sources: [
            FeatureSource(
                backend: "docs", capabilities: ResourceCatalogTests.subscribing,
                resources: [["uri": "file:///1"], ["uri": "file:///2"], ["uri": "file:///3"]],
                resourceTemplates: [["uriTemplate": "docs://{page}"]],
                prompts: [["name": "summarise"]]
            ),
            FeatureSource(backend: "wiki", capabilities: ["resources": [:]], resources: [["uri": "wiki://home"]]),
        ]))
        return catalog
    }()

    func request(_ method: String, _ params: JSONObject? = nil) -> JSONRPCRequest {
        JSONRPCRequest(id: RequestID(1), method: method, params: params)
    }

    func forward(_ decision: RouteDecision) -> ForwardRoute? {
        if case .forward(let route) = decision { return route }
        return nil
    }

    func error(_ decision: RouteDecision) -> JSONRPCError? {
        if case .error(let error) = decision { return error }
        return nil
    }

    @Test func resourcesListIsPagedWithSealedCursors() throws {
        guard case .result(let first) = router.route(request("resources/list"), catalog: catalog, context: context) else {
            Issue.record("no result")
            return
        }
        #expect(first["resources"]?.arrayValue?.count == 2)
        let cursor = try #require(first["nextCursor"]?.stringValue)
        guard case .result(let second) = router.route(request("resources/list", ["cursor": .string(cursor)]), catalog: catalog, context: context) else {
            Issue.record("no second page")
            return
        }
        #expect(second["resources"]?.arrayValue?.compactMap { $0["uri"]?.stringValue } == ["file:///3", "wiki://home"])
        #expect(second["nextCursor"] == nil)
        #expect(error(router.route(request("resources/list", ["cursor": "forged"]), catalog: catalog, context: context))?.code == JSONRPCErrorCode.invalidParams)
    }

    @Test func toolsListPagesOnlyWhenLongerThanAPage() throws {
        guard case .result(let first) = router.route(request("tools/list"), catalog: catalog, context: context) else {
            Issue.record("three tools with a page of two should not be the cached single page")
            return
        }
        #expect(first["tools"]?.arrayValue?.count == 2)
        #expect(first["nextCursor"]?.stringValue != nil)
        guard case .rawResult = Router().route(request("tools/list"), catalog: catalog, context: context) else {
            Issue.record("the default router serves the cached list")
            return
        }
    }

    @Test func readIsRoutedByURIThenByTemplate() throws {
        let listed = try #require(forward(router.route(request("resources/read", ["uri": "wiki://home"]), catalog: catalog, context: context)))
        #expect(listed.backend == "wiki")
        #expect(listed.params["uri"] == "wiki://home")
        let templated = try #require(forward(router.route(request("resources/read", ["uri": "docs://intro"]), catalog: catalog, context: context)))
        #expect(templated.backend == "docs")
        let missing = try #require(error(router.route(request("resources/read", ["uri": "nope://x"]), catalog: catalog, context: context)))
        #expect(missing.code == JSONRPCErrorCode.resourceNotFound)
        #expect(missing.data?["uri"] == "nope://x")
        #expect(error(router.route(request("resources/read", [:]), catalog: catalog, context: context))?.code == JSONRPCErrorCode.invalidParams)
    }

    @Test func subscriptionsNeedABackendThatSupportsThem() throws {
        let subscribe = try #require(forward(router.route(request("resources/subscribe", ["uri": "file:///1"]), catalog: catalog, context: context)))
        #expect(subscribe.subscription == .subscribe(uri: "file:///1"))
        let refused = try #require(error(router.route(request("resources/subscribe", ["uri": "wiki://home"]), catalog: catalog, context: context)))
        #expect(refused.code == JSONRPCErrorCode.invalidParams)
        #expect(refused.message.contains("wiki"))
        let unsubscribe = try #require(forward(router.route(request("resources/unsubscribe", ["uri": "wiki://home"]), catalog: catalog, context: context)))
        #expect(unsubscribe.subscription == .unsubscribe(uri: "wiki://home"))
    }

    @Test func promptsGetAndCompletionRewriteTheName() throws {
        let get = try #require(forward(router.route(request("prompts/get", ["name": "docs__summarise", "arguments": ["topic": "x"]]), catalog: catalog, context: context)))
        #expect(get.backend == "docs")
        #expect(get.params["name"] == "summarise")
        #expect(get.params["arguments"] == ["topic": "x"])
        let unknown = try #require(error(router.route(request("prompts/get", ["name": "docs__summarize"]), catalog: catalog, context: context)))
        #expect(unknown.code == JSONRPCErrorCode.invalidParams)
        #expect(unknown.message.contains("docs__summarise"))
        let complete = try #require(forward(router.route(request("completion/complete", [
            "ref": ["type": "ref/prompt", "name": "docs__summarise"], "argument": ["name": "topic", "value": "a"],
        ]), catalog: catalog, context: context)))
        #expect(complete.params["ref"] == ["type": "ref/prompt", "name": "summarise"])
        #expect(complete.params["argument"] == ["name": "topic", "value": "a"])
        let byTemplate = try #require(forward(router.route(request("completion/complete", [
            "ref": ["type": "ref/resource", "uri": "docs://{page}"], "argument": ["name": "page", "value": ""],
        ]), catalog: catalog, context: context)))
        #expect(byTemplate.backend == "docs")
        #expect(byTemplate.params["ref"] == ["type": "ref/resource", "uri": "docs://{page}"])
    }

    @Test func featuresNoBackendOffersAreMethodNotFound() {
        let toolsOnly = Catalog(separator: "__", backends: [(name: "t", tools: [])])
        for method in ["resources/list", "resources/read", "prompts/list", "prompts/get", "completion/complete"] {
            #expect(error(router.route(request(method), catalog: toolsOnly, context: context))?.code == JSONRPCErrorCode.methodNotFound)
        }
    }

    @Test func hiddenBackendsResourcesAndPromptsAreInvisible() throws {
        let isolating = Router(access: AccessPolicy(rules: ["docs": BackendAccess(tenants: ["acme"])]), pagination: Pagination(pageSize: 100, sealer: ChecksumSealer()))
        guard case .result(let list) = isolating.route(request("resources/list"), catalog: catalog, context: context) else {
            Issue.record("no result")
            return
        }
        #expect(list["resources"]?.arrayValue?.compactMap { $0["uri"]?.stringValue } == ["wiki://home"])
        #expect(error(isolating.route(request("resources/read", ["uri": "file:///1"]), catalog: catalog, context: context))?.code == JSONRPCErrorCode.resourceNotFound)
        #expect(error(isolating.route(request("prompts/get", ["name": "docs__summarise"]), catalog: catalog, context: context))?.code == JSONRPCErrorCode.invalidParams)
        let insider = RequestContext(principal: Principal(id: "p", subject: "p", tenant: "acme"), sessionID: "s", protocolVersion: .latest)
        #expect(forward(isolating.route(request("resources/read", ["uri": "file:///1"]), catalog: catalog, context: insider))?.backend == "docs")
    }

    @Test func initializeDeclaresTheCatalogsCapabilities() throws {
        let negotiated = try Lifecycle.negotiate(
            ["protocolVersion": "2025-11-25", "capabilities": [:]], serverName: "g", serverVersion: "1", capabilities: Router.serverCapabilities(for: catalog)
        ).get()
        let capabilities = try #require(negotiated.result["capabilities"])
        #expect(capabilities["resources"] == ["subscribe": true, "listChanged": true])
        #expect(capabilities["prompts"] == ["listChanged": true])
        #expect(capabilities["completions"] == .object([:]))
        #expect(capabilities["tools"] == ["listChanged": true])
    }
}

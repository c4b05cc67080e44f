import Testing

@testable import GatewayCore

@Suite struct ArgumentValidationTests {
    let schema: JSONObject = [
        "type": "object",
        "properties": [
            "city": ["type": "string", "description": "City name"],
            "unit": ["type": "string", "enum": ["celsius", "fahrenheit"]],
            "days": ["type": "integer", "minimum": 1, "maximum": 7],
            "address": ["type": "object", "properties": ["zip": ["type": "string", "pattern": "^[0-9]{5}$"]], "required": ["zip"]],
        ],
        "required": ["city"],
    ]
    let context = RequestContext(principal: .anonymous, sessionID: "s", protocolVersion: .latest)

    func route(_ arguments: JSONObject, schema: JSONObject? = nil) throws -> ToolCallRoute {
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: [
            CatalogSource(backend: "wx", tools: [["name": "weather", "inputSchema": .object(schema ?? self.schema)]]),
        ])
        let tool = try #require(catalog.tool(named: "wx__weather"))
        return ToolCallRoute(tool: tool, backendParams: ["name": "weather", "arguments": .object(arguments)], arguments: arguments, progressToken: nil)
    }

    func refusal(_ mode: ArgumentValidationMode, _ arguments: JSONObject) throws -> JSONValue? {
        guard let decision = ArgumentValidation(mode: mode).check(try route(arguments), context: context) else { return nil }
        guard case .result(let result) = decision else {
            Issue.record("a validation failure is a tool result, not a JSON-RPC error")
            return nil
        }
        return result
    }

    @Test func validArgumentsPass() throws {
        #expect(try refusal(.strict, ["city": "Oslo", "unit": "celsius", "days": 3, "address": ["zip": "01234"]]) == nil)
    }

    @Test func strictRejectsUndeclaredArgumentsTheSchemaWouldAllow() throws {
        let result = try #require(try refusal(.strict, ["city": "Oslo", "citty": "x"]))
        #expect(result["isError"] == true)
        let problems = try #require(result["structuredContent"]?["problems"]?.arrayValue)
        #expect(problems.count == 1)
        #expect(problems[0]["path"] == "/citty")
        #expect(problems[0]["suggestion"] == "city")
        #expect(try refusal(.lenient, ["city": "Oslo", "citty": "x"]) == nil, "lenient: the schema's own word")
        #expect(try refusal(.off, ["days": "many"]) == nil)
    }

    @Test func everyProblemIsNamedWithItsPath() throws {
        let result = try #require(try refusal(.strict, ["unit": "kelvin", "days": "3", "address": ["zip": "abc"], "extra": 1]))
        let paths = Set(try #require(result["structuredContent"]?["problems"]?.arrayValue).compactMap { $0["path"]?.stringValue })
        #expect(paths == ["/city", "/unit", "/days", "/address/zip", "/extra"])
        let text = try #require(result["content"]?[0]?["text"]?.stringValue)
        #expect(text.contains("Invalid arguments for tool 'wx__weather'"))
        #expect(text.contains("city (string, required): City name"))
        #expect(text.contains("days (integer, optional)"))
        #expect(text.contains("/unit: "))
    }

    @Test func structuredContentListsTheValidArguments() throws {
        let result = try #require(try refusal(.strict, [:]))
        let arguments = try #require(result["structuredContent"]?["arguments"]?.arrayValue)
        #expect(arguments.compactMap { $0["name"]?.stringValue } == ["city", "unit", "days", "address"])
        #expect(arguments[0]["required"] == true)
        #expect(arguments[1]["required"] == false)
        #expect(result["structuredContent"]?["error"] == "invalid_arguments")
    }

    @Test func additionalPropertiesFalseGivesASuggestionToo() throws {
        var closed = schema
        closed["additionalProperties"] = false
        let decision = ArgumentValidation(mode: .lenient).check(try route(["city": "x", "unti": "celsius"], schema: closed), context: context)
        guard case .result(let result)? = decision else {
            Issue.record("expected a refusal")
            return
        }
        let problems = try #require(result["structuredContent"]?["problems"]?.arrayValue)
        #expect(problems.count == 1)
        #expect(problems[0]["suggestion"] == "unit")
    }

    @Test func patternPropertiesAreLeftToTheSchema() throws {
        let open: JSONObject = ["type": "object", "properties": ["a": ["type": "string"]], "patternProperties": ["^x-": ["type": "integer"]]]
        #expect(ArgumentValidation(mode: .strict).check(try route(["a": "1", "x-count": 2], schema: open), context: context) == nil)
        #expect(ArgumentValidation(mode: .strict).check(try route(["a": "1", "x-count": "2"], schema: open), context: context) != nil)
    }

    @Test func aToolWithABrokenSchemaIsReportedAndPassedUnvalidated() throws {
        let broken: JSONObject = ["type": "object", "properties": ["code": ["type": "string", "pattern": "(["]]]
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: [CatalogSource(backend: "b", tools: [["name": "t", "inputSchema": .object(broken)]])])
        let tool = try #require(catalog.tool(named: "b__t"))
        #expect(tool.inputSchema == nil)
        #expect(tool.schemaError?.schemaPath == "/properties/code/pattern")
        #expect(catalog.problems.contains { $0.severity == .error && $0.tool == "t" && $0.message.contains("inputSchema is invalid") })
    }
}

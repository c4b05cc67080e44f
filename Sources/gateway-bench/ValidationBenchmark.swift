import Foundation
import GatewayCore
import GatewayPlugins

/// Measures argument validation per call for the ten-property `diagnostics.form` schema, through the same
/// guard the router runs (`ArgumentValidation`), in strict and lenient mode, for a valid and an invalid call.
/// Prints one JSON object for `bench/run.py`.
@main
struct ValidationBenchmark {
    static func main() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["BENCH_ITERATIONS"] ?? "") ?? 200_000
        let descriptor: JSONObject = ["name": "form", "inputSchema": .object(DiagnosticsPlugin.formSchema)]
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: [CatalogSource(backend: "diag", tools: [descriptor])])
        guard let tool = catalog.tool(named: "diag__form") else { fatalError("catalog did not build") }
        let valid: JSONObject = [
            "text": "m12345", "count": 7, "ratio": 0.5, "flag": true, "mode": "balanced", "tags": ["a", "b", "c"],
            "when": "2026-11-29T07:00:00Z", "id": "abc-1234", "note": "a short note", "owner": ["name": "ada", "email": "ada@example.com"],
        ]
        let invalid: JSONObject = [
            "txt": "m12345", "count": -1, "ratio": 0, "flag": "yes", "mode": "slow", "tags": ["a", "a"],
            "id": "ABC-12", "owner": ["email": 3],
        ]
        let context = RequestContext(principal: .anonymous, sessionID: "s", protocolVersion: .latest)
        func route(_ arguments: JSONObject) -> ToolCallRoute {
            ToolCallRoute(tool: tool, backendParams: ["name": "form", "arguments": .object(arguments)], arguments: arguments, progressToken: nil)
        }
        func measure(_ mode: ArgumentValidationMode, _ arguments: JSONObject, expectRefusal: Bool) -> Double {
            let guardian = ArgumentValidation(mode: mode)
            let call = route(arguments)
            var refused = 0
            for _ in 0..<(iterations / 10) where guardian.check(call, context: context) != nil { refused += 1 }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations where guardian.check(call, context: context) != nil { refused += 1 }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            precondition((refused > 0) == expectRefusal, "unexpected validation outcome for \(mode)")
            return Double(elapsed) / Double(iterations) / 1000
        }
        let results: JSONValue = [
            "schema_properties": .number(JSONNumber(DiagnosticsPlugin.formSchema["properties"]?.objectValue?.count ?? 0)),
            "iterations": .number(JSONNumber(iterations)),
            "strict_valid_us": .number(JSONNumber(measure(.strict, valid, expectRefusal: false))),
            "lenient_valid_us": .number(JSONNumber(measure(.lenient, valid, expectRefusal: false))),
            "strict_invalid_us": .number(JSONNumber(measure(.strict, invalid, expectRefusal: true))),
        ]
        print(results.jsonString)
    }
}

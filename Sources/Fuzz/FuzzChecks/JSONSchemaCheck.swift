import GatewayCore

/// The JSON Schema compiler and evaluator (`JSONSchema.compile`, `validate`, `isValid`) on fuzzed
/// schema/instance pairs: tool `inputSchema`s come from backends, which the gateway does not trust. The input
/// is a JSON array `[schema, instance, ...]`: the schema compiles (or is refused) under both dialects, with
/// and without format assertion, and every later element is validated against it. Invariants: nothing traps
/// or hangs; the fast path and the reporting path agree (`isValid(x) == validate(x).isEmpty`); the report
/// respects its limit.
public enum JSONSchemaCheck {
    public static func check(_ input: [UInt8]) throws(FuzzFailure) {
        guard let document = try? JSONParser.parse(input), case .array(let elements) = document,
              let schemaValue = elements.first
        else { return }
        let instances = elements.dropFirst().prefix(4)
        for dialect in [SchemaDialect.draft2020_12, .draft7] {
            for assertFormat in [false, true] {
                guard let schema = try? JSONSchema.compile(schemaValue, defaultDialect: dialect, assertFormat: assertFormat) else {
                    continue
                }
                for instance in instances {
                    let valid = schema.isValid(instance)
                    let violations = schema.validate(instance, limit: 5)
                    try expect(valid == violations.isEmpty, "isValid says \(valid) but validate found \(violations.count) violations: \(violations)")
                    try expect(violations.count <= 5, "validate returned \(violations.count) violations past its limit of 5")
                }
            }
        }
    }
}

import Foundation
import Testing

@testable import GatewayCore

// Focused tests of the JSON Schema validator on the shapes MCP tool schemas take. Conformance to the
// specification is measured by `JSONSchemaSuiteTests` against the official test suite.

private func json(_ text: String) throws -> JSONValue {
    try JSONParser.parse(text)
}

private func compile(_ text: String, defaultDialect: SchemaDialect = .draft2020_12, assertFormat: Bool = false) throws -> JSONSchema {
    try JSONSchema.compile(try json(text), defaultDialect: defaultDialect, assertFormat: assertFormat)
}

private func compileError(_ text: String) throws -> SchemaCompileError? {
    let value = try json(text)
    do {
        _ = try JSONSchema.compile(value)
        return nil
    } catch {
        return error
    }
}

/// A typical tool `inputSchema`.
private let weatherSchema = """
    {
      "type": "object",
      "properties": {
        "city": {"type": "string", "minLength": 1, "description": "City name"},
        "days": {"type": "integer", "minimum": 1, "maximum": 10},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
          "type": "object",
          "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
          "required": ["zip"]
        },
        "note": {"type": ["string", "null"]}
      },
      "required": ["city", "unit"],
      "additionalProperties": false
    }
    """

@Suite struct JSONSchemaToolSchemaTests {
    let schema: JSONSchema

    init() throws {
        schema = try compile(weatherSchema)
    }

    @Test func validArgumentsPass() throws {
        let arguments = try json(#"{"city": "Paris", "days": 3, "unit": "celsius", "tags": ["a", "b"], "address": {"zip": "75001"}, "note": null}"#)
        #expect(schema.isValid(arguments))
        #expect(schema.validate(arguments).isEmpty)
        #expect(schema.dialect == .draft2020_12)
        #expect(schema.unsupportedKeywords.isEmpty)
    }

    @Test func unknownArgumentWithAdditionalPropertiesFalse() throws {
        let arguments = try json(#"{"city": "Paris", "unit": "celsius", "colour": "red"}"#)
        #expect(!schema.isValid(arguments))
        let violations = schema.validate(arguments)
        #expect(violations == [
            SchemaViolation(
                instancePath: "/colour", keyword: "additionalProperties", kind: .additionalProperty(name: "colour"),
                message: "is not allowed (additionalProperties is false)")
        ])
        #expect(violations.first?.description == "/colour: is not allowed (additionalProperties is false)")
    }

    @Test func missingRequiredReportsThePropertyPath() throws {
        let violations = schema.validate(try json(#"{"unit": "celsius"}"#))
        #expect(violations == [
            SchemaViolation(instancePath: "/city", keyword: "required", kind: .required(property: "city"), message: "is required")
        ])
    }

    @Test func wrongType() throws {
        let violations = schema.validate(try json(#"{"city": "Paris", "unit": "celsius", "days": "3"}"#))
        #expect(violations.count == 1)
        #expect(violations.first?.instancePath == "/days")
        #expect(violations.first?.kind == .type(expected: ["integer"], actual: "string"))
        #expect(violations.first?.message == "must be integer, got string")
        // A fractional number is a "number", not an "integer".
        let fractional = schema.validate(try json(#"{"city": "Paris", "unit": "celsius", "days": 2.5}"#))
        #expect(fractional.first?.message == "must be integer, got number")
        // 2.0 is an integer (JSON Schema counts by value).
        #expect(schema.isValid(try json(#"{"city": "Paris", "unit": "celsius", "days": 2.0}"#)))
    }

    @Test func enumViolation() throws {
        let violations = schema.validate(try json(#"{"city": "Paris", "unit": "kelvin"}"#))
        #expect(violations.count == 1)
        #expect(violations.first?.instancePath == "/unit")
        #expect(violations.first?.kind == .enumeration(allowed: ["celsius", "fahrenheit"]))
        #expect(violations.first?.message == #"must be one of "celsius", "fahrenheit""#)
    }

    @Test func nestedObjectPath() throws {
        let violations = schema.validate(try json(#"{"city": "Paris", "unit": "celsius", "address": {"zip": "7500"}}"#))
        #expect(violations == [
            SchemaViolation(instancePath: "/address/zip", keyword: "pattern", kind: .pattern("^[0-9]{5}$"), message: "must match pattern ^[0-9]{5}$")
        ])
        let missing = schema.validate(try json(#"{"city": "Paris", "unit": "celsius", "address": {}}"#))
        #expect(missing.map(\.instancePath) == ["/address/zip"])
    }

    @Test func arrayItemPath() throws {
        let violations = schema.validate(try json(#"{"city": "Paris", "unit": "celsius", "tags": ["a", 2, "c"]}"#))
        #expect(violations.map(\.instancePath) == ["/tags/1"])
        #expect(violations.first?.message == "must be string, got integer")
    }

    @Test func severalViolationsAtOnce() throws {
        let arguments = try json(#"{"city": "", "days": 11, "unit": "kelvin", "tags": [1], "extra": true}"#)
        #expect(!schema.isValid(arguments))
        let violations = schema.validate(arguments)
        #expect(violations.map(\.description) == [
            "/city: must be at least 1 character long",
            "/days: must be at most 10",
            #"/unit: must be one of "celsius", "fahrenheit""#,
            "/tags/0: must be string, got integer",
            "/extra: is not allowed (additionalProperties is false)",
        ])
        #expect(violations[1].kind == .bound(keyword: "maximum", limit: JSONNumber(10)))
        // `limit` caps the list.
        #expect(schema.validate(arguments, limit: 2).count == 2)
        #expect(schema.validate(try json("[]")).map(\.description) == ["(root): must be object, got array"])
    }

    @Test func declaredPropertiesSummary() {
        #expect(schema.declaredProperties == [
            SchemaPropertySummary(name: "city", type: "string", required: true, description: "City name"),
            SchemaPropertySummary(name: "days", type: "integer", required: false, description: nil),
            SchemaPropertySummary(name: "unit", type: "string", required: true, description: nil),
            SchemaPropertySummary(name: "tags", type: "array of string", required: false, description: nil),
            SchemaPropertySummary(name: "address", type: "object", required: false, description: nil),
            SchemaPropertySummary(name: "note", type: "string | null", required: false, description: nil),
        ])
    }
}

@Test func declaredPropertiesFollowReferencesAndUnions() throws {
    // The shape Pydantic generates: a root $ref, Optional[...] as anyOf with null, enums in $defs.
    let schema = try compile("""
        {
          "$defs": {
            "Unit": {"type": "string", "enum": ["c", "f"], "description": "Temperature unit"},
            "Args": {
              "type": "object",
              "properties": {
                "unit": {"$ref": "#/$defs/Unit"},
                "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null},
                "mode": {"enum": ["fast", "slow"]},
                "anything": {}
              },
              "required": ["unit"]
            }
          },
          "$ref": "#/$defs/Args"
        }
        """)
    #expect(schema.declaredProperties == [
        SchemaPropertySummary(name: "unit", type: "string", required: true, description: "Temperature unit"),
        SchemaPropertySummary(name: "limit", type: "integer | null", required: false, description: nil),
        SchemaPropertySummary(name: "mode", type: "string", required: false, description: nil),
        SchemaPropertySummary(name: "anything", type: "any", required: false, description: nil),
    ])
    let violations = schema.validate(try json(#"{"unit": "c", "limit": "ten"}"#))
    #expect(violations.map(\.description) == ["/limit: must be integer or null, got string"])
}

@Test func draft07SchemaSelectsDraft07Semantics() throws {
    let tuple = try compile("""
        {"$schema": "http://json-schema.org/draft-07/schema#",
         "type": "array", "items": [{"type": "integer"}, {"type": "string"}], "additionalItems": false}
        """)
    #expect(tuple.dialect == .draft7)
    #expect(tuple.isValid(try json(#"[1, "a"]"#)))
    #expect(!tuple.isValid(try json(#"["a", 1]"#)))
    let extra = tuple.validate(try json(#"[1, "a", true]"#))
    #expect(extra.map(\.description) == ["/2: is not allowed (additionalItems is false)"])
    #expect(extra.first?.keyword == "additionalItems")

    // draft-07: `$ref` overrides its siblings; 2020-12 evaluates both.
    let overriding = """
        {"$schema": "http://json-schema.org/draft-07/schema#",
         "definitions": {"s": {"type": "string"}}, "$ref": "#/definitions/s", "maxLength": 2}
        """
    #expect(try compile(overriding).isValid(try json(#""abcd""#)))
    let modern = overriding.replacingOccurrences(of: "http://json-schema.org/draft-07/schema#", with: "https://json-schema.org/draft/2020-12/schema")
    #expect(try compile(modern).dialect == .draft2020_12)
    #expect(!(try compile(modern).isValid(try json(#""abcd""#))))
    // Without `$schema`, the default dialect applies.
    #expect(try compile(#"{"type": "string"}"#, defaultDialect: .draft7).dialect == .draft7)
    // 2020-12 keywords in a draft-07 schema are ignored, and reported.
    let mixed = try compile(#"{"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{"type": "string"}]}"#)
    #expect(mixed.unsupportedKeywords == ["prefixItems"])
    #expect(mixed.isValid(try json("[1]")))
}

@Test func remoteReferenceIsACompileError() throws {
    let error = try compileError(#"{"properties": {"x": {"$ref": "https://example.com/schemas/x.json"}}}"#)
    #expect(error?.schemaPath == "/properties/x/$ref")
    #expect(error?.message == #"$ref "https://example.com/schemas/x.json" is a network reference; remote references are never fetched"#)
    let relative = try compileError(#"{"$ref": "other.json#/definitions/a"}"#)
    #expect(relative?.schemaPath == "/$ref")
    #expect(relative?.message.contains("other.json") == true)
    // A reference into the schema itself, by its own absolute `$id`, is local.
    let local = try compile(#"{"$id": "https://example.com/s.json", "$defs": {"a": {"type": "string"}}, "$ref": "https://example.com/s.json#/$defs/a"}"#)
    #expect(local.isValid("x"))
    #expect(!local.isValid(1))
    // The meta-schemas are embedded, never fetched.
    let meta = try compile(#"{"$ref": "http://json-schema.org/draft-07/schema#"}"#)
    #expect(meta.isValid(try json(#"{"type": "string"}"#)))
    #expect(!meta.isValid(try json(#"{"type": 12}"#)))
}

@Test func compileErrorsNameTheirPlace() throws {
    let pattern = try compileError(#"{"properties": {"zip": {"type": "string", "pattern": "["}}}"#)
    #expect(pattern?.schemaPath == "/properties/zip/pattern")
    #expect(pattern?.message.hasPrefix(#"pattern "[" is not a valid regular expression"#) == true)
    #expect(pattern?.description.hasPrefix("/properties/zip/pattern: pattern") == true)
    #expect(try compileError(#"{"type": "strng"}"#)?.schemaPath == "/type")
    #expect(try compileError(#"{"minLength": -1}"#)?.schemaPath == "/minLength")
    #expect(try compileError(#"{"properties": {"a": 5}}"#)?.schemaPath == "/properties/a")
    #expect(try compileError(##"{"$ref": "#/$defs/missing"}"##)?.schemaPath == "/$ref")
    #expect(try compileError(#"{"patternProperties": {"(": {}}}"#)?.schemaPath == "/patternProperties/(")
    #expect(try compileError("12")?.schemaPath == "")
}

@Test func booleanSchemas() throws {
    let anything = try JSONSchema.compile(true)
    #expect(anything.isValid(try json(#"{"a": [1, null]}"#)))
    let nothing = try JSONSchema.compile(false)
    #expect(!nothing.isValid(1))
    #expect(nothing.validate(1).map(\.description) == ["(root): is not allowed (the schema is false)"])
    let forbidden = try compile(#"{"properties": {"secret": false}}"#)
    #expect(forbidden.isValid(try json(#"{"other": 1}"#)))
    #expect(forbidden.validate(try json(#"{"secret": 1}"#)).map(\.description) == ["/secret: is not allowed"])
}

@Test func localReferencesToDefsAndAnchors() throws {
    let schema = try compile("""
        {
          "$defs": {
            "positive": {"type": "integer", "exclusiveMinimum": 0},
            "name": {"$anchor": "name", "type": "string", "maxLength": 5}
          },
          "properties": {"count": {"$ref": "#/$defs/positive"}, "label": {"$ref": "#name"}}
        }
        """)
    #expect(schema.isValid(try json(#"{"count": 2, "label": "abc"}"#)))
    #expect(schema.validate(try json(#"{"count": 0, "label": "abcdef"}"#)).map(\.description) == [
        "/count: must be greater than 0", "/label: must be at most 5 characters long",
    ])
    // A recursive tree.
    let tree = try compile("""
        {"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "additionalProperties": false}},
         "$ref": "#/$defs/node"}
        """)
    #expect(tree.isValid(try json(#"{"value": 1, "children": [{"value": 2, "children": []}]}"#)))
    #expect(tree.validate(try json(#"{"children": [{"children": [{"value": "x"}]}]}"#)).map(\.instancePath) == ["/children/0/children/0/value"])
}

@Test func referenceCyclesTerminate() throws {
    let loop = try compile(##"{"$ref": "#"}"##)
    #expect(!loop.isValid(1))
    #expect(loop.validate(1).first?.message.contains("nested too deeply") == true)
    let mutual = try compile(##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}"##)
    #expect(!mutual.isValid("x"))
    // A long chain of references compiles without recursion (and validates within the depth bound).
    var definitions = JSONObject()
    for index in 0..<2000 { definitions["d\(index)"] = ["$ref": .string("#/$defs/d\(index + 1)")] }
    definitions["d2000"] = ["type": "string"]
    let chain = try JSONSchema.compile(["$defs": .object(definitions), "$ref": "#/$defs/d0"])
    #expect(!chain.isValid("x"))
    #expect(chain.validate("x").first?.message.contains("nested too deeply") == true)
    let short = try JSONSchema.compile(["$defs": .object(definitions), "$ref": "#/$defs/d1900"])
    #expect(short.isValid("x"))
    #expect(!short.isValid(1))
}

@Test func stringLengthsCountCodePoints() throws {
    let schema = try compile(#"{"type": "string", "minLength": 2, "maxLength": 2}"#)
    #expect(schema.isValid("💩💩"))  // 2 code points, 8 UTF-8 bytes
    #expect(!schema.isValid("💩"))
    #expect(!schema.isValid("e\u{301}e"))  // 3 code points, 2 characters
    #expect(schema.isValid("e\u{301}"))  // 2 code points, 1 character
}

@Test func instancePathsAreEscaped() throws {
    let schema = try compile(#"{"additionalProperties": false, "properties": {"ok": true}}"#)
    #expect(schema.validate(try json(#"{"a/b~c": 1}"#)).map(\.instancePath) == ["/a~1b~0c"])
}

@Test func combinatorMessages() throws {
    let nullable = try compile(#"{"anyOf": [{"type": "string"}, {"type": "null"}]}"#)
    #expect(nullable.validate(1).map(\.message) == ["must be string or null, got integer"])
    let exclusive = try compile(#"{"oneOf": [{"minimum": 0}, {"multipleOf": 2}]}"#)
    #expect(exclusive.isValid(3))
    #expect(exclusive.validate(4).map(\.message) == ["must match exactly one of 2 schemas, matched more than one"])
    #expect(exclusive.validate(-1).map(\.message) == ["must match exactly one of 2 schemas, matched 0"])
    let negated = try compile(#"{"not": {"type": "string"}}"#)
    #expect(negated.validate("x").first?.kind == .other(keyword: "not"))
    let conditional = try compile(#"{"if": {"properties": {"kind": {"const": "zip"}}}, "then": {"required": ["zip"]}}"#)
    #expect(conditional.validate(try json(#"{"kind": "zip"}"#)).map(\.description) == ["/zip: is required"])
    #expect(conditional.isValid(try json(#"{"kind": "city"}"#)))
    let dependent = try compile(#"{"dependentRequired": {"card": ["cvv"]}}"#)
    #expect(dependent.validate(try json(#"{"card": "4111"}"#)).map(\.description) == [#"/cvv: is required when "card" is present"#])
}

@Test func numbersAreExact() throws {
    let cents = try compile(#"{"multipleOf": 0.01}"#)
    #expect(cents.isValid(try json("19.99")))
    #expect(!cents.isValid(try json("19.995")))
    let big = try compile(#"{"maximum": 18446744073709551615}"#)
    #expect(big.isValid(try json("18446744073709551615")))
    #expect(!big.isValid(try json("18446744073709551616")))
}

@Test func uniqueItemsAndConstUseJSONEquality() throws {
    let unique = try compile(#"{"uniqueItems": true}"#)
    #expect(!unique.isValid(try json("[1, 1.0]")))
    #expect(!unique.isValid(try json(#"[{"a": 1, "b": 2}, {"b": 2, "a": 1}]"#)))
    #expect(unique.isValid(try json(#"["é", "e\u0301"]"#)))  // different code points
    #expect(unique.validate(try json("[1, 2, 1]")).map(\.message) == ["must not contain duplicate items (items 0 and 2 are equal)"])
}

@Test func formatIsAnAnnotationUnlessAsserted() throws {
    let text = #"{"type": "string", "format": "date-time"}"#
    #expect(try compile(text).isValid("yesterday"))
    let asserting = try compile(text, assertFormat: true)
    #expect(asserting.isValid("2025-11-25T10:00:00Z"))
    #expect(asserting.validate("yesterday") == [
        SchemaViolation(instancePath: "", keyword: "format", kind: .format("date-time"), message: "must be a valid date-time")
    ])
    for (format, good, bad) in [
        ("date", "2024-02-29", "2023-02-29"), ("time", "10:00:00+01:00", "25:00:00Z"), ("email", "a.b@example.com", "a..b@example.com"),
        ("uri", "https://example.com/a?b#c", "/relative"), ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
        ("ipv4", "192.168.0.1", "256.1.1.1"), ("ipv6", "::1", "1:::2"),
    ] {
        let schema = try JSONSchema.compile(["format": .string(format)], assertFormat: true)
        #expect(schema.isValid(.string(good)), "\(format) \(good)")
        #expect(!schema.isValid(.string(bad)), "\(format) \(bad)")
    }
}

@Test func unevaluatedPropertiesSeesThroughComposition() throws {
    let schema = try compile("""
        {"allOf": [{"properties": {"a": true}}], "properties": {"b": true}, "unevaluatedProperties": false}
        """)
    #expect(schema.isValid(try json(#"{"a": 1, "b": 2}"#)))
    let violations = schema.validate(try json(#"{"a": 1, "c": 3}"#))
    #expect(violations == [
        SchemaViolation(
            instancePath: "/c", keyword: "unevaluatedProperties", kind: .additionalProperty(name: "c"),
            message: "is not allowed (unevaluatedProperties is false)")
    ])
}

@Test func patternsAreECMA262() throws {
    // Unanchored search, ASCII \d, `$` only at the very end.
    #expect(try compile(#"{"pattern": "b+"}"#).isValid("abbc"))
    #expect(!(try compile(#"{"pattern": "^\\d+$"}"#).isValid("١٢")))
    #expect(!(try compile(#"{"pattern": "^abc$"}"#).isValid("abc\n")))
    #expect(try compile(#"{"pattern": "^\\p{Lu}"}"#).isValid("Éa"))
    #expect(try compileError(#"{"pattern": "\\a"}"#)?.schemaPath == "/pattern")
    // Catastrophic backtracking is bounded, not a hang.
    let evil = try compile(#"{"pattern": "^(a+)+$"}"#)
    #expect(!evil.isValid(.string(String(repeating: "a", count: 40) + "!")))
}

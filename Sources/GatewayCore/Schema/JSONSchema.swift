// JSONSchema.swift: a JSON Schema validator for MCP tool schemas.
//
// MCP tools describe their arguments (`inputSchema`) and results (`outputSchema`) with JSON Schema;
// since MCP 2025-11-25 the default dialect is 2020-12, and draft-07 is accepted when `$schema` says so.
// The gateway checks `tools/call` arguments against the tool's schema before the call leaves it, so the
// validator sits on the hot path: a schema is compiled ONCE into a graph of `SchemaNode`s (keywords
// parsed, regular expressions compiled, `$ref`s resolved to node indices, property lookups prepared)
// and then validates many instances, allocating nothing for a valid instance but the backtrack stack
// of a pattern that needs one (about 1 µs for a 10-property object in release builds).
//
// Coverage (measured against the official JSON-Schema-Test-Suite by `JSONSchemaSuiteTests`):
// - every validation and applicator keyword of 2020-12 and draft-07, including `unevaluatedProperties`,
//   `unevaluatedItems`, `$dynamicRef`/`$dynamicAnchor`, draft-07's array form of `items` with
//   `additionalItems`, `dependencies` and `definitions`, and boolean schemas;
// - local references: JSON Pointer fragments, `$anchor`, draft-07 `$id: "#name"` anchors, and any
//   resource given an `$id` inside the schema; the two dialects' meta-schemas are embedded, so a
//   `$ref` to one resolves without the network. Any other `$ref` to another document is a compile
//   error: remote references are never fetched;
// - `format` is an annotation by default; `compile(_:defaultDialect:assertFormat: true)` checks
//   date-time, date, time, duration, email, idn-email, hostname, idn-hostname, ipv4, ipv6, uri,
//   uri-reference, iri, iri-reference, uri-template, uuid, json-pointer, relative-json-pointer and
//   regex (see `SchemaFormat`);
// - patterns are ECMA-262 (`ECMARegex`), string lengths count Unicode code points.
//
// Errors: `validate` reports every violation (up to a limit) with the JSON Pointer of the offending
// value and one short sentence meant for the person or the model that made the call.

import Foundation

/// The JSON Schema dialects the validator implements.
public enum SchemaDialect: Sendable {
    /// JSON Schema 2020-12, the default for MCP since 2025-11-25.
    case draft2020_12
    /// JSON Schema draft-07 (also used for draft-04 and draft-06 schemas, with draft-04's boolean
    /// `exclusiveMinimum`/`exclusiveMaximum` understood).
    case draft7
}

/// Why a schema could not be compiled, and where.
public struct SchemaCompileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// JSON Pointer into the schema, e.g. "/properties/zip/pattern" ("" is the root).
    public var schemaPath: String
    public var message: String

    public init(schemaPath: String, message: String) {
        self.schemaPath = schemaPath
        self.message = message
    }

    public var description: String {
        "\(schemaPath.isEmpty ? "(root)" : schemaPath): \(message)"
    }
}

/// One declared top-level property, as `JSONSchema.declaredProperties` lists it.
public struct SchemaPropertySummary: Sendable, Equatable {
    public var name: String
    /// The property's JSON type, readable: "string", "integer", "string | null", "array of string", "any".
    public var type: String
    public var required: Bool
    public var description: String?

    public init(name: String, type: String, required: Bool, description: String?) {
        self.name = name
        self.type = type
        self.required = required
        self.description = description
    }
}

/// One way an instance fails its schema.
public struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// JSON type names: "null", "boolean", "object", "array", "number", "string", "integer".
        case type(expected: [String], actual: String)
        case required(property: String)
        /// `additionalProperties: false` or `unevaluatedProperties: false` rejected this name.
        case additionalProperty(name: String)
        case enumeration(allowed: [JSONValue])
        case constant(JSONValue)
        case pattern(String)
        /// Only when format assertion is enabled.
        case format(String)
        /// minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength, minItems,
        /// maxItems, minProperties, maxProperties, minContains, maxContains.
        case bound(keyword: String, limit: JSONNumber)
        /// anyOf, oneOf, not, contains, uniqueItems, propertyNames, a false schema, ...
        case other(keyword: String)
    }

    /// JSON Pointer of the offending value ("" is the root, "/address/zip", "/tags/2"), RFC 6901 escaped.
    public var instancePath: String
    /// The keyword that failed.
    public var keyword: String
    public var kind: Kind
    /// One sentence a person or a model can act on: "must be integer, got string", "is required".
    public var message: String

    public init(instancePath: String, keyword: String, kind: Kind, message: String) {
        self.instancePath = instancePath
        self.keyword = keyword
        self.kind = kind
        self.message = message
    }

    public var description: String {
        "\(instancePath.isEmpty ? "(root)" : instancePath): \(message)"
    }
}

/// A compiled JSON Schema. Compile once with `compile`, then validate any number of instances, from any
/// number of threads.
public struct JSONSchema: Sendable {
    let program: SchemaProgram

    /// The root's dialect (from `$schema`, or the default given to `compile`).
    public let dialect: SchemaDialect

    /// Keywords present in the schema that this validator does not implement (e.g. "$recursiveRef", or a
    /// 2020-12 keyword in a draft-07 schema), for reporting; they are ignored while validating.
    public let unsupportedKeywords: [String]

    /// The top level's declared properties (with those of a top-level `$ref` and `allOf`), in
    /// declaration order: the valid arguments of a tool.
    public let declaredProperties: [SchemaPropertySummary]

    /// Compiles `schema`. `$schema` selects the dialect (draft-07 or 2020-12 URIs); otherwise
    /// `defaultDialect`. With `assertFormat`, `format` is checked (see `SchemaFormat`) instead of being
    /// an annotation.
    public static func compile(
        _ schema: JSONValue, defaultDialect: SchemaDialect = .draft2020_12, assertFormat: Bool = false
    ) throws(SchemaCompileError) -> JSONSchema {
        let compiler = SchemaCompiler(root: schema, defaultDialect: defaultDialect, assertFormat: assertFormat)
        let output = try compiler.run()
        return JSONSchema(
            program: output.program, dialect: output.dialect, unsupportedKeywords: output.unsupportedKeywords,
            declaredProperties: output.declaredProperties)
    }

    /// Whether `instance` is valid. The fast path: stops at the first failure and builds no messages.
    public func isValid(_ instance: JSONValue) -> Bool {
        var evaluator = SchemaEvaluator(program: program, reporting: false, limit: 0)
        return evaluator.run(instance)
    }

    /// Every violation (not just the first), each with the instance location; at most `limit`.
    /// Empty when the instance is valid.
    public func validate(_ instance: JSONValue, limit: Int = 100) -> [SchemaViolation] {
        guard limit > 0 else { return [] }
        var evaluator = SchemaEvaluator(program: program, reporting: true, limit: limit)
        if evaluator.run(instance) { return [] }
        if evaluator.violations.isEmpty {
            // Cannot happen (every failure reports), but never answer "invalid" without a reason.
            return [SchemaViolation(instancePath: "", keyword: "schema", kind: .other(keyword: "schema"), message: "does not match the schema")]
        }
        return evaluator.violations
    }
}

// MARK: - Compiled form

/// The compiled schema: its nodes, by index; node `root` is the schema itself.
final class SchemaProgram: Sendable {
    let nodes: [SchemaNode]
    let root: Int
    /// Some node uses `$dynamicRef` with a dynamic anchor: evaluation tracks the dynamic scope.
    let usesDynamicScope: Bool
    /// `$dynamicAnchor` name → (resource index → node index of that resource's anchor).
    let dynamicAnchors: [String: [Int: Int]]

    init(nodes: [SchemaNode], root: Int, usesDynamicScope: Bool, dynamicAnchors: [String: [Int: Int]]) {
        self.nodes = nodes
        self.root = root
        self.usesDynamicScope = usesDynamicScope
        self.dynamicAnchors = dynamicAnchors
    }
}

/// JSON type bits of `SchemaNode.types`.
enum SchemaType {
    static let null: UInt8 = 1
    static let boolean: UInt8 = 2
    static let object: UInt8 = 4
    static let array: UInt8 = 8
    static let number: UInt8 = 16
    static let string: UInt8 = 32
    static let integer: UInt8 = 64

    static let names: [(name: String, bit: UInt8)] = [
        ("null", null), ("boolean", boolean), ("object", object), ("array", array), ("number", number),
        ("string", string), ("integer", integer),
    ]

    static func bit(named name: String) -> UInt8? {
        names.first { $0.name == name }?.bit
    }
}

/// A bound of minimum/maximum/exclusive*: the number, with its `Double` and (when it is a plain
/// integer) `Int` forms precomputed.
struct SchemaNumberBound: Sendable {
    let number: JSONNumber
    let double: Double
    let integer: Int?

    init(_ number: JSONNumber) {
        self.number = number
        double = number.doubleValue
        integer = number.plainInteger
    }
}

// The keyword groups of a node, by instance type. Final classes (built from a mutable `Draft`), so a
// node hands a group to the evaluator with one reference count, not one per field.

final class SchemaNumberChecks: Sendable {
    let minimum: SchemaNumberBound?
    let maximum: SchemaNumberBound?
    let exclusiveMinimum: SchemaNumberBound?
    let exclusiveMaximum: SchemaNumberBound?
    let multipleOf: JSONNumber?

    init(_ draft: Draft) {
        minimum = draft.minimum
        maximum = draft.maximum
        exclusiveMinimum = draft.exclusiveMinimum
        exclusiveMaximum = draft.exclusiveMaximum
        multipleOf = draft.multipleOf
    }

    struct Draft {
        var minimum: SchemaNumberBound?
        var maximum: SchemaNumberBound?
        var exclusiveMinimum: SchemaNumberBound?
        var exclusiveMaximum: SchemaNumberBound?
        var multipleOf: JSONNumber?
    }
}

final class SchemaStringChecks: Sendable {
    let minLength: Int?
    let maxLength: Int?
    let pattern: ECMARegex?
    /// Set only when format assertion is on and the format is one `SchemaFormat` knows.
    let format: SchemaFormat?

    init(_ draft: Draft) {
        minLength = draft.minLength
        maxLength = draft.maxLength
        pattern = draft.pattern
        format = draft.format
    }

    struct Draft {
        var minLength: Int?
        var maxLength: Int?
        var pattern: ECMARegex?
        /// Set only when format assertion is on and the format is one `SchemaFormat` knows.
        var format: SchemaFormat?
    }
}

final class SchemaArrayChecks: Sendable {
    /// 2020-12 `prefixItems`, or draft-07's array form of `items`.
    let prefixItems: [Int]
    let prefixKeyword: String
    /// For the items after the prefix: 2020-12 `items`, draft-07 `items` (object form) or `additionalItems`.
    let items: Int?
    let itemsKeyword: String
    let contains: Int?
    let minContains: Int?
    let maxContains: Int?
    let minItems: Int?
    let maxItems: Int?
    let uniqueItems: Bool

    init(_ draft: Draft) {
        prefixItems = draft.prefixItems
        prefixKeyword = draft.prefixKeyword
        items = draft.items
        itemsKeyword = draft.itemsKeyword
        contains = draft.contains
        minContains = draft.minContains
        maxContains = draft.maxContains
        minItems = draft.minItems
        maxItems = draft.maxItems
        uniqueItems = draft.uniqueItems
    }

    struct Draft {
        /// 2020-12 `prefixItems`, or draft-07's array form of `items`.
        var prefixItems: [Int] = []
        var prefixKeyword = "prefixItems"
        /// For the items after the prefix: 2020-12 `items`, draft-07 `items` (object form) or `additionalItems`.
        var items: Int?
        var itemsKeyword = "items"
        var contains: Int?
        var minContains: Int?
        var maxContains: Int?
        var minItems: Int?
        var maxItems: Int?
        var uniqueItems = false
    }
}

final class SchemaObjectChecks: Sendable {
    /// `properties`, in declaration order.
    let propertyNames: [String]
    let propertyNodes: [Int]
    /// Name → position in `propertyNames`, built for large `properties` only (linear search is faster
    /// for the usual handful).
    let propertyLookup: [String: Int]?
    let patternProperties: [(regex: ECMARegex, node: Int)]
    let additionalProperties: Int?
    let propertyNamesSchema: Int?
    /// `required`, in order.
    let required: [String]
    /// Bit i: `required` names `propertyNames[i]` (i < 64), checked while properties are visited.
    let requiredMask: UInt64
    /// Required names without a bit (not declared, or declared past position 63).
    let requiredOthers: [String]
    let minProperties: Int?
    let maxProperties: Int?
    /// `dependentRequired` and the array form of `dependencies` (with the keyword, for messages).
    let dependentRequired: [(key: String, names: [String], keyword: String)]
    /// `dependentSchemas` and the schema form of `dependencies`.
    let dependentSchemas: [(key: String, node: Int)]

    init(_ draft: Draft) {
        propertyNames = draft.propertyNames
        propertyNodes = draft.propertyNodes
        propertyLookup = draft.propertyLookup
        patternProperties = draft.patternProperties
        additionalProperties = draft.additionalProperties
        propertyNamesSchema = draft.propertyNamesSchema
        required = draft.required
        requiredMask = draft.requiredMask
        requiredOthers = draft.requiredOthers
        minProperties = draft.minProperties
        maxProperties = draft.maxProperties
        dependentRequired = draft.dependentRequired
        dependentSchemas = draft.dependentSchemas
    }

    @inline(__always)
    func propertyIndex(_ name: String) -> Int? {
        if let propertyLookup { return propertyLookup[name] }
        for index in propertyNames.indices where propertyNames[index] == name { return index }
        return nil
    }

    struct Draft {
        /// `properties`, in declaration order.
        var propertyNames: [String] = []
        var propertyNodes: [Int] = []
        /// Name → position in `propertyNames`, built for large `properties` only (linear search is faster
        /// for the usual handful).
        var propertyLookup: [String: Int]?
        var patternProperties: [(regex: ECMARegex, node: Int)] = []
        var additionalProperties: Int?
        var propertyNamesSchema: Int?
        /// `required`, in order.
        var required: [String] = []
        /// Bit i: `required` names `propertyNames[i]` (i < 64), checked while properties are visited.
        var requiredMask: UInt64 = 0
        /// Required names without a bit (not declared, or declared past position 63).
        var requiredOthers: [String] = []
        var minProperties: Int?
        var maxProperties: Int?
        /// `dependentRequired` and the array form of `dependencies` (with the keyword, for messages).
        var dependentRequired: [(key: String, names: [String], keyword: String)] = []
        /// `dependentSchemas` and the schema form of `dependencies`.
        var dependentSchemas: [(key: String, node: Int)] = []

    }
}

/// `$dynamicRef`: the statically resolved target, and the anchor name to look up in the dynamic scope
/// when the target is "bookended" by a `$dynamicAnchor` of the same name (2020-12 Core §8.2.3.2).
struct SchemaDynamicReference: Sendable {
    let target: Int
    let anchor: String?
}

/// One compiled schema object (or boolean schema).
final class SchemaNode: Sendable {
    /// JSON Pointer of the schema within its document (for debugging).
    let location: String
    /// Index of the schema resource (document or `$id`) this node belongs to, for the dynamic scope.
    let resource: Int
    let isTrue: Bool
    let isFalse: Bool
    /// Bits of `SchemaType`; 0 when there is no `type` keyword.
    let types: UInt8
    /// Type names in schema order, for messages.
    let typeNames: [String]
    let constValue: JSONValue?
    let enumValues: [JSONValue]?
    let numbers: SchemaNumberChecks?
    let strings: SchemaStringChecks?
    let arrays: SchemaArrayChecks?
    let objects: SchemaObjectChecks?
    let reference: Int?
    let dynamicReference: SchemaDynamicReference?
    let allOf: [Int]
    let anyOf: [Int]
    let oneOf: [Int]
    let not: Int?
    let ifSchema: Int?
    let thenSchema: Int?
    let elseSchema: Int?
    let unevaluatedProperties: Int?
    let unevaluatedItems: Int?
    /// For messages: the types an `anyOf`/`oneOf` of type-only branches allows ("string or null").
    let anyOfTypes: [String]?
    let oneOfTypes: [String]?
    /// Any of allOf/anyOf/oneOf/not/if/$dynamicRef is present.
    let hasApplicators: Bool
    let hasUnevaluated: Bool

    init(_ parts: SchemaNodeParts) {
        location = parts.location
        resource = parts.resource
        isTrue = parts.isTrue
        isFalse = parts.isFalse
        types = parts.types
        typeNames = parts.typeNames
        constValue = parts.constValue
        enumValues = parts.enumValues
        numbers = parts.numbers
        strings = parts.strings
        arrays = parts.arrays
        objects = parts.objects
        reference = parts.reference
        dynamicReference = parts.dynamicReference
        allOf = parts.allOf
        anyOf = parts.anyOf
        oneOf = parts.oneOf
        not = parts.not
        ifSchema = parts.ifSchema
        thenSchema = parts.thenSchema
        elseSchema = parts.elseSchema
        unevaluatedProperties = parts.unevaluatedProperties
        unevaluatedItems = parts.unevaluatedItems
        anyOfTypes = parts.anyOfTypes
        oneOfTypes = parts.oneOfTypes
        hasApplicators = !parts.allOf.isEmpty || !parts.anyOf.isEmpty || !parts.oneOf.isEmpty || parts.not != nil
            || parts.ifSchema != nil || parts.dynamicReference != nil
        hasUnevaluated = parts.unevaluatedProperties != nil || parts.unevaluatedItems != nil
    }
}

/// The mutable form of a node while it is compiled.
struct SchemaNodeParts {
    var location = ""
    var resource = 0
    var isTrue = false
    var isFalse = false
    var types: UInt8 = 0
    var typeNames: [String] = []
    var constValue: JSONValue?
    var enumValues: [JSONValue]?
    var numbers: SchemaNumberChecks?
    var strings: SchemaStringChecks?
    var arrays: SchemaArrayChecks?
    var objects: SchemaObjectChecks?
    var reference: Int?
    var dynamicReference: SchemaDynamicReference?
    var allOf: [Int] = []
    var anyOf: [Int] = []
    var oneOf: [Int] = []
    var not: Int?
    var ifSchema: Int?
    var thenSchema: Int?
    var elseSchema: Int?
    var unevaluatedProperties: Int?
    var unevaluatedItems: Int?
    var anyOfTypes: [String]?
    var oneOfTypes: [String]?
}

// MARK: - JSON Pointer text

enum SchemaPointer {
    /// RFC 6901 escaping of one reference token.
    static func escape(_ token: String) -> String {
        guard token.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return token }
        var result = ""
        for character in token.unicodeScalars {
            switch character {
            case "~": result += "~0"
            case "/": result += "~1"
            default: result.unicodeScalars.append(character)
            }
        }
        return result
    }

    static func unescape(_ token: Substring) -> String {
        guard token.contains("~") else { return String(token) }
        return token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
    }

    /// The reference tokens of a pointer ("" has none).
    static func tokens(_ pointer: String) -> [String] {
        guard !pointer.isEmpty else { return [] }
        return pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { unescape($0) }
    }
}

// SchemaEvaluator.swift: validation of one instance against a compiled schema.
//
// One recursive walk serves both entry points. `isValid` runs it with `reporting` off: every failure
// returns false at once and nothing is allocated for messages or paths. `validate` runs it with
// `reporting` on: it keeps going after a failure, keeps the instance path as a stack of tokens (turned
// into a JSON Pointer only when a violation is recorded), and stops once `limit` violations are in.
// Subschemas whose failure is not itself an error (anyOf/oneOf branches, not, if, contains,
// propertyNames) are evaluated with reporting off, and the keyword reports one summary instead.
//
// `unevaluatedProperties`/`unevaluatedItems` need to know which members or items the adjacent
// keywords and in-place subschemas evaluated. That is collected (as a bit set over the instance's
// member or item positions) only below a node that has one of those keywords; everywhere else
// `collect` is false and the bookkeeping costs nothing.

struct SchemaEvaluator {
    enum PathToken {
        case key(String)
        case index(Int)
    }

    /// Deepest nesting of schema evaluations (guards `$ref` cycles that consume no input, and bounds
    /// machine stack use).
    static let maxDepth = 384

    /// Regular-expression steps one validation may spend in all (about 40 ms of backtracking at worst);
    /// past it, patterns stop matching and the instance is reported invalid.
    static let regexBudget = 4_000_000

    let program: SchemaProgram
    let nodes: [SchemaNode]
    var reporting: Bool
    let limit: Int
    var violations: [SchemaViolation] = []
    /// Set once `limit` violations are recorded: everything after returns at once.
    var stopped = false
    var path: [PathToken] = []
    var depth = 0
    /// Dynamic scope: resources entered, outermost first (only when the program uses `$dynamicRef`).
    var scope: [Int] = []
    /// Shared by every pattern of one validation: its step budget bounds the whole validation.
    var regexScratch = ECMARegexScratch(budget: SchemaEvaluator.regexBudget)

    init(program: SchemaProgram, reporting: Bool, limit: Int) {
        self.program = program
        nodes = program.nodes
        self.reporting = reporting
        self.limit = limit
    }

    mutating func run(_ instance: JSONValue) -> Bool {
        var evaluated = EvaluatedSet()
        return evaluate(program.root, instance, collect: false, &evaluated)
    }

    // MARK: Nodes

    /// Evaluates node `index` against `value`. With `collect`, adds the positions of the members or items
    /// this node evaluated to `evaluated` (meaningful only when the result is true).
    mutating func evaluate(_ index: Int, _ value: JSONValue, collect: Bool, _ evaluated: inout EvaluatedSet) -> Bool {
        let node = nodes[index]
        if node.isTrue { return true }
        if node.isFalse {
            if reporting { report("false", .other(keyword: "false"), "is not allowed (the schema is false)") }
            return false
        }
        if stopped { return false }
        depth += 1
        defer { depth -= 1 }
        if depth > Self.maxDepth {
            if reporting {
                report("$ref", .other(keyword: "$ref"), "is nested too deeply to validate (the schema refers to itself without consuming input?)")
            }
            return false
        }
        var pushed = false
        if program.usesDynamicScope && scope.last != node.resource {
            scope.append(node.resource)
            pushed = true
        }
        defer { if pushed { scope.removeLast() } }

        guard node.hasUnevaluated else {
            return evaluateKeywords(node, value, collect: collect, &evaluated)
        }
        // unevaluated* see only this schema object's own keywords and in-place subschemas: start afresh.
        var local = EvaluatedSet()
        var valid = evaluateKeywords(node, value, collect: true, &local)
        if valid || reporting {
            valid = checkUnevaluated(node, value, &local) && valid
        }
        if valid && collect { evaluated.formUnion(local) }
        return valid
    }

    mutating func evaluateKeywords(_ node: SchemaNode, _ value: JSONValue, collect: Bool, _ evaluated: inout EvaluatedSet) -> Bool {
        var valid = true
        if let reference = node.reference {
            if !evaluate(reference, value, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        }
        if node.types != 0 && !Self.typeMatches(node.types, value) {
            if reporting {
                report("type", .type(expected: node.typeNames, actual: Self.typeName(value)),
                    "must be \(Self.list(node.typeNames, conjunction: "or")), got \(Self.typeName(value))")
            }
            return false
        }
        if let constant = node.constValue, !SchemaEquality.equal(constant, value) {
            if !reporting { return false }
            report("const", .constant(constant), "must be \(Self.describe(constant))")
            valid = false
        }
        if let values = node.enumValues, !values.contains(where: { SchemaEquality.equal($0, value) }) {
            if !reporting { return false }
            report("enum", .enumeration(allowed: values), Self.enumMessage(values))
            valid = false
        }
        switch value {
        case .number(let number):
            if let checks = node.numbers, !checkNumber(checks, number) {
                if !reporting { return false }
                valid = false
            }
        case .string(let string):
            if let checks = node.strings, !checkString(checks, string) {
                if !reporting { return false }
                valid = false
            }
        case .array(let items):
            if let checks = node.arrays, !checkArray(checks, items, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        case .object(let object):
            if let checks = node.objects, !checkObject(checks, object, value, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        default:
            break
        }
        if node.hasApplicators, !evaluateApplicators(node, value, collect: collect, &evaluated) {
            valid = false
        }
        return valid
    }

    /// Evaluates a subschema at a child location (a member or an item).
    @inline(__always)
    mutating func evaluateChild(_ child: Int, _ value: JSONValue, _ makeToken: @autoclosure () -> PathToken, keyword: String) -> Bool {
        let node = nodes[child]
        if node.isTrue { return true }
        var unused = EvaluatedSet()
        guard reporting else {
            if node.isFalse { return false }
            return evaluate(child, value, collect: false, &unused)
        }
        let token = makeToken()
        path.append(token)
        defer { path.removeLast() }
        if node.isFalse {
            reportFalse(keyword: keyword, token: token)
            return false
        }
        return evaluate(child, value, collect: false, &unused)
    }

    /// Evaluates with reporting off, whatever the mode (a branch whose failure is not an error).
    @inline(__always)
    mutating func quietly(_ index: Int, _ value: JSONValue, collect: Bool, _ evaluated: inout EvaluatedSet) -> Bool {
        let wasReporting = reporting
        reporting = false
        defer { reporting = wasReporting }
        return evaluate(index, value, collect: collect, &evaluated)
    }

    // MARK: Applicators

    mutating func evaluateApplicators(_ node: SchemaNode, _ value: JSONValue, collect: Bool, _ evaluated: inout EvaluatedSet) -> Bool {
        var valid = true
        for branch in node.allOf where !evaluate(branch, value, collect: collect, &evaluated) {
            if !reporting { return false }
            valid = false
        }
        if !node.anyOf.isEmpty {
            var matched = false
            for branch in node.anyOf {
                var branchSet = EvaluatedSet()
                if quietly(branch, value, collect: collect, &branchSet) {
                    matched = true
                    // With annotations wanted, every valid branch contributes; otherwise one is enough.
                    guard collect else { break }
                    evaluated.formUnion(branchSet)
                }
            }
            if !matched {
                if !reporting { return false }
                if let types = node.anyOfTypes {
                    report("anyOf", .other(keyword: "anyOf"), "must be \(Self.list(types, conjunction: "or")), got \(Self.typeName(value))")
                } else {
                    report("anyOf", .other(keyword: "anyOf"), "must match at least one of the \(node.anyOf.count) schemas in anyOf, matched none")
                }
                valid = false
            }
        }
        if !node.oneOf.isEmpty {
            var matches = 0
            var matchedSet = EvaluatedSet()
            for branch in node.oneOf {
                var branchSet = EvaluatedSet()
                if quietly(branch, value, collect: collect, &branchSet) {
                    matches += 1
                    if matches > 1 { break }
                    matchedSet = branchSet
                }
            }
            if matches == 1 {
                if collect { evaluated.formUnion(matchedSet) }
            } else {
                if !reporting { return false }
                if matches == 0, let types = node.oneOfTypes {
                    report("oneOf", .other(keyword: "oneOf"), "must be \(Self.list(types, conjunction: "or")), got \(Self.typeName(value))")
                } else {
                    let count = node.oneOf.count
                    report("oneOf", .other(keyword: "oneOf"),
                        "must match exactly one of \(count) schemas, matched \(matches == 0 ? "0" : "more than one")")
                }
                valid = false
            }
        }
        if let negated = node.not {
            var unused = EvaluatedSet()
            if quietly(negated, value, collect: false, &unused) {
                if !reporting { return false }
                report("not", .other(keyword: "not"), "must not match the schema in not")
                valid = false
            }
        }
        if let condition = node.ifSchema {
            var conditionSet = EvaluatedSet()
            if quietly(condition, value, collect: collect, &conditionSet) {
                if collect { evaluated.formUnion(conditionSet) }
                if let then = node.thenSchema, !evaluate(then, value, collect: collect, &evaluated) {
                    if !reporting { return false }
                    valid = false
                }
            } else if let otherwise = node.elseSchema, !evaluate(otherwise, value, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        }
        if let dynamic = node.dynamicReference {
            if !evaluate(dynamicTarget(dynamic), value, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        }
        return valid
    }

    /// `$dynamicRef`: the outermost resource in the dynamic scope with a matching `$dynamicAnchor`, or
    /// the static target.
    func dynamicTarget(_ reference: SchemaDynamicReference) -> Int {
        guard let anchor = reference.anchor, let table = program.dynamicAnchors[anchor] else { return reference.target }
        for resource in scope {
            if let node = table[resource] { return node }
        }
        return reference.target
    }

    mutating func checkUnevaluated(_ node: SchemaNode, _ value: JSONValue, _ evaluated: inout EvaluatedSet) -> Bool {
        var valid = true
        if let schema = node.unevaluatedProperties, case .object(let object) = value {
            for (position, member) in object.storage.enumerated() where !evaluated.contains(position) {
                if !evaluateChild(schema, member.value, .key(member.key), keyword: "unevaluatedProperties") {
                    if !reporting { return false }
                    valid = false
                }
            }
            evaluated.all = true
        }
        if let schema = node.unevaluatedItems, case .array(let items) = value {
            for position in items.indices where !evaluated.contains(position) {
                if !evaluateChild(schema, items[position], .index(position), keyword: "unevaluatedItems") {
                    if !reporting { return false }
                    valid = false
                }
            }
            evaluated.all = true
        }
        return valid
    }

    // MARK: Numbers

    mutating func checkNumber(_ checks: SchemaNumberChecks, _ number: JSONNumber) -> Bool {
        var valid = true
        if let bound = checks.minimum, SchemaNumeric.compare(number, bound) < 0 {
            if !reporting { return false }
            report("minimum", .bound(keyword: "minimum", limit: bound.number), "must be at least \(bound.number.text)")
            valid = false
        }
        if let bound = checks.maximum, SchemaNumeric.compare(number, bound) > 0 {
            if !reporting { return false }
            report("maximum", .bound(keyword: "maximum", limit: bound.number), "must be at most \(bound.number.text)")
            valid = false
        }
        if let bound = checks.exclusiveMinimum, SchemaNumeric.compare(number, bound) <= 0 {
            if !reporting { return false }
            report("exclusiveMinimum", .bound(keyword: "exclusiveMinimum", limit: bound.number), "must be greater than \(bound.number.text)")
            valid = false
        }
        if let bound = checks.exclusiveMaximum, SchemaNumeric.compare(number, bound) >= 0 {
            if !reporting { return false }
            report("exclusiveMaximum", .bound(keyword: "exclusiveMaximum", limit: bound.number), "must be less than \(bound.number.text)")
            valid = false
        }
        if let divisor = checks.multipleOf, !SchemaNumeric.isMultiple(number, of: divisor) {
            if !reporting { return false }
            report("multipleOf", .bound(keyword: "multipleOf", limit: divisor), "must be a multiple of \(divisor.text)")
            valid = false
        }
        return valid
    }

    // MARK: Strings

    mutating func checkString(_ checks: SchemaStringChecks, _ string: String) -> Bool {
        var valid = true
        if checks.minLength != nil || checks.maxLength != nil {
            // Lengths count code points (2020-12 Validation §6.3.1). A code point is 1 to 4 UTF-8 bytes, so
            // the byte count (O(1)) usually decides without counting.
            let bytes = string.utf8.count
            if let maximum = checks.maxLength, bytes > maximum, string.unicodeScalars.count > maximum {
                if !reporting { return false }
                report("maxLength", .bound(keyword: "maxLength", limit: JSONNumber(maximum)),
                    "must be at most \(maximum) character\(maximum == 1 ? "" : "s") long")
                valid = false
            }
            if let minimum = checks.minLength, minimum > 0,
                bytes < minimum || ((bytes + 3) / 4 < minimum && string.unicodeScalars.count < minimum)
            {
                if !reporting { return false }
                report("minLength", .bound(keyword: "minLength", limit: JSONNumber(minimum)),
                    "must be at least \(minimum) character\(minimum == 1 ? "" : "s") long")
                valid = false
            }
        }
        if let pattern = checks.pattern, !pattern.matches(string, scratch: &regexScratch) {
            if !reporting { return false }
            report("pattern", .pattern(pattern.source), "must match pattern \(pattern.source)")
            valid = false
        }
        if let format = checks.format, !format.isValid(string) {
            if !reporting { return false }
            report("format", .format(format.rawValue), "must be a valid \(format.rawValue)")
            valid = false
        }
        return valid
    }

    // MARK: Arrays

    mutating func checkArray(_ checks: SchemaArrayChecks, _ items: [JSONValue], collect: Bool, _ evaluated: inout EvaluatedSet) -> Bool {
        var valid = true
        if let minimum = checks.minItems, items.count < minimum {
            if !reporting { return false }
            report("minItems", .bound(keyword: "minItems", limit: JSONNumber(minimum)), "must have at least \(Self.count(minimum, "item"))")
            valid = false
        }
        if let maximum = checks.maxItems, items.count > maximum {
            if !reporting { return false }
            report("maxItems", .bound(keyword: "maxItems", limit: JSONNumber(maximum)), "must have at most \(Self.count(maximum, "item"))")
            valid = false
        }
        let prefixCount = min(checks.prefixItems.count, items.count)
        for position in 0..<prefixCount {
            if !evaluateChild(checks.prefixItems[position], items[position], .index(position), keyword: checks.prefixKeyword) {
                if !reporting { return false }
                valid = false
            }
            if collect { evaluated.insert(position) }
        }
        if let schema = checks.items {
            if items.count > checks.prefixItems.count {
                for position in checks.prefixItems.count..<items.count {
                    if !evaluateChild(schema, items[position], .index(position), keyword: checks.itemsKeyword) {
                        if !reporting { return false }
                        valid = false
                    }
                }
            }
            if collect { evaluated.all = true }
        }
        if let contains = checks.contains {
            var matches = 0
            let minimum = checks.minContains ?? 1
            for (position, item) in items.enumerated() {
                var unused = EvaluatedSet()
                if quietly(contains, item, collect: false, &unused) {
                    matches += 1
                    if collect { evaluated.insert(position) }
                    if !collect && checks.maxContains == nil && matches >= minimum { break }
                }
            }
            if matches < minimum {
                if !reporting { return false }
                if let declared = checks.minContains {
                    report("minContains", .bound(keyword: "minContains", limit: JSONNumber(declared)),
                        "must contain at least \(Self.count(declared, "item")) matching the contains schema")
                } else {
                    report("contains", .other(keyword: "contains"), "must contain at least one item matching the contains schema")
                }
                valid = false
            }
            if let maximum = checks.maxContains, matches > maximum {
                if !reporting { return false }
                report("maxContains", .bound(keyword: "maxContains", limit: JSONNumber(maximum)),
                    "must contain at most \(Self.count(maximum, "item")) matching the contains schema")
                valid = false
            }
        }
        if checks.uniqueItems, let (first, second) = Self.firstDuplicate(items) {
            if !reporting { return false }
            report("uniqueItems", .other(keyword: "uniqueItems"), "must not contain duplicate items (items \(first) and \(second) are equal)")
            valid = false
        }
        return valid
    }

    static func firstDuplicate(_ items: [JSONValue]) -> (Int, Int)? {
        guard items.count > 1 else { return nil }
        if items.count <= 16 {
            for second in 1..<items.count {
                for first in 0..<second where SchemaEquality.equal(items[first], items[second]) { return (first, second) }
            }
            return nil
        }
        var seen: [SchemaEquality.Key: Int] = [:]
        seen.reserveCapacity(items.count)
        for (position, item) in items.enumerated() {
            if let first = seen[SchemaEquality.Key(value: item)] { return (first, position) }
            seen[SchemaEquality.Key(value: item)] = position
        }
        return nil
    }

    // MARK: Objects

    mutating func checkObject(
        _ checks: SchemaObjectChecks, _ object: JSONObject, _ value: JSONValue, collect: Bool, _ evaluated: inout EvaluatedSet
    ) -> Bool {
        var valid = true
        let members = object.storage
        if let minimum = checks.minProperties, members.count < minimum {
            if !reporting { return false }
            report("minProperties", .bound(keyword: "minProperties", limit: JSONNumber(minimum)),
                "must have at least \(Self.count(minimum, "property", plural: "properties"))")
            valid = false
        }
        if let maximum = checks.maxProperties, members.count > maximum {
            if !reporting { return false }
            report("maxProperties", .bound(keyword: "maxProperties", limit: JSONNumber(maximum)),
                "must have at most \(Self.count(maximum, "property", plural: "properties"))")
            valid = false
        }
        // Declared properties seen (bit i: `propertyNames[i]`), for `required`.
        var seen: UInt64 = 0
        if !checks.propertyNames.isEmpty || !checks.patternProperties.isEmpty || checks.additionalProperties != nil
            || checks.propertyNamesSchema != nil
        {
            for position in members.indices {
                let key = members[position].key
                var matched = false
                if let declared = checks.propertyIndex(key) {
                    matched = true
                    if declared < 64 { seen |= 1 << UInt64(declared) }
                    if !evaluateChild(checks.propertyNodes[declared], members[position].value, .key(key), keyword: "properties") {
                        if !reporting { return false }
                        valid = false
                    }
                }
                for pattern in checks.patternProperties where pattern.regex.matches(key, scratch: &regexScratch) {
                    matched = true
                    if !evaluateChild(pattern.node, members[position].value, .key(key), keyword: "patternProperties") {
                        if !reporting { return false }
                        valid = false
                    }
                }
                if !matched, let additional = checks.additionalProperties {
                    matched = true
                    if !evaluateChild(additional, members[position].value, .key(key), keyword: "additionalProperties") {
                        if !reporting { return false }
                        valid = false
                    }
                }
                if matched && collect { evaluated.insert(position) }
                if let names = checks.propertyNamesSchema, !checkPropertyName(names, key) {
                    if !reporting { return false }
                    valid = false
                }
            }
        }
        if checks.requiredMask & ~seen != 0 || !checks.requiredOthers.isEmpty {
            if reporting {
                for name in checks.required where !object.contains(name) {
                    report("required", .required(property: name), "is required", appending: .key(name))
                    valid = false
                }
            } else {
                if checks.requiredMask & ~seen != 0 { return false }
                for name in checks.requiredOthers where !object.contains(name) { return false }
            }
        }
        for dependency in checks.dependentRequired where object.contains(dependency.key) {
            for name in dependency.names where !object.contains(name) {
                if !reporting { return false }
                report(dependency.keyword, .required(property: name), "is required when \(Self.describe(.string(dependency.key))) is present",
                    appending: .key(name))
                valid = false
            }
        }
        for dependency in checks.dependentSchemas where object.contains(dependency.key) {
            if !evaluate(dependency.node, value, collect: collect, &evaluated) {
                if !reporting { return false }
                valid = false
            }
        }
        return valid
    }

    mutating func checkPropertyName(_ schema: Int, _ name: String) -> Bool {
        var unused = EvaluatedSet()
        guard reporting else { return evaluate(schema, .string(name), collect: false, &unused) }
        let before = violations.count
        path.append(.key(name))
        let valid = evaluate(schema, .string(name), collect: false, &unused)
        path.removeLast()
        for position in before..<violations.count {
            violations[position].message = "property name \(Self.describe(.string(name))) \(violations[position].message)"
            violations[position].keyword = "propertyNames"
            violations[position].kind = .other(keyword: "propertyNames")
        }
        return valid
    }

    // MARK: Reporting

    // Reporting is the cold path: out of line, with the message built only here, so the checks on the
    // recursion path keep small stack frames.
    @inline(never)
    mutating func report(
        _ keyword: String, _ kind: @autoclosure () -> SchemaViolation.Kind, _ message: @autoclosure () -> String,
        appending token: PathToken? = nil
    ) {
        guard !stopped else { return }
        violations.append(SchemaViolation(instancePath: pointer(appending: token), keyword: keyword, kind: kind(), message: message()))
        if violations.count >= limit { stopped = true }
    }

    @inline(never)
    mutating func reportFalse(keyword: String, token: PathToken) {
        switch (keyword, token) {
        case ("additionalProperties", .key(let name)), ("unevaluatedProperties", .key(let name)):
            report(keyword, .additionalProperty(name: name), "is not allowed (\(keyword) is false)")
        case ("items", _), ("additionalItems", _), ("unevaluatedItems", _), ("prefixItems", _):
            report(keyword, .other(keyword: keyword), "is not allowed (\(keyword) is false)")
        default:
            report(keyword, .other(keyword: keyword), "is not allowed")
        }
    }

    func pointer(appending token: PathToken?) -> String {
        var result = ""
        for component in path { Self.append(component, to: &result) }
        if let token { Self.append(token, to: &result) }
        return result
    }

    static func append(_ token: PathToken, to pointer: inout String) {
        pointer += "/"
        switch token {
        case .key(let key): pointer += SchemaPointer.escape(key)
        case .index(let index): pointer += String(index)
        }
    }

    // MARK: Types and messages

    @inline(__always)
    static func typeMatches(_ types: UInt8, _ value: JSONValue) -> Bool {
        switch value {
        case .null: return types & SchemaType.null != 0
        case .bool: return types & SchemaType.boolean != 0
        case .string: return types & SchemaType.string != 0
        case .array: return types & SchemaType.array != 0
        case .object: return types & SchemaType.object != 0
        case .number(let number):
            if types & SchemaType.number != 0 { return true }
            guard types & SchemaType.integer != 0 else { return false }
            return number.plainInteger != nil || number.isInteger
        }
    }

    /// The instance's JSON type name, "integer" for a number with an integral value.
    static func typeName(_ value: JSONValue) -> String {
        if case .number(let number) = value { return number.plainInteger != nil || number.isInteger ? "integer" : "number" }
        return value.typeName
    }

    /// "a", "a or b", "a, b or c".
    static func list(_ items: [String], conjunction: String) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " \(conjunction) " + items.last!
    }

    /// A value as compact JSON, shortened past 80 characters.
    static func describe(_ value: JSONValue) -> String {
        let text = value.jsonString
        guard text.count > 80 else { return text }
        return String(text.prefix(77)) + "..."
    }

    static func enumMessage(_ values: [JSONValue]) -> String {
        if values.isEmpty { return "must not be present (enum allows no value)" }
        if values.count == 1 { return "must be \(describe(values[0]))" }
        let shown = values.prefix(10).map(describe).joined(separator: ", ")
        return "must be one of \(shown)\(values.count > 10 ? ", ... (\(values.count) values)" : "")"
    }

    static func count(_ number: Int, _ noun: String, plural: String? = nil) -> String {
        "\(number) \(number == 1 ? noun : (plural ?? noun + "s"))"
    }
}

/// Positions of an object's members or an array's items that were evaluated (for unevaluated*).
struct EvaluatedSet {
    var low: UInt64 = 0
    /// Positions 64 and up, allocated only for such long arrays and objects.
    var high: [UInt64]? = nil
    /// Every position (an `items`/unevaluated* keyword applied to all).
    var all = false

    @inline(__always)
    mutating func insert(_ position: Int) {
        if position < 64 {
            low |= 1 << UInt64(position)
            return
        }
        let word = position / 64 - 1
        var words = high ?? []
        while words.count <= word { words.append(0) }
        words[word] |= 1 << UInt64(position % 64)
        high = words
    }

    @inline(__always)
    func contains(_ position: Int) -> Bool {
        if all { return true }
        if position < 64 { return low & (1 << UInt64(position)) != 0 }
        let word = position / 64 - 1
        guard let high, word < high.count else { return false }
        return high[word] & (1 << UInt64(position % 64)) != 0
    }

    mutating func formUnion(_ other: EvaluatedSet) {
        all = all || other.all
        low |= other.low
        guard let more = other.high else { return }
        var words = high ?? []
        while words.count < more.count { words.append(0) }
        for (word, bits) in more.enumerated() { words[word] |= bits }
        high = words
    }
}

// MARK: - Equality

/// JSON Schema's equality for `const`, `enum` and `uniqueItems` (2020-12 Core §4.2.2): `JSONValue`'s
/// semantic equality (numbers by value, objects without regard to member order), except that strings
/// and member names compare code point by code point. Swift's `String ==` uses canonical equivalence,
/// under which "é" and "e\u{301}" are equal; JSON Schema says they differ.
enum SchemaEquality {
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return sameScalars(x, y)
        case (.array(let x), .array(let y)):
            guard x.count == y.count else { return false }
            for index in x.indices where !equal(x[index], y[index]) { return false }
            return true
        case (.object(let x), .object(let y)):
            guard x.storage.count == y.storage.count else { return false }
            for (position, member) in x.storage.enumerated() {
                // Same order is the common case: try the same position first.
                if sameScalars(y.storage[position].key, member.key) {
                    guard equal(y.storage[position].value, member.value) else { return false }
                    continue
                }
                guard let other = y.storage.first(where: { sameScalars($0.key, member.key) }), equal(other.value, member.value) else {
                    return false
                }
            }
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func sameScalars(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a.utf8.elementsEqual(b.utf8)
    }

    /// A dictionary key with this equality (for `uniqueItems` on long arrays).
    struct Key: Hashable {
        let value: JSONValue

        static func == (lhs: Key, rhs: Key) -> Bool { SchemaEquality.equal(lhs.value, rhs.value) }

        func hash(into hasher: inout Hasher) { SchemaEquality.hash(value, into: &hasher) }
    }

    static func hash(_ value: JSONValue, into hasher: inout Hasher) {
        switch value {
        case .null:
            hasher.combine(0 as UInt8)
        case .bool(let bool):
            hasher.combine(1 as UInt8)
            hasher.combine(bool)
        case .number(let number):
            hasher.combine(2 as UInt8)
            hasher.combine(number)
        case .string(let string):
            hasher.combine(3 as UInt8)
            for byte in string.utf8 { hasher.combine(byte) }
        case .array(let array):
            hasher.combine(4 as UInt8)
            hasher.combine(array.count)
            for element in array { hash(element, into: &hasher) }
        case .object(let object):
            hasher.combine(5 as UInt8)
            var sum = 0
            for member in object.storage {
                var memberHasher = Hasher()
                for byte in member.key.utf8 { memberHasher.combine(byte) }
                hash(member.value, into: &memberHasher)
                sum = sum &+ memberHasher.finalize()
            }
            hasher.combine(object.storage.count)
            hasher.combine(sum)
        }
    }
}

// MARK: - Exact number arithmetic

/// Comparisons and divisibility on `JSONNumber`s by their exact decimal value, so that `1e400`,
/// 20-digit integers and `0.1`-style fractions behave as written rather than as rounded doubles.
enum SchemaNumeric {
    /// -1, 0 or 1 as `number` is below, equal to or above `bound`.
    @inline(__always)
    static func compare(_ number: JSONNumber, _ bound: SchemaNumberBound) -> Int {
        if let integer = bound.integer, let value = number.plainInteger {
            return value < integer ? -1 : (value > integer ? 1 : 0)
        }
        // Rounding to double is monotonic: a strict inequality between the doubles holds exactly.
        let value = number.doubleValue
        if value < bound.double { return -1 }
        if value > bound.double { return 1 }
        return exactCompare(number, bound.number)
    }

    static func exactCompare(_ a: JSONNumber, _ b: JSONNumber) -> Int {
        var aDigits: [UInt8] = []
        var bDigits: [UInt8] = []
        let aForm = a.decimalForm { aDigits.append($0) }
        let bForm = b.decimalForm { bDigits.append($0) }
        let aSign = aForm.isZero ? 0 : (aForm.negative ? -1 : 1)
        let bSign = bForm.isZero ? 0 : (bForm.negative ? -1 : 1)
        if aSign != bSign { return aSign < bSign ? -1 : 1 }
        if aSign == 0 { return 0 }
        // Same sign: compare magnitudes, then flip for negatives.
        var magnitude = 0
        let aTop = aDigits.count + aForm.exponent
        let bTop = bDigits.count + bForm.exponent
        if aTop != bTop {
            magnitude = aTop < bTop ? -1 : 1
        } else {
            for position in 0..<max(aDigits.count, bDigits.count) {
                let x = position < aDigits.count ? aDigits[position] : 0
                let y = position < bDigits.count ? bDigits[position] : 0
                if x != y {
                    magnitude = x < y ? -1 : 1
                    break
                }
            }
        }
        return aSign > 0 ? magnitude : -magnitude
    }

    /// Whether `number` is an integer multiple of `divisor` (> 0), exactly.
    static func isMultiple(_ number: JSONNumber, of divisor: JSONNumber) -> Bool {
        if let value = number.plainInteger, let step = divisor.plainInteger, step != 0 {
            return value % step == 0
        }
        var valueDigits: [UInt8] = []
        var stepDigits: [UInt8] = []
        let valueForm = number.decimalForm { valueDigits.append($0) }
        let stepForm = divisor.decimalForm { stepDigits.append($0) }
        if valueForm.isZero { return true }
        if stepForm.isZero { return false }
        // number = V·10^a, divisor = S·10^b, V and S without trailing zeros. If a < b, V would have to be
        // a multiple of 10; otherwise the question is whether V·10^(a-b) ≡ 0 (mod S).
        guard valueForm.exponent >= stepForm.exponent else { return false }
        guard stepDigits.count <= 18 else {
            let quotient = number.doubleValue / divisor.doubleValue
            return quotient.isFinite && quotient == quotient.rounded()
        }
        var step: UInt64 = 0
        for digit in stepDigits { step = step * 10 + UInt64(digit) }
        var remainder: UInt64 = 0
        for digit in valueDigits { remainder = (remainder * 10 + UInt64(digit)) % step }
        // remainder · 10^(a-b) mod step, by square-and-multiply.
        var power: UInt64 = 10 % step
        var exponent = valueForm.exponent - stepForm.exponent
        var factor: UInt64 = 1 % step
        while exponent > 0 {
            if exponent & 1 == 1 { factor = mulmod(factor, power, step) }
            power = mulmod(power, power, step)
            exponent >>= 1
        }
        return mulmod(remainder, factor, step) == 0
    }

    @inline(__always)
    static func mulmod(_ a: UInt64, _ b: UInt64, _ modulus: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return modulus.dividingFullWidth((product.high, product.low)).remainder
    }
}

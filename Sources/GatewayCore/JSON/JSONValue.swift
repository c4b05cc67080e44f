// JSONValue.swift: the gateway's own JSON value type.
//
// Foundation's JSONSerialization and Codable cost 10-80 µs per message, far beyond the few-µs budget
// of the hot path (see ARCHITECTURE.md), so the core carries its own small value type. Three choices
// follow from what a gateway needs rather than what a general-purpose JSON library offers:
//
// - Numbers are kept as the exact text that was parsed (`JSONNumber.text`) and written back unchanged,
//   so a proxied `1.0e+2` or a 30-digit integer passes through byte for byte (RFC 8259 §6 leaves
//   precision to implementations; a proxy must not lose it).
// - Objects keep their members in order, so re-serialised messages look like the ones received.
// - Equality is *semantic*: member order is ignored (RFC 8259 §4: "An object is an unordered
//   collection") and numbers compare by mathematical value, so `1`, `1.0` and `1e0` are equal.

/// A JSON value (RFC 8259 §3).
///
/// `==` and `hash(into:)` are semantic: object member order is ignored and numbers are compared by
/// their exact mathematical value.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    // MARK: Accessors

    /// The member named `key` when this is an object, otherwise nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// The element at `index` when this is an array and the index is in bounds, otherwise nil.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let bool) = self { return bool }
        return nil
    }

    /// The value as an `Int` when it is a number that is exactly an integer in `Int`'s range
    /// (`3`, `3.0`, `3e0`; not `3.5`).
    public var intValue: Int? {
        if case .number(let number) = self { return number.intValue }
        return nil
    }

    /// The value as the nearest `Double` when it is a number.
    public var doubleValue: Double? {
        if case .number(let number) = self { return number.doubleValue }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The JSON type's name, for error messages: "null", "boolean", "number", "string", "array" or "object".
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    // MARK: Semantic equality

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
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
            hasher.combine(string)
        case .array(let array):
            hasher.combine(4 as UInt8)
            hasher.combine(array)
        case .object(let object):
            hasher.combine(5 as UInt8)
            hasher.combine(object)
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Keeps the literal's member order; a repeated key keeps its first position and its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
}

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - JSONNumber

/// A JSON number, stored as its exact text (RFC 8259 §6) so that it is written back exactly as it was
/// read, whatever its precision or spelling (`1.0e+2` stays `1.0e+2`).
///
/// Equality and hashing use the number's exact mathematical value, computed from the decimal text
/// (no rounding through `Double`): `1 == 1.0 == 1e0 == 10e-1`, `0 == -0`, and two 30-digit integers are
/// equal only if every digit matches. (Exponents beyond ±2^50 saturate; such numbers are not
/// realistically exchanged.)
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The number exactly as written; always valid RFC 8259 §6 number grammar.
    public let text: String

    /// Wraps `text` if it matches the RFC 8259 §6 number grammar exactly
    /// (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`), otherwise nil.
    public init?(text: String) {
        var copy = text
        let valid = copy.withUTF8 { utf8 -> Bool in
            guard !utf8.isEmpty else { return false }
            let end = try? JSONSyntax.numberEnd(in: utf8, from: 0)
            return end == utf8.count
        }
        guard valid else { return nil }
        self.text = text
    }

    /// Wraps text the caller has already validated (the parser, which has just scanned it).
    init(validatedText text: String) {
        self.text = text
    }

    public init(_ value: Int) {
        self.text = String(value)
    }

    /// The shortest text that reads back as exactly `value` (Swift's `description`, e.g. `0.1`, `1e-07`,
    /// `100.0`). JSON has no NaN or infinity (RFC 8259 §6), so `value` must be finite.
    public init(_ value: Double) {
        precondition(value.isFinite, "JSON numbers must be finite (RFC 8259 §6); got \(value)")
        self.text = value.description
    }

    public var description: String { text }

    /// The value as an `Int` when it is mathematically an integer within `Int`'s range
    /// (`3`, `3.0`, `30e-1`, `-9223372036854775808`), otherwise nil (`3.5`, `1e19`).
    public var intValue: Int? {
        if let small = plainInteger { return small }
        var accumulator = 0  // kept ≤ 0 so that Int.min is representable
        var overflow = false
        let form = decimalForm { digit in
            guard !overflow else { return }
            let (shifted, o1) = accumulator.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(Int(digit))
            if o1 || o2 { overflow = true } else { accumulator = next }
        }
        if form.isZero { return 0 }
        guard !overflow, form.exponent >= 0 else { return nil }
        for _ in 0..<form.exponent {
            let (shifted, o) = accumulator.multipliedReportingOverflow(by: 10)
            if o { return nil }
            accumulator = shifted
        }
        if form.negative { return accumulator }
        let (positive, o) = (0).subtractingReportingOverflow(accumulator)
        return o ? nil : positive
    }

    /// The nearest `Double` (correctly rounded; out-of-range magnitudes become ±infinity or ±0).
    public var doubleValue: Double {
        // `Int` to `Double` conversion rounds to nearest, exactly as parsing the text would. Zero is
        // left to the text, which knows its sign (`-0` is -0.0).
        if let small = plainInteger, small != 0 { return Double(small) }
        return Double(text) ?? .nan
    }

    /// True when the value is mathematically an integer, whatever its spelling (`2`, `2.0`, `2e3`, `2.5e1`).
    public var isInteger: Bool {
        let form = decimalForm { _ in }
        return form.isZero || form.exponent >= 0
    }

    /// Fast path for the common spelling: an optional minus and at most 18 digits, no fraction or
    /// exponent. Such a number always fits in an `Int`.
    var plainInteger: Int? {
        var copy = text
        return copy.withUTF8 { utf8 -> Int? in
            guard utf8.count <= 19, !utf8.isEmpty else { return nil }
            var index = 0
            let negative = utf8[0] == UInt8(ascii: "-")
            if negative { index = 1 }
            guard index < utf8.count, utf8.count - index <= 18 else { return nil }
            var value = 0
            while index < utf8.count {
                let digit = utf8[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value &* 10 &+ Int(digit)
                index += 1
            }
            return negative ? -value : value
        }
    }

    /// The number's canonical decimal form `±D × 10^exponent`, where `D` has no leading or trailing
    /// zeros. The significant digits of `D` are passed to `emit` (as values 0-9) most significant first;
    /// this lets equality, hashing and `intValue` share one pass over the text without allocating.
    func decimalForm(_ emit: (UInt8) -> Void) -> (negative: Bool, exponent: Int, isZero: Bool) {
        let exponentLimit = 1 << 50
        var negative = false
        var seenNonZero = false
        var pendingZeros = 0        // zeros after the last non-zero digit, not yet known to be significant
        var fractionDigits = 0
        var inFraction = false
        var inExponent = false
        var exponentNegative = false
        var exponentValue = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"):
                if inExponent { exponentNegative = true } else { negative = true }
            case UInt8(ascii: "+"):
                break
            case UInt8(ascii: "."):
                inFraction = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                inExponent = true
            default:
                let digit = byte &- UInt8(ascii: "0")
                if inExponent {
                    exponentValue = min(exponentValue * 10 + Int(digit), exponentLimit)
                    continue
                }
                if inFraction { fractionDigits += 1 }
                if digit == 0 {
                    if seenNonZero { pendingZeros += 1 }
                } else {
                    for _ in 0..<pendingZeros { emit(0) }
                    pendingZeros = 0
                    seenNonZero = true
                    emit(digit)
                }
            }
        }
        guard seenNonZero else { return (false, 0, true) }
        let exponent = (exponentNegative ? -exponentValue : exponentValue) - fractionDigits + pendingZeros
        return (negative, exponent, false)
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if lhs.text == rhs.text { return true }
        if let a = lhs.plainInteger, let b = rhs.plainInteger { return a == b }
        var lhsDigits: [UInt8] = []
        var rhsDigits: [UInt8] = []
        let a = lhs.decimalForm { lhsDigits.append($0) }
        let b = rhs.decimalForm { rhsDigits.append($0) }
        if a.isZero || b.isZero { return a.isZero == b.isZero }
        return a.negative == b.negative && a.exponent == b.exponent && lhsDigits == rhsDigits
    }

    public func hash(into hasher: inout Hasher) {
        var digitCount = 0
        let form = decimalForm { digit in
            hasher.combine(digit)
            digitCount += 1
        }
        hasher.combine(form.isZero)
        hasher.combine(form.negative)
        hasher.combine(form.exponent)
        hasher.combine(digitCount)
    }
}

// MARK: - JSONObject

/// A JSON object (RFC 8259 §4) that keeps its members in insertion order.
///
/// Keys are unique: setting an existing key replaces its value in place, and a document with a
/// repeated key keeps the key's first position with its last value (what `JSON.parse` does; RFC 8259
/// §4 leaves duplicates' meaning open). Lookup is a linear search, which beats hashing for the handful
/// of members protocol objects have. Equality ignores member order.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// The members, in order. Invariant: no two share a key.
    var storage: [Element]

    public init() {
        storage = []
    }

    /// Builds an object from `members` in order; a repeated key keeps its first position and its last value.
    public init(_ members: [(key: String, value: JSONValue)]) {
        storage = members
        Self.removeDuplicateKeys(&storage)
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    /// Wraps members whose keys the caller knows to be unique.
    init(uniqueMembers: [Element]) {
        storage = uniqueMembers
    }

    /// The members, in order.
    public var members: [(key: String, value: JSONValue)] { storage }

    /// The member's value, or nil. Setting replaces an existing member's value in place, appends a new
    /// member at the end, and setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            for member in storage where member.key == key { return member.value }
            return nil
        }
        set {
            let position = storage.firstIndex { $0.key == key }
            switch (position, newValue) {
            case (let position?, let value?): storage[position].value = value
            case (let position?, nil): storage.remove(at: position)
            case (nil, let value?): storage.append((key: key, value: value))
            case (nil, nil): break
            }
        }
    }

    public var keys: [String] { storage.map(\.key) }
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public func contains(_ key: String) -> Bool {
        storage.contains { $0.key == key }
    }

    public func makeIterator() -> IndexingIterator<[Element]> {
        storage.makeIterator()
    }

    public var underestimatedCount: Int { storage.count }

    /// Restores the unique-key invariant: a repeated key keeps its first position and its last value.
    /// Duplicates are rare, so the check is cheap and only a document that has them pays for a rebuild.
    static func removeDuplicateKeys(_ members: inout [Element]) {
        guard members.count > 1, hasDuplicateKeys(members) else { return }
        var positions: [String: Int] = [:]
        var unique: [Element] = []
        unique.reserveCapacity(members.count)
        for member in members {
            if let position = positions[member.key] {
                unique[position].value = member.value
            } else {
                positions[member.key] = unique.count
                unique.append(member)
            }
        }
        members = unique
    }

    /// Pairwise comparison for small objects (cheaper than hashing every key), a set for large ones.
    static func hasDuplicateKeys(_ members: [Element]) -> Bool {
        if members.count <= 12 {
            for i in 1..<members.count {
                for j in 0..<i where members[i].key == members[j].key { return true }
            }
            return false
        }
        var seen = Set<String>(minimumCapacity: members.count)
        for member in members where !seen.insert(member.key).inserted { return true }
        return false
    }

    /// Order-insensitive: same keys, and equal values for each key.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.storage.count == rhs.storage.count else { return false }
        if lhs.storage.count > 16 {
            var index: [String: JSONValue] = [:]
            index.reserveCapacity(rhs.storage.count)
            for member in rhs.storage { index[member.key] = member.value }
            for member in lhs.storage where index[member.key] != member.value { return false }
            return true
        }
        for (position, member) in lhs.storage.enumerated() {
            // Same-order objects are the common case: try the same position first.
            if rhs.storage[position].key == member.key {
                guard rhs.storage[position].value == member.value else { return false }
            } else {
                guard let other = rhs[member.key], other == member.value else { return false }
            }
        }
        return true
    }

    /// Order-insensitive, consistent with `==`: member hashes are combined with a commutative sum.
    public func hash(into hasher: inout Hasher) {
        var sum = 0
        for member in storage {
            var memberHasher = Hasher()
            memberHasher.combine(member.key)
            memberHasher.combine(member.value)
            sum = sum &+ memberHasher.finalize()
        }
        hasher.combine(storage.count)
        hasher.combine(sum)
    }
}

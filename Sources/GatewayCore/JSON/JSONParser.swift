// JSONParser.swift: a strict, single-pass RFC 8259 parser over raw bytes.
//
// Design, in the order it matters for the hot path:
// - It reads an `UnsafeBufferPointer<UInt8>` with an integer index: no `Character`, no per-byte
//   `String` work. A string's UTF-8 is validated while it is scanned and turned into a `String` in
//   one call; a number's text is validated and sliced, never converted.
// - It is iterative: open arrays and objects live on explicit stacks, so a hostile document of
//   100000 `[` costs no machine stack, and the depth limit is enforced before anything is allocated
//   for the level that exceeds it.
// - It is strict, following RFC 8259 and the JSONTestSuite's reading of it: no comments, no trailing
//   commas, no leading zeros, no NaN or Infinity, no single quotes, no unescaped control characters,
//   no invalid UTF-8, no byte order mark, and nothing but whitespace after the value.
//
// `scan` validates a whole document with the same rules but materialises only the top level, as
// byte ranges, so a gateway can route on a message's envelope and splice its large members
// (`params`, `result`) into another message without parsing or re-serialising them.

/// Why a document was rejected, and where (a byte offset into the input).
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input ended inside a value.
        case unexpectedEnd
        /// A byte that cannot start or continue a value here.
        case unexpectedCharacter
        /// A number that breaks RFC 8259 §6 grammar (`01`, `1.`, `-`, `1e`).
        case invalidNumber
        /// An unescaped control character (U+0000 to U+001F) inside a string (RFC 8259 §7).
        case invalidString
        /// A backslash not followed by one of the escapes of RFC 8259 §7.
        case invalidEscape
        /// Bytes inside a string that are not well-formed UTF-8 (RFC 8259 §8.1, RFC 3629).
        case invalidUTF8
        /// Arrays and objects nested more than `limit` levels deep (RFC 8259 §9 allows the limit).
        case depthLimitExceeded(limit: Int)
        /// Something other than whitespace after the top-level value.
        case trailingCharacters
        /// No value at all: the input is empty or only whitespace.
        case emptyInput
    }

    public let kind: Kind
    /// Byte offset into the input where the problem was found.
    public let offset: Int
    /// The offending byte, kept for the message of `unexpectedCharacter`; not part of equality.
    let byte: UInt8?

    public init(kind: Kind, offset: Int) {
        self.init(kind: kind, offset: offset, byte: nil)
    }

    init(kind: Kind, offset: Int, byte: UInt8?) {
        self.kind = kind
        self.offset = offset
        self.byte = byte
    }

    public static func == (lhs: JSONParseError, rhs: JSONParseError) -> Bool {
        lhs.kind == rhs.kind && lhs.offset == rhs.offset
    }

    public var description: String {
        switch kind {
        case .unexpectedEnd:
            return "unexpected end of JSON input at byte \(offset)"
        case .unexpectedCharacter:
            guard let byte else { return "unexpected character at byte \(offset)" }
            if byte >= 0x21 && byte < 0x7F {
                return "unexpected character '\(Character(Unicode.Scalar(byte)))' at byte \(offset)"
            }
            let hex = String(byte, radix: 16, uppercase: true)
            return "unexpected byte 0x\(hex.count == 1 ? "0" + hex : hex) at byte \(offset)"
        case .invalidNumber:
            return "invalid number at byte \(offset)"
        case .invalidString:
            return "unescaped control character in string at byte \(offset)"
        case .invalidEscape:
            return "invalid escape sequence in string at byte \(offset)"
        case .invalidUTF8:
            return "invalid UTF-8 in string at byte \(offset)"
        case .depthLimitExceeded(let limit):
            return "JSON nested deeper than the limit of \(limit)"
        case .trailingCharacters:
            return "unexpected data after the JSON value at byte \(offset)"
        case .emptyInput:
            return "empty JSON input"
        }
    }
}

/// The top level of a document, as `JSONParser.scan` leaves it: byte ranges of raw value text.
public enum JSONScan: Sendable {
    /// A top-level object: its members in document order (a repeated key appears each time it occurs).
    case object([JSONRawMember])
    /// A top-level array: the byte range of each element.
    case array([Range<Int>])
    /// Any other valid top-level value.
    case scalar
}

/// One top-level object member found by `JSONParser.scan`: its decoded key, and the byte range of its
/// value's raw text (from its first byte to its last, without surrounding whitespace).
public struct JSONRawMember: Sendable, Equatable {
    public let key: String
    public let range: Range<Int>

    public init(key: String, range: Range<Int>) {
        self.key = key
        self.range = range
    }
}

/// Entry points of the parser. All of them accept exactly RFC 8259 JSON with any top-level value
/// (RFC 8259 §2), surrounded by optional whitespace (space, tab, line feed, carriage return).
public enum JSONParser {
    /// The gateway's default nesting limit (`limits.max_json_depth`).
    public static let defaultMaxDepth = 64

    /// Parses a complete document. `maxDepth` counts nested arrays and objects: a top-level array is
    /// depth 1, and a limit of 64 accepts 64 nested arrays and rejects 65.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        var reader = JSONReader(bytes, maxDepth: maxDepth)
        return try reader.parseDocument()
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try parse(raw, maxDepth: maxDepth) }
        }.get()
    }

    /// Parses the slice's bytes; byte offsets in errors count from the slice's first byte.
    public static func parse(
        _ bytes: ArraySlice<UInt8>, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try parse(raw, maxDepth: maxDepth) }
        }.get()
    }

    /// Parses the string's UTF-8; byte offsets in errors refer to `string.utf8`.
    public static func parse(_ string: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var string = string
        return try string.withUTF8 { utf8 in
            Result { () throws(JSONParseError) in try parse(UnsafeRawBufferPointer(utf8), maxDepth: maxDepth) }
        }.get()
    }

    /// Shallow scan of a document: the WHOLE document is validated (same rules and depth limit as
    /// `parse`), but only the top level is materialised: for an object, each member's key and the byte
    /// range of its raw value text within `bytes` (so callers can splice raw values, e.g. a large
    /// `result`, without re-serialising them).
    public static func scan(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONScan {
        var reader = JSONReader(bytes, maxDepth: maxDepth)
        return try reader.scanDocument()
    }

    public static func scan(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONScan {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) in try scan(raw, maxDepth: maxDepth) }
        }.get()
    }
}

// MARK: - Lexical rules shared by the parser and `JSONNumber`

enum JSONSyntax {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")

    /// Insignificant whitespace, RFC 8259 §2: space, horizontal tab, line feed, carriage return.
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    /// The value of a hexadecimal digit, or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte &- UInt8(ascii: "a") &+ 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte &- UInt8(ascii: "A") &+ 10)
        default: return nil
        }
    }

    /// Scans a number starting at `start` and returns the index just past it. The grammar is
    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    /// A digit directly after a leading zero (`01`) is rejected here rather than left for the caller
    /// to trip over, so the error says "invalid number".
    static func numberEnd(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) throws(JSONParseError) -> Int {
        let count = bytes.count
        var index = start
        if index < count && bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < count else { throw JSONParseError(kind: .invalidNumber, offset: start) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < count && isDigit(bytes[index]) { throw JSONParseError(kind: .invalidNumber, offset: start) }
        } else if isDigit(bytes[index]) {
            index += 1
            while index < count && isDigit(bytes[index]) { index += 1 }
        } else {
            throw JSONParseError(kind: .invalidNumber, offset: start)
        }
        if index < count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < count && isDigit(bytes[index]) else { throw JSONParseError(kind: .invalidNumber, offset: start) }
            while index < count && isDigit(bytes[index]) { index += 1 }
        }
        if index < count && (bytes[index] | 0x20) == UInt8(ascii: "e") {
            index += 1
            if index < count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) { index += 1 }
            guard index < count && isDigit(bytes[index]) else { throw JSONParseError(kind: .invalidNumber, offset: start) }
            while index < count && isDigit(bytes[index]) { index += 1 }
        }
        return index
    }

    /// True when any of the 8 bytes in `word` is a quote, a backslash, a control character or
    /// non-ASCII, i.e. when a string scan must look at them one by one. Bytewise SWAR tests
    /// ("has zero byte" / "has byte less than n"): exact about *whether* a byte matches, which is all
    /// the fast path needs.
    @inline(__always)
    static func needsAttention(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let quotes = word ^ (ones &* UInt64(quote))
        let backslashes = word ^ (ones &* UInt64(backslash))
        let hasControl = (word &- ones &* 0x20) & ~word
        let hasQuote = (quotes &- ones) & ~quotes
        let hasBackslash = (backslashes &- ones) & ~backslashes
        return (hasControl | hasQuote | hasBackslash | word) & highBits != 0
    }
}

// MARK: - Reader

/// The parser's state over one input buffer.
struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0
    /// Reused for decoding strings that contain escapes.
    private var scratch: [UInt8] = []
    /// Open containers while skipping a value (true: object), reused across `skipValue` calls.
    private var openContainers: [Bool] = []

    /// A container being built by `parseValue`: where its elements start on the shared stack of
    /// pending members, and for an object the key of the member whose value is being parsed.
    private struct Frame {
        var isObject: Bool
        var start: Int
        var key = ""
    }

    init(_ raw: UnsafeRawBufferPointer, maxDepth: Int) {
        // JSON input is bytes; whoever filled this memory (an `[UInt8]`, a `String`'s UTF-8, a network
        // buffer) did so as `UInt8`, so viewing it as such is sound.
        self.bytes = raw.assumingMemoryBound(to: UInt8.self)
        self.maxDepth = maxDepth
    }

    // MARK: Errors

    /// `unexpectedCharacter` for the byte at `offset`, or `unexpectedEnd` when the input ran out.
    private func unexpected(at offset: Int) -> JSONParseError {
        guard offset < bytes.count else { return JSONParseError(kind: .unexpectedEnd, offset: offset) }
        return JSONParseError(kind: .unexpectedCharacter, offset: offset, byte: bytes[offset])
    }

    private func depthError(at offset: Int) -> JSONParseError {
        JSONParseError(kind: .depthLimitExceeded(limit: maxDepth), offset: offset)
    }

    // MARK: Tokens

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < bytes.count && JSONSyntax.isWhitespace(bytes[index]) { index += 1 }
    }

    /// Consumes `literal` (`true`, `false` or `null`) at the current index.
    @inline(__always)
    private mutating func consumeLiteral(_ literal: StaticString) throws(JSONParseError) {
        let expected = literal.utf8Start
        for offset in 0..<literal.utf8CodeUnitCount {
            let position = index + offset
            guard position < bytes.count, bytes[position] == expected[offset] else { throw unexpected(at: position) }
        }
        index += literal.utf8CodeUnitCount
    }

    /// Consumes a number at the current index and returns its text.
    @inline(__always)
    private mutating func readNumber() throws(JSONParseError) -> JSONNumber {
        let start = index
        index = try JSONSyntax.numberEnd(in: bytes, from: start)
        return JSONNumber(validatedText: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
    }

    /// Scans the string whose opening quote is at the current index and leaves the index after its
    /// closing quote. Validates everything RFC 8259 §7 and §8.1 require: no unescaped control
    /// characters, only the defined escapes, well-formed UTF-8. Returns the range of the content
    /// between the quotes and whether it contains escapes (if not, the bytes are the string).
    private mutating func scanString() throws(JSONParseError) -> (content: Range<Int>, hasEscapes: Bool) {
        let start = index + 1
        let count = bytes.count
        var position = start
        var hasEscapes = false
        while true {
            // Fast path: 8 plain ASCII bytes at a time, then byte by byte up to the next special one.
            if let base = bytes.baseAddress {
                let raw = UnsafeRawPointer(base)
                while position &+ 8 <= count,
                    !JSONSyntax.needsAttention(raw.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                {
                    position &+= 8
                }
            }
            while position < count {
                let byte = bytes[position]
                guard byte >= 0x20, byte < 0x80, byte != JSONSyntax.quote, byte != JSONSyntax.backslash else { break }
                position &+= 1
            }
            guard position < count else { throw JSONParseError(kind: .unexpectedEnd, offset: position) }
            let byte = bytes[position]
            if byte == JSONSyntax.quote {
                index = position + 1
                return (start..<position, hasEscapes)
            } else if byte == JSONSyntax.backslash {
                hasEscapes = true
                position = try escapeEnd(at: position)
            } else if byte < 0x20 {
                throw JSONParseError(kind: .invalidString, offset: position)
            } else {
                position = try utf8SequenceEnd(at: position)
            }
        }
    }

    /// Validates the escape whose backslash is at `position` (RFC 8259 §7) and returns the index after it.
    private func escapeEnd(at position: Int) throws(JSONParseError) -> Int {
        guard position + 1 < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: position + 1) }
        switch bytes[position + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"),
            UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return position + 2
        case UInt8(ascii: "u"):
            for offset in 2..<6 {
                guard position + offset < bytes.count else {
                    throw JSONParseError(kind: .unexpectedEnd, offset: position + offset)
                }
                guard JSONSyntax.hexValue(bytes[position + offset]) != nil else {
                    throw JSONParseError(kind: .invalidEscape, offset: position)
                }
            }
            return position + 6
        default:
            throw JSONParseError(kind: .invalidEscape, offset: position)
        }
    }

    /// Validates the multi-byte UTF-8 sequence starting at `position` against RFC 3629 §4 (no overlong
    /// forms, no surrogates, nothing above U+10FFFF) and returns the index after it.
    private func utf8SequenceEnd(at position: Int) throws(JSONParseError) -> Int {
        let lead = bytes[position]
        let continuationCount: Int
        var secondLow: UInt8 = 0x80
        var secondHigh: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: continuationCount = 1
        case 0xE0: continuationCount = 2; secondLow = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: continuationCount = 2
        case 0xED: continuationCount = 2; secondHigh = 0x9F
        case 0xF0: continuationCount = 3; secondLow = 0x90
        case 0xF1...0xF3: continuationCount = 3
        case 0xF4: continuationCount = 3; secondHigh = 0x8F
        default: throw JSONParseError(kind: .invalidUTF8, offset: position)
        }
        for offset in 1...continuationCount {
            guard position + offset < bytes.count else {
                throw JSONParseError(kind: .unexpectedEnd, offset: position + offset)
            }
            let byte = bytes[position + offset]
            let low = offset == 1 ? secondLow : 0x80
            let high = offset == 1 ? secondHigh : 0xBF
            guard byte >= low && byte <= high else { throw JSONParseError(kind: .invalidUTF8, offset: position) }
        }
        return position + continuationCount + 1
    }

    /// Reads the string at the current index into a `String`.
    private mutating func readString() throws(JSONParseError) -> String {
        let (content, hasEscapes) = try scanString()
        if !hasEscapes {
            // Already validated as UTF-8 by `scanString`, so decoding repairs nothing.
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[content]), as: UTF8.self)
        }
        return decodeEscapes(in: content)
    }

    /// Decodes the content of a string that `scanString` has validated and found to contain escapes.
    /// `\uXXXX` escapes are UTF-16 code units (RFC 8259 §7): a high surrogate followed by an escaped
    /// low surrogate is one character; an unpaired surrogate becomes U+FFFD, since a Swift `String`
    /// cannot hold it.
    private mutating func decodeEscapes(in content: Range<Int>) -> String {
        scratch.removeAll(keepingCapacity: true)
        var position = content.lowerBound
        var runStart = position
        while position < content.upperBound {
            guard bytes[position] == JSONSyntax.backslash else {
                position += 1
                continue
            }
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position]))
            let escape = bytes[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hexQuad(at: position)
                position += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    if position + 6 <= content.upperBound, bytes[position] == JSONSyntax.backslash,
                        bytes[position + 1] == UInt8(ascii: "u"),
                        case let low = hexQuad(at: position + 2), (0xDC00...0xDFFF).contains(low)
                    {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        position += 6
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                appendUTF8(scalar)
            default:
                scratch.append(escape)  // `"`, `\` and `/` stand for themselves
            }
            runStart = position
        }
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<content.upperBound]))
        return String(decoding: scratch, as: UTF8.self)
    }

    /// The four hex digits at `position`, already validated by `escapeEnd`.
    private func hexQuad(at position: Int) -> UInt32 {
        var value: UInt32 = 0
        for offset in 0..<4 {
            value = value << 4 | (JSONSyntax.hexValue(bytes[position + offset]) ?? 0)
        }
        return value
    }

    /// Appends a Unicode scalar value (never a surrogate) to `scratch` as UTF-8.
    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// Consumes an object member's key and the `:` after it (RFC 8259 §4). Expects the index at the
    /// key's opening quote (whitespace already skipped).
    private mutating func readKey() throws(JSONParseError) -> String {
        guard index < bytes.count, bytes[index] == JSONSyntax.quote else { throw unexpected(at: index) }
        let key = try readString()
        try consumeNameSeparator()
        return key
    }

    /// Like `readKey` without materialising the key.
    private mutating func skipKey() throws(JSONParseError) {
        guard index < bytes.count, bytes[index] == JSONSyntax.quote else { throw unexpected(at: index) }
        _ = try scanString()
        try consumeNameSeparator()
    }

    private mutating func consumeNameSeparator() throws(JSONParseError) {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw unexpected(at: index) }
        index += 1
    }

    // MARK: Documents

    /// Parses one value surrounded by optional whitespace, with nothing else after it.
    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError(kind: .emptyInput, offset: index) }
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw JSONParseError(kind: .trailingCharacters, offset: index) }
        return value
    }

    /// Parses one value, iteratively. The elements of every open container wait on one shared stack
    /// (`PendingMembers`); when a container closes, its elements are moved off the top of the stack into
    /// its array in one go. Each loop iteration reads one value's first token: a scalar is complete at
    /// once, an empty container too; a non-empty container opens a frame and the loop continues with its
    /// first element. After a complete value, the inner loop consumes `,` (on to the next element) or
    /// closing brackets (each completing a container, itself a value).
    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        var frames: [Frame] = []
        frames.reserveCapacity(8)
        var pending = PendingMembers(capacity: 16)
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: index) }
            var value: JSONValue
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard frames.count < maxDepth else { throw depthError(at: index) }
                index += 1
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    value = .object(JSONObject())
                } else {
                    frames.append(Frame(isObject: true, start: pending.count, key: try readKey()))
                    continue
                }
            case UInt8(ascii: "["):
                guard frames.count < maxDepth else { throw depthError(at: index) }
                index += 1
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    value = .array([])
                } else {
                    frames.append(Frame(isObject: false, start: pending.count))
                    continue
                }
            case JSONSyntax.quote:
                value = .string(try readString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try readNumber())
            case UInt8(ascii: "t"):
                try consumeLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try consumeLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try consumeLiteral("null")
                value = .null
            default:
                throw unexpected(at: index)
            }

            // `value` is complete: attach it to the innermost open container, closing containers as
            // long as their closing bracket follows.
            while let frame = frames.last {
                pending.append(key: frame.key, value: value)
                skipWhitespace()
                guard index < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: index) }
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: ",") {
                    if frame.isObject {
                        skipWhitespace()
                        frames[frames.count - 1].key = try readKey()
                    }
                    break
                } else if frame.isObject && byte == UInt8(ascii: "}") {
                    var members = pending.removeMembers(from: frame.start)
                    JSONObject.removeDuplicateKeys(&members)
                    value = .object(JSONObject(uniqueMembers: members))
                    frames.removeLast()
                } else if !frame.isObject && byte == UInt8(ascii: "]") {
                    value = .array(pending.removeValues(from: frame.start))
                    frames.removeLast()
                } else {
                    throw unexpected(at: index - 1)
                }
            }
            if frames.isEmpty { return value }
        }
    }

    /// Validates one value without building it, iteratively like `parseValue`; `depth` is the number
    /// of containers already open around it.
    private mutating func skipValue(depth: Int) throws(JSONParseError) {
        openContainers.removeAll(keepingCapacity: true)
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: index) }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth + openContainers.count < maxDepth else { throw depthError(at: index) }
                index += 1
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
                    index += 1
                } else {
                    openContainers.append(true)
                    try skipKey()
                    continue
                }
            case UInt8(ascii: "["):
                guard depth + openContainers.count < maxDepth else { throw depthError(at: index) }
                index += 1
                skipWhitespace()
                if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
                    index += 1
                } else {
                    openContainers.append(false)
                    continue
                }
            case JSONSyntax.quote:
                _ = try scanString()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                index = try JSONSyntax.numberEnd(in: bytes, from: index)
            case UInt8(ascii: "t"):
                try consumeLiteral("true")
            case UInt8(ascii: "f"):
                try consumeLiteral("false")
            case UInt8(ascii: "n"):
                try consumeLiteral("null")
            default:
                throw unexpected(at: index)
            }

            // A value is complete: continue or close the innermost open containers.
            while let isObject = openContainers.last {
                skipWhitespace()
                guard index < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: index) }
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: ",") {
                    if isObject {
                        skipWhitespace()
                        try skipKey()
                    }
                    break
                } else if byte == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    openContainers.removeLast()
                } else {
                    throw unexpected(at: index - 1)
                }
            }
            if openContainers.isEmpty { return }
        }
    }

    /// Validates a whole document, materialising only the top level (see `JSONParser.scan`).
    mutating func scanDocument() throws(JSONParseError) -> JSONScan {
        skipWhitespace()
        guard index < bytes.count else { throw JSONParseError(kind: .emptyInput, offset: index) }
        let result: JSONScan
        switch bytes[index] {
        case UInt8(ascii: "{"):
            guard maxDepth >= 1 else { throw depthError(at: index) }
            index += 1
            var members: [JSONRawMember] = []
            try scanElements(closingWith: UInt8(ascii: "}")) { reader throws(JSONParseError) in
                let key = try reader.readKey()
                reader.skipWhitespace()
                let start = reader.index
                try reader.skipValue(depth: 1)
                members.append(JSONRawMember(key: key, range: start..<reader.index))
            }
            result = .object(members)
        case UInt8(ascii: "["):
            guard maxDepth >= 1 else { throw depthError(at: index) }
            index += 1
            var elements: [Range<Int>] = []
            try scanElements(closingWith: UInt8(ascii: "]")) { reader throws(JSONParseError) in
                let start = reader.index
                try reader.skipValue(depth: 1)
                elements.append(start..<reader.index)
            }
            result = .array(elements)
        default:
            try skipValue(depth: 0)
            result = .scalar
        }
        skipWhitespace()
        guard index == bytes.count else { throw JSONParseError(kind: .trailingCharacters, offset: index) }
        return result
    }

    /// The comma-separated elements of the top-level container whose opening bracket has just been
    /// consumed, through its closing bracket. `element` is called at each element's first byte.
    private mutating func scanElements(
        closingWith closer: UInt8, _ element: (inout JSONReader) throws(JSONParseError) -> Void
    ) throws(JSONParseError) {
        skipWhitespace()
        if index < bytes.count && bytes[index] == closer {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard index < bytes.count else { throw JSONParseError(kind: .unexpectedEnd, offset: index) }
            let byte = bytes[index]
            index += 1
            if byte == closer { return }
            guard byte == UInt8(ascii: ",") else { throw unexpected(at: index - 1) }
        }
    }
}

/// The elements of all open containers while `JSONReader.parseValue` runs, innermost last; array
/// elements carry an empty key. When a container closes, its elements are *moved* into its array,
/// which spares a retain and a release per element compared with copying a slice of an `Array` and
/// then truncating it (`Array` cannot give up elements without copying them). Noncopyable, so the
/// storage has exactly one owner and `deinit` frees whatever is left when parsing throws.
private struct PendingMembers: ~Copyable {
    private var base: UnsafeMutablePointer<JSONObject.Element>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.base = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    mutating func append(key: String, value: JSONValue) {
        if count == capacity {
            let newBase = UnsafeMutablePointer<JSONObject.Element>.allocate(capacity: capacity * 2)
            newBase.moveInitialize(from: base, count: count)
            base.deallocate()
            base = newBase
            capacity *= 2
        }
        (base + count).initialize(to: (key: key, value: value))
        count += 1
    }

    /// Removes the members from `start` on, returning them in order.
    mutating func removeMembers(from start: Int) -> [JSONObject.Element] {
        let source = base + start
        let moved = count - start
        count = start
        return Array(unsafeUninitializedCapacity: moved) { buffer, initialized in
            if let destination = buffer.baseAddress { destination.moveInitialize(from: source, count: moved) }
            initialized = moved
        }
    }

    /// Removes the members from `start` on, returning their values in order (their keys are empty).
    mutating func removeValues(from start: Int) -> [JSONValue] {
        let source = base + start
        let moved = count - start
        count = start
        return Array(unsafeUninitializedCapacity: moved) { buffer, initialized in
            for offset in 0..<moved {
                buffer.initializeElement(at: offset, to: (source + offset).move().value)
            }
            initialized = moved
        }
    }
}

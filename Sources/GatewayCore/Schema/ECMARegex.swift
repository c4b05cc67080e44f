// ECMARegex.swift: the regular expressions of JSON Schema's `pattern`, `patternProperties` and
// `format: "regex"`.
//
// JSON Schema patterns are ECMA-262 regular expressions (2020-12 Validation §6.3.3, §4.3), and the
// official test suite checks the ECMA-262 readings that other engines get wrong: `\d` and `\w` are
// ASCII-only, `\s` is Unicode whitespace, `$` does not match before a trailing newline, `.` and
// quantifiers work on code points (the `u` flag's semantics), `\cX` is a control escape and `\a` is an
// error. Swift `Regex` and NSRegularExpression (ICU) differ on several of those and cost 0.3 to 1 µs per
// match even for `^[0-9]{5}$`, so patterns are compiled here, once, into a small program for a
// backtracking machine that runs directly over the string's UTF-8 (no copy, no per-match allocation
// beyond two reused arrays).
//
// Supported syntax (ECMA-262 with the `u` flag, plus a few lenient readings from Annex B that real tool
// schemas rely on): alternation; greedy and lazy `* + ? {n} {n,} {n,m}`; capturing, named and
// non-capturing groups; backreferences `\1` and `\k<name>`; lookahead and (variable-width) lookbehind;
// `^ $ \b \B`; classes with ranges, `[^...]`, `[]` and `[^]`; `\d \D \w \W \s \S`; Unicode property
// escapes `\p{...}`/`\P{...}` (general categories, common binary properties, scripts); escapes
// `\t \n \v \f \r \0 \cX \xHH \uHHHH \u{H...}` and surrogate pairs. Lenient: a lone `]`, `{` or `}`
// is a literal, and an escaped ASCII punctuation character is that character.
// Rejected: inline flags `(?i)`, Python's `(?P<...>)`, comments `(?#...)`, unknown letter escapes
// such as `\a`, backreferences to missing groups, reversed ranges.
//
// Matching is a search (the pattern may match anywhere, JSON Schema Validation §6.3.3). A step budget
// bounds catastrophic backtracking: a pattern that exhausts it on an input is reported as not matching,
// so a hostile input costs at most a few milliseconds.

import Foundation

struct ECMARegexError: Error, Sendable, Equatable {
    let message: String
}

/// A compiled ECMA-262 pattern. Immutable and thread-safe.
struct ECMARegex: Sendable {
    let source: String
    let program: ECMARegexProgram

    /// Steps one search may take before it gives up (reported as "no match"): about 10 ms.
    static let stepBudget = 1_000_000

    init(_ source: String) throws(ECMARegexError) {
        self.source = source
        var parser = ECMARegexParser(Array(source.unicodeScalars))
        let tree = try parser.parsePattern()
        var compiler = ECMARegexCompiler(classes: parser.classes, groupCount: parser.groupCount, usesCaptures: parser.hasBackreferences)
        program = compiler.compile(tree)
    }

    /// True when the pattern matches somewhere in `string`.
    func matches(_ string: String) -> Bool {
        var scratch = ECMARegexScratch()
        return matches(string, scratch: &scratch)
    }

    /// Same, reusing `scratch`'s buffers across calls.
    func matches(_ string: String, scratch: inout ECMARegexScratch) -> Bool {
        guard scratch.budget > 0 else { return false }
        var string = string
        return string.withUTF8 { utf8 in
            var machine = ECMARegexMachine(program: program, input: utf8, scratch: &scratch)
            let found = machine.search()
            scratch = machine.takeScratch()
            return found
        }
    }
}

/// Buffers a match reuses (the backtrack stack and the registers), and the steps left to all the
/// searches that share it: one validation shares one scratch, so however many strings an instance
/// holds, its patterns cost at most `budget` steps in all (then every search reports "no match").
struct ECMARegexScratch {
    var stack: [ECMARegexMachine.Entry] = []
    var registers: [Int] = []
    var budget: Int

    init(budget: Int = ECMARegex.stepBudget) {
        self.budget = budget
    }
}

// MARK: - Syntax tree

indirect enum ECMARegexNode: Sendable {
    case empty
    case char(UInt32)
    case any
    case set(Int)
    case sequence([ECMARegexNode])
    case alternation([ECMARegexNode])
    case group(ECMARegexNode, capture: Int?)
    case quantified(ECMARegexNode, min: Int, max: Int?, greedy: Bool, firstGroup: Int, groupEnd: Int)
    case inputStart
    case inputEnd
    case wordBoundary(negated: Bool)
    case look(ECMARegexNode, ahead: Bool, negated: Bool)
    case backreference(Int)
}

// MARK: - Character sets

/// A property test of `\p{...}`.
enum ECMARegexProperty: Sendable, Equatable {
    /// A set of general categories, as a bit mask over `ECMARegexProperty.categoryIndex`.
    case categories(UInt32)
    case any
    case ascii
    case assigned
    case binary(ECMARegexBinaryProperty)
    /// `Script=` or `Script_Extensions=`: tested with Swift `Regex` (rare; built per test, as `Regex`
    /// is not `Sendable`). Holds the `\p{...}` text for it.
    case script(String)

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        switch self {
        case .categories(let mask):
            return mask & (1 << Self.categoryIndex(scalar.properties.generalCategory)) != 0
        case .any:
            return true
        case .ascii:
            return scalar.value < 0x80
        case .assigned:
            return scalar.properties.generalCategory != .unassigned
        case .binary(let property):
            return property.contains(scalar)
        case .script(let expression):
            guard let regex = try? Regex(expression) else { return false }
            return (try? regex.wholeMatch(in: String(Character(scalar)))) != nil
        }
    }

    static func categoryIndex(_ category: Unicode.GeneralCategory) -> UInt32 {
        switch category {
        case .uppercaseLetter: return 0
        case .lowercaseLetter: return 1
        case .titlecaseLetter: return 2
        case .modifierLetter: return 3
        case .otherLetter: return 4
        case .nonspacingMark: return 5
        case .spacingMark: return 6
        case .enclosingMark: return 7
        case .decimalNumber: return 8
        case .letterNumber: return 9
        case .otherNumber: return 10
        case .connectorPunctuation: return 11
        case .dashPunctuation: return 12
        case .openPunctuation: return 13
        case .closePunctuation: return 14
        case .initialPunctuation: return 15
        case .finalPunctuation: return 16
        case .otherPunctuation: return 17
        case .mathSymbol: return 18
        case .currencySymbol: return 19
        case .modifierSymbol: return 20
        case .otherSymbol: return 21
        case .spaceSeparator: return 22
        case .lineSeparator: return 23
        case .paragraphSeparator: return 24
        case .control: return 25
        case .format: return 26
        case .surrogate: return 27
        case .privateUse: return 28
        case .unassigned: return 29
        @unknown default: return 29
        }
    }

    /// General category names and aliases (UCD PropertyValueAliases), loosely matched: lower-cased,
    /// without `_`, `-` and spaces.
    static let categoryNames: [String: UInt32] = {
        func bits(_ indices: [UInt32]) -> UInt32 { indices.reduce(0) { $0 | (1 << $1) } }
        let table: [([String], [UInt32])] = [
            (["l", "letter"], [0, 1, 2, 3, 4]),
            (["lc", "casedletter"], [0, 1, 2]),
            (["lu", "uppercaseletter"], [0]),
            (["ll", "lowercaseletter"], [1]),
            (["lt", "titlecaseletter"], [2]),
            (["lm", "modifierletter"], [3]),
            (["lo", "otherletter"], [4]),
            (["m", "mark", "combiningmark"], [5, 6, 7]),
            (["mn", "nonspacingmark"], [5]),
            (["mc", "spacingmark"], [6]),
            (["me", "enclosingmark"], [7]),
            (["n", "number"], [8, 9, 10]),
            (["nd", "decimalnumber", "digit"], [8]),
            (["nl", "letternumber"], [9]),
            (["no", "othernumber"], [10]),
            (["p", "punctuation", "punct"], [11, 12, 13, 14, 15, 16, 17]),
            (["pc", "connectorpunctuation"], [11]),
            (["pd", "dashpunctuation"], [12]),
            (["ps", "openpunctuation"], [13]),
            (["pe", "closepunctuation"], [14]),
            (["pi", "initialpunctuation"], [15]),
            (["pf", "finalpunctuation"], [16]),
            (["po", "otherpunctuation"], [17]),
            (["s", "symbol"], [18, 19, 20, 21]),
            (["sm", "mathsymbol"], [18]),
            (["sc", "currencysymbol"], [19]),
            (["sk", "modifiersymbol"], [20]),
            (["so", "othersymbol"], [21]),
            (["z", "separator"], [22, 23, 24]),
            (["zs", "spaceseparator"], [22]),
            (["zl", "lineseparator"], [23]),
            (["zp", "paragraphseparator"], [24]),
            (["c", "other"], [25, 26, 27, 28, 29]),
            (["cc", "control", "cntrl"], [25]),
            (["cf", "format"], [26]),
            (["cs", "surrogate"], [27]),
            (["co", "privateuse"], [28]),
            (["cn", "unassigned"], [29]),
        ]
        var names: [String: UInt32] = [:]
        for (aliases, indices) in table {
            for alias in aliases { names[alias] = bits(indices) }
        }
        return names
    }()

    static func loose(_ name: String) -> String {
        String(name.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// Parses the inside of `\p{...}`.
    static func parse(_ text: String) -> ECMARegexProperty? {
        if let equals = text.firstIndex(of: "=") {
            let name = loose(String(text[..<equals]))
            let value = String(text[text.index(after: equals)...])
            switch name {
            case "generalcategory", "gc":
                return categoryNames[loose(value)].map { .categories($0) }
            case "script", "sc", "scriptextensions", "scx":
                let key = name.hasPrefix("scx") || name.hasPrefix("scriptext") ? "Script_Extensions" : "Script"
                let expression = "\\p{\(key)=\(value)}"
                guard !value.isEmpty, value.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || $0 == "_" }),
                    (try? Regex(expression)) != nil
                else { return nil }
                return .script(expression)
            default:
                return nil
            }
        }
        let name = loose(text)
        if let mask = categoryNames[name] { return .categories(mask) }
        switch name {
        case "any": return .any
        case "ascii": return .ascii
        case "assigned": return .assigned
        default: return ECMARegexBinaryProperty(looseName: name).map { .binary($0) }
        }
    }
}

enum ECMARegexBinaryProperty: Sendable, Equatable {
    case alphabetic, asciiHexDigit, hexDigit, lowercase, uppercase, whiteSpace, ideographic, math, dash
    case diacritic, extender, idStart, idContinue, xidStart, xidContinue, cased, caseIgnorable
    case emoji, emojiPresentation, emojiModifier, emojiModifierBase, noncharacter, defaultIgnorable
    case joinControl, quotationMark, terminalPunctuation, sentenceTerminal, variationSelector
    case patternSyntax, patternWhiteSpace, unifiedIdeograph, softDotted, radical, bidiControl, bidiMirrored
    case alnum, word, xdigit, blank, graph, print

    init?(looseName: String) {
        switch looseName {
        case "alphabetic", "alpha": self = .alphabetic
        case "asciihexdigit", "ahex": self = .asciiHexDigit
        case "hexdigit", "hex": self = .hexDigit
        case "lowercase", "lower": self = .lowercase
        case "uppercase", "upper": self = .uppercase
        case "whitespace", "space", "wspace": self = .whiteSpace
        case "ideographic", "ideo": self = .ideographic
        case "math": self = .math
        case "dash": self = .dash
        case "diacritic", "dia": self = .diacritic
        case "extender", "ext": self = .extender
        case "idstart", "ids": self = .idStart
        case "idcontinue", "idc": self = .idContinue
        case "xidstart", "xids": self = .xidStart
        case "xidcontinue", "xidc": self = .xidContinue
        case "cased": self = .cased
        case "caseignorable", "ci": self = .caseIgnorable
        case "emoji": self = .emoji
        case "emojipresentation", "epres": self = .emojiPresentation
        case "emojimodifier", "emod": self = .emojiModifier
        case "emojimodifierbase", "ebase": self = .emojiModifierBase
        case "noncharactercodepoint", "nchar": self = .noncharacter
        case "defaultignorablecodepoint", "di": self = .defaultIgnorable
        case "joincontrol", "joinc": self = .joinControl
        case "quotationmark", "qmark": self = .quotationMark
        case "terminalpunctuation", "term": self = .terminalPunctuation
        case "sentenceterminal", "sterm": self = .sentenceTerminal
        case "variationselector", "vs": self = .variationSelector
        case "patternsyntax", "patsyn": self = .patternSyntax
        case "patternwhitespace", "patws": self = .patternWhiteSpace
        case "unifiedideograph", "uideo": self = .unifiedIdeograph
        case "softdotted", "sd": self = .softDotted
        case "radical": self = .radical
        case "bidicontrol", "bidic": self = .bidiControl
        case "bidimirrored", "bidim": self = .bidiMirrored
        case "alnum": self = .alnum
        case "word": self = .word
        case "xdigit": self = .xdigit
        case "blank": self = .blank
        case "graph": self = .graph
        case "print": self = .print
        default: return nil
        }
    }

    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let p = scalar.properties
        switch self {
        case .alphabetic: return p.isAlphabetic
        case .asciiHexDigit: return p.isASCIIHexDigit
        case .hexDigit: return p.isHexDigit
        case .lowercase: return p.isLowercase
        case .uppercase: return p.isUppercase
        case .whiteSpace: return p.isWhitespace
        case .ideographic: return p.isIdeographic
        case .math: return p.isMath
        case .dash: return p.isDash
        case .diacritic: return p.isDiacritic
        case .extender: return p.isExtender
        case .idStart: return p.isIDStart
        case .idContinue: return p.isIDContinue
        case .xidStart: return p.isXIDStart
        case .xidContinue: return p.isXIDContinue
        case .cased: return p.isCased
        case .caseIgnorable: return p.isCaseIgnorable
        case .emoji: return p.isEmoji
        case .emojiPresentation: return p.isEmojiPresentation
        case .emojiModifier: return p.isEmojiModifier
        case .emojiModifierBase: return p.isEmojiModifierBase
        case .noncharacter: return p.isNoncharacterCodePoint
        case .defaultIgnorable: return p.isDefaultIgnorableCodePoint
        case .joinControl: return p.isJoinControl
        case .quotationMark: return p.isQuotationMark
        case .terminalPunctuation: return p.isTerminalPunctuation
        case .sentenceTerminal: return p.isSentenceTerminal
        case .variationSelector: return p.isVariationSelector
        case .patternSyntax: return p.isPatternSyntax
        case .patternWhiteSpace: return p.isPatternWhitespace
        case .unifiedIdeograph: return p.isUnifiedIdeograph
        case .softDotted: return p.isSoftDotted
        case .radical: return p.isRadical
        case .bidiControl: return p.isBidiControl
        case .bidiMirrored: return p.isBidiMirrored
        case .alnum: return p.isAlphabetic || p.generalCategory == .decimalNumber
        case .word:
            return p.isAlphabetic || p.generalCategory == .decimalNumber || p.generalCategory == .connectorPunctuation
                || p.isJoinControl || [.nonspacingMark, .spacingMark, .enclosingMark].contains(p.generalCategory)
        case .xdigit: return p.generalCategory == .decimalNumber || p.isHexDigit
        case .blank: return p.generalCategory == .spaceSeparator || scalar == "\t"
        case .graph, .print:
            let excluded: [Unicode.GeneralCategory] = [.control, .surrogate, .unassigned, .spaceSeparator, .lineSeparator, .paragraphSeparator]
            if self == .print && p.generalCategory == .spaceSeparator { return true }
            return !p.isWhitespace && !excluded.contains(p.generalCategory)
        }
    }
}

/// A character class: ranges of code points and property tests, possibly negated.
struct ECMARegexSet: Sendable {
    /// Membership of the 128 ASCII code points, negation already applied.
    let ascii: (UInt64, UInt64)
    /// Sorted, non-overlapping, non-adjacent ranges (before negation).
    let ranges: [ClosedRange<UInt32>]
    /// Property tests (before negation); each has its own negation for `\P{...}`.
    let properties: [(property: ECMARegexProperty, negated: Bool)]
    let negated: Bool

    init(ranges input: [ClosedRange<UInt32>], properties: [(property: ECMARegexProperty, negated: Bool)], negated: Bool) {
        let sorted = input.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<UInt32>] = []
        for range in sorted {
            if let last = merged.last, range.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        self.ranges = merged
        self.properties = properties
        self.negated = negated
        var low: UInt64 = 0
        var high: UInt64 = 0
        for code in UInt32(0)..<128 {
            let scalar = Unicode.Scalar(code)!
            var member = merged.contains { $0.contains(code) }
            if !member { member = properties.contains { $0.property.contains(scalar) != $0.negated } }
            if member != negated {
                if code < 64 { low |= 1 << UInt64(code) } else { high |= 1 << UInt64(code - 64) }
            }
        }
        ascii = (low, high)
    }

    @inline(__always)
    func contains(_ code: UInt32) -> Bool {
        if code < 64 { return ascii.0 & (1 << UInt64(code)) != 0 }
        if code < 128 { return ascii.1 & (1 << UInt64(code - 64)) != 0 }
        return containsSlow(code)
    }

    func containsSlow(_ code: UInt32) -> Bool {
        var low = 0
        var high = ranges.count
        var member = false
        while low < high {
            let middle = (low + high) / 2
            let range = ranges[middle]
            if code < range.lowerBound {
                high = middle
            } else if code > range.upperBound {
                low = middle + 1
            } else {
                member = true
                break
            }
        }
        if !member, !properties.isEmpty, let scalar = Unicode.Scalar(code) {
            member = properties.contains { $0.property.contains(scalar) != $0.negated }
        }
        return member != negated
    }

    /// ECMA-262 `\d`, `\w`, `\s` (WhiteSpace and LineTerminator, §22.2.2.9 CharacterClassEscape).
    static let digitRanges: [ClosedRange<UInt32>] = [0x30...0x39]
    static let wordRanges: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    static let spaceRanges: [ClosedRange<UInt32>] = [
        0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029,
        0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF,
    ]

    static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var result: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
            next = max(next, range.upperBound + 1)
        }
        if next <= 0x10FFFF { result.append(next...0x10FFFF) }
        return result
    }
}

// MARK: - Parser

struct ECMARegexParser {
    let scalars: [Unicode.Scalar]
    var index = 0
    var classes: [ECMARegexSet] = []
    var groupCount = 0
    var groupNames: [String: Int] = [:]
    var hasBackreferences = false
    /// Named backreferences seen before their group (resolved at the end).
    var pendingNames: [String] = []
    var depth = 0
    /// Capturing groups in the whole pattern (counted up front: `\2` may precede group 2).
    let totalGroups: Int
    let declaredNames: Set<String>

    static let maxDepth = 128
    static let maxCount = 1_000_000

    init(_ scalars: [Unicode.Scalar]) {
        self.scalars = scalars
        (totalGroups, declaredNames) = Self.countGroups(scalars)
    }

    /// Counts capturing groups and collects group names, skipping escapes and classes.
    static func countGroups(_ scalars: [Unicode.Scalar]) -> (Int, Set<String>) {
        var count = 0
        var names = Set<String>()
        var i = 0
        var inClass = false
        while i < scalars.count {
            let c = scalars[i]
            if c == "\\" {
                i += 2
                continue
            }
            if inClass {
                if c == "]" { inClass = false }
            } else if c == "[" {
                inClass = true
            } else if c == "(" {
                if i + 1 < scalars.count && scalars[i + 1] == "?" {
                    if i + 2 < scalars.count && scalars[i + 2] == "<" && i + 3 < scalars.count
                        && scalars[i + 3] != "=" && scalars[i + 3] != "!"
                    {
                        count += 1
                        var j = i + 3
                        var name = ""
                        while j < scalars.count && scalars[j] != ">" {
                            name.unicodeScalars.append(scalars[j])
                            j += 1
                        }
                        names.insert(name)
                    }
                } else {
                    count += 1
                }
            }
            i += 1
        }
        return (count, names)
    }

    func error(_ message: String) -> ECMARegexError {
        ECMARegexError(message: message)
    }

    var atEnd: Bool { index >= scalars.count }

    func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    mutating func parsePattern() throws(ECMARegexError) -> ECMARegexNode {
        let node = try parseDisjunction()
        if !atEnd {
            // Only an unbalanced ')' stops the disjunction early.
            throw error("unmatched ')'")
        }
        for name in pendingNames where groupNames[name] == nil {
            throw error("\\k<\(name)> refers to no group named \"\(name)\"")
        }
        return try resolveNames(node)
    }

    /// Replaces named backreferences (stored as negative placeholders) by group numbers.
    func resolveNames(_ node: ECMARegexNode) throws(ECMARegexError) -> ECMARegexNode {
        guard !pendingNames.isEmpty else { return node }
        switch node {
        case .backreference(let number) where number < 0:
            return .backreference(groupNames[pendingNames[-number - 1]] ?? 0)
        case .sequence(let nodes):
            var result: [ECMARegexNode] = []
            for node in nodes { result.append(try resolveNames(node)) }
            return .sequence(result)
        case .alternation(let nodes):
            var result: [ECMARegexNode] = []
            for node in nodes { result.append(try resolveNames(node)) }
            return .alternation(result)
        case .group(let inner, let capture):
            return .group(try resolveNames(inner), capture: capture)
        case .quantified(let inner, let min, let max, let greedy, let first, let end):
            return .quantified(try resolveNames(inner), min: min, max: max, greedy: greedy, firstGroup: first, groupEnd: end)
        case .look(let inner, let ahead, let negated):
            return .look(try resolveNames(inner), ahead: ahead, negated: negated)
        default:
            return node
        }
    }

    mutating func parseDisjunction() throws(ECMARegexError) -> ECMARegexNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw error("groups nested too deeply") }
        var alternatives = [try parseAlternative()]
        while peek() == "|" {
            index += 1
            alternatives.append(try parseAlternative())
        }
        return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
    }

    mutating func parseAlternative() throws(ECMARegexError) -> ECMARegexNode {
        var terms: [ECMARegexNode] = []
        while let c = peek(), c != "|", c != ")" {
            terms.append(try parseTerm())
        }
        switch terms.count {
        case 0: return .empty
        case 1: return terms[0]
        default: return .sequence(terms)
        }
    }

    mutating func parseTerm() throws(ECMARegexError) -> ECMARegexNode {
        let c = peek()!
        let groupsBefore = groupCount
        let atom: ECMARegexNode
        switch c {
        case "^":
            index += 1
            return .inputStart
        case "$":
            index += 1
            return .inputEnd
        case "\\" where peek(1) == "b" || peek(1) == "B":
            index += 2
            return .wordBoundary(negated: scalars[index - 1] == "B")
        case "(":
            if peek(1) == "?" {
                let kind = peek(2)
                if kind == "=" || kind == "!" {
                    index += 3
                    let inner = try parseDisjunction()
                    try expectClose()
                    // Annex B allows a quantifier on a lookahead; it changes nothing useful, so reject it.
                    if let next = peek(), "*+?".unicodeScalars.contains(next) { throw error("nothing to repeat") }
                    return .look(inner, ahead: true, negated: kind == "!")
                }
                if kind == "<" && (peek(3) == "=" || peek(3) == "!") {
                    let negated = peek(3) == "!"
                    index += 4
                    let inner = try parseDisjunction()
                    try expectClose()
                    return .look(inner, ahead: false, negated: negated)
                }
                if kind == ":" {
                    index += 3
                    let inner = try parseDisjunction()
                    try expectClose()
                    atom = .group(inner, capture: nil)
                } else if kind == "<" {
                    index += 3
                    let name = try parseGroupName()
                    guard groupNames[name] == nil else { throw error("duplicate group name \"\(name)\"") }
                    groupCount += 1
                    let number = groupCount
                    groupNames[name] = number
                    let inner = try parseDisjunction()
                    try expectClose()
                    atom = .group(inner, capture: number)
                } else {
                    throw error("invalid group \"(?\(kind.map { String($0) } ?? "")\"")
                }
            } else {
                index += 1
                groupCount += 1
                let number = groupCount
                let inner = try parseDisjunction()
                try expectClose()
                atom = .group(inner, capture: number)
            }
        case ")":
            throw error("unmatched ')'")
        case "[":
            atom = try parseClass()
        case ".":
            index += 1
            atom = .any
        case "*", "+", "?":
            throw error("nothing to repeat")
        case "{":
            if quantifierAhead() { throw error("nothing to repeat") }
            index += 1
            atom = .char(c.value)
        case "\\":
            atom = try parseAtomEscape()
        default:
            index += 1
            atom = .char(c.value)
        }
        return try parseQuantifier(atom, firstGroup: groupsBefore + 1, groupEnd: groupCount + 1)
    }

    mutating func expectClose() throws(ECMARegexError) {
        guard peek() == ")" else { throw error("missing ')'") }
        index += 1
    }

    mutating func parseGroupName() throws(ECMARegexError) -> String {
        var name = ""
        while let c = peek(), c != ">" {
            guard c.properties.isIDContinue || c == "$" || c == "_" else { throw error("invalid group name") }
            name.unicodeScalars.append(c)
            index += 1
        }
        guard peek() == ">", let first = name.unicodeScalars.first,
            first.properties.isIDStart || first == "$" || first == "_"
        else { throw error("invalid group name") }
        index += 1
        return name
    }

    /// Whether `{` at the current index starts a well-formed `{n}`, `{n,}` or `{n,m}`.
    func quantifierAhead() -> Bool {
        var i = index + 1
        var digits = 0
        while i < scalars.count, scalars[i].value >= 0x30 && scalars[i].value <= 0x39 {
            i += 1
            digits += 1
        }
        guard digits > 0, i < scalars.count else { return false }
        if scalars[i] == "}" { return true }
        guard scalars[i] == "," else { return false }
        i += 1
        while i < scalars.count, scalars[i].value >= 0x30 && scalars[i].value <= 0x39 { i += 1 }
        return i < scalars.count && scalars[i] == "}"
    }

    mutating func parseDecimal() -> Int {
        var value = 0
        while let c = peek(), c.value >= 0x30 && c.value <= 0x39 {
            value = min(value * 10 + Int(c.value - 0x30), Self.maxCount)
            index += 1
        }
        return value
    }

    mutating func parseQuantifier(_ atom: ECMARegexNode, firstGroup: Int, groupEnd: Int) throws(ECMARegexError) -> ECMARegexNode {
        guard let c = peek() else { return atom }
        var min: Int
        var max: Int?
        switch c {
        case "*":
            min = 0
            max = nil
            index += 1
        case "+":
            min = 1
            max = nil
            index += 1
        case "?":
            min = 0
            max = 1
            index += 1
        case "{":
            guard quantifierAhead() else { return atom }
            index += 1
            min = parseDecimal()
            max = min
            if peek() == "," {
                index += 1
                max = peek() == "}" ? nil : parseDecimal()
            }
            index += 1  // "}"
            if let max, max < min { throw error("numbers out of order in {} quantifier") }
        default:
            return atom
        }
        var greedy = true
        if peek() == "?" {
            greedy = false
            index += 1
        }
        if let next = peek(), next == "*" || next == "+" || next == "?" || (next == "{" && quantifierAhead()) {
            throw error("nothing to repeat")
        }
        return .quantified(atom, min: min, max: max, greedy: greedy, firstGroup: firstGroup, groupEnd: groupEnd)
    }

    // MARK: Escapes

    mutating func parseAtomEscape() throws(ECMARegexError) -> ECMARegexNode {
        index += 1  // "\"
        guard let c = peek() else { throw error("\\ at end of pattern") }
        switch c {
        case "d", "D", "s", "S", "w", "W", "p", "P":
            let (ranges, properties) = try parseClassEscape()
            classes.append(ECMARegexSet(ranges: ranges, properties: properties, negated: false))
            return .set(classes.count - 1)
        case "k":
            index += 1
            guard peek() == "<" else { throw error("invalid escape \\k") }
            index += 1
            let name = try parseGroupName()
            guard declaredNames.contains(name) else { throw error("\\k<\(name)> refers to no group named \"\(name)\"") }
            hasBackreferences = true
            if let number = groupNames[name] { return .backreference(number) }
            pendingNames.append(name)
            return .backreference(-pendingNames.count)
        case "1"..."9":
            let start = index
            let number = parseDecimal()
            guard number <= totalGroups else {
                index = start
                throw error("invalid escape \\\(c) (there is no group \(number))")
            }
            hasBackreferences = true
            return .backreference(number)
        default:
            return .char(try parseCharacterEscape(inClass: false))
        }
    }

    /// `\d \D \s \S \w \W \p{..} \P{..}` (index at the letter).
    mutating func parseClassEscape() throws(ECMARegexError) -> ([ClosedRange<UInt32>], [(property: ECMARegexProperty, negated: Bool)]) {
        let c = peek()!
        index += 1
        switch c {
        case "d": return (ECMARegexSet.digitRanges, [])
        case "D": return (ECMARegexSet.complement(ECMARegexSet.digitRanges), [])
        case "s": return (ECMARegexSet.spaceRanges, [])
        case "S": return (ECMARegexSet.complement(ECMARegexSet.spaceRanges), [])
        case "w": return (ECMARegexSet.wordRanges, [])
        case "W": return (ECMARegexSet.complement(ECMARegexSet.wordRanges), [])
        default:
            guard peek() == "{" else { throw error("invalid property escape \\\(c)") }
            index += 1
            var text = ""
            while let next = peek(), next != "}" {
                text.unicodeScalars.append(next)
                index += 1
            }
            guard peek() == "}" else { throw error("unterminated property escape \\\(c){") }
            index += 1
            guard let property = ECMARegexProperty.parse(text) else {
                throw error("unknown Unicode property \\\(c){\(text)}")
            }
            return ([], [(property, c == "P")])
        }
    }

    /// A character escape after `\` (index at the character after the backslash); returns the code point.
    mutating func parseCharacterEscape(inClass: Bool) throws(ECMARegexError) -> UInt32 {
        let c = peek()!
        index += 1
        switch c {
        case "t": return 0x09
        case "n": return 0x0A
        case "v": return 0x0B
        case "f": return 0x0C
        case "r": return 0x0D
        case "b" where inClass: return 0x08
        case "-" where inClass: return 0x2D
        case "0":
            if let next = peek(), next.value >= 0x30 && next.value <= 0x39 { throw error("invalid octal escape \\0\(next)") }
            return 0
        case "c":
            guard let letter = peek(), letter.isASCII, letter.properties.isAlphabetic else {
                throw error("invalid control escape \\c")
            }
            index += 1
            return letter.value % 32
        case "x":
            guard let value = parseHex(count: 2) else { throw error("invalid escape \\x") }
            return value
        case "u":
            if peek() == "{" {
                index += 1
                var value: UInt32 = 0
                var digits = 0
                while let next = peek(), let digit = Self.hexDigit(next) {
                    value = value * 16 + digit
                    digits += 1
                    guard value <= 0x10FFFF else { throw error("\\u{...} beyond U+10FFFF") }
                    index += 1
                }
                guard digits > 0, peek() == "}" else { throw error("invalid escape \\u{") }
                index += 1
                return value
            }
            guard let value = parseHex(count: 4) else { throw error("invalid escape \\u") }
            // A surrogate pair written as two escapes is one code point (the `u` flag's reading).
            if value >= 0xD800 && value <= 0xDBFF, peek() == "\\", peek(1) == "u" {
                let save = index
                index += 2
                if let low = parseHex(count: 4), low >= 0xDC00 && low <= 0xDFFF {
                    return 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                }
                index = save
            }
            return value
        default:
            if c.isASCII {
                // Syntax characters and `/` are identity escapes in ECMA-262; other ASCII punctuation is
                // accepted as itself too (Annex B), but letters and digits with no meaning are errors.
                if c.properties.isAlphabetic || (c.value >= 0x30 && c.value <= 0x39) {
                    throw error("invalid escape \\\(c)")
                }
                return c.value
            }
            return c.value
        }
    }

    static func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }

    mutating func parseHex(count: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<count {
            guard let c = peek(offset), let digit = Self.hexDigit(c) else { return nil }
            value = value * 16 + digit
        }
        index += count
        return value
    }

    // MARK: Classes

    enum ClassAtom {
        case char(UInt32)
        case set([ClosedRange<UInt32>], [(property: ECMARegexProperty, negated: Bool)])
    }

    mutating func parseClassAtom() throws(ECMARegexError) -> ClassAtom {
        let c = peek()!
        if c != "\\" {
            index += 1
            return .char(c.value)
        }
        index += 1
        guard let next = peek() else { throw error("\\ at end of pattern") }
        switch next {
        case "d", "D", "s", "S", "w", "W", "p", "P":
            let (ranges, properties) = try parseClassEscape()
            return .set(ranges, properties)
        case "B":
            throw error("invalid escape \\B in a class")
        case "1"..."9":
            throw error("invalid escape \\\(next) in a class")
        default:
            return .char(try parseCharacterEscape(inClass: true))
        }
    }

    mutating func parseClass() throws(ECMARegexError) -> ECMARegexNode {
        index += 1  // "["
        var negated = false
        if peek() == "^" {
            negated = true
            index += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var properties: [(property: ECMARegexProperty, negated: Bool)] = []
        while true {
            guard let c = peek() else { throw error("missing ']'") }
            if c == "]" {
                index += 1
                break
            }
            let first = try parseClassAtom()
            if peek() == "-", let after = peek(1), after != "]" {
                index += 1
                let second = try parseClassAtom()
                guard case .char(let low) = first, case .char(let high) = second else {
                    throw error("invalid character class range")
                }
                guard low <= high else { throw error("range out of order in character class") }
                ranges.append(low...high)
                continue
            }
            switch first {
            case .char(let value): ranges.append(value...value)
            case .set(let more, let props):
                ranges.append(contentsOf: more)
                properties.append(contentsOf: props)
            }
        }
        classes.append(ECMARegexSet(ranges: ranges, properties: properties, negated: negated))
        return .set(classes.count - 1)
    }
}

// MARK: - Program

enum ECMARegexInstruction: Sendable {
    /// Consume one code point equal to the operand (forward, or backward inside a lookbehind).
    case char(UInt32, backward: Bool)
    /// Consume any code point but a line terminator.
    case any(backward: Bool)
    /// Consume a code point of the set.
    case set(Int, backward: Bool)
    /// Try `first`; on backtracking, `second`.
    case split(Int, Int)
    case jump(Int)
    /// `registers[slot] = position`.
    case save(Int)
    case inputStart
    case inputEnd
    case wordBoundary(negated: Bool)
    /// Run the sub-program at `body` from here; continue at `next` if it matches (or, negated, if not).
    case look(body: Int, negated: Bool, next: Int)
    case backreference(Int, backward: Bool)
    /// A quantified single code point (`atom` is the index of a char/any/set instruction; the loop
    /// continues at `atom + 1`).
    case simpleLoop(atom: Int, min: Int, max: Int, greedy: Bool)
    /// General loop: `registers[counter] = 0`.
    case loopInit(counter: Int)
    /// Loop head: decides whether to run the body (at the next instruction) or leave to `exit`.
    case loopHead(counter: Int, start: Int, min: Int, max: Int, greedy: Bool, exit: Int, clearFrom: Int, clearTo: Int)
    /// Loop tail: rejects an empty iteration once `min` is reached, counts it, jumps to `head`.
    case loopTail(counter: Int, start: Int, min: Int, head: Int)
    case match
}

final class ECMARegexProgram: Sendable {
    let code: [ECMARegexInstruction]
    let sets: [ECMARegexSet]
    let registerCount: Int
    /// The pattern begins with `^` on every path: only position 0 can match.
    let anchored: Bool
    /// Every match starts with this ASCII byte (lets the search skip ahead).
    let firstByte: UInt8?

    init(code: [ECMARegexInstruction], sets: [ECMARegexSet], registerCount: Int, anchored: Bool, firstByte: UInt8?) {
        self.code = code
        self.sets = sets
        self.registerCount = registerCount
        self.anchored = anchored
        self.firstByte = firstByte
    }
}

struct ECMARegexCompiler {
    let classes: [ECMARegexSet]
    let groupCount: Int
    let usesCaptures: Bool
    var code: [ECMARegexInstruction] = []
    var registerCount: Int
    var pendingLooks: [(at: Int, node: ECMARegexNode, ahead: Bool)] = []

    init(classes: [ECMARegexSet], groupCount: Int, usesCaptures: Bool) {
        self.classes = classes
        self.groupCount = groupCount
        self.usesCaptures = usesCaptures
        registerCount = usesCaptures ? 2 * (groupCount + 1) : 0
    }

    mutating func compile(_ tree: ECMARegexNode) -> ECMARegexProgram {
        emit(tree, backward: false)
        code.append(.match)
        // Lookaround bodies follow the main program, each ending in `match`.
        while !pendingLooks.isEmpty {
            let pending = pendingLooks.removeFirst()
            let body = code.count
            emit(pending.node, backward: !pending.ahead)
            code.append(.match)
            if case .look(_, let negated, let next) = code[pending.at] {
                code[pending.at] = .look(body: body, negated: negated, next: next)
            }
        }
        return ECMARegexProgram(
            code: code, sets: classes, registerCount: registerCount,
            anchored: Self.isAnchored(tree), firstByte: Self.firstByte(tree, classes: classes))
    }

    static func isAnchored(_ node: ECMARegexNode) -> Bool {
        switch node {
        case .inputStart: return true
        case .sequence(let nodes): return nodes.first.map(isAnchored) ?? false
        case .alternation(let nodes): return nodes.allSatisfy(isAnchored)
        case .group(let inner, _): return isAnchored(inner)
        default: return false
        }
    }

    static func firstByte(_ node: ECMARegexNode, classes: [ECMARegexSet]) -> UInt8? {
        switch node {
        case .char(let c): return c < 0x80 ? UInt8(c) : nil
        case .sequence(let nodes): return nodes.first.flatMap { firstByte($0, classes: classes) }
        case .group(let inner, _): return firstByte(inner, classes: classes)
        case .quantified(let inner, let min, _, _, _, _): return min > 0 ? firstByte(inner, classes: classes) : nil
        default: return nil
        }
    }

    static func canBeEmpty(_ node: ECMARegexNode) -> Bool {
        switch node {
        case .char, .any, .set: return false
        case .sequence(let nodes): return nodes.allSatisfy(canBeEmpty)
        case .alternation(let nodes): return nodes.contains(where: canBeEmpty)
        case .group(let inner, _): return canBeEmpty(inner)
        case .quantified(let inner, let min, _, _, _, _): return min == 0 || canBeEmpty(inner)
        default: return true
        }
    }

    func singleAtom(_ node: ECMARegexNode, backward: Bool) -> ECMARegexInstruction? {
        switch node {
        case .char(let c): return .char(c, backward: backward)
        case .any: return .any(backward: backward)
        case .set(let index): return .set(index, backward: backward)
        case .group(let inner, let capture) where capture == nil || !usesCaptures: return singleAtom(inner, backward: backward)
        default: return nil
        }
    }

    mutating func emit(_ node: ECMARegexNode, backward: Bool) {
        switch node {
        case .empty:
            break
        case .char(let c):
            code.append(.char(c, backward: backward))
        case .any:
            code.append(.any(backward: backward))
        case .set(let index):
            code.append(.set(index, backward: backward))
        case .sequence(let nodes):
            for node in backward ? nodes.reversed() : nodes { emit(node, backward: backward) }
        case .alternation(let nodes):
            // split L1, next; L1: a; jump end; next: split L2, next2; ...
            var jumps: [Int] = []
            for (position, alternative) in nodes.enumerated() {
                if position < nodes.count - 1 {
                    let split = code.count
                    code.append(.split(0, 0))
                    emit(alternative, backward: backward)
                    jumps.append(code.count)
                    code.append(.jump(0))
                    code[split] = .split(split + 1, code.count)
                } else {
                    emit(alternative, backward: backward)
                }
            }
            for jump in jumps { code[jump] = .jump(code.count) }
        case .group(let inner, let capture):
            if let capture, usesCaptures {
                code.append(.save(2 * capture + (backward ? 1 : 0)))
                emit(inner, backward: backward)
                code.append(.save(2 * capture + (backward ? 0 : 1)))
            } else {
                emit(inner, backward: backward)
            }
        case .quantified(let inner, let min, let maxOrNil, let greedy, let firstGroup, let groupEnd):
            let max = maxOrNil ?? Int.max
            if max == 0 { break }
            let hasCaptures = usesCaptures && groupEnd > firstGroup
            if !hasCaptures, let atom = singleAtom(inner, backward: backward) {
                let loop = code.count
                code.append(.simpleLoop(atom: loop + 1, min: min, max: max, greedy: greedy))
                code.append(atom)
                return
            }
            if min == 1 && max == 1 {
                emit(inner, backward: backward)
                return
            }
            let counter = registerCount
            let start = registerCount + 1
            registerCount += 2
            code.append(.loopInit(counter: counter))
            let head = code.count
            code.append(.jump(0))  // placeholder for loopHead
            emit(inner, backward: backward)
            code.append(.loopTail(counter: counter, start: start, min: Self.canBeEmpty(inner) ? min : Int.max, head: head))
            code[head] = .loopHead(
                counter: counter, start: start, min: min, max: max, greedy: greedy, exit: code.count,
                clearFrom: hasCaptures ? 2 * firstGroup : 0, clearTo: hasCaptures ? 2 * groupEnd : 0)
        case .inputStart:
            code.append(.inputStart)
        case .inputEnd:
            code.append(.inputEnd)
        case .wordBoundary(let negated):
            code.append(.wordBoundary(negated: negated))
        case .look(let inner, let ahead, let negated):
            let at = code.count
            code.append(.look(body: 0, negated: negated, next: at + 1))
            pendingLooks.append((at, inner, ahead))
        case .backreference(let number):
            code.append(.backreference(number, backward: backward))
        }
    }
}

// MARK: - Machine

struct ECMARegexMachine {
    /// A backtrack stack entry. `kind`: 0 branch (resume at `a` with position `b`); 1 restore
    /// (`registers[a] = b`); 2 greedy simple loop (`a`: loop pc, `b`: position, `c`: lowest position);
    /// 3 lazy simple loop (`a`: loop pc, `b`: position, `c`: iterations so far).
    struct Entry {
        var kind: Int
        var a: Int
        var b: Int
        var c: Int
    }

    let program: ECMARegexProgram
    let code: [ECMARegexInstruction]
    let input: UnsafeBufferPointer<UInt8>
    var stack: [Entry]
    var registers: [Int]
    var steps = 0
    /// The most steps this search may take.
    let stepLimit: Int
    var exhausted = false

    /// Steps left to the scratch's searches before this one.
    let budget: Int

    init(program: ECMARegexProgram, input: UnsafeBufferPointer<UInt8>, scratch: inout ECMARegexScratch) {
        self.program = program
        self.code = program.code
        self.input = input
        budget = scratch.budget
        stepLimit = min(ECMARegex.stepBudget, scratch.budget)
        stack = scratch.stack
        stack.removeAll(keepingCapacity: true)
        registers = scratch.registers
        registers.removeAll(keepingCapacity: true)
        if program.registerCount > 0 {
            registers.append(contentsOf: repeatElement(-1, count: program.registerCount))
        }
        scratch = ECMARegexScratch(budget: 0)
    }

    mutating func takeScratch() -> ECMARegexScratch {
        var scratch = ECMARegexScratch(budget: max(0, budget - steps))
        swap(&scratch.stack, &stack)
        swap(&scratch.registers, &registers)
        return scratch
    }

    mutating func search() -> Bool {
        let count = input.count
        if program.anchored { return run(0, 0) && !exhausted }
        var position = 0
        let startsWithConsumer: Bool
        switch code.first {
        case .char(_, false)?, .any(false)?, .set(_, false)?: startsWithConsumer = true
        default: startsWithConsumer = false
        }
        while position <= count {
            if let first = program.firstByte {
                while position < count && input[position] != first { position += 1 }
                if position == count { return false }
            }
            // Most patterns start by consuming a code point: skip positions where it cannot.
            if !startsWithConsumer || step(code[0], position) >= 0 {
                if run(0, position) { return true }
                if exhausted { return false }
            }
            guard position < count else { break }
            position += 1
            while position < count && input[position] & 0xC0 == 0x80 { position += 1 }
        }
        return false
    }

    // MARK: Decoding

    /// The code point at `position` (< count) and its length in bytes.
    @inline(__always)
    func decode(_ position: Int) -> (UInt32, Int) {
        let b0 = UInt32(input[position])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(input[position + 1]) & 0x3F, 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | (UInt32(input[position + 1]) & 0x3F) << 6 | UInt32(input[position + 2]) & 0x3F, 3)
        }
        return (
            (b0 & 0x07) << 18 | (UInt32(input[position + 1]) & 0x3F) << 12 | (UInt32(input[position + 2]) & 0x3F) << 6
                | UInt32(input[position + 3]) & 0x3F, 4
        )
    }

    /// The code point ending at `position` (> 0) and its length in bytes.
    @inline(__always)
    func decodeBefore(_ position: Int) -> (UInt32, Int) {
        var start = position - 1
        while start > 0 && input[start] & 0xC0 == 0x80 { start -= 1 }
        return (decode(start).0, position - start)
    }

    @inline(__always)
    static func isLineTerminator(_ c: UInt32) -> Bool {
        c == 0x0A || c == 0x0D || c == 0x2028 || c == 0x2029
    }

    @inline(__always)
    static func isWordByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == 0x5F
    }

    /// Matches one single-code-point instruction at `position`; returns the new position or -1.
    @inline(__always)
    func step(_ instruction: ECMARegexInstruction, _ position: Int) -> Int {
        switch instruction {
        case .char(let c, let backward):
            if backward {
                guard position > 0 else { return -1 }
                if c < 0x80 { return UInt32(input[position - 1]) == c ? position - 1 : -1 }
                let (value, length) = decodeBefore(position)
                return value == c ? position - length : -1
            }
            guard position < input.count else { return -1 }
            if c < 0x80 { return UInt32(input[position]) == c ? position + 1 : -1 }
            let (value, length) = decode(position)
            return value == c ? position + length : -1
        case .any(let backward):
            if backward {
                guard position > 0 else { return -1 }
                let (value, length) = decodeBefore(position)
                return Self.isLineTerminator(value) ? -1 : position - length
            }
            guard position < input.count else { return -1 }
            let (value, length) = decode(position)
            return Self.isLineTerminator(value) ? -1 : position + length
        case .set(let index, let backward):
            if backward {
                guard position > 0 else { return -1 }
                let (value, length) = decodeBefore(position)
                return program.sets[index].contains(value) ? position - length : -1
            }
            guard position < input.count else { return -1 }
            let (value, length) = decode(position)
            return program.sets[index].contains(value) ? position + length : -1
        default:
            return -1
        }
    }

    @inline(__always)
    mutating func setRegister(_ register: Int, _ value: Int) {
        let old = registers[register]
        if old != value {
            stack.append(Entry(kind: 1, a: register, b: old, c: 0))
            registers[register] = value
        }
    }

    /// Runs from `pc` at `position`. On success returns true and leaves its entries above the stack
    /// height it started with (the caller decides what to keep); on failure the stack is back to that
    /// height and every register restored.
    mutating func run(_ startPC: Int, _ startPosition: Int) -> Bool {
        let base = stack.count
        var pc = startPC
        var position = startPosition
        while true {
            steps &+= 1
            if steps > stepLimit {
                exhausted = true
                unwind(to: base)
                return false
            }
            var failed = false
            switch code[pc] {
            case .char, .any, .set:
                let next = step(code[pc], position)
                if next < 0 { failed = true } else {
                    position = next
                    pc += 1
                }
            case .split(let first, let second):
                stack.append(Entry(kind: 0, a: second, b: position, c: 0))
                pc = first
            case .jump(let target):
                pc = target
            case .save(let slot):
                setRegister(slot, position)
                pc += 1
            case .inputStart:
                if position == 0 { pc += 1 } else { failed = true }
            case .inputEnd:
                if position == input.count { pc += 1 } else { failed = true }
            case .wordBoundary(let negated):
                let before = position > 0 && Self.isWordByte(input[position - 1])
                let after = position < input.count && Self.isWordByte(input[position])
                if (before != after) != negated { pc += 1 } else { failed = true }
            case .look(let body, let negated, let next):
                let height = stack.count
                let matched = run(body, position)
                if exhausted {
                    unwind(to: base)
                    return false
                }
                if matched {
                    if negated {
                        unwind(to: height)
                        failed = true
                    } else {
                        // Keep the register restores (captures made inside stay undoable), drop the
                        // choice points: ECMA-262 never backtracks into a lookaround.
                        var write = height
                        for read in height..<stack.count where stack[read].kind == 1 {
                            stack[write] = stack[read]
                            write += 1
                        }
                        stack.removeSubrange(write...)
                        pc = next
                    }
                } else {
                    if negated { pc = next } else { failed = true }
                }
            case .backreference(let number, let backward):
                let start = registers.count > 2 * number + 1 ? registers[2 * number] : -1
                let end = registers.count > 2 * number + 1 ? registers[2 * number + 1] : -1
                if start < 0 || end < 0 {
                    pc += 1
                } else {
                    let length = end - start
                    if backward {
                        if position - length >= 0 && equalBytes(start, position - length, length) {
                            position -= length
                            pc += 1
                        } else {
                            failed = true
                        }
                    } else if position + length <= input.count && equalBytes(start, position, length) {
                        position += length
                        pc += 1
                    } else {
                        failed = true
                    }
                }
            case .simpleLoop(let atom, let min, let max, let greedy):
                let instruction = code[atom]
                var count = 0
                var current = position
                while count < min {
                    let next = step(instruction, current)
                    if next < 0 { break }
                    current = next
                    count += 1
                }
                if count < min {
                    failed = true
                } else if greedy {
                    let lowest = current
                    while count < max {
                        let next = step(instruction, current)
                        if next < 0 { break }
                        current = next
                        count += 1
                    }
                    if current != lowest { stack.append(Entry(kind: 2, a: pc, b: current, c: lowest)) }
                    position = current
                    pc = atom + 1
                } else {
                    if count < max { stack.append(Entry(kind: 3, a: pc, b: current, c: count)) }
                    position = current
                    pc = atom + 1
                }
            case .loopInit(let counter):
                setRegister(counter, 0)
                pc += 1
            case .loopHead(let counter, let start, let min, let max, let greedy, let exit, let clearFrom, let clearTo):
                let count = registers[counter]
                if count < min {
                    enterBody(start: start, position: position, clearFrom: clearFrom, clearTo: clearTo)
                    pc += 1
                } else if count >= max {
                    pc = exit
                } else if greedy {
                    stack.append(Entry(kind: 0, a: exit, b: position, c: 0))
                    enterBody(start: start, position: position, clearFrom: clearFrom, clearTo: clearTo)
                    pc += 1
                } else {
                    // Lazy: leave first; on backtracking, come back to run the body (the entry resumes
                    // at the head's body with the registers as they are now).
                    stack.append(Entry(kind: 4, a: pc, b: position, c: 0))
                    pc = exit
                }
            case .loopTail(let counter, let start, let min, let head):
                let count = registers[counter]
                if position == registers[start] && count >= min {
                    failed = true  // an empty iteration past the minimum (ECMA-262 RepeatMatcher)
                } else {
                    setRegister(counter, count + 1)
                    pc = head
                }
            case .match:
                return true
            }
            if failed {
                // Backtrack.
                var resumed = false
                while stack.count > base {
                    let entry = stack.removeLast()
                    switch entry.kind {
                    case 0:
                        pc = entry.a
                        position = entry.b
                        resumed = true
                    case 1:
                        registers[entry.a] = entry.b
                    case 2:
                        // Give back one code point of a greedy simple loop.
                        guard case .simpleLoop(let atom, _, _, _) = code[entry.a] else { break }
                        let backward = Self.isBackward(code[atom])
                        let next = backward ? entry.b + forwardLength(entry.b) : entry.b - decodeBefore(entry.b).1
                        if next != entry.c { stack.append(Entry(kind: 2, a: entry.a, b: next, c: entry.c)) }
                        pc = atom + 1
                        position = next
                        resumed = true
                    case 3:
                        // Take one more code point in a lazy simple loop.
                        guard case .simpleLoop(let atom, _, let max, _) = code[entry.a] else { break }
                        let next = step(code[atom], entry.b)
                        if next >= 0 {
                            if entry.c + 1 < max { stack.append(Entry(kind: 3, a: entry.a, b: next, c: entry.c + 1)) }
                            pc = atom + 1
                            position = next
                            resumed = true
                        }
                    default:
                        // Lazy general loop: run the body now.
                        guard case .loopHead(_, let start, _, _, _, _, let clearFrom, let clearTo) = code[entry.a] else { break }
                        position = entry.b
                        enterBody(start: start, position: position, clearFrom: clearFrom, clearTo: clearTo)
                        pc = entry.a + 1
                        resumed = true
                    }
                    if resumed { break }
                }
                if !resumed { return false }
            }
        }
    }

    @inline(__always)
    mutating func enterBody(start: Int, position: Int, clearFrom: Int, clearTo: Int) {
        setRegister(start, position)
        var register = clearFrom
        while register < clearTo {
            setRegister(register, -1)
            register += 1
        }
    }

    static func isBackward(_ instruction: ECMARegexInstruction) -> Bool {
        switch instruction {
        case .char(_, let backward), .any(let backward), .set(_, let backward): return backward
        default: return false
        }
    }

    func forwardLength(_ position: Int) -> Int {
        decode(position).1
    }

    func equalBytes(_ a: Int, _ b: Int, _ length: Int) -> Bool {
        var offset = 0
        while offset < length {
            if input[a + offset] != input[b + offset] { return false }
            offset += 1
        }
        return true
    }

    /// Pops entries above `height`, restoring registers.
    mutating func unwind(to height: Int) {
        while stack.count > height {
            let entry = stack.removeLast()
            if entry.kind == 1 { registers[entry.a] = entry.b }
        }
    }
}

import Foundation
import Testing

@testable import GatewayCore

/// Parses `text`, returning the error it is rejected with (nil if it is accepted).
private func parseError(_ text: String, maxDepth: Int = JSONParser.defaultMaxDepth) -> JSONParseError? {
    do {
        _ = try JSONParser.parse(text, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

/// Same for `scan`.
private func scanError(_ text: String, maxDepth: Int = JSONParser.defaultMaxDepth) -> JSONParseError? {
    do {
        _ = try JSONParser.scan(Array(text.utf8), maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

// MARK: - JSONTestSuite

/// The JSONTestSuite (github.com/nst/JSONTestSuite) lives outside the package, at
/// `<root>/../shared/json-test-suite/test_parsing`; this file is `<root>/Tests/GatewayCoreTests/JSONTests.swift`.
private func jsonTestSuiteDirectory() -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GatewayCoreTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("../shared/json-test-suite/test_parsing")
        .standardizedFileURL
}

@Test func jsonTestSuite() throws {
    let directory = jsonTestSuiteDirectory()
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory)
    try #require(
        exists && isDirectory.boolValue,
        "JSONTestSuite not found at \(directory.path): the parser's conformance cannot be checked without it")
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        .filter { $0.hasSuffix(".json") }
        .sorted()
    try #require(!names.isEmpty, "JSONTestSuite directory \(directory.path) holds no .json files")

    var yes = (total: 0, accepted: 0)
    var no = (total: 0, rejected: 0)
    var implementationDefined = (total: 0, accepted: [String]())
    for name in names {
        let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
        // A generous depth limit: `i_structure_500_nested_arrays` is about depth, tested separately.
        let parsed = Result { () throws(JSONParseError) in try JSONParser.parse(bytes, maxDepth: 1000) }
        let scanned = Result { () throws(JSONParseError) in try JSONParser.scan(bytes, maxDepth: 1000) }
        let parseAccepted = (try? parsed.get()) != nil
        let scanAccepted = (try? scanned.get()) != nil
        #expect(parseAccepted == scanAccepted, "parse and scan disagree on \(name)")

        switch name.prefix(2) {
        case "y_":
            yes.total += 1
            switch parsed {
            case .success(let value):
                yes.accepted += 1
                // Round trip: parse -> serialize -> parse gives an equal value (and the same bytes again).
                let serialized = value.serialized()
                let reparsed = try? JSONParser.parse(serialized, maxDepth: 1000)
                #expect(reparsed == value, "round trip changed the value of \(name)")
                #expect(reparsed?.serialized() == serialized, "re-serialising \(name) is not stable")
            case .failure(let error):
                Issue.record("\(name) must be accepted, was rejected: \(error)")
            }
        case "n_":
            no.total += 1
            if parseAccepted {
                Issue.record("\(name) must be rejected, was accepted")
            } else {
                no.rejected += 1
            }
        case "i_":
            // Either answer is conformant; reaching this line means no crash.
            implementationDefined.total += 1
            if parseAccepted { implementationDefined.accepted.append(name) }
        default:
            break
        }
    }
    print("JSONTestSuite: y_ \(yes.accepted)/\(yes.total) accepted, n_ \(no.rejected)/\(no.total) rejected, "
        + "i_ \(implementationDefined.total) run without crash, \(implementationDefined.accepted.count) accepted: "
        + implementationDefined.accepted.joined(separator: " "))
    #expect(yes.total > 0 && no.total > 0 && implementationDefined.total > 0)
    #expect(yes.accepted == yes.total)
    #expect(no.rejected == no.total)
}

// MARK: - Numbers

@Test func numberTextIsPreserved() throws {
    let text = #"[1.0e+2,-0,0.10,1E-7,12345678901234567890123456789,-1.5e300]"#
    let value = try JSONParser.parse(text)
    #expect(value.jsonString == text)
    #expect(value[0]?.doubleValue == 100)
    #expect(value[0]?.intValue == 100)
    if case .number(let number)? = value[0] {
        #expect(number.text == "1.0e+2")
    } else {
        Issue.record("the first element must be a number")
    }
}

@Test func numberGrammar() {
    for valid in ["0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "1e-05", "0.0", "123.456e-789"] {
        #expect(JSONNumber(text: valid) != nil, "\(valid) is a JSON number")
    }
    for invalid in ["", "-", "01", "-01", "1.", ".5", "1e", "1e+", "+1", " 1", "1 ", "0x10", "NaN", "Infinity", "1_000"] {
        #expect(JSONNumber(text: invalid) == nil, "\(invalid) is not a JSON number")
    }
}

@Test func numberSemanticEquality() throws {
    func number(_ text: String) throws -> JSONNumber { try #require(JSONNumber(text: text)) }
    let one = try number("1")
    for same in ["1.0", "1e0", "10e-1", "0.1e1", "1.000E+0"] {
        #expect(try number(same) == one)
        #expect(try number(same).hashValue == one.hashValue)
    }
    #expect(try number("0") == number("-0.0e7"))
    #expect(try number("100") == number("1e2"))
    #expect(try number("1") != number("1.0000000000000000000001"))
    // Large integers compare exactly, not through Double.
    #expect(try number("12345678901234567890") != number("12345678901234567891"))
    #expect(try number("12345678901234567890") == number("1234567890123456789e1"))
    #expect(try number("-5") != number("5"))
    let parsed: JSONValue = try JSONParser.parse("[1, 1.0, 1e0]")
    #expect(parsed == [1, 1, 1])
    #expect(Set([JSONValue(integerLiteral: 1), JSONValue(floatLiteral: 1.0)]).count == 1)
}

@Test func numberConversions() throws {
    func number(_ text: String) throws -> JSONNumber { try #require(JSONNumber(text: text)) }
    #expect(try number("3").intValue == 3)
    #expect(try number("3.0").intValue == 3)
    #expect(try number("3.5").intValue == nil)
    #expect(try number("1200e-2").intValue == 12)
    #expect(try number("-9223372036854775808").intValue == Int.min)
    #expect(try number("9223372036854775807").intValue == Int.max)
    #expect(try number("9223372036854775808").intValue == nil)
    #expect(try number("1e19").intValue == nil)
    #expect(try number("2.5e1").isInteger)
    #expect(try !number("2.5").isInteger)
    #expect(try number("0.75").doubleValue == 0.75)
    #expect(try number("1e400").doubleValue == .infinity)
    #expect(JSONNumber(42).text == "42")
    #expect(JSONNumber(0.1).text == "0.1")
    for double in [0.1, -2.5, 1e-7, 1e21, Double.leastNonzeroMagnitude, 123456789.125, -0.0, Double.greatestFiniteMagnitude] {
        let text = JSONNumber(double).text
        #expect(JSONNumber(text: text) != nil, "\(text) must be valid JSON")
        #expect(JSONNumber(double).doubleValue == double)
    }
    let value: JSONValue = 2.5
    #expect(value.intValue == nil)
    #expect(value.doubleValue == 2.5)
}

// MARK: - Objects

@Test func keyOrderIsKept() throws {
    let text = #"{"z":1,"a":{"y":true,"b":null},"m":"x"}"#
    let value = try JSONParser.parse(text)
    #expect(value.objectValue?.keys == ["z", "a", "m"])
    #expect(value["a"]?.objectValue?.keys == ["y", "b"])
    #expect(value.jsonString == text)
    let literal: JSONValue = ["z": 1, "a": 2, "m": 3]
    #expect(literal.jsonString == #"{"z":1,"a":2,"m":3}"#)
}

@Test func semanticEquality() throws {
    #expect(try JSONParser.parse(#"{"a":1,"b":2}"#) == JSONParser.parse(#"{"b":2,"a":1}"#))
    #expect(try JSONParser.parse(#"{"a":1,"b":2}"#).hashValue == JSONParser.parse(#"{"b":2,"a":1}"#).hashValue)
    #expect(try JSONParser.parse(#"{"a":[1,{"x":1.0}]}"#) == ["a": [1, ["x": 1]]])
    #expect(try JSONParser.parse(#"{"a":1}"#) != JSONParser.parse(#"{"a":1,"b":2}"#))
    #expect(try JSONParser.parse("[1,2]") != JSONParser.parse("[2,1]"))
    #expect(JSONValue.string("1") != JSONValue.number(JSONNumber(1)))
    #expect(JSONValue.null == nil)
    #expect(JSONValue.bool(true) == true)
}

@Test func duplicateKeysKeepTheLastValue() throws {
    let value = try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#)
    #expect(value["a"] == 3)
    #expect(value.objectValue?.keys == ["a", "b"])
    let object = JSONObject([(key: "k", value: 1), (key: "k", value: 2)])
    #expect(object.count == 1 && object["k"] == 2)
}

@Test func objectSubscriptSetAndRemove() {
    var object: JSONObject = ["a": 1, "b": 2, "c": 3]
    object["b"] = "two"
    #expect(object.keys == ["a", "b", "c"])
    #expect(object["b"] == "two")
    object["d"] = [true]
    #expect(object.keys == ["a", "b", "c", "d"])
    object["a"] = nil
    #expect(object.keys == ["b", "c", "d"])
    #expect(object.count == 3 && !object.isEmpty)
    #expect(object.contains("c") && !object.contains("a"))
    object["missing"] = nil
    #expect(object.count == 3)
    #expect(object.members.map(\.key) == ["b", "c", "d"])
    #expect(Array(object).map(\.key) == ["b", "c", "d"])
    #expect(JSONValue.object(object).jsonString == #"{"b":"two","c":3,"d":[true]}"#)
}

@Test func accessors() throws {
    let value = try JSONParser.parse(#"{"s":"x","b":false,"n":7,"a":[null],"o":{}}"#)
    #expect(value["s"]?.stringValue == "x")
    #expect(value["b"]?.boolValue == false)
    #expect(value["n"]?.intValue == 7)
    #expect(value["a"]?[0]?.isNull == true)
    #expect(value["a"]?[1] == nil)
    #expect(value["a"]?[-1] == nil)
    #expect(value["o"]?.objectValue?.isEmpty == true)
    #expect(value["missing"] == nil)
    #expect(value[0] == nil)
    #expect(value["s"]?["x"] == nil)
    #expect(value.typeName == "object")
    #expect(["null", "boolean", "number", "string", "array", "object"]
        == ([nil, true, 1, "s", [], [:]] as [JSONValue]).map(\.typeName))
}

// MARK: - Strings

@Test func escapesAreWrittenAsJSONRequires() throws {
    var buffer: [UInt8] = []
    JSONWriter.writeString("q\"b\\n\n\r\t\u{08}\u{0C}\u{00}\u{01}\u{1F}/\u{7F}é😀", into: &buffer)
    let expected = #""q\"b\\n\n\r\t\b\f\u0000\u0001\u001f/"# + "\u{7F}é😀\""
    #expect(buffer == Array(expected.utf8))
    // And they read back as the same string.
    #expect(try JSONParser.parse(buffer) == .string("q\"b\\n\n\r\t\u{08}\u{0C}\u{00}\u{01}\u{1F}/\u{7F}é😀"))
}

@Test func stringEscapesAreDecoded() throws {
    #expect(try JSONParser.parse(#""\u00e9\/\"\\\b\f\n\r\t""#) == .string("é/\"\\\u{08}\u{0C}\n\r\t"))
    #expect(try JSONParser.parse(#""\uD83D\uDE00""#) == .string("😀"))
    // A lone surrogate cannot live in a String: it becomes U+FFFD, and parsing goes on.
    #expect(try JSONParser.parse(#""a\uD800b""#) == .string("a\u{FFFD}b"))
    #expect(try JSONParser.parse(#""\uDC00\uD800\u0041""#) == .string("\u{FFFD}\u{FFFD}A"))
    #expect(try JSONParser.parse(Array("\"héllo 😀\"".utf8)) == .string("héllo 😀"))
    // Long strings take the 8-bytes-at-a-time path; the special byte can fall anywhere.
    for length in 0..<40 {
        let plain = String(repeating: "x", count: length)
        #expect(try JSONParser.parse("\"\(plain)\"") == .string(plain))
        #expect(try JSONParser.parse("\"\(plain)\\n\(plain)é\"") == .string(plain + "\n" + plain + "é"))
        #expect(parseError("\"\(plain)\u{01}\"")?.kind == .invalidString)
    }
}

@Test func stringsAreValidated() {
    #expect(parseError("\"a\tb\"")?.kind == .invalidString)
    #expect(parseError(#""\x41""#)?.kind == .invalidEscape)
    #expect(parseError(#""\u12G4""#)?.kind == .invalidEscape)
    let invalidUTF8: [[UInt8]] = [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22]]
    for bytes in invalidUTF8 {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes) }
    }
}

// MARK: - Structure and errors

@Test func depthLimitIsExact() throws {
    let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
    let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
    #expect(parseError(ok) == nil)
    #expect(scanError(ok) == nil)
    let error = try #require(parseError(tooDeep))
    #expect(error.kind == .depthLimitExceeded(limit: 64))
    #expect(error.offset == 64)
    #expect(error.description.contains("64"))
    #expect(error.description == "JSON nested deeper than the limit of 64")
    #expect(scanError(tooDeep)?.kind == .depthLimitExceeded(limit: 64))

    let objects64 = String(repeating: #"{"a":"#, count: 63) + "{}" + String(repeating: "}", count: 63)
    let objects65 = String(repeating: #"{"a":"#, count: 64) + "{}" + String(repeating: "}", count: 64)
    #expect(parseError(objects64) == nil)
    #expect(parseError(objects65)?.kind == .depthLimitExceeded(limit: 64))
    #expect(scanError(objects64) == nil)
    #expect(scanError(objects65)?.kind == .depthLimitExceeded(limit: 64))
    #expect(parseError("[[1]]", maxDepth: 1)?.kind == .depthLimitExceeded(limit: 1))
    #expect(parseError("1", maxDepth: 0) == nil)
    // Hostile nesting is rejected without using the machine stack.
    #expect(parseError(String(repeating: "[", count: 100_000))?.kind == .depthLimitExceeded(limit: 64))
    #expect(parseError(String(repeating: "[", count: 100_000), maxDepth: 1_000_000)?.kind == .unexpectedEnd)
    #expect(scanError(String(repeating: "[", count: 100_000), maxDepth: 1_000_000)?.kind == .unexpectedEnd)
}

@Test func errorsNameTheProblemAndOffset() throws {
    let error = try #require(parseError(#"{"a":1,"b":[true,}"#))
    #expect(error.kind == .unexpectedCharacter)
    #expect(error.offset == 17)
    #expect(error.description == "unexpected character '}' at byte 17")
    #expect(parseError("")?.kind == .emptyInput)
    #expect(parseError(" \n\t")?.kind == .emptyInput)
    #expect(parseError("[1,2")?.kind == .unexpectedEnd)
    #expect(parseError("[1,]")?.kind == .unexpectedCharacter)
    #expect(parseError(#"{"a":1,}"#)?.kind == .unexpectedCharacter)
    #expect(parseError("01")?.kind == .invalidNumber)
    #expect(parseError("1 2") == JSONParseError(kind: .trailingCharacters, offset: 2))
    #expect(parseError("nul")?.kind == .unexpectedEnd)
    #expect(parseError("\u{FEFF}{}")?.kind == .unexpectedCharacter)
    #expect(parseError("[1]\u{0C}")?.kind == .trailingCharacters)
    #expect(parseError(" \t\r\n[ 1 , { \"a\" : null } ]\n ") == nil)
    #expect(try JSONParser.parse(Array("[1]".utf8)[...]) == [1])
}

// MARK: - Scan

@Test func scanRangesSliceTheRawMemberText() throws {
    let text = #" { "jsonrpc":"2.0", "id" : 17 ,"params":{"x": [1, 2.50]} ,"result" :"r\"s", "n":null } "#
    let bytes = Array(text.utf8)
    guard case .object(let members) = try JSONParser.scan(bytes) else {
        Issue.record("a top-level object must scan as .object")
        return
    }
    let raw = members.map { (key: $0.key, text: String(decoding: bytes[$0.range], as: UTF8.self)) }
    #expect(raw.map(\.key) == ["jsonrpc", "id", "params", "result", "n"])
    #expect(raw.map(\.text) == [#""2.0""#, "17", #"{"x": [1, 2.50]}"#, #""r\"s""#, "null"])
    // Each raw slice parses to the same value a full parse gives.
    let full = try JSONParser.parse(bytes)
    for member in members {
        #expect(try JSONParser.parse(bytes[member.range]) == full[member.key])
    }

    guard case .array(let ranges) = try JSONParser.scan(Array(#"[ 1,"two" , [3] ,{}]"#.utf8)) else {
        Issue.record("a top-level array must scan as .array")
        return
    }
    let arrayBytes = Array(#"[ 1,"two" , [3] ,{}]"#.utf8)
    #expect(ranges.map { String(decoding: arrayBytes[$0], as: UTF8.self) } == ["1", #""two""#, "[3]", "{}"])

    guard case .scalar = try JSONParser.scan(Array(" 42 ".utf8)) else {
        Issue.record("a number must scan as .scalar")
        return
    }
    guard case .object(let none) = try JSONParser.scan(Array("{}".utf8)), none.isEmpty else {
        Issue.record("an empty object must scan as .object([])")
        return
    }
    // The whole document is validated, not just the top level.
    #expect(scanError(#"{"a":{"b":[1,]}}"#)?.kind == .unexpectedCharacter)
    #expect(scanError(#"{"a":"\x"}"#)?.kind == .invalidEscape)
    #expect(scanError(#"{"a":1} x"#)?.kind == .trailingCharacters)
}

// MARK: - Writer

@Test func serializationIsCompact() throws {
    let value = try JSONParser.parse(" { \"a\" : [ 1 , true , null , \"x\" ] , \"b\" : { } , \"c\" : [ ] } ")
    #expect(value.jsonString == #"{"a":[1,true,null,"x"],"b":{},"c":[]}"#)
    #expect(value.serialized() == Array(value.jsonString.utf8))
    var buffer = Array("prefix:".utf8)
    JSONWriter.write(["k": "v"], into: &buffer)
    #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:{"k":"v"}"#)
}

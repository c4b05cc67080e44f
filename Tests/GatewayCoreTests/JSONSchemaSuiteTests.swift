import Foundation
import Testing

@testable import GatewayCore

// The official JSON-Schema-Test-Suite (github.com/json-schema-org/JSON-Schema-Test-Suite) lives outside
// the package, at `<root>/../shared/jsonschema-test-suite/{draft2020-12,draft7}`; this file is
// `<root>/Tests/GatewayCoreTests/JSONSchemaSuiteTests.swift`.
//
// Every file of both dialects is run, `optional/` included; nothing is skipped silently:
// - a file that cannot run without the network is listed as unsupported, with its counts;
// - inside a run file, a group whose schema refers to a remote document (a compile error: remote
//   references are never fetched) or declares an unknown `$schema` meta-schema is listed as unsupported;
// - every other test counts as passed or failed. A test passes when `isValid` gives the expected answer
//   AND `validate` agrees with it (no violations exactly when valid), so both paths are checked.
// The test fails when a file passes fewer tests than its recorded floor, when a top-level (required)
// file fails a test that `knownFailures` does not list, or when a file has no floor (a new suite file
// must be looked at, not ignored). `optional/` failures are reported only.
//
// Formats: top-level `format.json` runs as the dialects define it (annotation: all valid). Each
// `optional/format/*.json` runs twice: with format assertion on (pass/fail reported, floors apply;
// formats the validator does not assert are marked "annotation only"), and with assertion off, where
// every instance must be valid, since `format` only annotates by default.

/// `<root>/../shared/jsonschema-test-suite`.
private func schemaTestSuiteDirectory() -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // GatewayCoreTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("../shared/jsonschema-test-suite")
        .standardizedFileURL
}

/// Files that cannot run here at all, and why. They are listed in the report with their counts.
private let unsupportedFiles: [String: String] = [
    "draft2020-12/refRemote.json": "remote $refs to documents served at localhost:1234; remote references are never fetched",
    "draft7/refRemote.json": "remote $refs to documents served at localhost:1234; remote references are never fetched",
    "draft2020-12/vocabulary.json": "custom meta-schemas ($vocabulary) served at localhost:1234; only the two standard dialects are known",
    "draft2020-12/optional/format-assertion.json": "custom meta-schemas (format-assertion vocabulary) served at localhost:1234",
    "draft2020-12/optional/cross-draft.json": "a remote $ref to a 2019-09 document served at localhost:1234",
    "draft7/optional/cross-draft.json": "a remote $ref to a 2019-09 document served at localhost:1234",
]

/// Top-level tests allowed to fail, as "file :: group :: test" with the reason. Keep it empty.
private let knownFailures: [String: String] = [:]

/// Minimum passed count per file (what the validator achieves; raise it when it improves, never lower
/// it to make a regression pass). Format files count the assertion run.
private let floors: [String: Int] = [
    "draft2020-12/additionalProperties.json": 21,
    "draft2020-12/allOf.json": 30,
    "draft2020-12/anchor.json": 8,
    "draft2020-12/anyOf.json": 18,
    "draft2020-12/boolean_schema.json": 18,
    "draft2020-12/const.json": 54,
    "draft2020-12/contains.json": 21,
    "draft2020-12/content.json": 18,
    "draft2020-12/default.json": 7,
    "draft2020-12/defs.json": 2,
    "draft2020-12/dependentRequired.json": 20,
    "draft2020-12/dependentSchemas.json": 20,
    "draft2020-12/dynamicRef.json": 31,
    "draft2020-12/enum.json": 51,
    "draft2020-12/exclusiveMaximum.json": 4,
    "draft2020-12/exclusiveMinimum.json": 4,
    "draft2020-12/format.json": 133,
    "draft2020-12/if-then-else.json": 30,
    "draft2020-12/infinite-loop-detection.json": 2,
    "draft2020-12/items.json": 29,
    "draft2020-12/maxContains.json": 14,
    "draft2020-12/maxItems.json": 6,
    "draft2020-12/maxLength.json": 7,
    "draft2020-12/maxProperties.json": 10,
    "draft2020-12/maximum.json": 8,
    "draft2020-12/minContains.json": 28,
    "draft2020-12/minItems.json": 6,
    "draft2020-12/minLength.json": 7,
    "draft2020-12/minProperties.json": 10,
    "draft2020-12/minimum.json": 11,
    "draft2020-12/multipleOf.json": 11,
    "draft2020-12/not.json": 40,
    "draft2020-12/oneOf.json": 27,
    "draft2020-12/pattern.json": 12,
    "draft2020-12/patternProperties.json": 25,
    "draft2020-12/prefixItems.json": 11,
    "draft2020-12/properties.json": 28,
    "draft2020-12/propertyNames.json": 22,
    "draft2020-12/ref.json": 79,
    "draft2020-12/required.json": 18,
    "draft2020-12/type.json": 80,
    "draft2020-12/unevaluatedItems.json": 71,
    "draft2020-12/unevaluatedProperties.json": 129,
    "draft2020-12/uniqueItems.json": 69,
    "draft2020-12/optional/anchor.json": 4,
    "draft2020-12/optional/bignum.json": 9,
    "draft2020-12/optional/dependencies-compatibility.json": 36,
    "draft2020-12/optional/dynamicRef.json": 2,
    "draft2020-12/optional/ecmascript-regex.json": 74,
    "draft2020-12/optional/float-overflow.json": 1,
    "draft2020-12/optional/format/date-time.json": 33,
    "draft2020-12/optional/format/date.json": 81,
    "draft2020-12/optional/format/duration.json": 52,
    "draft2020-12/optional/format/ecmascript-regex.json": 12,
    "draft2020-12/optional/format/email.json": 27,
    "draft2020-12/optional/format/hostname.json": 64,
    "draft2020-12/optional/format/idn-email.json": 18,
    "draft2020-12/optional/format/idn-hostname.json": 90,
    "draft2020-12/optional/format/ipv4.json": 41,
    "draft2020-12/optional/format/ipv6.json": 42,
    "draft2020-12/optional/format/iri-reference.json": 13,
    "draft2020-12/optional/format/iri.json": 24,
    "draft2020-12/optional/format/json-pointer.json": 40,
    "draft2020-12/optional/format/regex.json": 8,
    "draft2020-12/optional/format/relative-json-pointer.json": 25,
    "draft2020-12/optional/format/time.json": 47,
    "draft2020-12/optional/format/unknown.json": 7,
    "draft2020-12/optional/format/uri-reference.json": 28,
    "draft2020-12/optional/format/uri-template.json": 38,
    "draft2020-12/optional/format/uri.json": 46,
    "draft2020-12/optional/format/uuid.json": 28,
    "draft2020-12/optional/id.json": 3,
    "draft2020-12/optional/no-schema.json": 3,
    "draft2020-12/optional/non-bmp-regex.json": 12,
    "draft2020-12/optional/refOfUnknownKeyword.json": 10,
    "draft2020-12/optional/unknownKeyword.json": 3,
    "draft7/additionalItems.json": 19,
    "draft7/additionalProperties.json": 16,
    "draft7/allOf.json": 30,
    "draft7/anyOf.json": 18,
    "draft7/boolean_schema.json": 18,
    "draft7/const.json": 54,
    "draft7/contains.json": 21,
    "draft7/default.json": 7,
    "draft7/definitions.json": 2,
    "draft7/dependencies.json": 36,
    "draft7/enum.json": 45,
    "draft7/exclusiveMaximum.json": 4,
    "draft7/exclusiveMinimum.json": 4,
    "draft7/format.json": 102,
    "draft7/if-then-else.json": 30,
    "draft7/infinite-loop-detection.json": 2,
    "draft7/items.json": 28,
    "draft7/maxItems.json": 6,
    "draft7/maxLength.json": 7,
    "draft7/maxProperties.json": 10,
    "draft7/maximum.json": 8,
    "draft7/minItems.json": 6,
    "draft7/minLength.json": 7,
    "draft7/minProperties.json": 10,
    "draft7/minimum.json": 11,
    "draft7/multipleOf.json": 11,
    "draft7/not.json": 38,
    "draft7/oneOf.json": 27,
    "draft7/pattern.json": 9,
    "draft7/patternProperties.json": 23,
    "draft7/properties.json": 28,
    "draft7/propertyNames.json": 22,
    "draft7/ref.json": 78,
    "draft7/required.json": 18,
    "draft7/type.json": 80,
    "draft7/uniqueItems.json": 69,
    "draft7/optional/bignum.json": 9,
    // contentMediaType/contentEncoding are annotations here; draft-07 lets validators assert them.
    "draft7/optional/content.json": 6,
    "draft7/optional/ecmascript-regex.json": 74,
    "draft7/optional/float-overflow.json": 1,
    "draft7/optional/format/date-time.json": 33,
    "draft7/optional/format/date.json": 81,
    "draft7/optional/format/ecmascript-regex.json": 12,
    "draft7/optional/format/email.json": 20,
    "draft7/optional/format/hostname.json": 64,
    "draft7/optional/format/idn-email.json": 18,
    "draft7/optional/format/idn-hostname.json": 89,
    "draft7/optional/format/ipv4.json": 41,
    "draft7/optional/format/ipv6.json": 42,
    "draft7/optional/format/iri-reference.json": 13,
    "draft7/optional/format/iri.json": 24,
    "draft7/optional/format/json-pointer.json": 40,
    "draft7/optional/format/regex.json": 8,
    "draft7/optional/format/relative-json-pointer.json": 25,
    "draft7/optional/format/time.json": 47,
    "draft7/optional/format/unknown.json": 7,
    "draft7/optional/format/uri-reference.json": 28,
    "draft7/optional/format/uri-template.json": 38,
    "draft7/optional/format/uri.json": 46,
    "draft7/optional/id.json": 7,
    "draft7/optional/non-bmp-regex.json": 12,
    "draft7/optional/unknownKeyword.json": 3,
]

/// The outcome of one file.
private struct FileResult {
    var passed = 0
    var failed = 0
    var failures: [String] = []
    /// Keywords the validator reported it ignores, with how many groups used each.
    var ignoredKeywords: [String: Int] = [:]
    /// Groups not run, with why and how many tests they hold.
    var unsupportedGroups: [(group: String, tests: Int, reason: String)] = []
    /// Annotation run of a format file: instances reported valid / instances.
    var annotationValid = 0
    var annotationTotal = 0
    var annotationOnly = false
}

/// Runs one suite file. `assertFormat` is on for `optional/format/` files.
private func runFile(_ document: JSONValue, name: String, dialect: SchemaDialect, assertFormat: Bool) -> FileResult {
    var result = FileResult()
    for group in document.arrayValue ?? [] {
        let description = group["description"]?.stringValue ?? "?"
        let tests = group["tests"]?.arrayValue ?? []
        guard let schemaValue = group["schema"] else { continue }
        let schema: JSONSchema
        do {
            schema = try JSONSchema.compile(schemaValue, defaultDialect: dialect, assertFormat: assertFormat)
        } catch {
            if error.message.contains("never fetched") {
                result.unsupportedGroups.append((description, tests.count, "remote reference: \(error.message)"))
            } else {
                result.failed += tests.count
                result.failures.append("\(name) :: \(description) :: (compile) \(error)")
            }
            continue
        }
        if schema.unsupportedKeywords.contains("$schema") {
            result.unsupportedGroups.append((description, tests.count, "unknown $schema meta-schema"))
            continue
        }
        for keyword in schema.unsupportedKeywords { result.ignoredKeywords[keyword, default: 0] += 1 }
        for test in tests {
            guard let data = test["data"], let expected = test["valid"]?.boolValue else { continue }
            let valid = schema.isValid(data)
            let violations = schema.validate(data)
            if valid == expected && violations.isEmpty == valid {
                result.passed += 1
            } else {
                result.failed += 1
                let testDescription = test["description"]?.stringValue ?? "?"
                let detail = valid == expected ? "isValid and validate disagree" : "expected \(expected ? "valid" : "invalid")"
                result.failures.append("\(name) :: \(description) :: \(testDescription) (\(detail))")
            }
        }
        if assertFormat {
            // Annotation run: without assertion, `format` never fails.
            if let annotating = try? JSONSchema.compile(schemaValue, defaultDialect: dialect) {
                for test in tests {
                    guard let data = test["data"] else { continue }
                    result.annotationTotal += 1
                    if annotating.isValid(data) && annotating.validate(data).isEmpty { result.annotationValid += 1 }
                }
            }
        }
    }
    return result
}

private func suiteFiles(in directory: URL) throws -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory.path) else { return [] }
    var names: [String] = []
    while let name = enumerator.nextObject() as? String {
        if name.hasSuffix(".json") { names.append(name) }
    }
    return names.sorted()
}

@Test func jsonSchemaTestSuite() throws {
    let root = schemaTestSuiteDirectory()
    var isDirectory: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory)
    try #require(
        exists && isDirectory.boolValue,
        "JSON-Schema-Test-Suite not found at \(root.path): the validator's conformance cannot be checked without it")

    var report: [String] = []
    var totals = (passed: 0, failed: 0, unsupported: 0)
    var unsupportedReport: [String] = []
    var ignoredKeywords: [String: Int] = [:]
    for (folder, dialect) in [("draft2020-12", SchemaDialect.draft2020_12), ("draft7", SchemaDialect.draft7)] {
        let directory = root.appendingPathComponent(folder)
        let names = try suiteFiles(in: directory)
        try #require(!names.isEmpty, "no test files in \(directory.path)")
        for file in names {
            let name = "\(folder)/\(file)"
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            let document = try JSONParser.parse(bytes, maxDepth: 256)
            let groups = document.arrayValue ?? []
            let testCount = groups.reduce(0) { $0 + ($1["tests"]?.arrayValue?.count ?? 0) }

            if let reason = unsupportedFiles[name] {
                report.append("\(name): unsupported (\(groups.count) groups, \(testCount) tests): \(reason)")
                unsupportedReport.append("\(name) (\(groups.count) groups, \(testCount) tests)")
                totals.unsupported += testCount
                continue
            }

            let isOptional = file.hasPrefix("optional/")
            let isFormatFile = file.hasPrefix("optional/format/")
            var result = runFile(document, name: name, dialect: dialect, assertFormat: isFormatFile)
            if isFormatFile {
                // Which formats do these groups use, and does the validator assert them?
                let formats = Set(groups.compactMap { $0["schema"]?["format"]?.stringValue })
                result.annotationOnly = !formats.isEmpty && formats.allSatisfy { SchemaFormat(rawValue: $0) == nil }
            }
            totals.passed += result.passed
            totals.failed += result.failed
            for (keyword, count) in result.ignoredKeywords { ignoredKeywords[keyword, default: 0] += count }
            var line = "\(name): \(result.passed) passed, \(result.failed) failed"
            if !result.unsupportedGroups.isEmpty {
                let tests = result.unsupportedGroups.reduce(0) { $0 + $1.tests }
                line += ", \(tests) unsupported (\(result.unsupportedGroups.count) groups)"
                totals.unsupported += tests
                for group in result.unsupportedGroups {
                    unsupportedReport.append("\(name) :: \(group.group) (\(group.tests) tests): \(group.reason)")
                }
            }
            if isFormatFile {
                line += result.annotationOnly ? " (annotation only: format not asserted)" : " (format asserted)"
                line += "; annotation run: \(result.annotationValid)/\(result.annotationTotal) valid"
                #expect(
                    result.annotationValid == result.annotationTotal,
                    "\(name): format must only annotate by default, but \(result.annotationTotal - result.annotationValid) instances were invalid")
            }
            report.append(line)

            if let floor = floors[name] {
                #expect(result.passed >= floor, "\(name) regressed: \(result.passed) passed, floor \(floor)")
            } else {
                Issue.record("\(name) has no recorded floor: \(result.passed) passed, \(result.failed) failed; add it to `floors`")
            }
            if !isOptional {
                for failure in result.failures where knownFailures[failure] == nil {
                    Issue.record("unexpected failure: \(failure)")
                }
            } else if !result.failures.isEmpty {
                for failure in result.failures.prefix(5) { report.append("    optional failure: \(failure)") }
                if result.failures.count > 5 { report.append("    ... and \(result.failures.count - 5) more") }
            }
        }
    }
    report.append("TOTAL: \(totals.passed) passed, \(totals.failed) failed, \(totals.unsupported) unsupported")
    report.append("Unsupported (not run, never counted as passed):")
    report.append(contentsOf: unsupportedReport.map { "  - " + $0 })
    report.append("Keywords reported as ignored (JSONSchema.unsupportedKeywords) in groups that ran: "
        + (ignoredKeywords.isEmpty ? "none" : ignoredKeywords.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) groups)" }.joined(separator: ", ")))
    print(report.joined(separator: "\n"))
}

import Foundation
import Logging
import Testing

@testable import GatewayCore
@testable import GatewayObservability

private func json(_ text: String) throws -> JSONValue {
    try JSONParser.parse(Array(text.utf8))
}

private func event(_ seq: Int = 1, tool: String = "example__echo", arguments: JSONValue = ["text": "hi"], outcome: AuditOutcome = .ok) -> AuditEvent {
    AuditEvent(
        timestamp: "2026-11-29T08:00:00.000Z", principal: "anonymous", tenant: nil, session: "abc", tool: tool,
        backend: "example", arguments: arguments, outcome: outcome, durationMilliseconds: 1.25
    )
}

private func lines(_ bytes: [UInt8]) -> [[UInt8]] {
    bytes.split(separator: UInt8(ascii: "\n")).map(Array.init)
}

private func joined(_ lines: [[UInt8]]) -> [UInt8] {
    lines.flatMap { $0 + [UInt8(ascii: "\n")] }
}

/// A fresh directory under the system's temporary directory, removed by the caller.
private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("audit-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func contents(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

@Suite("Audit canonical JSON and hash chain")
struct AuditChainTests {
    @Test("canonical JSON sorts keys at every depth, keeps numbers as written, escapes only what JSON requires")
    func canonicalForm() throws {
        let value = try json(#"{"b":[{"z":1,"a":2.50}],"a":"é/\u0001\"\\\n","A":1E+2}"#)
        let text = String(decoding: AuditCanonicalJSON.serialize(value), as: UTF8.self)
        #expect(text == #"{"A":1E+2,"a":"é/\u0001\"\\\n","b":[{"a":2.50,"z":1}]}"#)
    }

    @Test("the hash of a known record matches one computed independently (sha256sum)")
    func knownHash() throws {
        // printf '%s\n%s' "$(printf '0%.0s' {1..64})" '<canonical record below>' | sha256sum
        let arguments = try json(#"{"text":"h\u00e9llo \"q\"\n","n":1.50}"#)
        var chain = AuditChain()
        let line = chain.seal(event(arguments: arguments), redaction: AuditRedaction(keys: []))
        let record = try json(String(decoding: line, as: UTF8.self))
        let canonical = #"{"arguments":{"n":1.50,"text":"héllo \"q\"\n"},"backend":"example","duration_ms":1.25,"outcome":"ok","prev":""#
            + AuditChain.genesis
            + #"","principal":"anonymous","seq":1,"session":"abc","tenant":null,"tool":"example__echo","trace_id":null,"ts":"2026-11-29T08:00:00.000Z"}"#
        var withoutHash = try #require(record.objectValue)
        withoutHash["hash"] = nil
        #expect(String(decoding: AuditCanonicalJSON.serialize(.object(withoutHash)), as: UTF8.self) == canonical)
        #expect(record["hash"]?.stringValue == "df2da83f330d8269bf64042a7729ee1cb1098dcb4e3edce82916eac12641d430")
        #expect(chain.lastHash == "df2da83f330d8269bf64042a7729ee1cb1098dcb4e3edce82916eac12641d430")
        #expect(String(decoding: line, as: UTF8.self) == canonical.dropLast() + #","hash":"df2da83f330d8269bf64042a7729ee1cb1098dcb4e3edce82916eac12641d430"}"# + "\n")
    }

    @Test("redaction replaces listed keys case-insensitively at any depth, inside arrays too")
    func redaction() throws {
        let redaction = AuditRedaction(keys: ["password", "API_KEY"])
        let arguments = try json(#"{"user":"amy","Password":"hunter2","nested":{"deeper":[{"api_key":"k1","keep":1}],"PASSWORD":{"x":1}}}"#)
        let redacted = redaction.apply(arguments)
        #expect(redacted == (try json(#"{"user":"amy","Password":"[REDACTED]","nested":{"deeper":[{"api_key":"[REDACTED]","keep":1}],"PASSWORD":"[REDACTED]"}}"#)))
        var chain = AuditChain()
        let line = String(decoding: chain.seal(event(arguments: arguments), redaction: redaction), as: UTF8.self)
        #expect(!line.contains("hunter2"))
        #expect(!line.contains("k1"))
    }

    @Test("verify accepts an intact chain and names the first broken record: altered, deleted, reordered")
    func verifyFindsFirstBrokenRecord() throws {
        var chain = AuditChain()
        let records = (1...5).map { chain.seal(event($0, tool: "example__t\($0)"), redaction: AuditRedaction(keys: [])) }
        let intact = records.flatMap { $0 }
        let summary = try AuditVerifier.verify([("audit.jsonl", intact)]).get()
        #expect(summary.records == 5 && summary.firstSeq == 1 && summary.lastSeq == 5)

        var altered = records
        altered[2] = Array(String(decoding: altered[2], as: UTF8.self).replacingOccurrences(of: "example__t3", with: "example__tX").utf8)
        let alteredFailure = try #require(Self.failure(AuditVerifier.verify([("audit.jsonl", altered.flatMap { $0 })])))
        #expect(alteredFailure.line == 3 && alteredFailure.seq == 3 && alteredFailure.reason.hasPrefix("hash mismatch"))

        var deleted = records
        deleted.remove(at: 1)
        let deletedFailure = try #require(Self.failure(AuditVerifier.verify([("audit.jsonl", deleted.flatMap { $0 })])))
        #expect(deletedFailure.line == 2 && deletedFailure.seq == 3 && deletedFailure.reason.hasPrefix("seq mismatch"))

        var reordered = records
        reordered.swapAt(3, 4)
        let reorderedFailure = try #require(Self.failure(AuditVerifier.verify([("audit.jsonl", reordered.flatMap { $0 })])))
        #expect(reorderedFailure.line == 4 && reorderedFailure.seq == 5)

        // A consistent rewrite of seq cannot hide a deletion either: prev no longer matches.
        var renumbered = records
        renumbered.remove(at: 1)
        renumbered[1] = Array(String(decoding: renumbered[1], as: UTF8.self).replacingOccurrences(of: #""seq":3"#, with: #""seq":2"#).utf8)
        let renumberedFailure = try #require(Self.failure(AuditVerifier.verify([("audit.jsonl", renumbered.flatMap { $0 })])))
        #expect(renumberedFailure.line == 2 && renumberedFailure.reason.hasPrefix("prev mismatch"))

        var garbage = records
        garbage[3] = Array("{not json\n".utf8)
        let garbageFailure = try #require(Self.failure(AuditVerifier.verify([("audit.jsonl", garbage.flatMap { $0 })])))
        #expect(garbageFailure.line == 4 && garbageFailure.seq == nil && garbageFailure.reason.hasPrefix("unparsable"))
        #expect(garbageFailure.description == "audit.jsonl:4: seq unknown: unparsable line (not a JSON object)")

        let tail = records[2...].flatMap { $0 }
        #expect(try AuditVerifier.verify([("audit.jsonl", tail)]).get().firstSeq == 3, "a file continuing a rotated one verifies on its own")
        let missingMiddle = try #require(Self.failure(AuditVerifier.verify([("a.1", records[0...1].flatMap { $0 }), ("a", records[3...].flatMap { $0 })])))
        #expect(missingMiddle.file == "a" && missingMiddle.line == 1 && missingMiddle.seq == 4)
    }

    static func failure(_ result: Result<AuditVerifier.Summary, AuditVerifier.Failure>) -> AuditVerifier.Failure? {
        if case .failure(let failure) = result { return failure }
        return nil
    }
}

@Suite("Audit file sink")
struct AuditFileSinkTests {
    @Test("rotation by size keeps every record and the chain continues across files and restarts")
    func rotationKeepsChain() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.jsonl").path
        let settings = AuditFileSink.Settings(path: path, redact: ["secret"], maxBytes: 1200, keep: 50)
        let sink = AuditFileSink(settings: settings, logger: Logger(label: "test"))
        sink.start()
        for index in 1...20 { sink.record(event(arguments: ["index": .number(JSONNumber(index)), "secret": "s3cr3t"])) }
        await sink.close()
        #expect(sink.snapshot.written == 20 && sink.snapshot.failed == 0)
        #expect(sink.snapshot.rotations > 2)

        // A restarted sink resumes the chain from the last record on disk.
        let restarted = AuditFileSink(settings: settings, logger: Logger(label: "test"))
        restarted.start()
        restarted.record(event(tool: "example__after_restart"))
        await restarted.close()

        let rotated = (1...settings.keep).map { "\(path).\($0)" }.filter { FileManager.default.fileExists(atPath: $0) }
        let files = try (rotated.reversed() + [path]).map { (name: $0, contents: try contents($0)) }
        for file in files { #expect(file.contents.count <= settings.maxBytes) }
        let summary = try AuditVerifier.verify(files).get()
        #expect(summary.records == 21 && summary.firstSeq == 1 && summary.lastSeq == 21)
        #expect(!files.contains { String(decoding: $0.contents, as: UTF8.self).contains("s3cr3t") })
        let firstOfSecondFile = try json(String(decoding: lines(files[1].contents)[0], as: UTF8.self))
        let lastOfFirstFile = try json(String(decoding: lines(files[0].contents).last!, as: UTF8.self))
        #expect(firstOfSecondFile["prev"] == lastOfFirstFile["hash"])
    }

    @Test("a file whose end is not a record starts a new chain, healthy, and verify names the break")
    func corruptTailStartsNewChain() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.jsonl").path
        try Data("{\"seq\":7,\"cut short\n".utf8).write(to: URL(fileURLWithPath: path))
        let sink = AuditFileSink(settings: .init(path: path, redact: [], maxBytes: 1 << 20, keep: 1), logger: Logger(label: "test"))
        sink.start()
        #expect(sink.isHealthy)
        sink.record(event())
        await sink.close()
        let records = lines(try contents(path))
        #expect(records.count == 2)
        #expect(try json(String(decoding: records[1], as: UTF8.self))["seq"]?.intValue == 1)
        let failure = try #require(AuditChainTests.failure(AuditVerifier.verify([(path, try contents(path))])))
        #expect(failure.line == 1 && failure.reason.hasPrefix("unparsable"))
    }

    @Test("rotation keeps only `keep` old files")
    func rotationPrunes() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.jsonl").path
        let sink = AuditFileSink(settings: .init(path: path, redact: [], maxBytes: 400, keep: 2), logger: Logger(label: "test"))
        sink.start()
        for _ in 1...10 { sink.record(event()) }
        await sink.close()
        #expect(FileManager.default.fileExists(atPath: "\(path).1") && FileManager.default.fileExists(atPath: "\(path).2"))
        #expect(!FileManager.default.fileExists(atPath: "\(path).3"))
        let files = try ["\(path).2", "\(path).1", path].map { (name: $0, contents: try contents($0)) }
        #expect(try AuditVerifier.verify(files).get().lastSeq == 10)
    }

    @Test("an unwritable path makes the sink unhealthy and counts the lost records")
    func unwritablePath() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The parent is a regular file: open fails with ENOTDIR, for root too.
        let parent = directory.appendingPathComponent("not-a-directory")
        try Data("x".utf8).write(to: parent)
        let sink = AuditFileSink(settings: .init(path: parent.path + "/audit.jsonl", redact: [], maxBytes: 4096, keep: 1), logger: Logger(label: "test"))
        sink.start()
        #expect(!sink.isHealthy)
        sink.record(event())
        await sink.close()
        #expect(sink.snapshot.failed == 1 && sink.snapshot.written == 0)
        #expect(!sink.isHealthy)
    }

    @Test("a full queue is refused and counted, not grown")
    func boundedQueue() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.jsonl").path
        // Not started: nothing drains the queue.
        let sink = AuditFileSink(settings: .init(path: path, redact: [], maxBytes: 1 << 20, keep: 1, maxPending: 3), logger: Logger(label: "test"))
        for _ in 1...5 { sink.record(event()) }
        #expect(!sink.isHealthy)
        #expect(sink.snapshot.failed == 2)
    }
}

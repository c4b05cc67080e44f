import Foundation
import FuzzChecks
import FuzzSSEChecks
import FuzzSessionChecks
import Testing

/// Replays every committed fuzz input (Tests/fuzz/<target>/corpus and regressions, docs/fuzzing.md) through
/// its check, so an invariant a past fuzz run broke stays fixed without running libFuzzer.
@Suite struct FuzzReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz").path

    static func inputs(_ target: String) -> [String] {
        ["corpus", "regressions"].flatMap { FuzzDriver.inputFiles(at: "\(fuzzDirectory)/\(target)/\($0)") }
    }

    static func replay(_ target: String, _ check: ([UInt8]) throws(FuzzFailure) -> Void) throws {
        let files = inputs(target)
        #expect(!files.isEmpty, "no committed inputs for \(target)")
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(throws: Never.self, "\(file)") { try check(bytes) }
        }
    }

    @Test func jsonEnvelope() throws { try Self.replay("FuzzJSONEnvelope", JSONEnvelopeCheck.check) }
    @Test func sessionID() throws { try Self.replay("FuzzSessionID", SessionIDCheck.checkArbitrary) }
    @Test func sessionIDMutation() throws { try Self.replay("FuzzSessionIDMutation", SessionIDCheck.checkMutation) }
    @Test func jsonSchema() throws { try Self.replay("FuzzJSONSchema", JSONSchemaCheck.check) }
    @Test func sse() throws { try Self.replay("FuzzSSE", SSECheck.check) }
}

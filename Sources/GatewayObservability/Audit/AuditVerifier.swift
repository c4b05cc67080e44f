import GatewayCore

/// Checks audit files' hash chains (`mcp-gateway audit verify`). Pure: it is given each file's name and bytes,
/// in order (oldest first: `audit.jsonl.2 audit.jsonl.1 audit.jsonl`), and checks every record's `hash`
/// against its content, every `prev` against the record before it (across file boundaries too) and that
/// `seq` counts up by one, stopping at the first broken record.
///
/// The first record checked anchors the chain: with `seq` 1 its `prev` must be 64 zeros (the start of the
/// log); with a later `seq` it continues a file that was rotated away or not given, and its `prev` is taken
/// as given (nothing remains to check it against).
public enum AuditVerifier {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var seq: Int?
        public var reason: String

        public var description: String {
            "\(file):\(line): \(seq.map { "seq \($0)" } ?? "seq unknown"): \(reason)"
        }
    }

    public struct Summary: Sendable, Equatable {
        public var records: Int
        public var firstSeq: Int?
        public var lastSeq: Int?
        public var lastHash: String?
    }

    /// Audit records nest the client's arguments, which the gateway accepts up to `max_json_depth`; this
    /// bound only keeps a hostile file from exhausting the stack.
    static let maxDepth = 1024

    public static func verify(_ files: [(name: String, contents: [UInt8])]) -> Result<Summary, Failure> {
        var summary = Summary(records: 0)
        var expectedPrev: String?
        var expectedSeq: Int?
        for file in files {
            var lineNumber = 0
            var start = 0
            let bytes = file.contents
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                lineNumber += 1
                let line = bytes[start..<end]
                start = end + 1
                func failure(_ seq: Int?, _ reason: String) -> Result<Summary, Failure> {
                    .failure(Failure(file: file.name, line: lineNumber, seq: seq, reason: reason))
                }
                if end == bytes.count {
                    // A last line without its line feed: a write the process did not finish.
                    if line.isEmpty { break }
                }
                guard let value = try? JSONParser.parse(line, maxDepth: maxDepth), case .object(let record) = value else {
                    return failure(nil, "unparsable line (not a JSON object)")
                }
                let seq = record["seq"]?.intValue
                guard let seq else { return failure(nil, "the record has no integer \"seq\"") }
                guard let hash = record["hash"]?.stringValue else { return failure(seq, "the record has no string \"hash\"") }
                guard let prev = record["prev"]?.stringValue else { return failure(seq, "the record has no string \"prev\"") }
                if let expectedSeq, seq != expectedSeq {
                    return failure(seq, "seq mismatch: expected \(expectedSeq) (a record is missing, duplicated or out of order)")
                }
                if let expectedPrev {
                    if prev != expectedPrev {
                        return failure(seq, "prev mismatch: expected \(expectedPrev), the previous record's hash (a record before it is missing, reordered or altered)")
                    }
                } else if seq == 1, prev != AuditChain.genesis {
                    return failure(seq, "prev mismatch: the first record of the log must have prev of 64 zeros")
                }
                let computed = AuditChain.hash(prev: prev, recordWithoutHash: record)
                guard computed == hash else {
                    return failure(seq, "hash mismatch: the record's content does not give its hash (the record was altered)")
                }
                if summary.firstSeq == nil { summary.firstSeq = seq }
                summary.lastSeq = seq
                summary.lastHash = hash
                summary.records += 1
                expectedPrev = hash
                expectedSeq = seq + 1
            }
        }
        return .success(summary)
    }
}

import ArgumentParser
import Foundation
import GatewayObservability

/// `mcp-gateway audit …`: tools for the audit log (CONTRACT.md, "Audit log").
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Work with the audit log.",
        subcommands: [AuditVerifyCommand.self]
    )
}

/// `mcp-gateway audit verify FILE…`: checks the hash chain of one file, or of rotated files given oldest first
/// (`audit.jsonl.2 audit.jsonl.1 audit.jsonl`) as one chain. Exit 0 when intact; 1 naming the first broken
/// record (file, line, seq and why) or a file that cannot be read.
struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check audit log files' hash chain and name the first broken record.",
        discussion: "Give rotated files oldest first (audit.jsonl.2 audit.jsonl.1 audit.jsonl): the chain must continue across them."
    )

    @Argument(help: "Audit log files, oldest first.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one audit log file") }
    }

    func run() async throws {
        var inputs: [(name: String, contents: [UInt8])] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                print("\(file): cannot be read (missing, a directory, or no permission)")
                throw ExitCode(1)
            }
            inputs.append((name: file, contents: Array(data)))
        }
        switch AuditVerifier.verify(inputs) {
        case .success(let summary):
            let range = summary.firstSeq.map { first in " (seq \(first)-\(summary.lastSeq ?? first))" } ?? ""
            print("ok: \(summary.records) record(s)\(range) in \(files.count) file(s); the hash chain is intact")
        case .failure(let failure):
            print("\(failure.description)")
            print("broken: the chain is intact only before this record")
            throw ExitCode(1)
        }
    }
}

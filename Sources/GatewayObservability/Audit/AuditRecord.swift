import Crypto
import GatewayCore

/// How a `tools/call` ended, as the audit record and the `mcp_tool_calls_total{outcome}` label name it
/// (CONTRACT.md, "Metrics" and "Audit log"), plus `cancelled` for a call the client withdrew.
public enum AuditOutcome: String, Sendable, CaseIterable {
    case ok
    case toolError = "tool_error"
    case error
    case timeout
    case rejected
    case cancelled
}

/// What the request path knows about one `tools/call` when it ends: everything the record carries except
/// the chain fields (`seq`, `prev`, `hash`), which only the writer may assign, in write order.
public struct AuditEvent: Sendable {
    public var timestamp: String
    /// The token's `sub`, or the API key's id (CONTRACT.md, "Labels and check output").
    public var principal: String
    /// The token's issuer when OAuth is on, written beside `principal`; absent otherwise.
    public var issuer: String?
    public var tenant: String?
    /// The session's log digest (`SessionLogID.short`), never the session id: the id is a bearer credential.
    public var session: String?
    /// The exposed tool name (`<backend>__<tool>`), or the name the client asked for when it is unknown.
    public var tool: String
    public var backend: String?
    /// The arguments as the client sent them; redaction happens when the record is built.
    public var arguments: JSONValue
    public var outcome: AuditOutcome
    public var durationMilliseconds: Double
    public var traceID: String?

    public init(
        timestamp: String, principal: String, issuer: String? = nil, tenant: String?, session: String?, tool: String, backend: String?,
        arguments: JSONValue, outcome: AuditOutcome, durationMilliseconds: Double, traceID: String? = nil
    ) {
        self.timestamp = timestamp
        self.principal = principal
        self.issuer = issuer
        self.tenant = tenant
        self.session = session
        self.tool = tool
        self.backend = backend
        self.arguments = arguments
        self.outcome = outcome
        self.durationMilliseconds = durationMilliseconds
        self.traceID = traceID
    }

    /// The record's fields without `prev` and `hash`, arguments redacted (the line is written canonically, keys sorted).
    /// `duration_ms` is milliseconds rounded to microseconds, written as Swift's shortest round-trip text
    /// (the same text Python's `repr(float)` gives), so independent verifiers re-serialise it identically.
    func fields(seq: Int, redaction: AuditRedaction) -> JSONObject {
        let rounded = (durationMilliseconds * 1000).rounded() / 1000
        var object = JSONObject()
        object["ts"] = .string(timestamp)
        object["seq"] = .number(JSONNumber(seq))
        object["principal"] = .string(principal)
        if let issuer { object["issuer"] = .string(issuer) }
        object["tenant"] = tenant.map(JSONValue.string) ?? .null
        object["session"] = session.map(JSONValue.string) ?? .null
        object["tool"] = .string(tool)
        object["backend"] = backend.map(JSONValue.string) ?? .null
        object["arguments"] = redaction.apply(arguments)
        object["outcome"] = .string(outcome.rawValue)
        object["duration_ms"] = .number(JSONNumber(text: "\(max(0, rounded))") ?? JSONNumber(0))
        object["trace_id"] = traceID.map(JSONValue.string) ?? .null
        return object
    }
}

/// Replaces the value of every object member whose key is listed (`observability.audit.redact`), compared
/// case-insensitively, at any depth (inside nested objects and arrays), with `"[REDACTED]"`.
public struct AuditRedaction: Sendable {
    public static let placeholder = "[REDACTED]"
    private let keys: Set<String>

    public init(keys: [String]) {
        self.keys = Set(keys.map { $0.lowercased() })
    }

    public func apply(_ value: JSONValue) -> JSONValue {
        guard !keys.isEmpty else { return value }
        switch value {
        case .object(let object):
            return .object(JSONObject(object.members.map { member in
                (key: member.key, value: keys.contains(member.key.lowercased()) ? .string(Self.placeholder) : apply(member.value))
            }))
        case .array(let elements):
            return .array(elements.map(apply))
        default:
            return value
        }
    }
}

/// The canonical form the hash is computed over (CONTRACT.md, "Audit log"): object keys sorted by their
/// UTF-8 bytes (which is code-point order, the order Python's `sort_keys` and RFC 8785 give for these
/// keys), no insignificant whitespace, strings with only the escapes RFC 8259 §7 requires and numbers as
/// their written text. `JSONWriter` already writes exactly that, given members in sorted order.
public enum AuditCanonicalJSON {
    public static func serialize(_ value: JSONValue) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(512)
        write(value, into: &buffer)
        return buffer
    }

    /// Writes straight into `buffer`, sorting each object's members as it goes (no sorted copy of the value).
    public static func write(_ value: JSONValue, into buffer: inout [UInt8]) {
        switch value {
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            let members = object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            for (position, member) in members.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: ",")) }
                JSONWriter.writeString(member.key, into: &buffer)
                buffer.append(UInt8(ascii: ":"))
                write(member.value, into: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: ",")) }
                write(element, into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        default:
            JSONWriter.write(value, into: &buffer)
        }
    }
}

/// The hash chain: each record's `prev` is the previous record's `hash`, and `hash` is the lowercase hex
/// SHA-256 (FIPS 180-4) of `prev`, a line feed, and the record's canonical JSON without `hash`. A pure value:
/// the writer owns one and carries it across rotations, so the new file's first `prev` is the old file's last
/// `hash`.
public struct AuditChain: Sendable, Equatable {
    public static let genesis = String(repeating: "0", count: 64)

    public private(set) var lastHash: String
    public private(set) var lastSeq: Int

    public init(lastHash: String = AuditChain.genesis, lastSeq: Int = 0) {
        self.lastHash = lastHash
        self.lastSeq = lastSeq
    }

    /// Seals the next record: assigns `seq` and `prev`, computes `hash`, advances the chain, and returns the
    /// line to write: the canonical record itself (keys sorted) with `hash` appended as its last member, then a
    /// line feed. The canonical bytes are serialised once and serve both the hash and the line.
    public mutating func seal(_ event: AuditEvent, redaction: AuditRedaction) -> [UInt8] {
        var record = event.fields(seq: lastSeq + 1, redaction: redaction)
        record["prev"] = .string(lastHash)
        var input = Array(lastHash.utf8)
        input.append(UInt8(ascii: "\n"))
        let canonicalStart = input.count
        AuditCanonicalJSON.write(.object(record), into: &input)
        let hash = Self.hex(SHA256.hash(data: input))
        lastHash = hash
        lastSeq += 1
        var line = Array(input[canonicalStart..<(input.count - 1)])
        line.append(contentsOf: #","hash":""#.utf8)
        line.append(contentsOf: hash.utf8)
        line.append(contentsOf: "\"}\n".utf8)
        return line
    }

    /// `hex(SHA-256(prev + "\n" + canonical(record without "hash")))`.
    public static func hash(prev: String, recordWithoutHash record: JSONObject) -> String {
        var withoutHash = record
        withoutHash["hash"] = nil
        var input = Array(prev.utf8)
        input.append(UInt8(ascii: "\n"))
        AuditCanonicalJSON.write(.object(withoutHash), into: &input)
        return hex(SHA256.hash(data: input))
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header) with the
/// `tracestate` that travels beside it. The gateway accepts it from clients (HTTP headers, or `params._meta` in
/// stdio mode) and passes it to backends in `params._meta.traceparent`/`tracestate`, the 2026-07-28 convention
/// (older servers ignore unknown `_meta` keys).
public struct TraceParent: Sendable, Hashable, CustomStringConvertible {
    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// 16 lowercase hex digits, not all zero: the span that is the parent of the receiver's work.
    public let parentID: String
    /// Trace flags; bit 0 is `sampled`.
    public let flags: UInt8
    /// The vendor state, passed on unchanged (trace-context#tracestate-header); nil when absent or empty.
    public var traceState: String?

    public init?(traceID: String, parentID: String, flags: UInt8, traceState: String? = nil) {
        guard Self.isID(traceID.utf8, length: 32), Self.isID(parentID.utf8, length: 16) else { return nil }
        self.traceID = traceID
        self.parentID = parentID
        self.flags = flags
        self.traceState = traceState.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Parses a `traceparent` value. Version 00 must be exactly 55 characters; a later version (not `ff`) may be
    /// longer and is read by its first four fields (trace-context#versioning-of-traceparent). Upper-case hex,
    /// all-zero ids and malformed fields are rejected, so the receiver starts a new trace instead.
    public init?(header: String, traceState: String? = nil) {
        let bytes = Array(header.utf8)
        guard bytes.count >= 55, Self.isHex(bytes[0..<2]) else { return nil }
        let version = bytes[0..<2]
        if version.elementsEqual("ff".utf8) { return nil }
        if version.elementsEqual("00".utf8) {
            guard bytes.count == 55 else { return nil }
        } else if bytes.count > 55 {
            guard bytes[55] == UInt8(ascii: "-") else { return nil }
        }
        guard bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-"),
              Self.isHex(bytes[53..<55]), let flags = UInt8(String(decoding: bytes[53..<55], as: UTF8.self), radix: 16)
        else { return nil }
        self.init(
            traceID: String(decoding: bytes[3..<35], as: UTF8.self), parentID: String(decoding: bytes[36..<52], as: UTF8.self),
            flags: flags, traceState: traceState
        )
    }

    public var sampled: Bool { flags & 1 == 1 }

    /// The version-00 header form.
    public var description: String {
        let hex = Array("0123456789abcdef".utf8)
        let flagText = String(decoding: [hex[Int(flags >> 4)], hex[Int(flags & 0x0f)]], as: UTF8.self)
        return "00-\(traceID)-\(parentID)-\(flagText)"
    }

    /// The same trace continued under another parent span (the gateway's own span, when it records one).
    public func withParent(_ parentID: String, sampled: Bool? = nil) -> TraceParent? {
        let newFlags = sampled.map { $0 ? (flags | 1) : (flags & ~1) } ?? flags
        return TraceParent(traceID: traceID, parentID: parentID, flags: newFlags, traceState: traceState)
    }

    /// Reads `traceparent`/`tracestate` from a request's `params._meta` (the 2026-07-28 convention, and how a
    /// stdio client can pass its trace).
    public init?(meta: JSONObject?) {
        guard let header = meta?["traceparent"]?.stringValue else { return nil }
        self.init(header: header, traceState: meta?["tracestate"]?.stringValue)
    }

    /// `params` with `_meta.traceparent` (and `tracestate`) set to this context, other `_meta` keys kept.
    public func injected(into params: JSONObject) -> JSONObject {
        var params = params
        var meta = params["_meta"]?.objectValue ?? JSONObject()
        meta["traceparent"] = .string(description)
        if let traceState { meta["tracestate"] = .string(traceState) } else { meta["tracestate"] = nil }
        params["_meta"] = .object(meta)
        return params
    }

    private static func isID<C: Collection>(_ bytes: C, length: Int) -> Bool where C.Element == UInt8 {
        bytes.count == length && isHex(bytes) && bytes.contains { $0 != UInt8(ascii: "0") }
    }

    private static func isHex<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        bytes.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

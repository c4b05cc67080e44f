/// MCP protocol revisions of the legacy era, the ones negotiated with `initialize`
/// (2025-11-25/basic/lifecycle#version-negotiation; digest §1.1-1.2).
public enum ProtocolVersion: String, Sendable, CaseIterable, Comparable, Codable {
    case v2024_11_05 = "2024-11-05"
    case v2025_03_26 = "2025-03-26"
    case v2025_06_18 = "2025-06-18"
    case v2025_11_25 = "2025-11-25"

    public static let latest: ProtocolVersion = .v2025_11_25

    /// What a server assumes when a request carries no `MCP-Protocol-Version` header and the version is not
    /// otherwise known (2025-06-18/basic/transports#protocol-version-header).
    public static let assumedWithoutHeader: ProtocolVersion = .v2025_03_26

    /// Version negotiation: echo a supported requested version, otherwise answer with our newest.
    /// An unknown version is never a failure (lifecycle#version-negotiation, MUST item 1).
    public static func negotiate(requested: String?) -> ProtocolVersion {
        if let requested, let version = ProtocolVersion(rawValue: requested) { return version }
        return .latest
    }

    /// Batches exist only in 2025-03-26 (2025-03-26/basic/index#batching; removed in 2025-06-18).
    public var allowsBatches: Bool { self == .v2025_03_26 }

    public static func < (lhs: ProtocolVersion, rhs: ProtocolVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Every version this gateway speaks, newest first (reported by `version` and `/version`).
    public static let supported: [String] = allCases.reversed().map(\.rawValue)
}

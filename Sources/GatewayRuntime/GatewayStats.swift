import NIOConcurrencyHelpers

/// Counters kept per exposed tool name until the metrics layer exports them (CONTRACT.md, "Metrics":
/// `mcp_tool_param_validation_failures_total{backend,tool}`). Tool names come from the catalog, so the set is bounded.
public final class GatewayStats: Sendable {
    private let counters = NIOLockedValueBox(Counters())

    public struct Counters: Sendable, Equatable {
        public var validationFailures: [String: Int] = [:]
        public var outputSchemaMismatches: [String: Int] = [:]
    }

    public init() {}

    public var snapshot: Counters { counters.withLockedValue { $0 } }

    func recordValidationFailure(tool: String) {
        counters.withLockedValue { $0.validationFailures[tool, default: 0] += 1 }
    }

    func recordOutputSchemaMismatch(tool: String) {
        counters.withLockedValue { $0.outputSchemaMismatches[tool, default: 0] += 1 }
    }
}

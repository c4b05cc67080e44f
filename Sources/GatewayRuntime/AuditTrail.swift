import Foundation
import GatewayConfig
import GatewayCore
import GatewayObservability
import Logging
import NIOCore

/// The gateway's side of the audit log (CONTRACT.md, "Audit log"): one record per `tools/call`, whether a
/// backend answered it or the gateway refused it. Present only when `observability.audit.path` is set.
///
/// Records are built on the event loop from values the request already has and handed to the file sink's
/// writer thread; hashing, redaction and the write happen there.
final class AuditTrail: Sendable {
    let sink: AuditFileSink
    let policy: AuditFailurePolicy

    init?(configuration: ObservabilityConfig, logger: Logger) {
        guard let path = configuration.auditPath, !path.isEmpty else { return nil }
        var auditLogger = logger
        auditLogger[metadataKey: "component"] = "audit"
        self.sink = AuditFileSink(
            settings: .init(path: path, redact: configuration.auditRedact, maxBytes: configuration.auditMaxBytes, keep: configuration.auditKeep),
            logger: auditLogger
        )
        self.policy = configuration.auditOnFailure
    }

    func start() { sink.start() }

    func close() async { await sink.close() }

    /// With `on_failure: refuse` and a failing sink, the error that answers a `tools/call` instead of running it:
    /// no call runs unaudited. nil lets the call through.
    func refusal(for request: JSONRPCRequest) -> JSONRPCError? {
        guard request.method == "tools/call", policy == .refuse, !sink.isHealthy else { return nil }
        return .internalError(
            "the audit log (\(sink.settings.path)) cannot be written, and observability.audit.on_failure is refuse: tool calls are refused until it recovers"
        )
    }

    /// The record's fields that are known when a call starts.
    func call(tool: String, backend: String?, arguments: JSONValue, context: RequestContext, traceID: String? = nil) -> AuditedCall {
        AuditedCall(
            trail: self, principal: context.principal.subject, issuer: context.principal.issuer, tenant: context.principal.tenant,
            session: context.sessionID.map(SessionLogID.short), tool: tool, backend: backend, arguments: arguments, started: .now(),
            traceID: traceID
        )
    }

    /// A `tools/call` the gateway answered itself (unknown tool, invalid params, invalid arguments, a guard's
    /// refusal, the audit log's own refusal): recorded as `rejected` with the name and arguments the client sent.
    func recordRejected(_ request: JSONRPCRequest, catalog: Catalog, context: RequestContext, started: NIODeadline, traceID: String? = nil) {
        guard request.method == "tools/call" else { return }
        let name = request.params?["name"]?.stringValue ?? ""
        let tool = catalog.tool(named: name)
        var entry = call(tool: tool?.exposedName ?? name, backend: tool?.backend, arguments: request.params?["arguments"] ?? .null, context: context, traceID: traceID)
        entry.started = started
        entry.finish(.rejected)
    }
}

/// One audited `tools/call` in progress; `finish` emits its record exactly once per call site.
struct AuditedCall: Sendable {
    let trail: AuditTrail
    let principal: String
    let issuer: String?
    let tenant: String?
    let session: String?
    let tool: String
    let backend: String?
    let arguments: JSONValue
    var started: NIODeadline
    let traceID: String?

    func finish(_ outcome: AuditOutcome) {
        let elapsed = NIODeadline.now() - started
        trail.sink.record(AuditEvent(
            timestamp: Timestamp.rfc3339Milliseconds(Date()), principal: principal, issuer: issuer, tenant: tenant, session: session,
            tool: tool, backend: backend, arguments: arguments, outcome: outcome,
            durationMilliseconds: Double(elapsed.nanoseconds) / 1_000_000, traceID: traceID
        ))
    }
}

extension AuditOutcome {
    /// A backend's `tools/call` result: `tool_error` when it carries `"isError": true` (server/tools#error-
    /// handling: a tool's own failure is a result, not a protocol error), otherwise `ok`. Scans only the top
    /// level of the result.
    static func ofToolResult(_ raw: [UInt8]) -> AuditOutcome {
        guard case .object(let members)? = try? JSONParser.scan(raw, maxDepth: 512),
              let isError = members.last(where: { $0.key == "isError" })
        else { return .ok }
        return raw[isError.range].elementsEqual("true".utf8) ? .toolError : .ok
    }
}

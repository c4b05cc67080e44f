import GatewayCore
import Instrumentation
import ServiceContextModule
import Tracing

/// The gateway's spans (swift-distributed-tracing; exported over OTLP/HTTP by swift-otel when
/// `observability.tracing.otlp_endpoint` is set, see `TracingBootstrap`).
///
/// Three spans per traced request: the HTTP exchange (server), each JSON-RPC message in it (named
/// `<method>` or `<method> <tool>`), and each backend call (client, `<method> <backend>`). With no endpoint
/// there is no tracer: only the client's W3C context is propagated to backends and logs, which costs one header
/// parse per request (the "only context propagation is paid for").
public final class GatewayTracing: Sendable {
    private let tracer: (any Tracer)?

    /// - Parameter sampleRatio: with 0 no span is ever started, so `sample_ratio: 0` costs what propagation costs.
    public init(tracer: (any Tracer)?, sampleRatio: Double = 1) {
        self.tracer = sampleRatio > 0 ? tracer : nil
    }

    public static let disabled = GatewayTracing(tracer: nil)

    /// True when spans are recorded (a tracer is configured), whether or not a given trace is sampled.
    public var isRecording: Bool { tracer != nil }

    /// Where a request sits in its trace, from the client's `traceparent`/`tracestate` (HTTP headers or
    /// `params._meta`). Malformed values are ignored and a new trace starts (trace-context#processing-model).
    public func incoming(traceparent: String?, tracestate: String?) -> TraceLink {
        let parent = traceparent.flatMap { TraceParent(header: $0, traceState: tracestate) }
        guard let tracer, let parent else { return TraceLink(traceParent: parent, serviceContext: nil) }
        var context = ServiceContext.topLevel
        var carrier = ["traceparent": parent.description]
        if let state = parent.traceState { carrier["tracestate"] = state }
        tracer.extract(carrier, into: &context, using: DictionaryPropagation())
        return TraceLink(traceParent: parent, serviceContext: context)
    }

    /// Starts a span under `parent`; nil when no tracer is configured or the trace is not sampled. An unsampled
    /// span is ended at once and nothing else is paid for it: callers then continue from `parent.unsampled`, so
    /// the request's other spans are not even started (the ratio sampler decides by trace id, the same way for
    /// every span of a trace).
    public func startSpan(_ name: String, kind: SpanKind, parent: TraceLink) -> TracedSpan? {
        guard let tracer, !parent.isUnsampled else { return nil }
        let span = tracer.startSpan(name, context: parent.serviceContext ?? .topLevel, ofKind: kind)
        guard span.isRecording else {
            span.end()
            return nil
        }
        var carrier: [String: String] = [:]
        tracer.inject(span.context, into: &carrier, using: DictionaryPropagation())
        let own = carrier["traceparent"].flatMap { TraceParent(header: $0, traceState: carrier["tracestate"]) }
        return TracedSpan(span: span, link: TraceLink(traceParent: own ?? parent.traceParent, serviceContext: span.context))
    }
}

/// A position in a trace: the W3C context to propagate (to backends, into logs and audit records) and, when
/// spans are recorded, the `ServiceContext` carrying the current span as the parent for child spans.
public struct TraceLink: Sendable {
    public var traceParent: TraceParent?
    var serviceContext: ServiceContext?

    public static let none = TraceLink(traceParent: nil, serviceContext: nil)

    public init(traceParent: TraceParent?) {
        self.traceParent = traceParent
        self.serviceContext = nil
    }

    init(traceParent: TraceParent?, serviceContext: ServiceContext?) {
        self.traceParent = traceParent
        self.serviceContext = serviceContext
    }

    public var traceID: String? { traceParent?.traceID }

    /// True once a span of this request was not sampled: no further span is started for it.
    public private(set) var isUnsampled = false

    /// This position, marked so that no span is started under it.
    public var unsampled: TraceLink {
        var copy = self
        copy.isUnsampled = true
        return copy
    }
}

/// One recorded span. Confined to the request's event loop by its owner; ended exactly once.
public final class TracedSpan: @unchecked Sendable {
    private let span: any Span
    /// This span as a parent: its children and the backend's `_meta.traceparent` continue from here.
    public let link: TraceLink
    private var ended = false

    init(span: any Span, link: TraceLink) {
        self.span = span
        self.link = link
    }

    /// This span's id (16 hex digits), for log lines.
    public var spanID: String? { link.traceParent?.parentID }

    public func set(_ key: String, _ value: String) { span.attributes[key] = value }
    public func set(_ key: String, _ value: Int) { span.attributes[key] = value }

    public func rename(_ name: String) { span.operationName = name }

    /// Marks the span failed with a message a person can act on (OTel status ERROR).
    public func fail(_ message: String) { span.setStatus(SpanStatus(code: .error, message: message)) }

    public func end() {
        guard !ended else { return }
        ended = true
        span.end()
    }
}

/// W3C context in and out of a plain dictionary (the only carrier the gateway needs).
struct DictionaryPropagation: Extractor, Injector {
    typealias Carrier = [String: String]

    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }

    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

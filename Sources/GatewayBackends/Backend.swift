import GatewayCore
import NIOCore

/// A backend request, resolved by the router: the method and the params as the backend should see them
/// (tool name already un-prefixed; `_meta` intact).
public struct BackendCall: Sendable {
    public var method: String
    public var params: JSONObject
    /// The client's `_meta.progressToken`; the backend substitutes a token of its own on the wire and gives
    /// progress back under this one.
    public var progressToken: JSONValue?
    public var context: RequestContext
    /// The event loop of the client's connection, where in-process work runs without a hop.
    public var eventLoop: any EventLoop
    /// Where the backend's requests to the client and its log messages go while it serves this call (nil: the
    /// backend is told the client cannot be reached).
    public var relay: (any ClientRelay)?

    public init(
        method: String, params: JSONObject, progressToken: JSONValue?, context: RequestContext, eventLoop: any EventLoop,
        relay: (any ClientRelay)? = nil
    ) {
        self.method = method
        self.params = params
        self.progressToken = progressToken
        self.context = context
        self.eventLoop = eventLoop
        self.relay = relay
    }
}

/// A backend's answer: the raw JSON text of `result` (spliced into the client's response unparsed), or an error.
public enum BackendReply: Sendable {
    case result([UInt8])
    case error(JSONRPCError)
}

/// Receives one call's progress and its one final reply. Called from the backend's event loop; the
/// implementation hops to wherever it needs to be.
public protocol BackendCallSink: AnyObject, Sendable {
    /// `notifications/progress` params, with the client's own progress token restored.
    func backendProgress(_ params: JSONObject)
    func backendFinished(_ reply: BackendReply)
}

/// A call in flight; cancelling it tells the backend (stdio: `notifications/cancelled`) and drops its reply.
public protocol BackendInFlight: Sendable {
    func cancel(reason: String)
}

/// What backends tell the gateway about themselves.
public protocol BackendObserver: AnyObject, Sendable {
    /// The backend's tool list changed (first listing, a restart, or `notifications/tools/list_changed`).
    func backendToolsChanged(_ backend: String)
    /// A backend process died and will be restarted (`mcp_backend_restarts_total`).
    func backendRestarting(_ backend: String)
}

extension BackendObserver {
    public func backendRestarting(_ backend: String) {}
}

/// One protocol, several kinds (ARCHITECTURE.md, "Backend"): in-process plugins and stdio servers now,
/// remote HTTP servers later. Backends never see HTTP.
public protocol Backend: AnyObject, Sendable {
    var name: String { get }
    var kind: String { get }
    /// Tool descriptors as the backend lists them (its own names).
    var tools: [JSONObject] { get }
    /// Capabilities, tools, resources, resource templates and prompts as the backend lists them (defaulted in
    /// BackendListings.swift to the tools alone, for backends that offer nothing else).
    var listings: BackendListings { get }
    /// True while the backend can take calls.
    var isReady: Bool { get }
    /// Why it can or cannot take calls, for `/readyz` (supervised stdio backends tell more than ready or not).
    var healthState: BackendHealthState { get }
    var callTimeout: Duration { get }
    /// Starts the backend; the future completes when it is first ready (or fails if it cannot start).
    func start() -> EventLoopFuture<Void>
    func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight
    /// A client session ended: release whatever the backend holds for it.
    func sessionEnded(_ sessionID: String)
    /// Stops the backend (stdio: close stdin, wait, SIGTERM, wait, SIGKILL); completes when every child is reaped.
    func shutdown() -> EventLoopFuture<Void>
}

extension Backend {
    public var healthState: BackendHealthState { isReady ? .ready : .starting }
}

/// An in-flight handle for calls answered at once, which cannot be cancelled any more.
public struct CompletedInFlight: BackendInFlight {
    public init() {}
    public func cancel(reason: String) {}
}

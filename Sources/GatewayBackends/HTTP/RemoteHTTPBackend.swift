import AsyncHTTPClient
import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// A remote MCP server as a backend (`type: http`; issue 4, item 11): the gateway is its Streamable HTTP
/// client (2025-11-25/basic/transports#streamable-http).
///
/// - Every message is its own POST with `Accept: application/json, text/event-stream`; a request's answer is
///   read as JSON or as an SSE stream, whichever the server chose, and progress notifications arriving on the
///   stream reach the caller while the call is in flight (basic/utilities/progress).
/// - `initialize` then `notifications/initialized` (protocol 2025-11-25, accepting any version the gateway
///   speaks that the server answers with; lifecycle#version-negotiation), then `tools/list` following
///   `nextCursor`. The server's `Mcp-Session-Id` is sent back on every request, with `MCP-Protocol-Version`.
/// - One upstream session shared by every client (`session: shared`), or one per gateway session
///   (`session: per_client`), ended with DELETE when the gateway session ends (transports#session-management).
/// - A 404 on an upstream session means the server forgot it (a restart, an idle timeout): the session is
///   re-initialized once and the call retried (transports#session-management: "MUST start a new session").
/// - A server that cannot be reached makes the backend not ready; calls fail at once with -32001 naming the
///   backend and the server's host, and the connection is retried in the background with backoff.
/// - Many clients share one upstream session, so request ids and progress tokens are the gateway's own
///   (one counter per backend) and mapped back (MUST item 5); a cancelled call is told to the server with
///   `notifications/cancelled` (basic/utilities/cancellation).
/// - `headers` from the configuration go on every request; the client's own headers (its `Authorization`
///   above all) never do: the gateway builds every upstream request from scratch (MUST item 32: no token
///   passthrough). Header values are never logged.
/// - A server that answers the `initialize` POST with 400, 404 or 405 is a 2024-11-05 one: the backend falls
///   back to HTTP+SSE (transports#backwards-compatibility), GETs the URL (then `<origin>/sse`), reads the
///   `endpoint` event, POSTs there and reads every answer from the stream.
///
/// Like the stdio backend, all state is confined to one event loop; the HTTP client's callbacks run there
/// too, so the hot path has no hop and no `Task`.
public final class RemoteHTTPBackend: Backend, @unchecked Sendable {
    public let name: String
    public let kind = "http"
    public let callTimeout: Duration
    private let config: HTTPBackendConfig
    private let eventLoop: any EventLoop
    private let client: HTTPClient
    private let logger: Logger
    private weak var observer: (any BackendObserver)?
    private let handshakeTimeout: Duration
    /// `host[:port]` of the server, the only part of the URL that messages and logs show (a query may carry a
    /// credential).
    private let host: String
    private let origin: String

    // Confined to `eventLoop`.
    private var shared = UpstreamSession(label: "shared", listsTools: true)
    private var perClient: [String: UpstreamSession] = [:]
    private var pending: [Int: Pending] = [:]
    private var nextRequestID = 1
    private var stopping = false
    /// Set once a server answered the streamable `initialize` POST with 400/404/405.
    private var legacyDetected = false
    private var backoff = RestartBackoff(initialDelay: .milliseconds(200), maximumDelay: .seconds(10), resetAfter: .seconds(30))
    private var reconnect: Scheduled<Void>?
    private var nextAttempt: NIODeadline?
    /// Why the last connection attempt failed; nil while connected (and before the first attempt ends).
    private var lastFailure: String?
    private var everConnected = false

    private let published = NIOLockedValueBox<(tools: [JSONObject], state: BackendHealthState)>(([], .starting))
    /// The shared session's resources, templates and prompts (confined to `eventLoop`), and their published copy.
    private var sharedFeatures = FeatureLists()
    private let publishedListings = NIOLockedValueBox(BackendListings())

    static let maximumBodyBytes = 64 * 1024 * 1024

    private struct Pending {
        enum Kind {
            case control(EventLoopPromise<JSONValue>)
            case call(RemoteCall)
        }
        var kind: Kind
        var session: UpstreamSession
        var task: HTTPClient.Task<Void>?
    }

    final class RemoteCall: @unchecked Sendable {
        let call: BackendCall
        let sink: any BackendCallSink
        let handle: RemoteInFlight
        var retried = false

        init(call: BackendCall, sink: any BackendCallSink, handle: RemoteInFlight) {
            self.call = call
            self.sink = sink
            self.handle = handle
        }
    }

    public init(
        name: String, config: HTTPBackendConfig, callTimeout: Duration, eventLoopGroup: any EventLoopGroup, logger: Logger,
        observer: (any BackendObserver)?, handshakeTimeout: Duration = .seconds(30)
    ) {
        self.name = name
        self.config = config
        self.callTimeout = callTimeout
        self.eventLoop = eventLoopGroup.next()
        self.logger = logger
        self.observer = observer
        self.handshakeTimeout = handshakeTimeout
        let components = URLComponents(string: config.url)
        let hostName = components?.host ?? "?"
        let hostPart = hostName.contains(":") ? "[\(hostName)]" : hostName
        self.host = components?.port.map { "\(hostPart):\($0)" } ?? hostPart
        self.origin = "\(components?.scheme ?? "https")://\(self.host)"
        var configuration = HTTPClient.Configuration()
        // Redirects would carry the configured headers (credentials) to wherever the server points.
        configuration.redirectConfiguration = .disallow
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(5))
        // Each call in flight may hold a connection for its SSE answer.
        configuration.connectionPool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        // A refused connection fails the request at once (the client would otherwise retry until its connect
        // timeout, holding the call); the backend's own backoff decides when to try the server again.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration, backgroundActivityLogger: logger)
    }

    public var tools: [JSONObject] { published.withLockedValue { $0.tools } }
    public var listings: BackendListings {
        var listings = publishedListings.withLockedValue { $0 }
        listings.tools = tools
        return listings
    }
    public var isReady: Bool { published.withLockedValue { $0.state.isReady } }
    public var healthState: BackendHealthState { published.withLockedValue { $0.state } }

    // MARK: - Connection and supervision

    /// Connects the shared session; the future fails if the first attempt does, and attempts go on in the
    /// background with backoff until one succeeds.
    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { self.connectShared() }
    }

    private func connectShared() -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        nextAttempt = nil
        let session = shared
        let attempt = handshake(session)
        attempt.whenComplete { result in
            guard session === self.shared, !self.stopping else { return }
            switch result {
            case .success:
                self.backoff.started(now: Int64(NIODeadline.now().uptimeNanoseconds))
                let recovered = self.lastFailure != nil
                self.lastFailure = nil
                self.everConnected = true
                self.logger.info(recovered ? "remote backend reconnected" : "remote backend connected", metadata: self.sessionMetadata(session))
                self.publish()
                if recovered, let observer = self.observer as? any BackendResourceObserver {
                    // A new upstream session knows no subscriptions: the gateway renews those its sessions hold.
                    observer.backendLostSubscriptions(self.name)
                }
            case .failure(let error):
                self.connectionFailed(session, reason: self.describe(error))
            }
        }
        return attempt.flatMapErrorThrowing { error in
            throw UpstreamProtocolError.closed("the server at \(self.host) \(self.describe(error))")
        }
    }

    /// The shared session is gone (the server is unreachable, or its handshake failed): not ready, calls fail
    /// fast, and the next attempt is scheduled.
    private func connectionFailed(_ session: UpstreamSession, reason: String) {
        guard !stopping else { return }
        let wasReady = session.state == .ready
        close(session, reason: "the server at \(host) \(reason)")
        guard session === shared else { return }
        // A lost connection counts as a restart (`mcp_backend_restarts_total`); failed retries do not.
        if wasReady { observer?.backendRestarting(name) }
        lastFailure = reason
        publish()
        guard reconnect == nil else { return }
        let now = NIODeadline.now()
        let delay = backoff.failed(now: Int64(now.uptimeNanoseconds), random: Double.random(in: 0..<1))
        nextAttempt = now + .nanoseconds(delay.nanoseconds)
        logger.warning("remote backend connection failed; retrying", metadata: [
            "host": "\(host)", "error": "\(reason)", "delay_ms": "\(delay.nanoseconds / 1_000_000)",
        ])
        reconnect = eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) {
            self.reconnect = nil
            guard !self.stopping else { return }
            _ = self.connectShared()
        }
    }

    /// Ends a session locally: its calls in flight fail with -32001 and its streams are closed.
    private func close(_ session: UpstreamSession, reason: String) {
        session.state = .closed
        session.sessionID = nil
        session.handshake = nil
        session.legacyStream?.cancel()
        session.legacyStream = nil
        session.legacyPostURL = nil
        session.serverStreamGeneration += 1
        session.serverStream?.cancel()
        session.serverStream = nil
        for (id, entry) in pending where entry.session === session {
            pending[id] = nil
            entry.task?.cancel()
            switch entry.kind {
            case .control(let promise): promise.fail(UpstreamProtocolError.closed(reason))
            case .call(let remote): remote.sink.backendFinished(.error(.backendUnavailable(name, reason)))
            }
        }
    }

    /// `initialize`, `notifications/initialized` and, for the shared session, `tools/list`. Concurrent callers
    /// share one handshake.
    private func handshake(_ session: UpstreamSession) -> EventLoopFuture<Void> {
        if session.state == .connecting, let running = session.handshake { return running }
        session.state = .connecting
        session.sessionID = nil
        session.protocolVersion = nil
        session.transport = legacyDetected ? .legacySSE : .streamableHTTP
        let initialized: EventLoopFuture<Void>
        if legacyDetected {
            initialized = openLegacyStream(session).flatMap { self.initialize(session) }
        } else {
            initialized = initialize(session).flatMapError { error in
                // transports#backwards-compatibility: 400, 404 or 405 to the initialize POST is an old server.
                guard let status = (error as? UpstreamProtocolError)?.httpStatus, [400, 404, 405].contains(status), session.state == .connecting else {
                    return self.eventLoop.makeFailedFuture(error)
                }
                self.logger.notice("remote server does not speak Streamable HTTP; falling back to HTTP+SSE (2024-11-05)", metadata: [
                    "host": "\(self.host)", "status": "\(status)",
                ])
                session.transport = .legacySSE
                return self.openLegacyStream(session).flatMap { self.initialize(session) }
                    .map { self.legacyDetected = true }
                    .flatMapErrorThrowing { legacyError in
                        // Neither transport worked: say both, since a 400 may just as well be a Streamable HTTP
                        // server refusing the request.
                        throw UpstreamProtocolError.closed("answered the initialize POST with HTTP \(status), and the HTTP+SSE fallback failed too (\(legacyError))")
                    }
            }
        }
        let done = initialized.flatMap { () -> EventLoopFuture<Void> in
            guard session.listsTools else { return self.eventLoop.makeSucceededVoidFuture() }
            let features = self.listFeatures(session, FeatureLists.methods(for: session.capabilities))
            guard session.capabilities["tools"] != nil else { return features }
            return self.listTools(session, cursor: nil, accumulated: []).map { session.tools = $0 }.and(features).map { _ in }
        }
        .withTimeout(handshakeTimeout, on: eventLoop, description: "the MCP handshake with the server at \(host)")
        .flatMapThrowing {
            // A session closed meanwhile (the server went away, the gateway session ended) did not come up.
            guard session.state == .connecting else { throw UpstreamProtocolError.closed("closed the session during its handshake") }
            session.state = .ready
            if session.listsTools { self.openServerStream(session) }
        }
        session.handshake = done
        done.whenFailure { _ in
            guard session.handshake === done else { return }
            session.handshake = nil
            if session.state == .connecting { session.state = .closed }
        }
        return done
    }

    private func initialize(_ session: UpstreamSession) -> EventLoopFuture<Void> {
        controlRequest("initialize", params: [
            "protocolVersion": .string(ProtocolVersion.latest.rawValue),
            "capabilities": .object(RelayedServerRequest.declaredToBackends),
            "clientInfo": ["name": .string(GatewayVersion.name), "version": .string(GatewayVersion.version)],
        ], session: session).flatMapThrowing { result in
            let answered = result["protocolVersion"]?.stringValue ?? ""
            guard let version = ProtocolVersion(rawValue: answered) else { throw UpstreamProtocolError.unsupportedVersion(answered) }
            session.protocolVersion = version
            session.capabilities = result["capabilities"]?.objectValue ?? JSONObject()
        }.flatMap {
            self.notify("notifications/initialized", params: nil, session: session)
        }
    }

    private func listTools(_ session: UpstreamSession, cursor: String?, accumulated: [JSONObject]) -> EventLoopFuture<[JSONObject]> {
        var params = JSONObject()
        if let cursor { params["cursor"] = .string(cursor) }
        return controlRequest("tools/list", params: params, session: session).flatMap { result in
            var tools = accumulated
            for tool in result["tools"]?.arrayValue ?? [] {
                if let object = tool.objectValue { tools.append(object) }
            }
            if let next = result["nextCursor"]?.stringValue, !next.isEmpty, tools.count < 100_000 {
                return self.listTools(session, cursor: next, accumulated: tools)
            }
            return self.eventLoop.makeSucceededFuture(tools)
        }
    }

    /// Reads the shared session's resources, templates and prompts (each to its last page); a list the server
    /// fails to give is logged and left empty rather than failing the handshake.
    private func listFeatures(_ session: UpstreamSession, _ methods: [(method: String, key: String)]) -> EventLoopFuture<Void> {
        let reads = methods.map { entry in
            listAll(session, entry.method, key: entry.key, cursor: nil, accumulated: []).map { items in
                self.sharedFeatures.set(entry.key, items)
            }.recover { error in
                self.logger.warning("remote backend did not list \(entry.key)", metadata: ["method": "\(entry.method)", "error": "\(self.describe(error))"])
            }
        }
        return EventLoopFuture.andAllComplete(reads, on: eventLoop)
    }

    private func listAll(_ session: UpstreamSession, _ method: String, key: String, cursor: String?, accumulated: [JSONObject]) -> EventLoopFuture<[JSONObject]> {
        var params = JSONObject()
        if let cursor { params["cursor"] = .string(cursor) }
        return controlRequest(method, params: params, session: session).flatMap { result in
            var items = accumulated
            for item in result[key]?.arrayValue ?? [] {
                if let object = item.objectValue { items.append(object) }
            }
            if let next = result["nextCursor"]?.stringValue, !next.isEmpty, items.count < 100_000 {
                return self.listAll(session, method, key: key, cursor: next, accumulated: items)
            }
            return self.eventLoop.makeSucceededFuture(items)
        }
    }

    /// Re-reads the tool list after `notifications/tools/list_changed`.
    private func refreshTools() {
        guard shared.state == .ready else { return }
        let session = shared
        listTools(session, cursor: nil, accumulated: []).whenComplete { result in
            switch result {
            case .success(let tools):
                session.tools = tools
                self.publish()
            case .failure(let error):
                self.logger.warning("remote backend: re-listing tools failed", metadata: ["error": "\(self.describe(error))"])
            }
        }
    }

    private func publish() {
        let state: BackendHealthState
        if shared.state == .ready, !stopping {
            state = .ready
        } else {
            state = everConnected || lastFailure != nil ? .restarting : .starting
        }
        let tools = shared.tools
        let changed = published.withLockedValue { current -> Bool in
            let changed = current.tools != tools
            current = (tools, state)
            return changed
        }
        let listings = BackendListings(
            capabilities: shared.capabilities, resources: sharedFeatures.resources,
            resourceTemplates: sharedFeatures.resourceTemplates, prompts: sharedFeatures.prompts
        )
        let listingsChanged = publishedListings.withLockedValue { current -> Bool in
            defer { current = listings }
            return current != listings
        }
        if changed || listingsChanged { observer?.backendToolsChanged(name) }
    }

    private func sessionMetadata(_ session: UpstreamSession) -> Logger.Metadata {
        [
            "host": "\(host)", "upstream_session": "\(session.label)", "tools": "\(session.tools.count)",
            "transport": "\(session.transport == .legacySSE ? "sse" : "streamable_http")",
            "protocol_version": "\(session.protocolVersion?.rawValue ?? "?")",
        ]
    }

    // MARK: - Calls

    public func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        let handle = RemoteInFlight(eventLoop: eventLoop)
        handle.backend = self
        if eventLoop.inEventLoop {
            dispatch(RemoteCall(call: call, sink: sink, handle: handle))
        } else {
            eventLoop.execute { self.dispatch(RemoteCall(call: call, sink: sink, handle: handle)) }
        }
        return handle
    }

    private func dispatch(_ remote: RemoteCall) {
        guard !stopping else {
            remote.sink.backendFinished(.error(.backendUnavailable(name, "the gateway is shutting down")))
            return
        }
        guard !remote.handle.isCancelled else { return }
        if shared.state != .ready, let lastFailure {
            // Down: fail fast rather than queue behind a server that is not there.
            let retry = nextAttempt.map { " (next attempt in \(max(0, ($0.uptimeNanoseconds &- NIODeadline.now().uptimeNanoseconds) / 1_000_000))ms)" } ?? ""
            remote.sink.backendFinished(.error(.backendUnavailable(name, "the server at \(host) \(lastFailure); the gateway keeps retrying in the background\(retry)")))
            return
        }
        let session = session(for: remote.call)
        switch session.state {
        case .ready:
            send(remote, on: session)
        case .connecting, .closed:
            let ready = session.state == .connecting ? (session.handshake ?? handshake(session)) : handshake(session)
            ready.whenComplete { result in
                guard !remote.handle.isCancelled else { return }
                switch result {
                case .success: self.send(remote, on: session)
                case .failure(let error):
                    remote.sink.backendFinished(.error(.backendUnavailable(self.name, "the server at \(self.host) \(self.describe(error))")))
                }
            }
        }
    }

    /// The shared session, or (with `session: per_client`) the calling gateway session's own, created on its
    /// first call.
    private func session(for call: BackendCall) -> UpstreamSession {
        guard config.session == .perClient, let gatewaySession = call.context.sessionID else { return shared }
        if let existing = perClient[gatewaySession] { return existing }
        let session = UpstreamSession(label: SessionLogID.short(gatewaySession), listsTools: false)
        perClient[gatewaySession] = session
        return session
    }

    private func send(_ remote: RemoteCall, on session: UpstreamSession) {
        eventLoop.preconditionInEventLoop()
        guard !remote.handle.isCancelled else { return }
        guard session.state == .ready else {
            remote.sink.backendFinished(.error(.backendUnavailable(name, "its session with the server at \(host) was closed")))
            return
        }
        let id = nextRequestID
        nextRequestID += 1
        var params = remote.call.params
        if remote.call.progressToken != nil {
            // The upstream token is the upstream request id: unique among this backend's requests, whichever
            // client sent them (basic/utilities/progress: tokens unique among active requests).
            var meta = params["_meta"]?.objectValue ?? JSONObject()
            meta["progressToken"] = .number(JSONNumber(id))
            params["_meta"] = .object(meta)
        }
        pending[id] = Pending(kind: .call(remote), session: session)
        remote.handle.attach(id: id)
        let body = JSONRPCRequest(id: RequestID(id), method: remote.call.method, params: params).serialized()
        pending[id]?.task = post(body, session: session, requestID: id, what: remote.call.method)
    }

    /// A request of the gateway's own (the handshake, `tools/list`), answered through the same stream reader.
    private func controlRequest(_ method: String, params: JSONObject?, session: UpstreamSession) -> EventLoopFuture<JSONValue> {
        let id = nextRequestID
        nextRequestID += 1
        let promise = eventLoop.makePromise(of: JSONValue.self)
        pending[id] = Pending(kind: .control(promise), session: session)
        let body = JSONRPCRequest(id: RequestID(id), method: method, params: params).serialized()
        pending[id]?.task = post(body, session: session, requestID: id, what: method, deadline: .now() + .nanoseconds(handshakeTimeout.nanoseconds))
        return promise.futureResult
    }

    /// A notification or a response to the server: accepted with 202 (transports#sending-messages-to-the-server).
    @discardableResult
    private func notify(_ method: String, params: JSONObject?, session: UpstreamSession) -> EventLoopFuture<Void> {
        postMessage(JSONRPCNotification(method: method, params: params).serialized(), session: session, what: method)
    }

    private func postMessage(_ body: [UInt8], session: UpstreamSession, what: String) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        guard let request = makeRequest(method: .POST, url: postURL(for: session), session: session, body: body) else {
            promise.fail(UpstreamProtocolError.closed("has a URL the HTTP client cannot use"))
            return promise.futureResult
        }
        let status = NIOLoopBoundBox(0, eventLoop: eventLoop)
        let delegate = UpstreamExchangeDelegate(maximumBodyBytes: 64 * 1024) { event in
            switch event {
            case .head(let code, _): status.value = code
            case .message, .event: break
            case .end:
                if (200..<300).contains(status.value) { promise.succeed() } else { promise.fail(UpstreamProtocolError.status(status.value, what)) }
            case .failed(let error): promise.fail(error)
            }
        }
        _ = client.execute(request: request, delegate: delegate, eventLoop: .delegateAndChannel(on: eventLoop), deadline: .now() + .seconds(30))
        return promise.futureResult
    }

    private func postURL(for session: UpstreamSession) -> String {
        session.transport == .legacySSE ? (session.legacyPostURL ?? config.url) : config.url
    }

    /// POSTs one request. Streamable HTTP: its answer comes on this exchange (JSON or SSE). Legacy: the POST
    /// is only accepted here, and the answer comes on the session's stream.
    private func post(_ body: [UInt8], session: UpstreamSession, requestID: Int, what: String, deadline: NIODeadline? = nil) -> HTTPClient.Task<Void>? {
        guard let request = makeRequest(method: .POST, url: postURL(for: session), session: session, body: body) else {
            finish(requestID, .failure(UpstreamProtocolError.closed("has a URL the HTTP client cannot use")))
            return nil
        }
        let legacy = session.transport == .legacySSE
        let isInitialize = what == "initialize"
        let sentWith = session.sessionID
        let status = NIOLoopBoundBox(0, eventLoop: eventLoop)
        let delegate = UpstreamExchangeDelegate(maximumBodyBytes: Self.maximumBodyBytes) { event in
            switch event {
            case .head(let code, let headers):
                status.value = code
                guard (200..<300).contains(code) else {
                    self.httpStatusFailure(requestID, status: code, session: session, sentWith: sentWith, what: what)
                    return
                }
                if isInitialize, !legacy, let id = headers.first(name: "mcp-session-id"), !id.isEmpty {
                    session.sessionID = id
                }
            case .message(let bytes):
                self.received(bytes, session: session)
            case .event:
                break
            case .end:
                // Streamable HTTP: the answer should have come on this exchange (a JSON body, or the last event
                // of the stream). Legacy: it comes on the stream later.
                guard !legacy, (200..<300).contains(status.value), self.pending[requestID] != nil else { return }
                self.finish(requestID, .failure(UpstreamProtocolError.closed("the server at \(self.host) ended its answer to \(what) without a response")))
            case .failed(let error):
                guard self.pending[requestID] != nil else { return }
                self.transportFailed(requestID, session: session, error: error)
            }
        }
        return client.execute(request: request, delegate: delegate, eventLoop: .delegateAndChannel(on: eventLoop), deadline: deadline)
    }

    /// A non-2xx answer to a request's POST.
    private func httpStatusFailure(_ requestID: Int, status: Int, session: UpstreamSession, sentWith: String?, what: String) {
        guard let entry = pending[requestID] else { return }
        if status == 404, sentWith != nil || session.transport == .legacySSE, case .call(let remote) = entry.kind, !remote.retried {
            // transports#session-management: the server no longer knows the session; start a new one and
            // retry the call once on it.
            pending[requestID] = nil
            remote.retried = true
            if session.state == .ready, session.sessionID != sentWith, session.transport == .streamableHTTP {
                // Another call's 404 already replaced the session: just retry on the new one.
                send(remote, on: session)
                return
            }
            if session.state != .connecting {
                logger.notice("remote session expired (HTTP 404); re-initializing it", metadata: ["host": "\(host)", "upstream_session": "\(session.label)"])
                if session.transport == .legacySSE { close(session, reason: "the server at \(host) expired the legacy session") } else { session.state = .closed }
            }
            handshake(session).whenComplete { result in
                guard !remote.handle.isCancelled else { return }
                switch result {
                case .success:
                    if session === self.shared { self.publish() }
                    self.send(remote, on: session)
                case .failure(let error):
                    let reason = self.describe(error)
                    remote.sink.backendFinished(.error(.backendUnavailable(self.name, "the server at \(self.host) \(reason)")))
                    if session === self.shared { self.connectionFailed(session, reason: reason) }
                }
            }
            return
        }
        var detail = "the server at \(host) answered \(what) with HTTP \(status)"
        if status == 401 || status == 403 {
            detail += "; check the credentials in backends.\(name).headers"
        }
        finish(requestID, .failure(UpstreamProtocolError.status(status, what)), message: detail)
    }

    /// The connection failed (refused, reset, timed out): the call fails; if the server is unreachable, the
    /// backend is marked down and reconnects in the background.
    private func transportFailed(_ requestID: Int, session: UpstreamSession, error: any Error) {
        let reason = describe(error)
        finish(requestID, .failure(error), message: "the server at \(host) \(reason)")
        if Self.isConnectionLevel(error) {
            connectionFailed(shared, reason: reason)
            if session !== shared { close(session, reason: "the server at \(host) \(reason)") }
        }
    }

    private func finish(_ requestID: Int, _ outcome: Result<JSONValue, any Error>, message: String? = nil) {
        guard let entry = pending.removeValue(forKey: requestID) else { return }
        switch (entry.kind, outcome) {
        case (.control(let promise), .success(let value)): promise.succeed(value)
        case (.control(let promise), .failure(let error)): promise.fail(error)
        case (.call(let remote), .success):
            remote.sink.backendFinished(.error(.internalError("backend '\(name)' answered in an unexpected form")))
        case (.call(let remote), .failure(let error)):
            if let rpc = error as? JSONRPCError {
                remote.sink.backendFinished(.error(rpc))
            } else {
                remote.sink.backendFinished(.error(.backendUnavailable(name, message ?? "the server at \(host) \(describe(error))")))
            }
        }
    }

    /// Cancels a call: its answer will be dropped and the server told (basic/utilities/cancellation); the
    /// exchange carrying the answer is closed once the server has the notification.
    func cancel(id: Int, reason: String) {
        eventLoop.preconditionInEventLoop()
        guard let entry = pending.removeValue(forKey: id) else { return }
        let task = entry.task
        guard entry.session.state == .ready else {
            task?.cancel()
            return
        }
        notify("notifications/cancelled", params: ["requestId": .number(JSONNumber(id)), "reason": .string(reason)], session: entry.session)
            .whenComplete { _ in
                if entry.session.transport == .streamableHTTP { task?.cancel() }
            }
    }

    // MARK: - Inbound messages

    /// One JSON-RPC message from the server (a POST's answer or stream, or the legacy stream). Only the
    /// envelope is parsed; a result's raw bytes go to the client.
    private func received(_ bytes: [UInt8], session: UpstreamSession) {
        guard case .object(let members)? = try? JSONParser.scan(bytes, maxDepth: 512) else {
            logger.warning("remote backend sent a message that is not a JSON object; skipped", metadata: ["host": "\(host)"])
            return
        }
        var idRange: Range<Int>?, methodRange: Range<Int>?, resultRange: Range<Int>?, errorRange: Range<Int>?, paramsRange: Range<Int>?
        for member in members {
            switch member.key {
            case "id": idRange = member.range
            case "method": methodRange = member.range
            case "result": resultRange = member.range
            case "error": errorRange = member.range
            case "params": paramsRange = member.range
            default: break
            }
        }
        func value(_ range: Range<Int>?) -> JSONValue? {
            guard let range else { return nil }
            return try? JSONParser.parse(bytes[range], maxDepth: 512)
        }
        if let method = value(methodRange)?.stringValue {
            if let id = value(idRange).flatMap(RequestID.init) {
                serverRequest(id: id, method: method, params: value(paramsRange)?.objectValue, session: session)
            } else {
                serverNotification(method: method, params: value(paramsRange)?.objectValue)
            }
            return
        }
        guard let id = value(idRange)?.intValue, let entry = pending[id] else {
            return // A late answer to a cancelled request (cancellation#timing).
        }
        switch entry.kind {
        case .control:
            if let result = value(resultRange) {
                finish(id, .success(result))
            } else {
                finish(id, .failure(value(errorRange).flatMap(JSONRPCError.init(json:)) ?? JSONRPCError.internalError("malformed reply")))
            }
        case .call(let remote):
            pending[id] = nil
            if let resultRange {
                remote.sink.backendFinished(.result(Array(bytes[resultRange])))
            } else if let error = value(errorRange).flatMap(JSONRPCError.init(json:)) {
                remote.sink.backendFinished(.error(error))
            } else {
                remote.sink.backendFinished(.error(.internalError("backend '\(name)' sent a reply with neither result nor error")))
            }
        }
    }

    /// `ping` is answered here. Sampling, elicitation and roots go to the client of the one call in flight on
    /// this upstream session (the same rule as stdio backends, StdioProcess.relatedRelay), and the client's
    /// answer is POSTed back under the server's id; with no call or several, the server gets an error.
    private func serverRequest(id: RequestID, method: String, params: JSONObject?, session: UpstreamSession) {
        let what = "the answer to \(method)"
        if method == "ping" {
            _ = postMessage(JSONRPCEncoder.response(id: id, result: .object(JSONObject())), session: session, what: what)
            return
        }
        guard RelayedServerRequest.capabilityByMethod[method] != nil else {
            let refusal = JSONRPCError(code: JSONRPCErrorCode.methodNotFound, message: "The gateway does not relay \(method) to clients")
            _ = postMessage(JSONRPCEncoder.error(id: id, refusal), session: session, what: what)
            return
        }
        guard let relay = relatedRelay(session: session) else {
            let refusal = JSONRPCError(
                code: JSONRPCErrorCode.internalError,
                message: "The gateway cannot tell which client \(method) is for: it relays it only while exactly one client call is in flight on this upstream session"
            )
            _ = postMessage(JSONRPCEncoder.error(id: id, refusal), session: session, what: what)
            return
        }
        relay.relayRequest(method: method, params: params) { [weak self] reply in
            guard let self else { return }
            self.eventLoop.execute {
                let answer: [UInt8]
                switch reply {
                case .result(let raw): answer = JSONRPCEncoder.response(id: id, rawResult: raw)
                case .error(let error): answer = JSONRPCEncoder.error(id: id, error)
                }
                _ = self.postMessage(answer, session: session, what: what)
            }
        }
    }

    /// The relay of the only client call in flight (on `session`, when given): the call a server's request or
    /// log message belongs to, since MCP messages from a server name no session. Nil when ambiguous or idle.
    private func relatedRelay(session: UpstreamSession?) -> (any ClientRelay)? {
        var only: (any ClientRelay)?
        var calls = 0
        for entry in pending.values {
            guard case .call(let remote) = entry.kind, session == nil || entry.session === session else { continue }
            calls += 1
            only = remote.call.relay
        }
        return calls == 1 ? only : nil
    }

    private func serverNotification(method: String, params: JSONObject?) {
        switch method {
        case "notifications/progress":
            guard let params, let token = params["progressToken"]?.intValue, case .call(let remote)? = pending[token]?.kind,
                  let clientToken = remote.call.progressToken else { return }
            var forwarded = params
            forwarded["progressToken"] = clientToken
            remote.sink.backendProgress(forwarded)
        case "notifications/tools/list_changed":
            refreshTools()
        case "notifications/resources/list_changed", "notifications/prompts/list_changed":
            guard shared.state == .ready else { return }
            listFeatures(shared, FeatureLists.methods(forListChanged: method, capabilities: shared.capabilities)).whenSuccess { self.publish() }
        case "notifications/resources/updated":
            guard let params, let observer = observer as? any BackendResourceObserver else { return }
            observer.backendResourceUpdated(name, params: params, session: nil)
        case "notifications/message":
            if let params, let relay = relatedRelay(session: nil) {
                relay.relayLog(params)
            } else if let params, let observer = observer as? any BackendLogObserver {
                observer.backendLogMessage(name, params: params)
            }
            logger.debug("backend log message", metadata: [
                "backend_level": "\(params?["level"]?.stringValue ?? "info")",
                "data": "\(params?["data"].map { $0.jsonString } ?? "")",
            ])
        default:
            logger.debug("backend notification not relayed", metadata: ["method": "\(method)"])
        }
    }

    // MARK: - The server's GET stream (2025-11-25/basic/transports#listening-for-messages-from-the-server)

    /// Opens the shared session's GET stream, on which the server sends what is not tied to a request
    /// (`notifications/tools/list_changed` above all). A 405 means the server offers none, and nothing more is
    /// tried; a stream the server ends is reopened while the session lives.
    private func openServerStream(_ session: UpstreamSession) {
        guard session.transport == .streamableHTTP, session.state == .ready, session.serverStream == nil, !stopping else { return }
        var headers = baseHeaders(session: session)
        headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        guard let request = try? HTTPClient.Request(url: config.url, method: .GET, headers: headers) else { return }
        session.serverStreamGeneration += 1
        let generation = session.serverStreamGeneration
        let sentWith = session.sessionID
        let status = NIOLoopBoundBox(0, eventLoop: eventLoop)
        let delegate = UpstreamExchangeDelegate(maximumBodyBytes: Self.maximumBodyBytes) { event in
            switch event {
            case .head(let code, _):
                status.value = code
            case .message(let bytes):
                self.received(bytes, session: session)
            case .event:
                break
            case .end, .failed:
                guard session.serverStreamGeneration == generation else { return }
                session.serverStream = nil
                guard (200..<300).contains(status.value), session.state == .ready, session.sessionID == sentWith, !self.stopping else {
                    if status.value != 0, !(200..<300).contains(status.value) {
                        self.logger.debug("remote server offers no GET stream", metadata: ["host": "\(self.host)", "status": "\(status.value)"])
                    }
                    return
                }
                // A second's pause, so a server that ends every stream at once is not hammered.
                self.eventLoop.scheduleTask(in: .seconds(1)) {
                    guard session.serverStreamGeneration == generation else { return }
                    self.openServerStream(session)
                }
            }
        }
        session.serverStream = client.execute(request: request, delegate: delegate, eventLoop: .delegateAndChannel(on: eventLoop))
    }

    // MARK: - Legacy HTTP+SSE (2024-11-05/basic/transports#http-with-sse)

    /// Opens the session's event stream and waits for its `endpoint` event: first on the configured URL, then
    /// on `<origin>/sse`, the conventional path.
    private func openLegacyStream(_ session: UpstreamSession) -> EventLoopFuture<Void> {
        var candidates = [config.url]
        if URLComponents(string: config.url)?.path != "/sse" { candidates.append(origin + "/sse") }
        return openLegacyStream(session, candidates: candidates[...])
    }

    private func openLegacyStream(_ session: UpstreamSession, candidates: ArraySlice<String>) -> EventLoopFuture<Void> {
        guard let url = candidates.first else {
            return eventLoop.makeFailedFuture(UpstreamProtocolError.noEndpointEvent("no candidate URL answered with an event stream"))
        }
        return openLegacyStream(session, url: url).flatMapError { error in
            guard candidates.count > 1, session.state == .connecting else { return self.eventLoop.makeFailedFuture(error) }
            return self.openLegacyStream(session, candidates: candidates.dropFirst())
        }
    }

    private func openLegacyStream(_ session: UpstreamSession, url: String) -> EventLoopFuture<Void> {
        let endpoint = eventLoop.makePromise(of: Void.self)
        let gotEndpoint = NIOLoopBoundBox(false, eventLoop: eventLoop)
        var headers = baseHeaders(session: nil)
        headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        guard let request = try? HTTPClient.Request(url: url, method: .GET, headers: headers) else {
            return eventLoop.makeFailedFuture(UpstreamProtocolError.noEndpointEvent("the URL is not usable"))
        }
        let streamURL = URL(string: url)
        let delegate = UpstreamExchangeDelegate(maximumBodyBytes: Self.maximumBodyBytes) { event in
            switch event {
            case .head(let code, let headers):
                let type = headers.first(name: "content-type")?.lowercased() ?? ""
                if !(200..<300).contains(code) || !type.hasPrefix("text/event-stream") {
                    endpoint.fail(UpstreamProtocolError.noEndpointEvent("GET answered HTTP \(code) \(type)"))
                }
            case .event(let event) where event.type == "endpoint":
                guard !gotEndpoint.value else { return }
                let text = String(decoding: event.data, as: UTF8.self).trimmingCharacters(in: .whitespaces)
                guard let resolved = URL(string: text, relativeTo: streamURL)?.absoluteURL,
                      resolved.scheme == streamURL?.scheme, resolved.host == streamURL?.host, resolved.port == streamURL?.port else {
                    endpoint.fail(UpstreamProtocolError.foreignEndpoint)
                    return
                }
                gotEndpoint.value = true
                session.legacyPostURL = resolved.absoluteString
                endpoint.succeed()
            case .event:
                break
            case .message(let bytes):
                self.received(bytes, session: session)
            case .end, .failed:
                let reason: String
                if case .failed(let error) = event { reason = self.describe(error) } else { reason = "closed its event stream" }
                guard gotEndpoint.value else {
                    endpoint.fail(UpstreamProtocolError.noEndpointEvent(reason))
                    return
                }
                guard session.legacyStream != nil, !self.stopping else { return }
                self.logger.warning("remote backend's legacy event stream ended", metadata: ["host": "\(self.host)", "upstream_session": "\(session.label)"])
                if session === self.shared {
                    self.connectionFailed(session, reason: reason)
                } else {
                    self.close(session, reason: "the server at \(self.host) \(reason)")
                    self.perClient = self.perClient.filter { $0.value !== session }
                }
            }
        }
        session.legacyStream = client.execute(request: request, delegate: delegate, eventLoop: .delegateAndChannel(on: eventLoop))
        return endpoint.futureResult
    }

    // MARK: - Requests

    /// The headers of every request: the configured ones (credentials for the server), then the transport's
    /// own. Nothing from the client's request is copied (MUST item 32).
    private func baseHeaders(session: UpstreamSession?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (name, value) in config.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "User-Agent", value: "\(GatewayVersion.name)/\(GatewayVersion.version)")
        if let session, session.transport == .streamableHTTP {
            if let id = session.sessionID { headers.replaceOrAdd(name: "Mcp-Session-Id", value: id) }
            if let version = session.protocolVersion { headers.replaceOrAdd(name: "MCP-Protocol-Version", value: version.rawValue) }
        }
        return headers
    }

    private func makeRequest(method: HTTPMethod, url: String, session: UpstreamSession, body: [UInt8]?) -> HTTPClient.Request? {
        var headers = baseHeaders(session: session)
        if body != nil {
            headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            headers.replaceOrAdd(name: "Accept", value: "application/json, text/event-stream")
        }
        return try? HTTPClient.Request(url: url, method: method, headers: headers, body: body.map { .bytes($0) })
    }

    /// Errors that mean the server cannot be reached at all (as opposed to an answer the gateway disliked).
    static func isConnectionLevel(_ error: any Error) -> Bool {
        if error is UpstreamProtocolError || error is JSONRPCError { return false }
        if let client = error as? HTTPClientError, client == .cancelled || client == .deadlineExceeded { return false }
        return true
    }

    /// An error in words for a message that already names the server ("the server at HOST …").
    private func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "is unreachable (connect timed out)"
            case .remoteConnectionClosed: return "closed the connection"
            case .readTimeout: return "did not answer in time (read timeout)"
            case .deadlineExceeded: return "did not answer in time"
            default: return "is unreachable (\(error))"
            }
        }
        if let error = error as? UpstreamProtocolError {
            guard case .closed(let why) = error else { return "failed: \(error)" }
            // `.closed` carries a phrase about the server, sometimes already a sentence naming it.
            let prefix = "the server at \(host) "
            return why.hasPrefix(prefix) ? String(why.dropFirst(prefix.count)) : why
        }
        if let error = error as? JSONRPCError { return "answered with error \(error.code): \(error.message)" }
        if let error = error as? TimeoutError { return "failed: \(error.description)" }
        let text = "\(error)"
        if text.localizedCaseInsensitiveContains("refused") { return "is unreachable (connection refused)" }
        return "is unreachable (\(text))"
    }

    // MARK: - Sessions and shutdown

    /// `session: per_client`: the gateway session ended, so its upstream session ends too, with DELETE
    /// (transports#session-management; a 405 answer is fine, the server then expires it itself).
    public func sessionEnded(_ sessionID: String) {
        guard config.session == .perClient else { return }
        eventLoop.execute {
            guard let session = self.perClient.removeValue(forKey: sessionID) else { return }
            _ = self.end(session, reason: "the client session ended")
        }
    }

    private func end(_ session: UpstreamSession, reason: String) -> EventLoopFuture<Void> {
        let upstreamID = session.sessionID
        let transport = session.transport
        let version = session.protocolVersion
        close(session, reason: reason)
        guard transport == .streamableHTTP, let upstreamID else { return eventLoop.makeSucceededVoidFuture() }
        var headers = baseHeaders(session: nil)
        headers.replaceOrAdd(name: "Mcp-Session-Id", value: upstreamID)
        if let version { headers.replaceOrAdd(name: "MCP-Protocol-Version", value: version.rawValue) }
        guard let request = try? HTTPClient.Request(url: config.url, method: .DELETE, headers: headers) else { return eventLoop.makeSucceededVoidFuture() }
        return client.execute(request: request, eventLoop: .delegateAndChannel(on: eventLoop), deadline: .now() + .seconds(2))
            .map { response in
                self.logger.debug("remote session ended", metadata: ["upstream_session": "\(session.label)", "status": "\(response.status.code)"])
            }
            .recover { _ in }
    }

    public func shutdown() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.stopping = true
            self.reconnect?.cancel()
            self.reconnect = nil
            let sessions = [self.shared] + Array(self.perClient.values)
            self.perClient.removeAll()
            let ends = sessions.map { self.end($0, reason: "the gateway is shutting down") }
            return EventLoopFuture.andAllComplete(ends, on: self.eventLoop)
                .flatMap { self.client.shutdown().hop(to: self.eventLoop).recover { _ in } }
                .map { self.publish() }
        }
    }
}

/// A remote call's handle: cancellation hops to the backend's event loop, where the upstream id is known.
final class RemoteInFlight: BackendInFlight, @unchecked Sendable {
    // Confined to the backend's event loop.
    weak var backend: RemoteHTTPBackend?
    private var id: Int?
    private(set) var isCancelled = false
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func attach(id: Int) {
        self.id = id
    }

    func cancel(reason: String) {
        eventLoop.execute {
            self.isCancelled = true
            if let id = self.id { self.backend?.cancel(id: id, reason: reason) }
        }
    }
}

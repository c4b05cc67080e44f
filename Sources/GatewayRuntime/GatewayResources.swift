import GatewayBackends
import GatewayConfig
import GatewayCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Who subscribed to which resource (2025-11-25/server/resources#subscriptions). Many sessions share one
/// backend connection, and a backend's `notifications/resources/updated` names only a URI, so the gateway keeps
/// the subscribers itself: an update goes to exactly the sessions subscribed to that URI at that backend, and
/// the backend's own subscription lasts while any session holds one (an unsubscribe by one of several
/// subscribers is answered by the gateway and not forwarded).
final class ResourceSubscriptions: Sendable {
    struct Key: Hashable, Sendable {
        var backend: String
        var uri: String
    }

    private let table = NIOLockedValueBox<[Key: Set<String>]>([:])

    func subscribe(session: String, backend: String, uri: String) {
        table.withLockedValue { $0[Key(backend: backend, uri: uri), default: []].insert(session) }
    }

    /// Removes the session's subscription; true when no session is subscribed any more, so the backend's
    /// subscription should end too.
    func unsubscribe(session: String, backend: String, uri: String) -> Bool {
        table.withLockedValue { table in
            let key = Key(backend: backend, uri: uri)
            guard var sessions = table[key] else { return true }
            sessions.remove(session)
            table[key] = sessions.isEmpty ? nil : sessions
            return sessions.isEmpty
        }
    }

    func subscribers(backend: String, uri: String) -> Set<String> {
        table.withLockedValue { $0[Key(backend: backend, uri: uri)] ?? [] }
    }

    /// Drops every subscription of an ended session; returns those no session holds any more.
    func sessionEnded(_ session: String) -> [Key] {
        table.withLockedValue { table in
            var orphaned: [Key] = []
            for (key, var sessions) in table where sessions.contains(session) {
                sessions.remove(session)
                if sessions.isEmpty {
                    table[key] = nil
                    orphaned.append(key)
                } else {
                    table[key] = sessions
                }
            }
            return orphaned
        }
    }

    /// URIs some session is subscribed to at a backend.
    func uris(backend: String) -> [String] {
        table.withLockedValue { table in table.keys.filter { $0.backend == backend }.map(\.uri).sorted() }
    }
}

extension Gateway {
    /// Serves a resource, prompt or completion request the router resolved to a backend: like a tool call
    /// (`call_timeout`, cancellation, the backend's answer spliced in raw), minus the tool-only parts (argument
    /// validation, audit). Subscriptions are recorded here; see `ResourceSubscriptions`.
    func forward(
        _ route: ForwardRoute, request: JSONRPCRequest, session: SessionState, context: RequestContext, current: Routing,
        eventLoop: any EventLoop, reply: any ReplyChannel, observation: RequestObservation
    ) {
        observation.resolve(tool: nil, backend: route.backend)
        guard let backend = current.byName[route.backend] else {
            let error = JSONRPCError.backendUnavailable(route.backend, "it is not configured any more")
            reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
            observation.finish(.error, error: error)
            return
        }
        switch route.subscription {
        case .subscribe(let uri)?:
            subscriptions.subscribe(session: session.id, backend: route.backend, uri: uri)
        case .unsubscribe(let uri)?:
            guard subscriptions.unsubscribe(session: session.id, backend: route.backend, uri: uri) else {
                // Other sessions still want updates of this URI: the backend keeps its subscription.
                reply.sendResponse(JSONRPCEncoder.response(id: request.id, result: .object(JSONObject())))
                observation.finish(.ok)
                return
            }
        case nil:
            break
        }
        let backendSpan = observation.startBackendSpan(backend: backend.name)
        let execution = ToolCallExecution(
            eventLoop: eventLoop, requestID: request.id, backendName: backend.name, method: request.method, reply: reply,
            session: session, timeout: backend.callTimeout, observation: observation, backendSpan: backendSpan
        ) { [weak self, session, counter = current.counters[backend.name]] execution in
            counter?.add(-1)
            session.unregister(execution.requestID, execution)
            self?.adjustBusy(session, by: -1)
        }
        guard session.register(request.id, execution) else {
            backendSpan?.end()
            let error = JSONRPCError.invalidRequest("request id \(request.id) is already in flight in this session; ids must not be reused")
            reply.sendResponse(JSONRPCEncoder.error(id: request.id, error))
            observation.finish(.rejected, error: error)
            return
        }
        adjustBusy(session, by: 1)
        current.counters[backend.name]?.add(1)
        var params = route.params
        if let traceParent = backendSpan?.link.traceParent ?? observation.link.traceParent {
            params = traceParent.injected(into: params)
        }
        // A backend may ask the client something (sampling, elicitation, roots) or log while serving these too.
        let relay = CallRelay(execution: execution, session: session, eventLoop: eventLoop, timeout: backend.callTimeout)
        let call = BackendCall(method: route.method, params: params, progressToken: route.progressToken, context: context, eventLoop: eventLoop, relay: relay)
        execution.start(backend: backend, call: call)
    }

    /// A backend's `notifications/resources/updated`: to the sessions subscribed to that URI there, on their
    /// GET stream (or stdio pipe), and to no one else. An update from a process that serves one session
    /// (`session`) goes to that session only, if it is subscribed.
    func resourceUpdated(backend: String, params: JSONObject, session only: String?) {
        guard let uri = params["uri"]?.stringValue else { return }
        var subscribers = subscriptions.subscribers(backend: backend, uri: uri)
        if let only { subscribers = subscribers.contains(only) ? [only] : [] }
        guard !subscribers.isEmpty else { return }
        let message = JSONRPCNotification(method: "notifications/resources/updated", params: params).serialized()
        let live = sessions.withLockedValue { table in subscribers.compactMap { table.entries[$0]?.attachment } }
        var delivered = 0
        for session in live where session.sendToClient(message) { delivered += 1 }
        logger.debug("resources/updated relayed", metadata: ["backend": "\(backend)", "subscribers": "\(subscribers.count)", "delivered": "\(delivered)"])
    }

    /// An ended session's subscriptions go; a URI nobody is subscribed to any more is unsubscribed at its
    /// backend, so the backend stops sending updates nobody reads.
    func dropSubscriptions(of session: String) {
        let orphaned = subscriptions.sessionEnded(session)
        guard !orphaned.isEmpty else { return }
        let current = routing.withLockedValue { $0 }
        for key in orphaned {
            guard let backend = current.byName[key.backend] else { continue }
            let context = RequestContext(principal: .anonymous, sessionID: nil, protocolVersion: .latest)
            let call = BackendCall(method: "resources/unsubscribe", params: ["uri": .string(key.uri)], progressToken: nil, context: context, eventLoop: eventLoopGroup.next())
            _ = backend.call(call, sink: DiscardingSink())
        }
    }

    /// A backend restarted (or reconnected) without the subscriptions it had: each URI some session is
    /// subscribed to is subscribed again, so updates keep flowing without the clients doing anything.
    func renewSubscriptions(backend name: String) {
        let uris = subscriptions.uris(backend: name)
        guard !uris.isEmpty, let backend = routing.withLockedValue({ $0.byName[name] }) else { return }
        logger.info("renewing resource subscriptions at a restarted backend", metadata: ["backend": "\(name)", "uris": "\(uris.count)"])
        for uri in uris {
            let context = RequestContext(principal: .anonymous, sessionID: nil, protocolVersion: .latest)
            let call = BackendCall(method: "resources/subscribe", params: ["uri": .string(uri)], progressToken: nil, context: context, eventLoop: eventLoopGroup.next())
            _ = backend.call(call, sink: DiscardingSink())
        }
    }

    /// `notifications/resources/list_changed` and `notifications/prompts/list_changed` to every live session
    /// when the merged list changed (the gateway emits them itself, so it declares `listChanged`).
    func notifyFeatureListsChanged(from previous: FeatureCatalog, to current: FeatureCatalog) {
        var methods: [String] = []
        if previous.resourcesGeneration != current.resourcesGeneration || previous.templatesGeneration != current.templatesGeneration,
           !previous.resourceBackends.isEmpty || !current.resourceBackends.isEmpty {
            methods.append("notifications/resources/list_changed")
        }
        if previous.promptsGeneration != current.promptsGeneration, !previous.promptBackends.isEmpty || !current.promptBackends.isEmpty {
            methods.append("notifications/prompts/list_changed")
        }
        guard !methods.isEmpty else { return }
        let live = sessions.withLockedValue { $0.entries.values.map(\.attachment) }
        for method in methods {
            let message = JSONRPCNotification(method: method, params: nil).serialized()
            var notified = 0
            for session in live where session.sendToClient(message) { notified += 1 }
            if notified > 0 { logger.info("\(method) sent", metadata: ["sessions": "\(notified)"]) }
        }
    }

    /// The catalog's resources, templates and prompts from each backend's listings.
    static func featureCatalog(configuration: GatewayConfiguration, backends: [any Backend]) -> FeatureCatalog {
        FeatureCatalog(
            separator: configuration.tools.separator, prefixMode: configuration.tools.prefix,
            sources: backends.map { $0.listings.featureSource(backend: $0.name) }
        )
    }
}

extension ObserverRelay: BackendResourceObserver {
    func backendResourceUpdated(_ backend: String, params: JSONObject, session: String?) {
        target?.resourceUpdated(backend: backend, params: params, session: session)
    }

    func backendLostSubscriptions(_ backend: String) {
        target?.renewSubscriptions(backend: backend)
    }
}

/// The sink of a call the gateway makes on its own behalf (an unsubscribe after the last subscriber left):
/// nobody waits for its answer.
final class DiscardingSink: BackendCallSink {
    func backendProgress(_ params: JSONObject) {}
    func backendFinished(_ reply: BackendReply) {}
}

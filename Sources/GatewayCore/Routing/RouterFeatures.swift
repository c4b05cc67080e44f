/// A change to a session's resource subscriptions, performed by the shell when it forwards the request: the
/// gateway keeps who subscribed to what, so a backend's `notifications/resources/updated` reaches only the
/// sessions that asked for it (2025-11-25/server/resources#subscriptions).
public enum SubscriptionChange: Sendable, Equatable {
    case subscribe(uri: String)
    case unsubscribe(uri: String)
}

/// A request for a backend other than `tools/call`, resolved to its owner: `resources/read`, `resources/
/// subscribe`/`unsubscribe` (URIs as they are), `prompts/get` (name un-prefixed) and `completion/complete`
/// (the prompt name in `ref` un-prefixed). `params` are what the backend should see; `_meta` passes through.
public struct ForwardRoute: Sendable {
    public var backend: String
    public var method: String
    public var params: JSONObject
    public var subscription: SubscriptionChange?
    public var progressToken: JSONValue?

    public init(backend: String, method: String, params: JSONObject, subscription: SubscriptionChange? = nil, progressToken: JSONValue? = nil) {
        self.backend = backend
        self.method = method
        self.params = params
        self.subscription = subscription
        self.progressToken = progressToken
    }
}

extension Router {
    /// Routes the resource, prompt and completion methods; nil for any other method. A method of a feature no
    /// backend offers is -32601, as for an undeclared capability (lifecycle#capability-negotiation).
    func routeFeature(_ request: JSONRPCRequest, catalog: Catalog, context: RequestContext) -> RouteDecision? {
        let features = catalog.features
        let visible: (String) -> Bool = { access.canSee(backend: $0, principal: context.principal) }
        switch request.method {
        case "resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe":
            guard !features.resourceBackends.isEmpty else { return .error(.methodNotFound(request.method)) }
        case "prompts/list", "prompts/get":
            guard !features.promptBackends.isEmpty else { return .error(.methodNotFound(request.method)) }
        case "completion/complete":
            guard !features.completionBackends.isEmpty else { return .error(.methodNotFound(request.method)) }
        default:
            return nil
        }
        let cursor = request.params?["cursor"]
        switch request.method {
        case "resources/list":
            return listPage(features.resources.filter { visible($0.backend) }.map(\.descriptor), key: "resources", generation: features.resourcesGeneration, cursor: cursor)
        case "resources/templates/list":
            return listPage(features.resourceTemplates.filter { visible($0.backend) }.map(\.descriptor), key: "resourceTemplates", generation: features.templatesGeneration, cursor: cursor)
        case "prompts/list":
            return listPage(features.prompts.filter { visible($0.backend) }.map(\.descriptor), key: "prompts", generation: features.promptsGeneration, cursor: cursor)
        case "resources/read", "resources/subscribe", "resources/unsubscribe":
            guard let params = request.params, let uri = params["uri"]?.stringValue else {
                return .error(.invalidParams("\(request.method) params.uri must be a string"))
            }
            guard let backend = resourceOwner(uri, features: features, visible: visible) else {
                return .error(Self.resourceNotFound(uri, version: context.protocolVersion))
            }
            if let refusal = scopeRefusal(backend: backend, what: "Resource '\(uri)'", context: context) { return refusal }
            var subscription: SubscriptionChange?
            if request.method == "resources/subscribe" {
                guard features.subscribeBackends.contains(backend) else {
                    return .error(.invalidParams("Resource '\(uri)' is served by backend '\(backend)', which does not support subscriptions"))
                }
                subscription = .subscribe(uri: uri)
            } else if request.method == "resources/unsubscribe" {
                subscription = .unsubscribe(uri: uri)
            }
            return .forward(ForwardRoute(backend: backend, method: request.method, params: params, subscription: subscription, progressToken: request.progressToken))
        case "prompts/get":
            guard let params = request.params, let name = params["name"]?.stringValue else {
                return .error(.invalidParams("prompts/get params.name must be a string"))
            }
            guard let prompt = features.prompt(named: name), visible(prompt.backend) else {
                return .error(unknownPromptError(name, features: features, visible: visible))
            }
            if let refusal = scopeRefusal(backend: prompt.backend, what: "Prompt '\(name)'", context: context) { return refusal }
            var backendParams = params
            backendParams["name"] = .string(prompt.originalName)
            return .forward(ForwardRoute(backend: prompt.backend, method: request.method, params: backendParams, progressToken: request.progressToken))
        case "completion/complete":
            return routeCompletion(request, features: features, context: context, visible: visible)
        default:
            return nil
        }
    }

    /// `completion/complete` goes where its `ref` points (2025-11-25/server/utilities/completion): a
    /// `ref/prompt` to the backend of that exposed prompt name (rewritten to the backend's own), a
    /// `ref/resource` to the backend of that resource template.
    private func routeCompletion(_ request: JSONRPCRequest, features: FeatureCatalog, context: RequestContext, visible: (String) -> Bool) -> RouteDecision {
        guard let params = request.params, var ref = params["ref"]?.objectValue, let type = ref["type"]?.stringValue else {
            return .error(.invalidParams("completion/complete params.ref must be an object with a type (ref/prompt or ref/resource)"))
        }
        let backend: String
        switch type {
        case "ref/prompt":
            guard let name = ref["name"]?.stringValue else { return .error(.invalidParams("completion/complete params.ref.name must be a string")) }
            guard let prompt = features.prompt(named: name), visible(prompt.backend) else {
                return .error(unknownPromptError(name, features: features, visible: visible))
            }
            backend = prompt.backend
            ref["name"] = .string(prompt.originalName)
        case "ref/resource":
            guard let uri = ref["uri"]?.stringValue else { return .error(.invalidParams("completion/complete params.ref.uri must be a string")) }
            if let template = features.template(uriTemplate: uri), visible(template.backend) {
                backend = template.backend
            } else if let owner = resourceOwner(uri, features: features, visible: visible) {
                backend = owner
            } else {
                return .error(.invalidParams("Unknown resource template '\(uri)'; call resources/templates/list for the available templates", data: ["uri": .string(uri)]))
            }
        default:
            return .error(.invalidParams("completion/complete params.ref.type must be ref/prompt or ref/resource, got '\(type)'"))
        }
        guard features.completionBackends.contains(backend) else {
            return .error(.invalidParams("Backend '\(backend)' offers no completions for \(type == "ref/prompt" ? "prompt" : "resource template") '\(ref["name"]?.stringValue ?? ref["uri"]?.stringValue ?? "")'"))
        }
        if let refusal = scopeRefusal(backend: backend, what: "Completion", context: context) { return refusal }
        var backendParams = params
        backendParams["ref"] = .object(ref)
        return .forward(ForwardRoute(backend: backend, method: request.method, params: backendParams, progressToken: request.progressToken))
    }

    /// The backend serving `uri`: the lookup table of listed resources first (backend order decides a URI two
    /// backends list), then the templates.
    private func resourceOwner(_ uri: String, features: FeatureCatalog, visible: (String) -> Bool) -> String? {
        if let resource = features.resource(uri: uri), visible(resource.backend) { return resource.backend }
        return features.template(matching: uri, where: visible)?.backend
    }

    /// Resource not found (2025-11-25/server/resources#error-handling): -32002 in the legacy era; the
    /// 2026-07-28 revision reserves -32002 and uses -32602, which a modern session will get.
    static func resourceNotFound(_ uri: String, version: ProtocolVersion) -> JSONRPCError {
        JSONRPCError(
            code: JSONRPCErrorCode.resourceNotFound,
            message: "Resource not found: '\(uri)' is in no backend's resource list and matches no resource template; call resources/list or resources/templates/list",
            data: ["uri": .string(uri)]
        )
    }

    private func unknownPromptError(_ name: String, features: FeatureCatalog, visible: (String) -> Bool) -> JSONRPCError {
        let suggestions = Suggestions.closest(to: name, among: features.prompts.filter { visible($0.backend) }.map(\.exposedName))
        var message = "Unknown prompt '\(name)'"
        if suggestions.isEmpty {
            message += "; call prompts/list for the available prompts"
        } else {
            message += "; did you mean " + suggestions.map { "'\($0)'" }.joined(separator: ", ") + "?"
        }
        return .invalidParams(message, data: ["prompt": .string(name), "suggestions": .array(suggestions.map { .string($0) })])
    }

    /// Step-up scopes apply to every request for a backend, not only tool calls (AccessPolicy).
    private func scopeRefusal(backend: String, what: String, context: RequestContext) -> RouteDecision? {
        let missing = access.missingScopes(backend: backend, principal: context.principal)
        guard !missing.isEmpty else { return nil }
        return .insufficientScope(scopes: missing, error: JSONRPCError(
            code: JSONRPCErrorCode.forbidden,
            message: "\(what) needs the scope\(missing.count == 1 ? "" : "s") \(missing.joined(separator: " ")); ask the authorization server for a token that includes \(missing.count == 1 ? "it" : "them")",
            data: ["scopes": .array(missing.map { .string($0) })]
        ))
    }

    /// One page of a merged list as a result object: `{key: [...], nextCursor?}`.
    func listPage(_ items: [JSONObject], key: String, generation: UInt64, cursor: JSONValue?) -> RouteDecision {
        switch pagination.page(items, list: key, generation: generation, cursor: cursor) {
        case .failure(let error):
            return .error(error)
        case .success(let page):
            var result = JSONObject()
            result[key] = .array(page.items.map { .object($0) })
            if let next = page.next { result["nextCursor"] = .string(next) }
            return .result(.object(result))
        }
    }
}

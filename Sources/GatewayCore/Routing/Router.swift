/// What the router decided for one JSON-RPC request. The shell performs it: answer now, or call a backend.
public enum RouteDecision: Sendable {
    case result(JSONValue)
    /// A result already serialised (the cached `tools/list`).
    case rawResult([UInt8])
    case error(JSONRPCError)
    case callTool(ToolCallRoute)
    /// A resource, prompt or completion request for one backend (RouterFeatures.swift).
    case forward(ForwardRoute)
    /// The principal lacks scopes the tool's backend requires (step-up): HTTP 403 `insufficient_scope` naming
    /// them; in stdio mode, -32005.
    case insufficientScope(scopes: [String], error: JSONRPCError)
}

/// A `tools/call` resolved to its owning backend. `backendParams` are the client's params with only `name`
/// rewritten to the backend's own tool name; `arguments` and `_meta` pass through unchanged.
public struct ToolCallRoute: Sendable {
    public var tool: CatalogTool
    public var backendParams: JSONObject
    public var arguments: JSONObject
    public var progressToken: JSONValue?

    public init(tool: CatalogTool, backendParams: JSONObject, arguments: JSONObject, progressToken: JSONValue?) {
        self.tool = tool
        self.backendParams = backendParams
        self.arguments = arguments
        self.progressToken = progressToken
    }
}

/// A check on a resolved tool call before it reaches its backend: the seam where argument validation,
/// authorisation, rate limits and circuit breakers plug in (later issues), in an order fixed by the router.
public protocol ToolCallGuard: Sendable {
    /// nil lets the call through; an error answers it (a JSON-RPC error, or a tool result with `isError`).
    func check(_ route: ToolCallRoute, context: RequestContext) -> RouteDecision?
}

/// Routes one request by method (ARCHITECTURE.md, "Router"). Pure: it reads the catalog snapshot it is given
/// and never performs I/O. `initialize` is not routed here: it creates a session, which the shell owns.
public struct Router: Sendable {
    public var guards: [any ToolCallGuard]
    public var access: AccessPolicy
    /// Page size and cursor sealing for the merged lists (`tools.page_size`).
    public var pagination: Pagination

    public init(guards: [any ToolCallGuard] = [], access: AccessPolicy = AccessPolicy(), pagination: Pagination = .onePage) {
        self.guards = guards
        self.access = access
        self.pagination = pagination
    }

    /// The capabilities the gateway really serves (lifecycle#capability-negotiation, MUST item 3): tools, until
    /// resources, prompts and logging are proxied. `listChanged` is claimed because the gateway emits
    /// `notifications/tools/list_changed` itself whenever its merged list changes (a backend's own notification,
    /// a backend restart with other tools, a reload).
    /// `logging` is served by the gateway itself: `logging/setLevel` per session, backends' `notifications/message`
    /// filtered by it (GatewayRuntime/ServerRequests.swift).
    public static let serverCapabilities: JSONObject = ["tools": ["listChanged": true], "logging": .object(JSONObject())]

    /// The static capabilities plus what the catalog's backends offer of resources, prompts and completions.
    public static func serverCapabilities(for catalog: Catalog) -> JSONObject {
        var capabilities = serverCapabilities
        for (key, value) in catalog.features.capabilities { capabilities[key] = value }
        return capabilities
    }

    public func route(_ request: JSONRPCRequest, catalog: Catalog, context: RequestContext) -> RouteDecision {
        switch request.method {
        case "ping":
            return .result(.object(JSONObject()))
        case "tools/list":
            let cursor = request.params?["cursor"]
            let firstPage = cursor == nil || cursor?.isNull == true
            // The cached, serialised list answers the common case: one page, the same for everyone.
            if firstPage, !access.isolates, catalog.tools.count <= pagination.pageSize { return .rawResult(catalog.toolsListResult) }
            if !firstPage, pagination.sealer == nil {
                // No cursor of ours exists (server/utilities/pagination).
                return .error(.invalidParams("Invalid cursor: tools/list returns every tool on one page and issues no cursors"))
            }
            let visible = catalog.tools.filter { access.canSee(backend: $0.backend, principal: context.principal) }
            return listPage(visible.map(\.descriptor), key: "tools", generation: catalog.toolsGeneration, cursor: cursor)
        case "tools/call":
            return routeToolCall(request, catalog: catalog, context: context)
        case "initialize":
            return .error(.invalidRequest("initialize may only be sent once, as the first request of a session"))
        default:
            return routeFeature(request, catalog: catalog, context: context) ?? .error(.methodNotFound(request.method))
        }
    }

    private func routeToolCall(_ request: JSONRPCRequest, catalog: Catalog, context: RequestContext) -> RouteDecision {
        guard let params = request.params else {
            return .error(.invalidParams("tools/call needs params with a \"name\""))
        }
        guard let name = params["name"]?.stringValue else {
            return .error(.invalidParams("tools/call params.name must be a string"))
        }
        let arguments: JSONObject
        switch params["arguments"] {
        case nil, .null?: arguments = JSONObject()
        case .object(let object)?: arguments = object
        case let other?: return .error(.invalidParams("tools/call params.arguments must be an object, got \(other.typeName)"))
        }
        guard let tool = catalog.tool(named: name), access.canSee(backend: tool.backend, principal: context.principal) else {
            // A hidden backend's tool is answered exactly as an unknown one, suggestions included.
            return .error(catalog.unknownToolError(name) { access.canSee(backend: $0.backend, principal: context.principal) })
        }
        let missing = access.missingScopes(backend: tool.backend, principal: context.principal)
        if !missing.isEmpty {
            return .insufficientScope(scopes: missing, error: JSONRPCError(
                code: JSONRPCErrorCode.forbidden,
                message: "Tool '\(name)' needs the scope\(missing.count == 1 ? "" : "s") \(missing.joined(separator: " ")); ask the authorization server for a token that includes \(missing.count == 1 ? "it" : "them")",
                data: ["scopes": .array(missing.map { .string($0) })]
            ))
        }
        var backendParams = params
        backendParams["name"] = .string(tool.originalName)
        let route = ToolCallRoute(tool: tool, backendParams: backendParams, arguments: arguments, progressToken: request.progressToken)
        for check in guards {
            if let decision = check.check(route, context: context) { return decision }
        }
        return .callTool(route)
    }
}

/// The `initialize` exchange (2025-11-25/basic/lifecycle#initialization).
public enum Lifecycle {
    public struct Negotiated: Sendable {
        public var version: ProtocolVersion
        public var clientCapabilities: JSONObject
        public var clientName: String
        public var result: JSONValue
    }

    public static func negotiate(
        _ params: JSONObject?, serverName: String, serverVersion: String, capabilities serverCapabilities: JSONObject = Router.serverCapabilities
    ) -> Result<Negotiated, JSONRPCError> {
        guard let params else { return .failure(.invalidParams("initialize needs params: protocolVersion, capabilities, clientInfo")) }
        guard let requested = params["protocolVersion"]?.stringValue else {
            return .failure(.invalidParams("initialize params.protocolVersion must be a string"))
        }
        let capabilities: JSONObject
        switch params["capabilities"] {
        case .object(let object)?: capabilities = object
        case nil, .null?: capabilities = JSONObject()
        case let other?: return .failure(.invalidParams("initialize params.capabilities must be an object, got \(other.typeName)"))
        }
        let version = ProtocolVersion.negotiate(requested: requested)
        var serverInfo = JSONObject()
        serverInfo["name"] = .string(serverName)
        serverInfo["version"] = .string(serverVersion)
        var result = JSONObject()
        result["protocolVersion"] = .string(version.rawValue)
        result["capabilities"] = .object(serverCapabilities)
        result["serverInfo"] = .object(serverInfo)
        return .success(Negotiated(
            version: version,
            clientCapabilities: capabilities,
            clientName: params["clientInfo"]?["name"]?.stringValue ?? "",
            result: .object(result)
        ))
    }
}

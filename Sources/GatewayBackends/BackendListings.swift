import GatewayCore

/// Everything a backend lists about itself, as one snapshot: the capabilities of its `initialize` result and
/// its tools, resources, resource templates and prompts (each list read to its end, following `nextCursor`:
/// 2025-11-25/server/utilities/pagination). Published whole, so the catalog never mixes two moments.
public struct BackendListings: Sendable, Equatable {
    public var capabilities: JSONObject
    public var tools: [JSONObject]
    public var resources: [JSONObject]
    public var resourceTemplates: [JSONObject]
    public var prompts: [JSONObject]

    public init(
        capabilities: JSONObject = JSONObject(), tools: [JSONObject] = [], resources: [JSONObject] = [],
        resourceTemplates: [JSONObject] = [], prompts: [JSONObject] = []
    ) {
        self.capabilities = capabilities
        self.tools = tools
        self.resources = resources
        self.resourceTemplates = resourceTemplates
        self.prompts = prompts
    }

    /// The resources, templates and prompts part, for the catalog.
    public func featureSource(backend: String) -> FeatureSource {
        FeatureSource(backend: backend, capabilities: capabilities, resources: resources, resourceTemplates: resourceTemplates, prompts: prompts)
    }
}

/// The lists besides tools a backend reads from its server, and which of them the server declared.
struct FeatureLists: Sendable, Equatable {
    var resources: [JSONObject] = []
    var resourceTemplates: [JSONObject] = []
    var prompts: [JSONObject] = []

    /// Which lists to read, from the server's capabilities (2025-11-25/server/resources#capabilities,
    /// server/prompts#capabilities): `(method, result key)`.
    static func methods(for capabilities: JSONObject) -> [(method: String, key: String)] {
        var methods: [(String, String)] = []
        if capabilities["resources"] != nil {
            methods.append(("resources/list", "resources"))
            methods.append(("resources/templates/list", "resourceTemplates"))
        }
        if capabilities["prompts"] != nil { methods.append(("prompts/list", "prompts")) }
        return methods
    }

    /// The lists a `notifications/*/list_changed` names.
    static func methods(forListChanged notification: String, capabilities: JSONObject) -> [(method: String, key: String)] {
        let all = methods(for: capabilities)
        switch notification {
        case "notifications/resources/list_changed": return all.filter { $0.key != "prompts" }
        case "notifications/prompts/list_changed": return all.filter { $0.key == "prompts" }
        default: return []
        }
    }

    mutating func set(_ key: String, _ items: [JSONObject]) {
        switch key {
        case "resources": resources = items
        case "resourceTemplates": resourceTemplates = items
        case "prompts": prompts = items
        default: break
        }
    }
}

/// What the gateway learns from a backend about resources besides its lists: a server's
/// `notifications/resources/updated`, for the sessions subscribed to that URI. A separate protocol, found by a
/// cast, so observers that do not serve resources need not implement it.
public protocol BackendResourceObserver: AnyObject, Sendable {
    /// `session`: set when the server process serves one gateway session (`isolation: session`), whose
    /// subscription alone the update answers; nil for a process shared by every session.
    func backendResourceUpdated(_ backend: String, params: JSONObject, session: String?)
    /// The backend's server was restarted or reconnected and has forgotten every `resources/subscribe`.
    func backendLostSubscriptions(_ backend: String)
}

extension Backend {
    /// Backends that list nothing but tools (plugins) report only those.
    public var listings: BackendListings { BackendListings(tools: tools) }
}

/// One tool as the gateway exposes it: the backend that owns it, its name there, and the descriptor clients
/// see, which is the backend's own descriptor with only `name` replaced, so every other field (`title`,
/// `description`, `inputSchema`, `outputSchema`, `annotations`, `icons`, `execution`, `_meta`) passes through
/// unchanged (2025-11-25/server/tools, MUST item 37).
public struct CatalogTool: Sendable, Equatable {
    public var exposedName: String
    public var backend: String
    public var originalName: String
    public var descriptor: JSONObject
}

/// The aggregated tool catalog: every backend's tools under `<backend><separator><tool>`.
/// A value: a refresh builds a new catalog and the shell swaps it in whole, so readers never see half of one.
public struct Catalog: Sendable {
    public let separator: String
    public private(set) var tools: [CatalogTool] = []
    private var byExposedName: [String: Int] = [:]
    /// Problems found while building (duplicate names), for logs and `check`.
    public private(set) var problems: [String] = []
    /// The `tools/list` result, serialised once per catalog.
    public private(set) var toolsListResult: [UInt8] = []

    public init(separator: String = "__") {
        self.separator = separator
        self.toolsListResult = Self.serializeList([])
    }

    /// Builds the catalog from each backend's tool list, in backend order. Descriptors without a string `name`
    /// are skipped and reported.
    public init(separator: String = "__", backends: [(name: String, tools: [JSONObject])]) {
        self.separator = separator
        for backend in backends {
            for descriptor in backend.tools {
                guard let original = descriptor["name"]?.stringValue, !original.isEmpty else {
                    problems.append("backend '\(backend.name)' listed a tool without a name; it is not exposed")
                    continue
                }
                let exposed = backend.name + separator + original
                if byExposedName[exposed] != nil {
                    problems.append("tool name '\(exposed)' is listed twice; the first one is exposed")
                    continue
                }
                var renamed = descriptor
                renamed["name"] = .string(exposed)
                byExposedName[exposed] = tools.count
                tools.append(CatalogTool(exposedName: exposed, backend: backend.name, originalName: original, descriptor: renamed))
            }
        }
        toolsListResult = Self.serializeList(tools)
    }

    public func tool(named exposedName: String) -> CatalogTool? {
        byExposedName[exposedName].map { tools[$0] }
    }

    public var exposedNames: [String] { tools.map(\.exposedName) }

    public func tools(of backend: String) -> [CatalogTool] { tools.filter { $0.backend == backend } }

    /// The error for a `tools/call` of a name the catalog does not hold: -32602 naming the closest names
    /// (2025-11-25/server/tools#error-handling, MUST item 36).
    public func unknownToolError(_ name: String) -> JSONRPCError {
        let suggestions = Suggestions.closest(to: name, among: exposedNames)
        var message = "Unknown tool '\(name)'"
        if suggestions.isEmpty {
            message += "; call tools/list for the available tools"
        } else {
            message += "; did you mean " + suggestions.map { "'\($0)'" }.joined(separator: ", ") + "?"
        }
        var data = JSONObject()
        data["tool"] = .string(name)
        data["suggestions"] = .array(suggestions.map { .string($0) })
        return .invalidParams(message, data: .object(data))
    }

    private static func serializeList(_ tools: [CatalogTool]) -> [UInt8] {
        var list = JSONObject()
        list["tools"] = .array(tools.map { .object($0.descriptor) })
        return JSONValue.object(list).serialized()
    }
}

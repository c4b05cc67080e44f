/// What a backend contributes to the catalog besides tools: its declared capabilities and its resources,
/// resource templates and prompts as it lists them (2025-11-25/server/resources, server/prompts).
public struct FeatureSource: Sendable {
    public var backend: String
    /// The `capabilities` of the backend's `initialize` result.
    public var capabilities: JSONObject
    public var resources: [JSONObject]
    public var resourceTemplates: [JSONObject]
    public var prompts: [JSONObject]

    public init(backend: String, capabilities: JSONObject = JSONObject(), resources: [JSONObject] = [], resourceTemplates: [JSONObject] = [], prompts: [JSONObject] = []) {
        self.backend = backend
        self.capabilities = capabilities
        self.resources = resources
        self.resourceTemplates = resourceTemplates
        self.prompts = prompts
    }
}

/// A resource as the gateway lists it: the backend's descriptor unchanged (URIs are never rewritten; the
/// CONTRACT routes them by a lookup table).
public struct CatalogResource: Sendable {
    public var uri: String
    public var backend: String
    public var descriptor: JSONObject
}

/// A resource template with its backend and its compiled RFC 6570 matcher.
public struct CatalogResourceTemplate: Sendable {
    public var uriTemplate: String
    public var backend: String
    public var descriptor: JSONObject
    public var matcher: URITemplate
}

/// A prompt as the gateway exposes it: named like a tool (`<backend><separator><prompt>`, same prefix rules),
/// with every other field of the backend's descriptor passed through.
public struct CatalogPrompt: Sendable {
    public var exposedName: String
    public var backend: String
    public var originalName: String
    public var descriptor: JSONObject
}

/// The resources, resource templates and prompts of every backend, merged in backend order. A value, rebuilt
/// with the tool catalog and swapped in whole.
///
/// - A URI listed by two backends is served by the first (backend order) and reported as a problem, which
///   `check --probe` prints.
/// - A URI in no list is resolved through the templates, matched by RFC 6570 level-1 expansion.
/// - Each list has a generation, a hash of its content, so a pagination cursor issued for one version of a
///   list is refused once the list changed (server/utilities/pagination: cursors are opaque to clients;
///   a stale one is -32602) and replicas with the same backends agree on it.
public struct FeatureCatalog: Sendable {
    public private(set) var resources: [CatalogResource] = []
    public private(set) var resourceTemplates: [CatalogResourceTemplate] = []
    public private(set) var prompts: [CatalogPrompt] = []
    public private(set) var problems: [CatalogProblem] = []
    private var byURI: [String: Int] = [:]
    private var byPromptName: [String: Int] = [:]
    /// Backends whose `initialize` declared each capability.
    public private(set) var resourceBackends: Set<String> = []
    public private(set) var subscribeBackends: Set<String> = []
    public private(set) var promptBackends: Set<String> = []
    public private(set) var completionBackends: Set<String> = []
    public private(set) var resourcesGeneration: UInt64 = 0
    public private(set) var templatesGeneration: UInt64 = 0
    public private(set) var promptsGeneration: UInt64 = 0

    public init() {}

    public init(separator: String = "__", prefixMode: PrefixMode = .always, sources: [FeatureSource]) {
        var promptCandidates: [(backend: String, original: String, descriptor: JSONObject)] = []
        for source in sources {
            if let resources = source.capabilities["resources"]?.objectValue {
                resourceBackends.insert(source.backend)
                if resources["subscribe"]?.boolValue == true { subscribeBackends.insert(source.backend) }
            }
            if source.capabilities["prompts"] != nil { promptBackends.insert(source.backend) }
            if source.capabilities["completions"] != nil { completionBackends.insert(source.backend) }
            for descriptor in source.resources {
                guard let uri = descriptor["uri"]?.stringValue, !uri.isEmpty else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: nil, message: "a resource without a uri was listed; it is not exposed"))
                    continue
                }
                if let existing = byURI[uri] {
                    let owner = resources[existing].backend
                    if owner != source.backend {
                        problems.append(CatalogProblem(
                            severity: .error, backend: source.backend, tool: nil,
                            message: "resource '\(uri)' is also served by backend '\(owner)', which comes first in backend order and serves it"
                        ))
                    }
                    continue
                }
                byURI[uri] = resources.count
                resources.append(CatalogResource(uri: uri, backend: source.backend, descriptor: descriptor))
            }
            for descriptor in source.resourceTemplates {
                guard let template = descriptor["uriTemplate"]?.stringValue, !template.isEmpty else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: nil, message: "a resource template without a uriTemplate was listed; it is not exposed"))
                    continue
                }
                if let owner = resourceTemplates.first(where: { $0.uriTemplate == template })?.backend {
                    if owner != source.backend {
                        problems.append(CatalogProblem(
                            severity: .error, backend: source.backend, tool: nil,
                            message: "resource template '\(template)' is also offered by backend '\(owner)', which comes first in backend order and serves it"
                        ))
                    }
                    continue
                }
                resourceTemplates.append(CatalogResourceTemplate(uriTemplate: template, backend: source.backend, descriptor: descriptor, matcher: URITemplate(template)))
            }
            var seen = Set<String>()
            for descriptor in source.prompts {
                guard let name = descriptor["name"]?.stringValue, !name.isEmpty else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: nil, message: "a prompt without a name was listed; it is not exposed"))
                    continue
                }
                guard seen.insert(name).inserted else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: nil, message: "prompt '\(name)' listed twice; the first is exposed"))
                    continue
                }
                promptCandidates.append((source.backend, name, descriptor))
            }
        }
        var owners: [String: Set<String>] = [:]
        for candidate in promptCandidates { owners[candidate.original, default: []].insert(candidate.backend) }
        for candidate in promptCandidates {
            let shared = (owners[candidate.original]?.count ?? 0) > 1
            let wanted = prefixMode.name(candidate.original, backend: candidate.backend, separator: separator, sharedWithAnotherBackend: shared)
            let exposed = Catalog.exposedName(for: wanted)
            if let existing = byPromptName[exposed] {
                let other = prompts[existing]
                problems.append(CatalogProblem(
                    severity: .error, backend: candidate.backend, tool: nil,
                    message: "prompt '\(candidate.original)': exposed name '\(exposed)' collides with backend '\(other.backend)' prompt '\(other.originalName)'; only the first is exposed"
                ))
                continue
            }
            var descriptor = candidate.descriptor
            descriptor["name"] = .string(exposed)
            byPromptName[exposed] = prompts.count
            prompts.append(CatalogPrompt(exposedName: exposed, backend: candidate.backend, originalName: candidate.original, descriptor: descriptor))
        }
        resourcesGeneration = Self.generation(of: resources.map(\.descriptor))
        templatesGeneration = Self.generation(of: resourceTemplates.map(\.descriptor))
        promptsGeneration = Self.generation(of: prompts.map(\.descriptor))
    }

    /// The backend serving a URI listed by `resources/list`.
    public func resource(uri: String) -> CatalogResource? {
        byURI[uri].map { resources[$0] }
    }

    /// The first template (backend order) whose RFC 6570 level-1 expansion can produce `uri`.
    public func template(matching uri: String, where visible: (String) -> Bool = { _ in true }) -> CatalogResourceTemplate? {
        resourceTemplates.first { visible($0.backend) && $0.matcher.matches(uri) }
    }

    /// The template whose `uriTemplate` is exactly `text` (a `ref/resource` of `completion/complete`).
    public func template(uriTemplate text: String) -> CatalogResourceTemplate? {
        resourceTemplates.first { $0.uriTemplate == text }
    }

    public func prompt(named exposedName: String) -> CatalogPrompt? {
        byPromptName[exposedName].map { prompts[$0] }
    }

    /// The capabilities the gateway declares for these features (lifecycle#capability-negotiation, MUST item
    /// 3): each only when at least one backend offers it. `listChanged` is claimed because the gateway emits
    /// the list_changed notifications itself whenever its merged list changes; `subscribe` because it keeps
    /// the subscriptions and delivers `notifications/resources/updated` to the subscribed sessions.
    public var capabilities: JSONObject {
        var capabilities = JSONObject()
        if !resourceBackends.isEmpty {
            var resources = JSONObject()
            if !subscribeBackends.isEmpty { resources["subscribe"] = .bool(true) }
            resources["listChanged"] = .bool(true)
            capabilities["resources"] = .object(resources)
        }
        if !promptBackends.isEmpty { capabilities["prompts"] = ["listChanged": true] }
        if !completionBackends.isEmpty { capabilities["completions"] = .object(JSONObject()) }
        return capabilities
    }

    static func generation(of descriptors: [JSONObject]) -> UInt64 {
        fnv1a64(JSONValue.array(descriptors.map { .object($0) }).serialized())
    }

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}

/// An RFC 6570 URI template reduced to what matching a concrete URI needs: literal text and level-1
/// (simple string) expressions `{var}`. A simple expansion percent-encodes every reserved character
/// (RFC 6570 §3.2.2), so a variable's value never holds `/`, `?` or `#`, and matching a URI is unambiguous
/// enough: each expression takes one or more characters other than those. Templates using operators of
/// higher levels (`{+var}`, `{/var}`, `{?q}` …) match with the same rule for their variables, which covers
/// the common `{?query}` forms only loosely; they never match across a `/`.
public struct URITemplate: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case variable
    }

    let parts: [Part]
    public let text: String

    public init(_ text: String) {
        self.text = text
        var parts: [Part] = []
        var literal: [UInt8] = []
        var inExpression = false
        for byte in text.utf8 {
            if inExpression {
                if byte == UInt8(ascii: "}") { inExpression = false }
                continue
            }
            if byte == UInt8(ascii: "{") {
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = []
                parts.append(.variable)
                inExpression = true
            } else {
                literal.append(byte)
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    public func matches(_ uri: String) -> Bool {
        let bytes = Array(uri.utf8)
        return match(parts[...], bytes[...])
    }

    private func match(_ parts: ArraySlice<Part>, _ rest: ArraySlice<UInt8>) -> Bool {
        guard let part = parts.first else { return rest.isEmpty }
        switch part {
        case .literal(let literal):
            guard rest.starts(with: literal) else { return false }
            return match(parts.dropFirst(), rest.dropFirst(literal.count))
        case .variable:
            var index = rest.startIndex
            while index < rest.endIndex {
                let byte = rest[index]
                if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") { break }
                index += 1
                if match(parts.dropFirst(), rest[index...]) { return true }
            }
            return false
        }
    }
}

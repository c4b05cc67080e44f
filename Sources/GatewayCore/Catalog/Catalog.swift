/// How exposed tool names are formed from backend tool names (issue "validation" §4).
public enum PrefixMode: String, Sendable, CaseIterable {
    /// Always `<backend><separator><tool>`: names never collide and say where a tool lives.
    case always
    /// Only names that more than one backend lists are prefixed; the rest keep their own name.
    case conditional
    /// Never prefixed: a name that two backends list is an error (the first backend keeps it).
    case never

    /// The name to expose (before sanitising) for a tool or prompt a backend lists, under this mode.
    public func name(_ original: String, backend: String, separator: String, sharedWithAnotherBackend shared: Bool) -> String {
        switch self {
        case .always: return backend + separator + original
        case .conditional: return shared ? backend + separator + original : original
        case .never: return original
        }
    }
}

/// What a backend contributes to the catalog, with its tool filter.
public struct CatalogSource: Sendable {
    public var backend: String
    public var tools: [JSONObject]
    /// Globs over the backend's own tool names (`*`, `?`); a tool is exposed if it matches an include and no exclude.
    public var include: [String]
    public var exclude: [String]

    public init(backend: String, tools: [JSONObject], include: [String] = ["*"], exclude: [String] = []) {
        self.backend = backend
        self.tools = tools
        self.include = include
        self.exclude = exclude
    }
}

/// One tool as the gateway exposes it: the backend that owns it, its name there, and the descriptor clients
/// see, which is the backend's own descriptor with only `name` replaced, so every other field (`title`,
/// `description`, `inputSchema`, `outputSchema`, `annotations`, `icons`, `execution`, `_meta`) passes through
/// unchanged (2025-11-25/server/tools, MUST item 37). Schemas are compiled once, when the catalog is built.
public struct CatalogTool: Sendable {
    public var exposedName: String
    public var backend: String
    public var originalName: String
    public var descriptor: JSONObject
    /// The compiled `inputSchema`; nil when the tool has none or it did not compile (see `schemaError`).
    public var inputSchema: JSONSchema?
    public var outputSchema: JSONSchema?
    public var schemaError: SchemaCompileError?
    /// Top-level argument names the input schema declares (for `strict` validation and suggestions).
    public var declaredArguments: Set<String>
    /// Whether the schema lets undeclared names through by pattern (then `strict` defers to the patterns).
    public var hasPatternProperties: Bool
}

/// A problem found while building the catalog, for logs and `check --probe`.
public struct CatalogProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, notice }
    public var severity: Severity
    public var backend: String
    public var tool: String?
    public var message: String
    public var description: String {
        "\(severity.rawValue): backend '\(backend)'\(tool.map { ", tool '\($0)'" } ?? ""): \(message)"
    }
}

/// The aggregated tool catalog. A value: a refresh builds a new catalog and the shell swaps it in whole, so
/// readers never see half of one.
public struct Catalog: Sendable {
    /// Exposed names: 1-64 characters of `[A-Za-z0-9_.-]`, the limit clients such as LLM APIs enforce on
    /// function names (the spec allows 128: 2025-11-25/server/tools#tool-names).
    public static let maximumNameLength = 64

    public let separator: String
    public let prefixMode: PrefixMode
    public private(set) var tools: [CatalogTool] = []
    private var byExposedName: [String: Int] = [:]
    public private(set) var problems: [CatalogProblem] = []
    /// Exposed names that differ from `<backend><separator><tool>` or the tool's own name because they were
    /// sanitised or shortened: exposed → original, for the log and `check --probe`.
    public private(set) var renamed: [(exposed: String, backend: String, original: String)] = []
    /// The `tools/list` result, serialised once per catalog.
    public private(set) var toolsListResult: [UInt8] = []
    /// A hash of the tool list, sealed into `tools/list` cursors so a cursor outlives no change of the list.
    public var toolsGeneration: UInt64 { FeatureCatalog.fnv1a64(toolsListResult) }
    /// Resources, resource templates and prompts (ResourceCatalog.swift).
    public private(set) var features = FeatureCatalog()

    /// Adds the backends' resources, templates and prompts; their problems join the tool problems, for the
    /// log and `check --probe`.
    public mutating func attach(features: FeatureCatalog) {
        self.features = features
        problems += features.problems
    }

    public init(separator: String = "__", prefixMode: PrefixMode = .always) {
        self.separator = separator
        self.prefixMode = prefixMode
        self.toolsListResult = Self.serializeList([])
    }

    public init(separator: String = "__", backends: [(name: String, tools: [JSONObject])]) {
        self.init(separator: separator, prefixMode: .always, sources: backends.map { CatalogSource(backend: $0.name, tools: $0.tools) })
    }

    /// Builds the catalog from each backend's tool list, in backend order.
    public init(separator: String = "__", prefixMode: PrefixMode = .always, sources: [CatalogSource]) {
        self.separator = separator
        self.prefixMode = prefixMode
        // 1. The tools each backend exposes, after its include/exclude filter.
        var candidates: [(backend: String, original: String, descriptor: JSONObject)] = []
        for source in sources {
            var seen = Set<String>()
            for descriptor in source.tools {
                guard let original = descriptor["name"]?.stringValue, !original.isEmpty else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: nil, message: "a tool without a name was listed; it is not exposed"))
                    continue
                }
                guard seen.insert(original).inserted else {
                    problems.append(CatalogProblem(severity: .error, backend: source.backend, tool: original, message: "listed twice; the first is exposed"))
                    continue
                }
                guard Glob.matchesAny(source.include, original), !Glob.matchesAny(source.exclude, original) else { continue }
                candidates.append((source.backend, original, descriptor))
            }
        }
        // 2. Which names need the backend prefix.
        var owners: [String: Set<String>] = [:]
        for candidate in candidates { owners[candidate.original, default: []].insert(candidate.backend) }
        // 3. Exposed names, sanitised and shortened where needed; collisions reported.
        for candidate in candidates {
            let shared = (owners[candidate.original]?.count ?? 0) > 1
            let wanted = prefixMode.name(candidate.original, backend: candidate.backend, separator: separator, sharedWithAnotherBackend: shared)
            let exposed = Self.exposedName(for: wanted)
            if exposed != wanted { renamed.append((exposed, candidate.backend, candidate.original)) }
            if let existing = byExposedName[exposed] {
                let other = tools[existing]
                problems.append(CatalogProblem(
                    severity: .error, backend: candidate.backend, tool: candidate.original,
                    message: "exposed name '\(exposed)' collides with backend '\(other.backend)' tool '\(other.originalName)'; only the first is exposed"
                        + (prefixMode == .never ? " (tools.prefix is never; use conditional or always)" : "")
                ))
                continue
            }
            var descriptor = candidate.descriptor
            descriptor["name"] = .string(exposed)
            var tool = CatalogTool(
                exposedName: exposed, backend: candidate.backend, originalName: candidate.original, descriptor: descriptor,
                inputSchema: nil, outputSchema: nil, schemaError: nil, declaredArguments: [], hasPatternProperties: false
            )
            compileSchemas(&tool)
            byExposedName[exposed] = tools.count
            tools.append(tool)
        }
        toolsListResult = Self.serializeList(tools)
    }

    private mutating func compileSchemas(_ tool: inout CatalogTool) {
        if let input = tool.descriptor["inputSchema"] {
            do {
                let schema = try JSONSchema.compile(input)
                tool.inputSchema = schema
                tool.declaredArguments = Set(input["properties"]?.objectValue?.keys ?? [])
                tool.hasPatternProperties = input["patternProperties"]?.objectValue.map { !$0.isEmpty } ?? false
                if !schema.unsupportedKeywords.isEmpty {
                    problems.append(CatalogProblem(
                        severity: .notice, backend: tool.backend, tool: tool.originalName,
                        message: "inputSchema uses keywords the validator ignores: \(schema.unsupportedKeywords.joined(separator: ", "))"
                    ))
                }
            } catch {
                tool.schemaError = error
                problems.append(CatalogProblem(
                    severity: .error, backend: tool.backend, tool: tool.originalName,
                    message: "inputSchema is invalid at \(error.schemaPath.isEmpty ? "(root)" : error.schemaPath): \(error.message); its arguments are passed unvalidated"
                ))
            }
        } else {
            problems.append(CatalogProblem(severity: .error, backend: tool.backend, tool: tool.originalName, message: "has no inputSchema (MCP requires one); its arguments are passed unvalidated"))
        }
        if let output = tool.descriptor["outputSchema"] {
            do {
                tool.outputSchema = try JSONSchema.compile(output)
            } catch {
                problems.append(CatalogProblem(
                    severity: .error, backend: tool.backend, tool: tool.originalName,
                    message: "outputSchema is invalid at \(error.schemaPath.isEmpty ? "(root)" : error.schemaPath): \(error.message)"
                ))
            }
        }
    }

    public func tool(named exposedName: String) -> CatalogTool? {
        byExposedName[exposedName].map { tools[$0] }
    }

    public var exposedNames: [String] { tools.map(\.exposedName) }

    public func tools(of backend: String) -> [CatalogTool] { tools.filter { $0.backend == backend } }

    /// The error for a `tools/call` of a name the catalog does not hold: -32602 naming the closest names
    /// (2025-11-25/server/tools#error-handling, MUST item 36).
    public func unknownToolError(_ name: String, visible: (CatalogTool) -> Bool = { _ in true }) -> JSONRPCError {
        let suggestions = Suggestions.closest(to: name, among: tools.filter(visible).map(\.exposedName))
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

    /// A valid exposed name for `wanted`: characters outside `[A-Za-z0-9_.-]` become `_`, and a name longer than
    /// 64 characters (or one that had to be changed) keeps a readable head plus `-` and 8 hex digits of a hash
    /// of the full wanted name, so the mapping is deterministic across replicas and restarts and two long
    /// names sharing a head stay distinct.
    public static func exposedName(for wanted: String) -> String {
        var sanitised = ""
        var changed = false
        for scalar in wanted.unicodeScalars {
            if scalar.isASCII, scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "." || scalar == "-" {
                sanitised.unicodeScalars.append(scalar)
            } else {
                sanitised.append("_")
                changed = true
            }
        }
        guard changed || sanitised.count > maximumNameLength || sanitised.isEmpty else { return sanitised }
        let suffix = "-" + String(Self.fnv1a32(wanted), radix: 16).leftPadded(to: 8)
        let head = sanitised.prefix(maximumNameLength - suffix.count)
        return head + suffix
    }

    static func fnv1a32(_ text: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    private static func serializeList(_ tools: [CatalogTool]) -> [UInt8] {
        var list = JSONObject()
        list["tools"] = .array(tools.map { .object($0.descriptor) })
        return JSONValue.object(list).serialized()
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Shell-style globs over names: `*` any run, `?` one character; everything else literal.
public enum Glob {
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        let p = Array(pattern.unicodeScalars), n = Array(name.unicodeScalars)
        var pi = 0, ni = 0, star = -1, mark = 0
        while ni < n.count {
            if pi < p.count, p[pi] == "?" || p[pi] == n[ni] {
                pi += 1
                ni += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi
                mark = ni
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ni = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    public static func matchesAny(_ patterns: [String], _ name: String) -> Bool {
        patterns.contains { matches($0, name) }
    }
}

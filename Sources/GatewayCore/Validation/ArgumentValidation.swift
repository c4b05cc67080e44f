import Foundation

/// `tools.validation` (issue "validation" §2).
public enum ArgumentValidationMode: String, Sendable, CaseIterable {
    /// The schema's word, and also: top-level arguments the schema does not declare are rejected even where
    /// the schema would allow them (agents invent parameters; a backend silently ignoring one hides the mistake).
    case strict
    /// The schema's own word.
    case lenient
    /// No validation.
    case off
}

/// One problem with a call's arguments, as the agent will read it.
public struct ArgumentProblem: Sendable, Equatable {
    public var path: String
    public var keyword: String
    public var message: String
    public var suggestion: String?
}

/// Validates `tools/call` arguments against the tool's compiled `inputSchema` before the call leaves the
/// gateway. A failed call never reaches the backend: it is answered with a tool result with `isError: true`
/// (2025-11-25/server/tools#error-handling: input validation errors are tool execution errors, so the model
/// can correct itself) whose text names every problem with its JSON path, lists the valid arguments with
/// their types and whether they are required, and suggests the closest valid name for a near miss;
/// `structuredContent` carries the same as data.
public struct ArgumentValidation: ToolCallGuard {
    public let mode: ArgumentValidationMode
    /// Called for every refused call (metrics and logs live in the shell).
    public let onFailure: (@Sendable (CatalogTool, [ArgumentProblem]) -> Void)?

    public init(mode: ArgumentValidationMode, onFailure: (@Sendable (CatalogTool, [ArgumentProblem]) -> Void)? = nil) {
        self.mode = mode
        self.onFailure = onFailure
    }

    public func check(_ route: ToolCallRoute, context: RequestContext) -> RouteDecision? {
        guard mode != .off, let schema = route.tool.inputSchema else { return nil }
        let arguments = JSONValue.object(route.arguments)
        let undeclared = mode == .strict ? undeclaredArguments(route) : []
        if undeclared.isEmpty, schema.isValid(arguments) { return nil }
        let problems = Self.problems(schema: schema, arguments: arguments, undeclared: undeclared, tool: route.tool)
        guard !problems.isEmpty else { return nil }
        onFailure?(route.tool, problems)
        return .result(Self.toolErrorResult(tool: route.tool, schema: schema, problems: problems, strict: mode == .strict))
    }

    /// Top-level arguments the schema does not declare (by `properties`, or by `patternProperties`, whose
    /// matching the schema itself checks).
    func undeclaredArguments(_ route: ToolCallRoute) -> [String] {
        guard !route.tool.hasPatternProperties else { return [] }
        return route.arguments.keys.filter { !route.tool.declaredArguments.contains($0) }
    }

    static func problems(schema: JSONSchema, arguments: JSONValue, undeclared: [String], tool: CatalogTool) -> [ArgumentProblem] {
        var problems: [ArgumentProblem] = []
        var reportedUnknown = Set<String>()
        let declared = schema.declaredProperties.map(\.name)
        for violation in schema.validate(arguments, limit: 50) {
            var problem = ArgumentProblem(path: violation.instancePath, keyword: violation.keyword, message: violation.message, suggestion: nil)
            if case .additionalProperty(let name) = violation.kind {
                if violation.instancePath == "/" + JSONPointer.escape(name) { reportedUnknown.insert(name) }
                problem.message = "unknown argument (the schema does not allow it)"
                problem.suggestion = Suggestions.best(for: name, among: declared)
            }
            if case .required(let property) = violation.kind {
                problem.message = "required argument \"\(property)\" is missing"
            }
            problems.append(problem)
        }
        for name in undeclared where !reportedUnknown.contains(name) {
            problems.append(ArgumentProblem(
                path: "/" + JSONPointer.escape(name), keyword: "strict",
                message: "unknown argument (not declared by the tool's schema; tools.validation is strict)",
                suggestion: Suggestions.best(for: name, among: declared)
            ))
        }
        return problems
    }

    static func toolErrorResult(tool: CatalogTool, schema: JSONSchema, problems: [ArgumentProblem], strict: Bool) -> JSONValue {
        var text = "Invalid arguments for tool '\(tool.exposedName)'; the call was not made:\n"
        for problem in problems {
            text += "- \(problem.path.isEmpty ? "(arguments)" : problem.path): \(problem.message)"
            if let suggestion = problem.suggestion { text += "; did you mean \"\(suggestion)\"?" }
            text += "\n"
        }
        let properties = schema.declaredProperties
        if properties.isEmpty {
            text += "This tool takes no declared arguments.\n"
        } else {
            text += "Valid arguments:\n"
            for property in properties {
                text += "- \(property.name) (\(property.type), \(property.required ? "required" : "optional"))"
                if let description = property.description, !description.isEmpty { text += ": \(description)" }
                text += "\n"
            }
        }
        text += "Correct the arguments and call the tool again."

        var data = JSONObject()
        data["error"] = "invalid_arguments"
        data["tool"] = .string(tool.exposedName)
        data["problems"] = .array(problems.map { problem in
            var object = JSONObject()
            object["path"] = .string(problem.path)
            object["keyword"] = .string(problem.keyword)
            object["message"] = .string(problem.message)
            if let suggestion = problem.suggestion { object["suggestion"] = .string(suggestion) }
            return .object(object)
        })
        data["arguments"] = .array(properties.map { property in
            var object = JSONObject()
            object["name"] = .string(property.name)
            object["type"] = .string(property.type)
            object["required"] = .bool(property.required)
            if let description = property.description { object["description"] = .string(description) }
            return .object(object)
        })
        data["strict"] = .bool(strict)

        var result = JSONObject()
        result["content"] = [["type": "text", "text": .string(text)]]
        result["structuredContent"] = .object(data)
        result["isError"] = true
        return .object(result)
    }
}

/// RFC 6901 JSON Pointer escaping.
public enum JSONPointer {
    public static func escape(_ token: String) -> String {
        token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}


import GatewayCore

/// The built-in `diagnostics` plugin: the tools every smoke and load test needs (issue "spine" §6).
/// - `echo` returns its text: the cheapest possible round trip through the gateway.
/// - `sleep` waits, reporting progress, and stops when cancelled.
/// - `fail` returns a tool error (`isError: true`), as a tool whose API failed would.
public struct DiagnosticsPlugin: ToolPlugin {
    public static let name = "diagnostics"
    public var pluginName: String { Self.name }

    public init() {}

    public let tools: [ToolDefinition] = [
        ToolDefinition(
            name: "echo", title: "Echo",
            description: "Returns the given text unchanged.",
            inputSchema: [
                "type": "object",
                "properties": ["text": ["type": "string", "description": "The text to return."]],
                "required": ["text"],
                "additionalProperties": false,
            ],
            annotations: ["readOnlyHint": true, "idempotentHint": true, "openWorldHint": false]
        ),
        ToolDefinition(
            name: "sleep", title: "Sleep",
            description: "Waits for the given number of milliseconds, reporting progress when asked; stops when cancelled.",
            inputSchema: [
                "type": "object",
                "properties": ["ms": ["type": "integer", "minimum": 0, "maximum": 600_000, "description": "How long to wait, in milliseconds."]],
                "required": ["ms"],
                "additionalProperties": false,
            ],
            annotations: ["readOnlyHint": true, "openWorldHint": false]
        ),
        ToolDefinition(
            name: "form", title: "Form",
            description: "Returns the text field of a ten-field form: a realistic argument schema, for validation tests and benchmarks.",
            inputSchema: DiagnosticsPlugin.formSchema,
            annotations: ["readOnlyHint": true, "idempotentHint": true, "openWorldHint": false]
        ),
        ToolDefinition(
            name: "fail", title: "Fail",
            description: "Returns a tool error (isError: true) with the given message.",
            inputSchema: [
                "type": "object",
                "properties": ["message": ["type": "string", "description": "The error text to return."]],
                "additionalProperties": false,
            ],
            annotations: ["readOnlyHint": true, "openWorldHint": false]
        ),
    ]

    public func call(_ call: ToolCall, context: ToolCallContext) {
        switch call.tool {
        case "echo":
            guard let text = call.arguments["text"]?.stringValue else {
                context.finish(.text("echo needs the argument \"text\" (a string)", isError: true))
                return
            }
            context.finish(.text(text))
        case "sleep":
            guard let milliseconds = call.arguments["ms"]?.intValue, (0...600_000).contains(milliseconds) else {
                context.finish(.text("sleep needs the argument \"ms\" (an integer from 0 to 600000)", isError: true))
                return
            }
            sleep(milliseconds: milliseconds, context: context)
        case "form":
            context.finish(.text(call.arguments["text"]?.stringValue ?? ""))
        case "fail":
            let message = call.arguments["message"]?.stringValue ?? "diagnostics fail: this tool always fails"
            context.finish(.text(message, isError: true))
        default:
            context.finish(.text("diagnostics has no tool \"\(call.tool)\"", isError: true))
        }
    }

    /// Ten properties of the kinds tool schemas use: strings with patterns, lengths and formats, numbers with
    /// bounds, an enum, a boolean, an array of strings and a nested object.
    public static let formSchema: JSONObject = [
        "type": "object",
        "properties": [
            "text": ["type": "string", "description": "Returned as the result."],
            "count": ["type": "integer", "minimum": 0, "maximum": 1000],
            "ratio": ["type": "number", "exclusiveMinimum": 0, "maximum": 1],
            "flag": ["type": "boolean"],
            "mode": ["type": "string", "enum": ["fast", "balanced", "thorough"]],
            "tags": ["type": "array", "items": ["type": "string", "maxLength": 32], "maxItems": 10, "uniqueItems": true],
            "when": ["type": "string", "format": "date-time"],
            "id": ["type": "string", "pattern": "^[a-z]{3}-[0-9]{4}$"],
            "note": ["type": "string", "maxLength": 200],
            "owner": ["type": "object", "properties": ["name": ["type": "string"], "email": ["type": "string"]], "required": ["name"]],
        ],
        "required": ["text"],
        "additionalProperties": false,
    ]

    /// Sleeps in up to ten steps, reporting progress after each, so a client sees progress arrive.
    private func sleep(milliseconds: Int, context: ToolCallContext) {
        let steps = milliseconds >= 100 ? 10 : 1
        let stepDuration = Duration.milliseconds(milliseconds) / steps
        @Sendable func step(_ done: Int) {
            guard !context.isCancelled else { return }
            if done == steps {
                context.finish(.text("slept \(milliseconds)ms"))
                return
            }
            let work = context.schedule(after: stepDuration) {
                context.reportProgress(Double(done + 1), total: Double(steps), message: "slept \((done + 1) * milliseconds / steps) of \(milliseconds)ms")
                step(done + 1)
            }
            context.onCancel { work.cancel() }
        }
        step(0)
    }
}

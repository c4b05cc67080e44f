import GatewayCore
import Synchronization

/// An in-process tool provider (issue "spine" §6). A plugin declares its tools with their schemas and handles a
/// call given a context that carries the principal, the session, cancellation and progress reporting.
///
/// `call` runs on the gateway's event loop and must not block: answer at once with `context.finish`, or
/// schedule work with `context.schedule(after:)` and finish later. This keeps an in-process call free of
/// thread hops and tasks, the cheapest path through the gateway (ARCHITECTURE.md, "The hot path").
public protocol ToolPlugin: Sendable {
    /// The name a config refers to (`backends.<n>.plugin`).
    var pluginName: String { get }
    var tools: [ToolDefinition] { get }
    func call(_ call: ToolCall, context: ToolCallContext)
}

/// A tool's descriptor as `tools/list` shows it (2025-11-25/server/tools#tool).
public struct ToolDefinition: Sendable {
    public var name: String
    public var title: String?
    public var description: String
    public var inputSchema: JSONObject
    public var outputSchema: JSONObject?
    public var annotations: JSONObject?

    public init(name: String, title: String? = nil, description: String, inputSchema: JSONObject, outputSchema: JSONObject? = nil, annotations: JSONObject? = nil) {
        self.name = name
        self.title = title
        self.description = description
        self.inputSchema = inputSchema
        self.outputSchema = outputSchema
        self.annotations = annotations
    }

    public var descriptor: JSONObject {
        var object = JSONObject()
        object["name"] = .string(name)
        if let title { object["title"] = .string(title) }
        object["description"] = .string(description)
        object["inputSchema"] = .object(inputSchema)
        if let outputSchema { object["outputSchema"] = .object(outputSchema) }
        if let annotations { object["annotations"] = .object(annotations) }
        return object
    }
}

public struct ToolCall: Sendable {
    /// The tool's own name (without the backend prefix).
    public var tool: String
    public var arguments: JSONObject
    public var meta: JSONObject?

    public init(tool: String, arguments: JSONObject, meta: JSONObject? = nil) {
        self.tool = tool
        self.arguments = arguments
        self.meta = meta
    }
}

/// A `CallToolResult` (2025-11-25/server/tools#tool-result).
public struct ToolResult: Sendable, Equatable {
    public var content: [JSONValue]
    public var structuredContent: JSONValue?
    public var isError: Bool

    public init(content: [JSONValue], structuredContent: JSONValue? = nil, isError: Bool = false) {
        self.content = content
        self.structuredContent = structuredContent
        self.isError = isError
    }

    public static func text(_ text: String, isError: Bool = false) -> ToolResult {
        ToolResult(content: [.object(["type": "text", "text": .string(text)])], isError: isError)
    }

    public var json: JSONValue {
        var object = JSONObject()
        object["content"] = .array(content)
        if let structuredContent { object["structuredContent"] = structuredContent }
        if isError { object["isError"] = .bool(true) }
        return .object(object)
    }
}

/// Timers for plugins, provided by the I/O shell (an event loop), so the plugin API stays free of NIO.
public protocol PluginScheduler: Sendable {
    func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) -> any ScheduledWork
}

public protocol ScheduledWork: Sendable {
    func cancel()
}

/// One call's context. Thread-safe; `finish` takes effect once, and nothing is delivered after the call was
/// cancelled (cancellation: the receiver stops and does not respond, basic/utilities/cancellation).
public final class ToolCallContext: Sendable {
    public let principal: Principal
    public let sessionID: String?
    private let scheduler: any PluginScheduler
    private let progressSink: @Sendable (_ progress: Double, _ total: Double?, _ message: String?) -> Void
    private let completion: @Sendable (ToolResult) -> Void
    private let state = Mutex(State())

    private struct State {
        var finished = false
        var cancelled = false
        var cancelHandlers: [@Sendable () -> Void] = []
        var lastProgress = -Double.infinity
    }

    public init(
        principal: Principal, sessionID: String?, scheduler: any PluginScheduler,
        progress: @escaping @Sendable (_ progress: Double, _ total: Double?, _ message: String?) -> Void,
        completion: @escaping @Sendable (ToolResult) -> Void
    ) {
        self.principal = principal
        self.sessionID = sessionID
        self.scheduler = scheduler
        self.progressSink = progress
        self.completion = completion
    }

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Runs `handler` when the call is cancelled (at once if it already was).
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.cancelled { return true }
            state.cancelHandlers.append(handler)
            return false
        }
        if runNow { handler() }
    }

    /// Reports progress; values that do not increase are dropped, since progress MUST increase
    /// (basic/utilities/progress), and nothing is sent once the call has finished or been cancelled.
    public func reportProgress(_ progress: Double, total: Double? = nil, message: String? = nil) {
        let send = state.withLock { state -> Bool in
            guard !state.finished, !state.cancelled, progress > state.lastProgress else { return false }
            state.lastProgress = progress
            return true
        }
        if send { progressSink(progress, total, message) }
    }

    @discardableResult
    public func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) -> any ScheduledWork {
        scheduler.schedule(after: delay, work)
    }

    public func finish(_ result: ToolResult) {
        let deliver = state.withLock { state -> Bool in
            guard !state.finished, !state.cancelled else { return false }
            state.finished = true
            return true
        }
        if deliver { completion(result) }
    }

    /// Called by the gateway when the client cancels or the call times out.
    public func cancel() {
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.cancelled, !state.finished else { return [] }
            state.cancelled = true
            defer { state.cancelHandlers.removeAll() }
            return state.cancelHandlers
        }
        for handler in handlers { handler() }
    }
}

/// The plugins this build ships, by the name a config uses.
public enum BuiltinPlugins {
    public static func make(_ name: String) -> (any ToolPlugin)? {
        switch name {
        case DiagnosticsPlugin.name: return DiagnosticsPlugin()
        default: return nil
        }
    }

    public static let names = [DiagnosticsPlugin.name]
}

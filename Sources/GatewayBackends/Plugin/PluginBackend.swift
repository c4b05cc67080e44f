import GatewayCore
import GatewayPlugins
import NIOCore

/// Serves a `ToolPlugin` in process: a call runs on the client connection's event loop, with no thread hop.
public final class PluginBackend: Backend {
    public let name: String
    public let kind = "plugin"
    public let callTimeout: Duration
    private let plugin: any ToolPlugin
    private let eventLoopGroup: any EventLoopGroup
    public let tools: [JSONObject]

    public init(name: String, plugin: any ToolPlugin, callTimeout: Duration, eventLoopGroup: any EventLoopGroup) {
        self.name = name
        self.plugin = plugin
        self.callTimeout = callTimeout
        self.eventLoopGroup = eventLoopGroup
        self.tools = plugin.tools.map(\.descriptor)
    }

    public var isReady: Bool { true }

    public func start() -> EventLoopFuture<Void> { eventLoopGroup.next().makeSucceededVoidFuture() }

    public func call(_ call: BackendCall, sink: any BackendCallSink) -> any BackendInFlight {
        guard call.method == "tools/call", let tool = call.params["name"]?.stringValue else {
            sink.backendFinished(.error(.methodNotFound(call.method)))
            return CompletedInFlight()
        }
        let clientToken = call.progressToken
        let context = ToolCallContext(
            principal: call.context.principal,
            sessionID: call.context.sessionID,
            scheduler: EventLoopScheduler(eventLoop: call.eventLoop),
            progress: { progress, total, message in
                guard let clientToken else { return }
                var params = JSONObject()
                params["progressToken"] = clientToken
                params["progress"] = .number(JSONNumber(progress))
                if let total { params["total"] = .number(JSONNumber(total)) }
                if let message { params["message"] = .string(message) }
                sink.backendProgress(params)
            },
            completion: { result in
                sink.backendFinished(.result(result.json.serialized()))
            }
        )
        plugin.call(ToolCall(tool: tool, arguments: call.params["arguments"]?.objectValue ?? JSONObject(), meta: call.params["_meta"]?.objectValue), context: context)
        return PluginInFlight(context: context)
    }

    public func sessionEnded(_ sessionID: String) {}

    public func shutdown() -> EventLoopFuture<Void> { eventLoopGroup.next().makeSucceededVoidFuture() }
}

struct PluginInFlight: BackendInFlight {
    let context: ToolCallContext
    func cancel(reason: String) { context.cancel() }
}

/// Plugin timers on a NIO event loop.
struct EventLoopScheduler: PluginScheduler {
    let eventLoop: any EventLoop

    func schedule(after delay: Duration, _ work: @escaping @Sendable () -> Void) -> any ScheduledWork {
        let task = eventLoop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { work() }
        return ScheduledTask(task: task)
    }

    struct ScheduledTask: ScheduledWork {
        let task: NIOCore.Scheduled<Void>
        func cancel() { task.cancel() }
    }
}

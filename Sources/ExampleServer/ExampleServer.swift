import Dispatch
import Foundation
import GatewayCore

/// A small stdio MCP server (2025-11-25/basic/transports#stdio) built with this package: the bundled backend
/// of the default config and of the tests. It answers concurrently (a slow `sleep` does not hold up an `echo`),
/// reports progress, honours `notifications/cancelled`, and has tools that misbehave on purpose (`noise`
/// writes a non-JSON line to stdout) so the gateway's handling of them can be tested.
@main
struct ExampleServer {
    static func main() {
        let server = Server()
        while let line = readLine(strippingNewline: true) {
            server.handle(line: line)
        }
        // stdin closed: the client asked us to shut down (2025-11-25/basic/lifecycle#shutdown).
        server.waitForWork()
    }
}

final class Server: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled: Set<String> = []
    private let work = DispatchGroup()
    private let queue = DispatchQueue(label: "example-server", attributes: .concurrent)

    func handle(line: String) {
        guard let value = try? JSONParser.parse(line), case .success(let message) = JSONRPCMessage.classify(value) else {
            FileHandle.standardError.write(Data("example-server: ignoring a line that is not JSON-RPC\n".utf8))
            return
        }
        switch message {
        case .request(let request): respond(to: request)
        case .notification(let notification):
            if notification.method == "notifications/cancelled", let id = notification.params?["requestId"].flatMap(RequestID.init) {
                lock.withLock { _ = cancelled.insert(id.description) }
                log("cancelled request \(id)")
            }
        case .response: break
        }
    }

    func waitForWork() { work.wait() }

    private func respond(to request: JSONRPCRequest) {
        switch request.method {
        case "initialize":
            let requested = request.params?["protocolVersion"]?.stringValue ?? ProtocolVersion.latest.rawValue
            let version = ProtocolVersion.negotiate(requested: requested)
            send(JSONRPCEncoder.response(id: request.id, result: [
                "protocolVersion": .string(version.rawValue),
                "capabilities": ["tools": ["listChanged": false]],
                "serverInfo": ["name": "example-server", "version": "1.0.0"],
            ]))
        case "ping":
            send(JSONRPCEncoder.response(id: request.id, result: .object(JSONObject())))
        case "tools/list":
            var tools = Self.tools
            // A deliberately invalid schema, for `check --probe` tests.
            if ProcessInfo.processInfo.environment["EXAMPLE_BROKEN_SCHEMA"] == "1" { tools.append(Self.brokenTool) }
            send(JSONRPCEncoder.response(id: request.id, result: ["tools": .array(tools)]))
        case "tools/call":
            call(request)
        default:
            send(JSONRPCEncoder.error(id: request.id, .methodNotFound(request.method)))
        }
    }

    private func call(_ request: JSONRPCRequest) {
        let name = request.params?["name"]?.stringValue ?? ""
        let arguments = request.params?["arguments"]?.objectValue ?? JSONObject()
        switch name {
        case "echo":
            guard let text = arguments["text"]?.stringValue else { return reply(request, text: "echo needs \"text\" (a string)", isError: true) }
            reply(request, text: text)
        case "add":
            guard let a = arguments["a"]?.doubleValue, let b = arguments["b"]?.doubleValue else {
                return reply(request, text: "add needs numbers \"a\" and \"b\"", isError: true)
            }
            let sum = a + b
            let number = sum == sum.rounded() && abs(sum) < 1e15 ? JSONNumber(Int(sum)) : JSONNumber(sum)
            send(JSONRPCEncoder.response(id: request.id, result: [
                "content": [["type": "text", "text": .string(number.text)]],
                "structuredContent": ["sum": .number(number)],
            ]))
        case "sleep":
            guard let milliseconds = arguments["ms"]?.intValue, milliseconds >= 0 else { return reply(request, text: "sleep needs \"ms\" (an integer)", isError: true) }
            sleep(request, milliseconds: milliseconds)
        case "pid":
            reply(request, text: String(getpid()))
        case "env_digest":
            // Proves a credential reached the process through its environment without echoing it:
            // the value's length and FNV-1a digest, or "unset".
            let name = arguments["name"]?.stringValue ?? ""
            if let value = ProcessInfo.processInfo.environment[name] {
                reply(request, text: "\(value.utf8.count):\(SessionLogID.short(value))")
            } else {
                reply(request, text: "unset")
            }
        case "noise":
            lock.withLock {
                FileHandle.standardOutput.write(Data("this line is not JSON\n".utf8))
            }
            log("noise on stderr")
            reply(request, text: "ok")
        case "fail":
            reply(request, text: "example-server fail: this tool always fails", isError: true)
        case "trace_meta":
            // The `_meta` this call arrived with, as JSON text: tests read the trace context the gateway propagated.
            let meta = request.params?["_meta"] ?? .object(JSONObject())
            reply(request, text: String(decoding: meta.serialized(), as: UTF8.self))
        case "weather":
            // Answers with exactly the arguments it received, so tests can see what reached the backend.
            send(JSONRPCEncoder.response(id: request.id, result: [
                "content": [["type": "text", "text": .string(JSONValue.object(arguments).jsonString)]],
                "structuredContent": ["arguments": .object(arguments)],
            ]))
        case "bad_output":
            // Declares an outputSchema with a numeric `sum` and breaks it, to exercise the gateway's check.
            send(JSONRPCEncoder.response(id: request.id, result: [
                "content": [["type": "text", "text": "not a number"]],
                "structuredContent": ["sum": "not a number"],
            ]))
        default:
            send(JSONRPCEncoder.error(id: request.id, .invalidParams("Unknown tool: \(name)")))
        }
    }

    /// Sleeps in ten steps on a background queue, sending progress when asked and stopping when cancelled.
    private func sleep(_ request: JSONRPCRequest, milliseconds: Int) {
        let token = request.progressToken
        let key = request.id.description
        let steps = 10
        work.enter()
        @Sendable func step(_ done: Int) {
            if lock.withLock({ cancelled.remove(key) != nil }) {
                work.leave()
                return
            }
            if done == steps {
                reply(request, text: "slept \(milliseconds)ms")
                work.leave()
                return
            }
            queue.asyncAfter(deadline: .now() + .milliseconds(milliseconds / steps)) {
                if let token {
                    self.send(JSONRPCNotification(method: "notifications/progress", params: [
                        "progressToken": token, "progress": .number(JSONNumber(done + 1)), "total": .number(JSONNumber(steps)),
                    ]).serialized())
                }
                step(done + 1)
            }
        }
        step(0)
    }

    private func reply(_ request: JSONRPCRequest, text: String, isError: Bool = false) {
        var result: JSONObject = ["content": [["type": "text", "text": .string(text)]]]
        if isError { result["isError"] = true }
        send(JSONRPCEncoder.response(id: request.id, result: .object(result)))
    }

    private func send(_ message: [UInt8]) {
        lock.withLock {
            var line = message
            line.append(UInt8(ascii: "\n"))
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0, errno == EINTR { continue }
                    if written <= 0 { return }
                    offset += written
                }
            }
        }
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static let tools: [JSONValue] = [
        [
            "name": "echo", "description": "Returns the given text.",
            "inputSchema": ["type": "object", "properties": ["text": ["type": "string"]], "required": ["text"], "additionalProperties": false],
        ],
        [
            "name": "add", "title": "Add two numbers", "description": "Adds a and b.",
            "inputSchema": ["type": "object", "properties": ["a": ["type": "number"], "b": ["type": "number"]], "required": ["a", "b"]],
            "outputSchema": ["type": "object", "properties": ["sum": ["type": "number"]], "required": ["sum"]],
            "annotations": ["readOnlyHint": true],
        ],
        [
            "name": "sleep", "description": "Waits ms milliseconds, reporting progress; stops when cancelled.",
            "inputSchema": ["type": "object", "properties": ["ms": ["type": "integer", "minimum": 0]], "required": ["ms"]],
        ],
        ["name": "pid", "description": "Returns this process's id.", "inputSchema": ["type": "object"]],
        [
            "name": "env_digest", "description": "Returns the length and a digest of an environment variable (never its value).",
            "inputSchema": ["type": "object", "properties": ["name": ["type": "string"]], "required": ["name"]],
        ],
        ["name": "noise", "description": "Writes a non-JSON line to stdout and a line to stderr, then answers ok.", "inputSchema": ["type": "object"]],
        ["name": "fail", "description": "Always returns a tool error.", "inputSchema": ["type": "object"]],
        ["name": "trace_meta", "description": "Returns the params._meta it received (traceparent, tracestate, progressToken) as JSON text.", "inputSchema": ["type": "object"]],
        [
            "name": "weather", "description": "Returns the arguments it received (for argument validation tests).",
            "inputSchema": [
                "type": "object",
                "properties": [
                    "city": ["type": "string", "description": "City name"],
                    "unit": ["type": "string", "enum": ["celsius", "fahrenheit"]],
                    "days": ["type": "integer", "minimum": 1, "maximum": 7],
                    "address": [
                        "type": "object",
                        "properties": ["zip": ["type": "string", "pattern": "^[0-9]{5}$"]],
                        "required": ["zip"],
                    ],
                ],
                "required": ["city"],
            ],
        ],
        [
            "name": "bad_output", "description": "Returns structuredContent that breaks its own outputSchema.",
            "inputSchema": ["type": "object", "additionalProperties": false],
            "outputSchema": ["type": "object", "properties": ["sum": ["type": "number"]], "required": ["sum"]],
        ],
    ]

    static let brokenTool: JSONValue = [
        "name": "broken", "description": "Has an invalid inputSchema (an unparsable pattern).",
        "inputSchema": ["type": "object", "properties": ["code": ["type": "string", "pattern": "(["]]],
    ]
}

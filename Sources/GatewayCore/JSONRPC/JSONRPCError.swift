/// Error codes the gateway raises itself (JSON-RPC 2.0 §5.1 and ../shared/design/CONTRACT.md, "MCP behaviour").
public enum JSONRPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// A backend is unavailable: crashed, restarting, at its cap, circuit open, not started.
    public static let backendUnavailable = -32001
    /// MCP's resource-not-found for legacy clients (2025-11-25/server/resources#error-handling).
    public static let resourceNotFound = -32002
    /// Rate limited; `data.retry_after_ms` says when to retry.
    public static let rateLimited = -32003
    /// A backend did not answer within its `call_timeout`.
    public static let backendTimeout = -32004
    /// Refused by policy (stdio mode, where there is no HTTP status).
    public static let forbidden = -32005
}

/// A JSON-RPC error object, ready to send: the code, a message a person can act on, and optional data.
public struct JSONRPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(code): \(message)" }

    public var json: JSONValue {
        var object = JSONObject()
        object["code"] = .number(JSONNumber(code))
        object["message"] = .string(message)
        if let data { object["data"] = data }
        return .object(object)
    }

    public init?(json: JSONValue) {
        guard let object = json.objectValue, let code = object["code"]?.intValue else { return nil }
        self.code = code
        self.message = object["message"]?.stringValue ?? ""
        self.data = object["data"]
    }

    public static func parse(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.parseError, message: "Parse error: \(detail)")
    }
    public static func invalidRequest(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.invalidRequest, message: "Invalid request: \(detail)")
    }
    public static func methodNotFound(_ method: String) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method)")
    }
    public static func invalidParams(_ detail: String, data: JSONValue? = nil) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.invalidParams, message: detail, data: data)
    }
    public static func internalError(_ detail: String) -> JSONRPCError {
        JSONRPCError(code: JSONRPCErrorCode.internalError, message: "Internal error: \(detail)")
    }
    public static func backendUnavailable(_ backend: String, _ detail: String) -> JSONRPCError {
        JSONRPCError(
            code: JSONRPCErrorCode.backendUnavailable,
            message: "Backend '\(backend)' is unavailable: \(detail)",
            data: ["backend": .string(backend)]
        )
    }
    public static func backendTimeout(_ backend: String, method: String, after timeout: Duration) -> JSONRPCError {
        JSONRPCError(
            code: JSONRPCErrorCode.backendTimeout,
            message: "Backend '\(backend)' did not answer \(method) within \(DurationFormat.describe(timeout)); the request was cancelled",
            data: ["backend": .string(backend)]
        )
    }
}

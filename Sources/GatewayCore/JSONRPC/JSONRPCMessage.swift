/// One JSON-RPC 2.0 message as the gateway sees it (JSON-RPC 2.0 §4-5; MCP 2025-11-25/basic/index).
/// Only the envelope is interpreted; `params`, `result` and `error.data` are carried as parsed values and
/// forwarded unchanged, so fields the gateway does not know survive (`_meta`, newer spec fields).
public enum JSONRPCMessage: Sendable, Equatable {
    case request(JSONRPCRequest)
    case notification(JSONRPCNotification)
    case response(JSONRPCResponse)

    /// Classifies a parsed JSON value, or says precisely why it is not a JSON-RPC 2.0 message.
    public static func classify(_ value: JSONValue) -> Result<JSONRPCMessage, JSONRPCError> {
        guard case .object(let object) = value else {
            return .failure(.invalidRequest("a JSON-RPC message must be a JSON object, got \(value.typeName)"))
        }
        guard object["jsonrpc"]?.stringValue == "2.0" else {
            return .failure(.invalidRequest("\"jsonrpc\" must be \"2.0\""))
        }
        let params = object["params"]
        if let params, params.objectValue == nil, params.arrayValue == nil {
            return .failure(.invalidRequest("\"params\" must be an object or an array"))
        }
        if let methodValue = object["method"] {
            guard let method = methodValue.stringValue else {
                return .failure(.invalidRequest("\"method\" must be a string"))
            }
            guard let idValue = object["id"] else {
                return .success(.notification(JSONRPCNotification(method: method, params: params?.objectValue)))
            }
            guard let id = RequestID(idValue) else {
                return .failure(.invalidRequest("\"id\" must be a string or a number (MCP forbids null ids)"))
            }
            return .success(.request(JSONRPCRequest(id: id, method: method, params: params?.objectValue)))
        }
        guard let idValue = object["id"] else {
            return .failure(.invalidRequest("a message needs \"method\" (request or notification) or \"id\" (response)"))
        }
        guard let id = RequestID(idValue) else {
            return .failure(.invalidRequest("a response \"id\" must be a string or a number"))
        }
        if let result = object["result"] {
            return .success(.response(JSONRPCResponse(id: id, outcome: .result(result))))
        }
        if let errorValue = object["error"], let error = JSONRPCError(json: errorValue) {
            return .success(.response(JSONRPCResponse(id: id, outcome: .error(error))))
        }
        return .failure(.invalidRequest("a response needs \"result\" or an \"error\" object with a \"code\""))
    }
}

public struct JSONRPCRequest: Sendable, Equatable {
    public var id: RequestID
    public var method: String
    public var params: JSONObject?

    public init(id: RequestID, method: String, params: JSONObject?) {
        self.id = id
        self.method = method
        self.params = params
    }

    /// `params._meta.progressToken`, when the requester asked for progress (basic/utilities/progress).
    public var progressToken: JSONValue? {
        guard let token = params?["_meta"]?["progressToken"] else { return nil }
        switch token {
        case .string, .number: return token
        default: return nil
        }
    }

    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        buffer.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        id.write(into: &buffer)
        buffer.append(contentsOf: #","method":"#.utf8)
        JSONWriter.writeString(method, into: &buffer)
        if let params {
            buffer.append(contentsOf: #","params":"#.utf8)
            JSONWriter.write(.object(params), into: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }
}

public struct JSONRPCNotification: Sendable, Equatable {
    public var method: String
    public var params: JSONObject?

    public init(method: String, params: JSONObject?) {
        self.method = method
        self.params = params
    }

    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(96)
        buffer.append(contentsOf: #"{"jsonrpc":"2.0","method":"#.utf8)
        JSONWriter.writeString(method, into: &buffer)
        if let params {
            buffer.append(contentsOf: #","params":"#.utf8)
            JSONWriter.write(.object(params), into: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }
}

public struct JSONRPCResponse: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case result(JSONValue)
        case error(JSONRPCError)
    }
    public var id: RequestID
    public var outcome: Outcome

    public init(id: RequestID, outcome: Outcome) {
        self.id = id
        self.outcome = outcome
    }
}

/// Builds response bytes. The `result` may be spliced in as raw JSON text taken from a backend's reply,
/// so large results are never re-parsed or re-serialised on their way to the client.
public enum JSONRPCEncoder {
    public static func response(id: RequestID?, rawResult: some Collection<UInt8>) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(rawResult.count + 48)
        buffer.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        writeID(id, into: &buffer)
        buffer.append(contentsOf: #","result":"#.utf8)
        buffer.append(contentsOf: rawResult)
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }

    public static func response(id: RequestID?, result: JSONValue) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        buffer.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        writeID(id, into: &buffer)
        buffer.append(contentsOf: #","result":"#.utf8)
        JSONWriter.write(result, into: &buffer)
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }

    /// An error response; `id` is nil (written as `null`) when the request's id could not be read (JSON-RPC 2.0 §5).
    public static func error(id: RequestID?, _ error: JSONRPCError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(128)
        buffer.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        writeID(id, into: &buffer)
        buffer.append(contentsOf: #","error":"#.utf8)
        JSONWriter.write(error.json, into: &buffer)
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }

    public static func encode(_ response: JSONRPCResponse) -> [UInt8] {
        switch response.outcome {
        case .result(let value): return Self.response(id: response.id, result: value)
        case .error(let error): return Self.error(id: response.id, error)
        }
    }

    @inline(__always)
    static func writeID(_ id: RequestID?, into buffer: inout [UInt8]) {
        if let id { id.write(into: &buffer) } else { buffer.append(contentsOf: "null".utf8) }
    }
}

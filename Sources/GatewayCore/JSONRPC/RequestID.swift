/// A JSON-RPC 2.0 request id: a string or a number (JSON-RPC 2.0 §4; MCP forbids `null` on requests,
/// 2025-11-25/basic/index#requests). The gateway echoes ids exactly, so the number form keeps its text.
public enum RequestID: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case number(JSONNumber)

    public init?(_ value: JSONValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .number(let number): self = .number(number)
        default: return nil
        }
    }

    public init(_ value: Int) { self = .number(JSONNumber(value)) }

    public var json: JSONValue {
        switch self {
        case .string(let text): return .string(text)
        case .number(let number): return .number(number)
        }
    }

    public var description: String {
        switch self {
        case .string(let text): return text
        case .number(let number): return number.text
        }
    }

    /// Writes the id as JSON text, exactly as the peer sent it.
    public func write(into buffer: inout [UInt8]) {
        switch self {
        case .string(let text): JSONWriter.writeString(text, into: &buffer)
        case .number(let number): buffer.append(contentsOf: number.text.utf8)
        }
    }
}

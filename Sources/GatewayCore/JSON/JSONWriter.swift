// JSONWriter.swift: compact serialisation of `JSONValue` into bytes.
//
// The output is the compact form of RFC 8259 (no insignificant whitespace), with object members in
// their stored order and numbers written as their stored text. Strings carry only the escapes JSON
// requires (RFC 8259 §7): `"`, `\` and the control characters U+0000 to U+001F; everything else,
// including `/`, DEL and all non-ASCII characters, is written as raw UTF-8. That makes the output
// the same bytes other strict writers produce, which the audit log's hash chain relies on.

public enum JSONWriter {
    /// Appends the compact serialisation of `value` to `buffer`. Recurses once per nesting level, so
    /// its stack use is bounded by how the value was built (by the depth limit, for a parsed value).
    public static func write(_ value: JSONValue, into buffer: inout [UInt8]) {
        switch value {
        case .null:
            appendASCII("null", to: &buffer)
        case .bool(let bool):
            appendASCII(bool ? "true" : "false", to: &buffer)
        case .number(let number):
            appendUTF8(of: number.text, to: &buffer)
        case .string(let string):
            writeString(string, into: &buffer)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: ",")) }
                write(element, into: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            for (position, member) in object.storage.enumerated() {
                if position > 0 { buffer.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &buffer)
                buffer.append(UInt8(ascii: ":"))
                write(member.value, into: &buffer)
            }
            buffer.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `string` as a JSON string: quoted, with `\"`, `\\`, the short escapes `\b \f \n \r \t`
    /// and `\u00XX` for the other control characters; everything else as raw UTF-8.
    public static func writeString(_ string: String, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            // Copy runs of bytes that need no escape in one go; stop only at the rare ones that do.
            var runStart = 0
            for position in utf8.indices {
                let byte = utf8[position]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<position]))
                appendEscape(for: byte, to: &buffer)
                runStart = position + 1
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// Appends the escape sequence for a byte that must be escaped (a quote, a backslash or a control character).
    private static func appendEscape(for byte: UInt8, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""): buffer.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): buffer.append(UInt8(ascii: "\\"))
        case 0x08: buffer.append(UInt8(ascii: "b"))
        case 0x0C: buffer.append(UInt8(ascii: "f"))
        case 0x0A: buffer.append(UInt8(ascii: "n"))
        case 0x0D: buffer.append(UInt8(ascii: "r"))
        case 0x09: buffer.append(UInt8(ascii: "t"))
        default:
            let hexDigits: StaticString = "0123456789abcdef"
            buffer.append(UInt8(ascii: "u"))
            buffer.append(UInt8(ascii: "0"))
            buffer.append(UInt8(ascii: "0"))
            buffer.append(hexDigits.utf8Start[Int(byte >> 4)])
            buffer.append(hexDigits.utf8Start[Int(byte & 0x0F)])
        }
    }

    private static func appendASCII(_ text: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private static func appendUTF8(of text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }
}

extension JSONValue {
    /// The compact serialisation (see `JSONWriter.write`).
    public func serialized() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(256)
        JSONWriter.write(self, into: &buffer)
        return buffer
    }

    /// The compact serialisation as text.
    public var jsonString: String {
        String(decoding: serialized(), as: UTF8.self)
    }
}

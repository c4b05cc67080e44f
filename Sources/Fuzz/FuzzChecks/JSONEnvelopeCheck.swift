import GatewayCore

/// The JSON-RPC envelope parser (`JSONParser.parse`, `JSONParser.scan`, `JSONRPCMessage.classify`) on
/// arbitrary bytes. Invariants: nothing traps; `scan` accepts exactly what `parse` accepts; serialising a
/// parsed value and parsing it again gives the same value, and serialising is then a fixed point; each raw
/// range `scan` reports parses to the value `parse` found there; a classified message re-encoded by the
/// gateway's own encoders classifies to the same message.
public enum JSONEnvelopeCheck {
    public static func check(_ input: [UInt8]) throws(FuzzFailure) {
        let parsed = try? JSONParser.parse(input)
        let scanned = try? JSONParser.scan(input)
        try expect((parsed == nil) == (scanned == nil), "parse \(parsed == nil ? "rejects" : "accepts") but scan \(scanned == nil ? "rejects" : "accepts")")
        guard let value = parsed, let scanned else { return }

        let text = value.serialized()
        guard let reparsed = try? JSONParser.parse(text) else {
            throw FuzzFailure("the serialisation of an accepted value does not parse: \(String(decoding: text, as: UTF8.self))")
        }
        try expect(reparsed == value, "parse(serialize(x)) != x for \(String(decoding: text, as: UTF8.self))")
        try expect(reparsed.serialized() == text, "serialising is not a fixed point")

        switch (scanned, value) {
        case (.object(let members), .object(let object)):
            try expect(members.count >= object.count, "scan found \(members.count) members, parse \(object.count) distinct keys")
            for member in members {
                let raw = try rawValue(input, member.range)
                try expect(object[member.key] != nil, "scan found key \(member.key) that parse lacks")
                if members.filter({ $0.key == member.key }).count == 1 {
                    try expect(raw == object[member.key], "member \(member.key): raw range disagrees with parse")
                }
            }
        case (.array(let ranges), .array(let elements)):
            try expect(ranges.count == elements.count, "scan found \(ranges.count) elements, parse \(elements.count)")
            for (range, element) in zip(ranges, elements) {
                try expect(try rawValue(input, range) == element, "array element: raw range disagrees with parse")
            }
        case (.scalar, .object), (.scalar, .array), (.object, _), (.array, _):
            throw FuzzFailure("scan and parse disagree on the top-level kind")
        case (.scalar, _):
            break
        }

        guard case .success(let message) = JSONRPCMessage.classify(value) else { return }
        let encoded: [UInt8]
        switch message {
        case .request(let request): encoded = request.serialized()
        case .notification(let notification): encoded = notification.serialized()
        case .response(let response): encoded = JSONRPCEncoder.encode(response)
        }
        guard let encodedValue = try? JSONParser.parse(encoded) else {
            throw FuzzFailure("a re-encoded message does not parse: \(String(decoding: encoded, as: UTF8.self))")
        }
        guard case .success(let again) = JSONRPCMessage.classify(encodedValue) else {
            throw FuzzFailure("a re-encoded message no longer classifies: \(String(decoding: encoded, as: UTF8.self))")
        }
        try expect(again == message, "classify(encode(m)) != m for \(String(decoding: encoded, as: UTF8.self))")
    }

    private static func rawValue(_ input: [UInt8], _ range: Range<Int>) throws(FuzzFailure) -> JSONValue {
        guard range.lowerBound >= 0, range.upperBound <= input.count, !range.isEmpty else {
            throw FuzzFailure("scan range \(range) outside the \(input.count)-byte input")
        }
        guard let value = try? JSONParser.parse(input[range]) else {
            throw FuzzFailure("the raw text scan reported does not parse on its own: \(String(decoding: input[range], as: UTF8.self))")
        }
        return value
    }
}

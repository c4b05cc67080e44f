/// An IPv4 or IPv6 address as 16 bytes, IPv4 kept apart so `10.0.0.0/8` never matches an IPv6 peer by accident.
/// IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack socket reports for an IPv4 peer) are
/// normalised to IPv4 (RFC 4291 §2.5.5.2), so one allowlist entry covers both ways of arriving.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let isIPv4: Bool
    /// Big-endian; an IPv4 address uses the first 4 bytes.
    public let bytes: [UInt8]

    init(isIPv4: Bool, bytes: [UInt8]) {
        self.isIPv4 = isIPv4
        self.bytes = bytes
    }

    public init?(_ text: String) {
        if let v4 = Self.parseIPv4(Substring(text)) {
            isIPv4 = true
            bytes = v4
        } else if let v6 = Self.parseIPv6(Substring(text)) {
            if v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xFF, v6[11] == 0xFF {
                isIPv4 = true
                bytes = Array(v6[12..<16])
            } else {
                isIPv4 = false
                bytes = v6
            }
        } else {
            return nil
        }
    }

    public var bitCount: Int { isIPv4 ? 32 : 128 }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }

    /// Dotted quad, four decimal octets 0-255, no leading zeros (which some parsers read as octal).
    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var result: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            if part.count > 1, part.first == "0" { return nil }
            guard let value = UInt8(part) else { return nil }
            result.append(value)
        }
        return result
    }

    /// RFC 4291 §2.2 text forms: eight hex groups, one `::` run of zeros, an optional trailing dotted quad.
    /// A zone index (`%eth0`) is dropped: it names an interface, not part of the address.
    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        var text = text
        if let percent = text.firstIndex(of: "%") { text = text[..<percent] }
        guard text.contains(":") else { return nil }
        var halves: [String] = []
        var rest = text
        while let run = rest.firstRange(of: "::") {
            halves.append(String(rest[..<run.lowerBound]))
            rest = rest[run.upperBound...]
        }
        halves.append(String(rest))
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowTrailingIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowTrailingIPv4, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !piece.isEmpty, piece.count <= 4, let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        let all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowTrailingIPv4: false), let tail = groups(halves[1], allowTrailingIPv4: true),
                  head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let every = groups(halves[0], allowTrailingIPv4: true), every.count == 8 else { return nil }
            all = every
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

/// A CIDR block (RFC 4632 §3.1 for IPv4, RFC 4291 §2.3 for IPv6): `10.0.0.0/8`, `2001:db8::/32`. A bare
/// address means that one host (`/32` or `/128`). Host bits set below the prefix (`10.1.2.3/8`) are refused:
/// they usually mean a typo in the prefix length, and silently widening or narrowing an allowlist is worse.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notAnAddress(String)
        case badPrefixLength(String)
        case hostBitsSet(String, suggestion: String)

        public var description: String {
            switch self {
            case .notAnAddress(let text): return "\"\(text)\" is not an IPv4 or IPv6 address or CIDR block (for example 10.0.0.0/8 or 2001:db8::/32)"
            case .badPrefixLength(let text): return "\"\(text)\" has a prefix length outside 0-32 (IPv4) or 0-128 (IPv6)"
            case .hostBitsSet(let text, let suggestion): return "\"\(text)\" has bits set after the prefix; did you mean \(suggestion)?"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingASCIIWhitespace()
        let addressText: Substring
        let prefixText: Substring?
        if let slash = trimmed.firstIndex(of: "/") {
            addressText = trimmed[..<slash]
            prefixText = trimmed[trimmed.index(after: slash)...]
        } else {
            addressText = trimmed[...]
            prefixText = nil
        }
        guard !addressText.contains("%"), let address = IPAddress(String(addressText)) else { throw .notAnAddress(text) }
        // `::ffff:10.0.0.0/104` is normalised to IPv4, so its prefix is counted in IPv6 bits: shift it back.
        let mappedShift = (address.isIPv4 && addressText.contains(":")) ? 96 : 0
        var length = address.bitCount
        if let prefixText {
            guard !prefixText.isEmpty, prefixText.count <= 3, prefixText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(prefixText), value - mappedShift >= 0, value - mappedShift <= address.bitCount
            else { throw .badPrefixLength(text) }
            length = value - mappedShift
        }
        let masked = Self.mask(address.bytes, prefixLength: length)
        guard masked == address.bytes else {
            throw .hostBitsSet(text, suggestion: "\(IPAddress(isIPv4: address.isIPv4, bytes: masked))/\(length)")
        }
        self.address = address
        self.prefixLength = length
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.isIPv4 == address.isIPv4 else { return false }
        return Self.mask(candidate.bytes, prefixLength: prefixLength) == address.bytes
    }

    public var description: String { "\(address)/\(prefixLength)" }

    static func mask(_ bytes: [UInt8], prefixLength: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsHere = max(0, min(8, prefixLength - index * 8))
            result[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return result
    }
}

extension Array where Element == IPNetwork {
    public func containsAddress(_ address: IPAddress) -> Bool { contains { $0.contains(address) } }
}

/// Who the client is, when proxies stand in between: the connecting peer, unless that peer is a trusted proxy,
/// in which case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries to the left
/// of that one were written by the client or an untrusted hop and prove nothing, so they are never consulted
/// (the usual "right-most untrusted" rule; RFC 7239 §7.4 describes the same spoofing concern for `Forwarded`).
public enum ClientAddressResolution {
    public enum Outcome: Sendable, Equatable {
        case address(IPAddress)
        /// The peer is a trusted proxy and the entry that names the client is not an IP address.
        case unparseable(String)
    }

    /// - Parameters:
    ///   - peer: the TCP peer.
    ///   - forwardedFor: every `X-Forwarded-For` field value in order (several fields are one comma list,
    ///     RFC 9110 §5.3).
    public static func resolve(peer: IPAddress, forwardedFor: [String], trustedProxies: [IPNetwork]) -> Outcome {
        guard trustedProxies.containsAddress(peer) else { return .address(peer) }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }.map { String($0).trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
        var client = Outcome.address(peer)
        for entry in entries.reversed() {
            guard let address = parseForwardedEntry(entry) else { return .unparseable(entry) }
            client = .address(address)
            if !trustedProxies.containsAddress(address) { return client }
        }
        // Every hop is a trusted proxy: the left-most one is as close to the client as the header gets.
        return client
    }

    /// An `X-Forwarded-For` entry: an address, optionally `[v6]`, `[v6]:port` or `v4:port` as some proxies write.
    static func parseForwardedEntry(_ entry: String) -> IPAddress? {
        if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
            return IPAddress(String(entry[entry.index(after: entry.startIndex)..<close]))
        }
        if let address = IPAddress(entry) { return address }
        if let colon = entry.lastIndex(of: ":"), entry.filter({ $0 == ":" }).count == 1 {
            return IPAddress(String(entry[..<colon])).flatMap { $0.isIPv4 ? $0 : nil }
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingASCIIWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}

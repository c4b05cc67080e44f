// SchemaFormat.swift: the `format` checks used when format assertion is on.
//
// By default `format` is an annotation (2020-12 Validation §7.2.1): it never fails validation. With
// `JSONSchema.compile(_:assertFormat: true)` the formats below are checked; any other format name is
// still only an annotation. Each check follows the RFC the 2020-12 specification cites for it.

enum SchemaFormat: String, Sendable, CaseIterable {
    case dateTime = "date-time"
    case date
    case time
    case duration
    case email
    case idnEmail = "idn-email"
    case hostname
    case idnHostname = "idn-hostname"
    case ipv4
    case ipv6
    case uri
    case uriReference = "uri-reference"
    case iri
    case iriReference = "iri-reference"
    case uriTemplate = "uri-template"
    case uuid
    case jsonPointer = "json-pointer"
    case relativeJSONPointer = "relative-json-pointer"
    case regex

    func isValid(_ string: String) -> Bool {
        let bytes = Array(string.utf8)
        switch self {
        case .dateTime: return Self.isDateTime(bytes[...])
        case .date: return Self.isDate(bytes[...])
        case .time: return Self.isTime(bytes[...])
        case .duration: return Self.isDuration(bytes)
        case .email: return Self.isEmail(bytes, international: false)
        case .idnEmail: return Self.isEmail(bytes, international: true)
        case .hostname: return SchemaIDNA.isHostname(bytes[...])
        case .idnHostname: return SchemaIDNA.isIDNHostname(string)
        case .ipv4: return Self.isIPv4(bytes[...])
        case .ipv6: return Self.isIPv6(bytes[...])
        case .uri: return Self.isURI(bytes, requireScheme: true, international: false)
        case .uriReference: return Self.isURI(bytes, requireScheme: false, international: false)
        case .iri: return Self.isURI(bytes, requireScheme: true, international: true)
        case .iriReference: return Self.isURI(bytes, requireScheme: false, international: true)
        case .uriTemplate: return Self.isURITemplate(bytes)
        case .uuid: return Self.isUUID(bytes)
        case .jsonPointer: return Self.isJSONPointer(bytes[...])
        case .relativeJSONPointer: return Self.isRelativeJSONPointer(bytes)
        case .regex: return (try? ECMARegex(string)) != nil
        }
    }

    // MARK: Helpers

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    @inline(__always)
    static func isHex(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "f"))
    }

    @inline(__always)
    static func isAlpha(_ byte: UInt8) -> Bool {
        byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")
    }

    /// The value of exactly `count` ASCII digits at the start of `bytes`.
    static func digits(_ bytes: ArraySlice<UInt8>, _ start: Int, _ count: Int) -> Int? {
        guard start + count <= bytes.endIndex else { return nil }
        var value = 0
        for index in start..<start + count {
            guard isDigit(bytes[index]) else { return nil }
            value = value * 10 + Int(bytes[index] - 0x30)
        }
        return value
    }

    // MARK: Dates and times (RFC 3339 §5.6)

    static func isDate(_ bytes: ArraySlice<UInt8>) -> Bool {
        let s = bytes.startIndex
        guard bytes.count == 10, bytes[s + 4] == UInt8(ascii: "-"), bytes[s + 7] == UInt8(ascii: "-"),
            let year = digits(bytes, s, 4), let month = digits(bytes, s + 5, 2), let day = digits(bytes, s + 8, 2),
            (1...12).contains(month), day >= 1
        else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return day <= days
    }

    static func isTime(_ bytes: ArraySlice<UInt8>) -> Bool {
        let s = bytes.startIndex
        guard bytes.count >= 9, bytes[s + 2] == UInt8(ascii: ":"), bytes[s + 5] == UInt8(ascii: ":"),
            let hour = digits(bytes, s, 2), let minute = digits(bytes, s + 3, 2), let second = digits(bytes, s + 6, 2),
            hour <= 23, minute <= 59, second <= 60
        else { return false }
        var index = s + 8
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.endIndex && isDigit(bytes[index]) { index += 1 }
            guard index > start else { return false }
        }
        guard index < bytes.endIndex else { return false }
        var offsetMinutes = 0
        if bytes[index] | 0x20 == UInt8(ascii: "z") {
            guard index + 1 == bytes.endIndex else { return false }
        } else {
            let sign = bytes[index]
            guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"), bytes.endIndex - index == 6,
                bytes[index + 3] == UInt8(ascii: ":"), let offsetHour = digits(bytes, index + 1, 2),
                let offsetMinute = digits(bytes, index + 4, 2), offsetHour <= 23, offsetMinute <= 59
            else { return false }
            offsetMinutes = (offsetHour * 60 + offsetMinute) * (sign == UInt8(ascii: "+") ? 1 : -1)
        }
        if second == 60 {
            // A leap second is only ever 23:59:60 UTC.
            let utc = ((hour * 60 + minute - offsetMinutes) % 1440 + 1440) % 1440
            return utc == 23 * 60 + 59
        }
        return true
    }

    static func isDateTime(_ bytes: ArraySlice<UInt8>) -> Bool {
        let s = bytes.startIndex
        guard bytes.count > 11, bytes[s + 10] | 0x20 == UInt8(ascii: "t") else { return false }
        return isDate(bytes[s..<s + 10]) && isTime(bytes[(s + 11)...])
    }

    /// RFC 3339 Appendix A (ISO 8601 durations).
    static func isDuration(_ bytes: [UInt8]) -> Bool {
        guard bytes.first == UInt8(ascii: "P"), bytes.count > 1 else { return false }
        var index = 1
        func component(_ units: [UInt8]) -> [UInt8]? {
            // Parses digits+unit sequences; returns the units seen in order.
            var seen: [UInt8] = []
            while index < bytes.count && bytes[index] != UInt8(ascii: "T") {
                let start = index
                while index < bytes.count && isDigit(bytes[index]) { index += 1 }
                guard index > start, index < bytes.count, units.contains(bytes[index]) else { return nil }
                seen.append(bytes[index])
                index += 1
            }
            return seen
        }
        guard let dateUnits = component([UInt8(ascii: "Y"), UInt8(ascii: "M"), UInt8(ascii: "W"), UInt8(ascii: "D")]) else { return false }
        var timeUnits: [UInt8] = []
        if index < bytes.count {
            index += 1  // "T"
            guard let units = component([UInt8(ascii: "H"), UInt8(ascii: "M"), UInt8(ascii: "S")]), !units.isEmpty,
                index == bytes.count
            else { return false }
            timeUnits = units
        }
        if dateUnits.isEmpty && timeUnits.isEmpty { return false }
        if dateUnits.contains(UInt8(ascii: "W")) { return dateUnits.count == 1 && timeUnits.isEmpty }
        // The ABNF allows only contiguous runs: Y M D (dur-year = Y [M [D]]; dur-month = M [D]), H M S likewise.
        return Self.isContiguousRun(dateUnits, of: [UInt8(ascii: "Y"), UInt8(ascii: "M"), UInt8(ascii: "D")])
            && Self.isContiguousRun(timeUnits, of: [UInt8(ascii: "H"), UInt8(ascii: "M"), UInt8(ascii: "S")])
    }

    static func isContiguousRun(_ units: [UInt8], of order: [UInt8]) -> Bool {
        guard let first = units.first else { return true }
        guard let start = order.firstIndex(of: first), start + units.count <= order.count else { return false }
        return Array(order[start..<start + units.count]) == units
    }

    // MARK: Internet addresses

    static func isIPv4(_ bytes: ArraySlice<UInt8>) -> Bool {
        var parts = 0
        var index = bytes.startIndex
        while true {
            let start = index
            var value = 0
            while index < bytes.endIndex && isDigit(bytes[index]) {
                value = value * 10 + Int(bytes[index] - 0x30)
                index += 1
                if index - start > 3 { return false }
            }
            let length = index - start
            guard length > 0, value <= 255, length == 1 || bytes[start] != UInt8(ascii: "0") else { return false }
            parts += 1
            if index == bytes.endIndex { return parts == 4 }
            guard bytes[index] == UInt8(ascii: "."), parts < 4 else { return false }
            index += 1
        }
    }

    static func isIPv6(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 < 0x80 }) else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        var groups = 0
        var compressed = false
        var rest = Substring(text)
        if rest.hasPrefix("::") {
            compressed = true
            rest = rest.dropFirst(2)
            if rest.isEmpty { return true }
        } else if rest.hasPrefix(":") {
            return false
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let group = rest[..<end]
            if end == rest.endIndex && group.contains(".") {
                // An embedded IPv4 address takes two groups and ends the address.
                guard isIPv4(ArraySlice(group.utf8)) else { return false }
                groups += 2
                rest = rest[end...]
                break
            }
            guard (1...4).contains(group.count), group.utf8.allSatisfy(isHex) else { return false }
            groups += 1
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard !compressed else { return false }
                compressed = true
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                if rest.isEmpty { return false }
            }
        }
        return compressed ? groups <= 7 : groups == 8
    }

    /// RFC 1123 host names (see `SchemaIDNA.isHostname`).
    static func isHostname(_ bytes: ArraySlice<UInt8>) -> Bool {
        SchemaIDNA.isHostname(bytes)
    }

    static func isEmail(_ bytes: [UInt8], international: Bool) -> Bool {
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { return false }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        if local.first == UInt8(ascii: "\"") {
            // quoted-string (RFC 5321 §4.1.2): printable ASCII but `"` and `\`, or a quoted pair.
            guard local.count >= 2, local.last == UInt8(ascii: "\"") else { return false }
            var index = local.startIndex + 1
            while index < local.endIndex - 1 {
                let byte = local[index]
                if byte == UInt8(ascii: "\\") {
                    index += 2
                    continue
                }
                guard byte != UInt8(ascii: "\""), byte >= 0x20 || (international && byte >= 0x80) else { return false }
                index += 1
            }
        } else {
            // dot-string: atoms of atext separated by single dots.
            let atext = Set("!#$%&'*+-/=?^_`{|}~".utf8)
            guard local.first != UInt8(ascii: "."), local.last != UInt8(ascii: ".") else { return false }
            var previousDot = false
            for byte in local {
                if byte == UInt8(ascii: ".") {
                    if previousDot { return false }
                    previousDot = true
                    continue
                }
                previousDot = false
                guard isAlpha(byte) || isDigit(byte) || atext.contains(byte) || (international && byte >= 0x80) else { return false }
            }
        }
        if domain.first == UInt8(ascii: "[") {
            guard domain.last == UInt8(ascii: "]") else { return false }
            let literal = domain.dropFirst().dropLast()
            let prefix = Array("IPv6:".utf8)
            if literal.starts(with: prefix) { return isIPv6(literal.dropFirst(prefix.count)) }
            return isIPv4(literal)
        }
        if international && domain.contains(where: { $0 >= 0x80 }) {
            // U-labels: accept any non-ASCII letters alongside the LDH rule for ASCII.
            let text = String(decoding: domain, as: UTF8.self)
            return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
                !label.isEmpty && label.unicodeScalars.allSatisfy { $0.value >= 0x80 ? $0.properties.isAlphabetic || $0.properties.generalCategory == .nonspacingMark : $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" }
            }
        }
        return isHostname(domain)
    }

    // MARK: URIs (RFC 3986, RFC 3987)

    static func isURI(_ bytes: [UInt8], requireScheme: Bool, international: Bool) -> Bool {
        let unreserved = Set("-._~".utf8)
        let subDelims = Set("!$&'()*+,;=".utf8)
        func isAllowed(_ byte: UInt8, extra: Set<UInt8>) -> Bool {
            isAlpha(byte) || isDigit(byte) || unreserved.contains(byte) || subDelims.contains(byte) || extra.contains(byte)
                || (international && byte >= 0x80)
        }
        /// Checks percent-encoding and allowed characters in a component.
        func isComponent(_ part: ArraySlice<UInt8>, extra: Set<UInt8>) -> Bool {
            var index = part.startIndex
            while index < part.endIndex {
                let byte = part[index]
                if byte == UInt8(ascii: "%") {
                    guard index + 2 < part.endIndex, isHex(part[index + 1]), isHex(part[index + 2]) else { return false }
                    index += 3
                    continue
                }
                guard isAllowed(byte, extra: extra) else { return false }
                index += 1
            }
            return true
        }
        var rest = bytes[...]
        // Fragment and query.
        if let hash = rest.firstIndex(of: UInt8(ascii: "#")) {
            guard isComponent(rest[(hash + 1)...], extra: Set(":@/?".utf8)) else { return false }
            rest = rest[..<hash]
        }
        if let question = rest.firstIndex(of: UInt8(ascii: "?")) {
            guard isComponent(rest[(question + 1)...], extra: Set(":@/?".utf8)) else { return false }
            rest = rest[..<question]
        }
        // Scheme.
        var hasScheme = false
        if let colon = rest.firstIndex(of: UInt8(ascii: ":")), !rest[..<colon].contains(UInt8(ascii: "/")) {
            let scheme = rest[..<colon]
            guard let first = scheme.first, isAlpha(first),
                scheme.allSatisfy({ isAlpha($0) || isDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
            else { return false }
            hasScheme = true
            rest = rest[(colon + 1)...]
        }
        if requireScheme && !hasScheme { return false }
        // Authority.
        if rest.starts(with: [UInt8(ascii: "/"), UInt8(ascii: "/")]) {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
            var authority = rest[..<end]
            rest = rest[end...]
            if let at = authority.lastIndex(of: UInt8(ascii: "@")) {
                guard isComponent(authority[..<at], extra: [UInt8(ascii: ":")]) else { return false }
                authority = authority[(at + 1)...]
            }
            if authority.first == UInt8(ascii: "[") {
                guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { return false }
                let literal = authority[(authority.startIndex + 1)..<close]
                guard isIPv6(literal) || (literal.first.map { $0 | 0x20 == UInt8(ascii: "v") } ?? false) else { return false }
                authority = authority[(close + 1)...]
                if !authority.isEmpty {
                    guard authority.first == UInt8(ascii: ":"), authority.dropFirst().allSatisfy(isDigit) else { return false }
                }
            } else {
                if let colon = authority.lastIndex(of: UInt8(ascii: ":")) {
                    guard authority[(colon + 1)...].allSatisfy(isDigit) else { return false }
                    authority = authority[..<colon]
                }
                guard isComponent(authority, extra: []) else { return false }
            }
        } else if !hasScheme, let colon = rest.firstIndex(of: UInt8(ascii: ":")),
            !rest[..<colon].contains(UInt8(ascii: "/"))
        {
            return false  // a relative reference's first segment may not contain ":"
        }
        return isComponent(rest, extra: Set(":@/".utf8))
    }

    /// RFC 6570 (level 4) syntax: literals without the excluded characters, and expressions of an
    /// optional operator and comma-separated variables with an optional `*` or `:length` modifier.
    static func isURITemplate(_ bytes: [UInt8]) -> Bool {
        let excluded = Set(" \"<>\\^`|".utf8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "}") || byte < 0x20 || byte == 0x7F || excluded.contains(byte) { return false }
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isHex(bytes[index + 1]), isHex(bytes[index + 2]) else { return false }
                index += 3
                continue
            }
            guard byte == UInt8(ascii: "{") else {
                index += 1
                continue
            }
            guard let close = bytes[index...].firstIndex(of: UInt8(ascii: "}")) else { return false }
            var expression = bytes[(index + 1)..<close]
            guard !expression.contains(UInt8(ascii: "{")) else { return false }
            if let first = expression.first, "+#./;?&=,!@|".utf8.contains(first) { expression = expression.dropFirst() }
            for variable in expression.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                var name = variable
                if name.last == UInt8(ascii: "*") {
                    name = name.dropLast()
                } else if let colon = name.firstIndex(of: UInt8(ascii: ":")) {
                    let length = name[(colon + 1)...]
                    guard !length.isEmpty, length.count <= 4, length.allSatisfy(isDigit), length.first != UInt8(ascii: "0") else { return false }
                    name = name[..<colon]
                }
                // varname = varchar *( ["."] varchar ); varchar = ALPHA / DIGIT / "_" / pct-encoded
                guard !name.isEmpty, name.first != UInt8(ascii: "."), name.last != UInt8(ascii: "."),
                    !zip(name, name.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }),
                    name.allSatisfy({ isAlpha($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "%") })
                else { return false }
            }
            index = close + 1
        }
        return true
    }

    static func isUUID(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 36 else { return false }
        for (position, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(position) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard isHex(byte) else { return false }
            }
        }
        return true
    }

    static func isJSONPointer(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first else { return true }
        guard first == UInt8(ascii: "/") else { return false }
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "~") {
                guard index + 1 < bytes.endIndex, bytes[index + 1] == UInt8(ascii: "0") || bytes[index + 1] == UInt8(ascii: "1") else {
                    return false
                }
                index += 2
                continue
            }
            index += 1
        }
        return true
    }

    static func isRelativeJSONPointer(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        guard index > 0, index == 1 || bytes[0] != UInt8(ascii: "0") else { return false }
        if index == bytes.count { return true }
        if bytes[index] == UInt8(ascii: "#") { return index + 1 == bytes.count }
        return isJSONPointer(bytes[index...])
    }
}

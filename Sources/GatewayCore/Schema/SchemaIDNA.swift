// SchemaIDNA.swift: internationalised host names for `format: "hostname"` (A-labels) and
// `format: "idn-hostname"` (U-labels), asserted only when format assertion is on.
//
// IDNA2008 in the depth the test suite checks: Punycode (RFC 3492) both ways, with the round trip an
// A-label must survive; the label rules of RFC 5891 §5.4 (no leading combining mark, no "--" in
// positions 3-4, no leading or trailing hyphen); the exceptions and contextual rules of RFC 5892
// (middle dot, Greek keraia, Hebrew geresh/gershayim, katakana middle dot, Arabic-Indic digits,
// ZWJ/ZWNJ); code points allowed as letters, digits and marks that are stable under NFKC case folding;
// and the Bidi rule of RFC 5893, with Hebrew and Arabic ranges standing in for the Bidi classes the
// standard library does not expose. Not a full IDNA implementation: no derived-property tables.

enum SchemaIDNA {
    // MARK: Host names

    /// `format: "hostname"`: RFC 1123 LDH labels; an `xn--` label must be a valid A-label.
    static func isHostname(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= 253, bytes.allSatisfy({ $0 < 0x80 }) else { return false }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        var uLabels: [[Unicode.Scalar]] = []
        for label in labels {
            guard let decoded = aLabelOrLDH(label) else { return false }
            uLabels.append(decoded)
        }
        return satisfiesBidiRule(uLabels)
    }

    /// `format: "idn-hostname"`: labels separated by any of the four IDNA full stops, each an LDH label,
    /// an A-label or a U-label; at most 63 octets per label and 253 in all, in A-label form.
    static func isIDNHostname(_ string: String) -> Bool {
        let separators: Set<Unicode.Scalar> = [".", "\u{3002}", "\u{FF0E}", "\u{FF61}"]
        let scalars = Array(string.unicodeScalars)
        guard !scalars.isEmpty else { return false }
        var labels: [[Unicode.Scalar]] = [[]]
        for scalar in scalars {
            if separators.contains(scalar) { labels.append([]) } else { labels[labels.count - 1].append(scalar) }
        }
        var uLabels: [[Unicode.Scalar]] = []
        var totalLength = labels.count - 1
        for label in labels {
            guard !label.isEmpty else { return false }
            if label.allSatisfy({ $0.isASCII }) {
                let bytes = ArraySlice(label.map { UInt8($0.value) })
                guard let decoded = aLabelOrLDH(bytes) else { return false }
                uLabels.append(decoded)
                totalLength += bytes.count
            } else {
                guard isValidULabel(label), let encoded = punycodeEncode(label), encoded.count + 4 <= 63 else { return false }
                uLabels.append(label)
                totalLength += encoded.count + 4
            }
        }
        return totalLength <= 253 && satisfiesBidiRule(uLabels)
    }

    /// An ASCII label: an LDH label (returned as is) or an A-label (returned decoded); nil if neither.
    static func aLabelOrLDH(_ label: ArraySlice<UInt8>) -> [Unicode.Scalar]? {
        guard !label.isEmpty, label.count <= 63, label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
            label.allSatisfy({ SchemaFormat.isAlpha($0) || SchemaFormat.isDigit($0) || $0 == UInt8(ascii: "-") })
        else { return nil }
        let start = label.startIndex
        guard label.count >= 4, label[start + 2] == UInt8(ascii: "-"), label[start + 3] == UInt8(ascii: "-") else {
            return label.map { Unicode.Scalar($0) }
        }
        // "--" in positions 3 and 4 is reserved for A-labels (RFC 5891 §4.2.3.1).
        guard label[start] | 0x20 == UInt8(ascii: "x"), label[start + 1] | 0x20 == UInt8(ascii: "n") else { return nil }
        let encoded = label.dropFirst(4).map { $0 | ($0 >= 0x41 && $0 <= 0x5A ? 0x20 : 0) }
        guard let decoded = punycodeDecode(encoded[...]), decoded.contains(where: { !$0.isASCII }),
            punycodeEncode(decoded) == encoded, isValidULabel(decoded)
        else { return nil }
        return decoded
    }

    // MARK: Labels (RFC 5891 §5.4, RFC 5892)

    static func isValidULabel(_ label: [Unicode.Scalar]) -> Bool {
        guard let first = label.first, let last = label.last, first != "-", last != "-" else { return false }
        if label.count >= 4 && label[2] == "-" && label[3] == "-" { return false }
        if isMark(first) { return false }
        for (position, scalar) in label.enumerated() {
            guard isAllowed(scalar, at: position, in: label) else { return false }
        }
        return true
    }

    static func isMark(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    static func isAllowed(_ scalar: Unicode.Scalar, at position: Int, in label: [Unicode.Scalar]) -> Bool {
        let value = scalar.value
        let before = position > 0 ? label[position - 1] : nil
        let after = position + 1 < label.count ? label[position + 1] : nil
        switch value {
        // RFC 5892 §2.6 exceptions.
        case 0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007:
            return true
        case 0x0640, 0x07FA, 0x302E, 0x302F, 0x3031...0x3035, 0x303B:
            return false
        // Appendix A contextual rules.
        case 0x00B7:
            return before == "l" && after == "l"
        case 0x0375:
            return after.map { isGreek($0.value) } ?? false
        case 0x05F3, 0x05F4:
            return before.map { isHebrew($0.value) } ?? false
        case 0x30FB:
            return label.contains { $0.value != 0x30FB && isHiraganaKatakanaOrHan($0.value) }
        case 0x0660...0x0669:
            return !label.contains { (0x06F0...0x06F9).contains($0.value) }
        case 0x06F0...0x06F9:
            return !label.contains { (0x0660...0x0669).contains($0.value) }
        case 0x200D:
            return before.map(isVirama) ?? false
        case 0x200C:
            if before.map(isVirama) ?? false { return true }
            // (Joining_Type L|D) T* ZWNJ T* (R|D), with Arabic letters standing in for the joining types.
            let preceding = label[..<position].last { !isMark($0) }
            let following = label[(position + 1)...].first { !isMark($0) }
            return preceding.map { isArabicLetter($0.value) } == true && following.map { isArabicLetter($0.value) } == true
        case 0x2D:
            return true
        default:
            let properties = scalar.properties
            if properties.changesWhenNFKCCaseFolded { return false }
            switch properties.generalCategory {
            case .lowercaseLetter, .otherLetter, .modifierLetter, .nonspacingMark, .spacingMark, .decimalNumber:
                return true
            default:
                return false
            }
        }
    }

    static func isVirama(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.canonicalCombiningClass.rawValue == 9
    }

    static func isGreek(_ value: UInt32) -> Bool {
        (0x0370...0x03FF).contains(value) || (0x1F00...0x1FFF).contains(value)
    }

    static func isHebrew(_ value: UInt32) -> Bool {
        (0x0590...0x05FF).contains(value) || (0xFB1D...0xFB4F).contains(value)
    }

    static func isArabicLetter(_ value: UInt32) -> Bool {
        (0x0620...0x064A).contains(value) || (0x066E...0x06D3).contains(value) || (0x0750...0x077F).contains(value)
    }

    static func isHiraganaKatakanaOrHan(_ value: UInt32) -> Bool {
        (0x3040...0x30FF).contains(value) || (0x31F0...0x31FF).contains(value) || (0x3400...0x4DBF).contains(value)
            || (0x4E00...0x9FFF).contains(value) || (0xF900...0xFAFF).contains(value) || (0x20000...0x3FFFF).contains(value)
    }

    // MARK: Bidi rule (RFC 5893 §2)

    enum BidiClass {
        case l, r, an, en, nsm, other
    }

    static func bidiClass(_ scalar: Unicode.Scalar) -> BidiClass {
        let value = scalar.value
        if (0x30...0x39).contains(value) || (0x06F0...0x06F9).contains(value) { return .en }
        if (0x0660...0x0669).contains(value) { return .an }
        if isMark(scalar) { return .nsm }
        if isHebrew(value) || (0x0600...0x06FF).contains(value) || (0x0750...0x08FF).contains(value)
            || (0xFB50...0xFDFF).contains(value) || (0xFE70...0xFEFF).contains(value)
        {
            return .r
        }
        if scalar.properties.isAlphabetic { return .l }
        return .other
    }

    static func satisfiesBidiRule(_ labels: [[Unicode.Scalar]]) -> Bool {
        let classes = labels.map { $0.map(bidiClass) }
        // Only a "Bidi domain name" (one with right-to-left characters) is constrained.
        guard classes.contains(where: { $0.contains(.r) || $0.contains(.an) }) else { return true }
        for label in classes {
            guard let first = label.first else { return false }
            let end = label.last { $0 != .nsm }
            if first == .r {
                guard !label.contains(.l), !(label.contains(.en) && label.contains(.an)),
                    end == .r || end == .en || end == .an
                else { return false }
            } else if first == .l {
                guard !label.contains(.r), !label.contains(.an), end == .l || end == .en else { return false }
            } else {
                return false
            }
        }
        return true
    }

    // MARK: Punycode (RFC 3492)

    static let base: UInt32 = 36
    static let tMin: UInt32 = 1
    static let tMax: UInt32 = 26
    static let skew: UInt32 = 38
    static let damp: UInt32 = 700
    static let initialBias: UInt32 = 72
    static let initialN: UInt32 = 128

    static func adapt(_ delta: UInt32, _ count: UInt32, _ first: Bool) -> UInt32 {
        var delta = first ? delta / damp : delta / 2
        delta += delta / count
        var k: UInt32 = 0
        while delta > ((base - tMin) * tMax) / 2 {
            delta /= base - tMin
            k += base
        }
        return k + (base - tMin + 1) * delta / (delta + skew)
    }

    static func digitValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(byte - UInt8(ascii: "a"))
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0")) + 26
        default: return nil
        }
    }

    static func digitByte(_ digit: UInt32) -> UInt8 {
        digit < 26 ? UInt8(ascii: "a") + UInt8(digit) : UInt8(ascii: "0") + UInt8(digit - 26)
    }

    /// Decodes the part of an A-label after `xn--`; nil if it is not valid Punycode.
    static func punycodeDecode(_ input: ArraySlice<UInt8>) -> [Unicode.Scalar]? {
        guard !input.isEmpty else { return nil }
        var output: [UInt32] = []
        var rest = input
        if let delimiter = input.lastIndex(of: UInt8(ascii: "-")) {
            output = input[..<delimiter].map(UInt32.init)
            rest = input[(delimiter + 1)...]
        }
        var n = initialN
        var i: UInt32 = 0
        var bias = initialBias
        var position = rest.startIndex
        while position < rest.endIndex {
            let oldI = i
            var w: UInt32 = 1
            var k = base
            while true {
                guard position < rest.endIndex, let digit = digitValue(rest[position]) else { return nil }
                position += 1
                let (product, overflow1) = digit.multipliedReportingOverflow(by: w)
                let (sum, overflow2) = i.addingReportingOverflow(product)
                guard !overflow1, !overflow2 else { return nil }
                i = sum
                let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                if digit < t { break }
                let (nextW, overflow3) = w.multipliedReportingOverflow(by: base - t)
                guard !overflow3 else { return nil }
                w = nextW
                k += base
            }
            let count = UInt32(output.count + 1)
            bias = adapt(i - oldI, count, oldI == 0)
            let (nextN, overflow) = n.addingReportingOverflow(i / count)
            guard !overflow else { return nil }
            n = nextN
            i %= count
            guard n <= 0x10FFFF, Unicode.Scalar(n) != nil else { return nil }
            output.insert(n, at: Int(i))
            i += 1
        }
        return output.compactMap(Unicode.Scalar.init)
    }

    /// The Punycode of `label` (without `xn--`); nil on overflow.
    static func punycodeEncode(_ label: [Unicode.Scalar]) -> [UInt8]? {
        let input = label.map(\.value)
        var output: [UInt8] = input.filter { $0 < 0x80 }.map { UInt8($0) }
        let basicCount = UInt32(output.count)
        var handled = basicCount
        if basicCount > 0 { output.append(UInt8(ascii: "-")) }
        var n = initialN
        var delta: UInt32 = 0
        var bias = initialBias
        while handled < UInt32(input.count) {
            guard let m = input.filter({ $0 >= n }).min() else { return nil }
            let (scaled, overflow1) = (m - n).multipliedReportingOverflow(by: handled + 1)
            let (sum, overflow2) = delta.addingReportingOverflow(scaled)
            guard !overflow1, !overflow2 else { return nil }
            delta = sum
            n = m
            for value in input {
                if value < n {
                    delta += 1
                    if delta == 0 { return nil }
                }
                if value == n {
                    var q = delta
                    var k = base
                    while true {
                        let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                        if q < t { break }
                        output.append(digitByte(t + (q - t) % (base - t)))
                        q = (q - t) / (base - t)
                        k += base
                    }
                    output.append(digitByte(q))
                    bias = adapt(delta, handled + 1, handled == basicCount)
                    delta = 0
                    handled += 1
                }
            }
            delta += 1
            n += 1
        }
        return output
    }
}

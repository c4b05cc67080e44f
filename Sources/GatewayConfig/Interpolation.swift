import Foundation

/// `${VAR}`, `${VAR:-default}` and `${file:PATH}` in any string value (CONTRACT.md, "Configuration").
/// `$${` writes a literal `${`. A `${file:}` value has its trailing newline trimmed, so a secret file written
/// with `echo` works. Interpolation is done after YAML parsing, so a value can never inject YAML structure.
public struct Interpolator: Sendable {
    public var environment: [String: String]
    public var readFile: @Sendable (String) throws -> String

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        readFile: @escaping @Sendable (String) throws -> String = { path in try String(contentsOfFile: path, encoding: .utf8) }
    ) {
        self.environment = environment
        self.readFile = readFile
    }

    public struct Failure: Error, Equatable { public var message: String }

    /// Expands every reference in `text`; `usedSecretSource` is set when a value came from the environment or
    /// a file (the caller treats such values as secrets where they sit in secret positions).
    public func expand(_ text: String, usedSecretSource: inout Bool) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "$" {
                let next = text.index(after: index)
                if next < text.endIndex, text[next] == "$", text.index(after: next) < text.endIndex, text[text.index(after: next)] == "{" {
                    output += "${"
                    index = text.index(next, offsetBy: 2)
                    continue
                }
                if next < text.endIndex, text[next] == "{" {
                    guard let close = text[next...].firstIndex(of: "}") else {
                        throw Failure(message: "unterminated \"${\" in \"\(text)\"")
                    }
                    let body = String(text[text.index(after: next)..<close])
                    output += try resolve(body)
                    usedSecretSource = true
                    index = text.index(after: close)
                    continue
                }
            }
            output.append(character)
            index = text.index(after: index)
        }
        return output
    }

    private func resolve(_ body: String) throws(Failure) -> String {
        if body.hasPrefix("file:") {
            let path = String(body.dropFirst(5))
            guard !path.isEmpty else { throw Failure(message: "${file:} needs a path") }
            do {
                var contents = try readFile(path)
                while contents.hasSuffix("\n") || contents.hasSuffix("\r") { contents.removeLast() }
                return contents
            } catch {
                throw Failure(message: "cannot read ${file:\(path)}: \(Self.reason(error))")
            }
        }
        let name: String
        let fallback: String?
        if let range = body.range(of: ":-") {
            name = String(body[..<range.lowerBound])
            fallback = String(body[range.upperBound...])
        } else {
            name = body
            fallback = nil
        }
        guard Self.isVariableName(name) else {
            throw Failure(message: "\"${\(body)}\" is not a valid reference (use ${VAR}, ${VAR:-default} or ${file:PATH})")
        }
        if let value = environment[name], !(value.isEmpty && fallback != nil) { return value }
        if let fallback { return fallback }
        throw Failure(message: "environment variable \(name) is not set (use ${\(name):-default} for a default)")
    }

    private static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.properties.isAlphabetic && first.isASCII) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError { return "no such file" }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoPermissionError { return "permission denied" }
        return nsError.localizedDescription
    }
}

/// Durations (`500ms`, `30s`, `5m`, `1h`, `1h30m`) and sizes (`4MiB`, `64KiB`, `1GB`, plain bytes).
public enum Units {
    public static func duration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        var total: Double = 0
        var scanner = trimmed[...]
        while !scanner.isEmpty {
            let numberEnd = scanner.firstIndex { !($0.isNumber || $0 == ".") } ?? scanner.endIndex
            guard numberEnd > scanner.startIndex, let value = Double(scanner[scanner.startIndex..<numberEnd]) else { return nil }
            scanner = scanner[numberEnd...]
            let unitEnd = scanner.firstIndex { $0.isNumber } ?? scanner.endIndex
            let unit = scanner[scanner.startIndex..<unitEnd]
            scanner = scanner[unitEnd...]
            let seconds: Double
            switch unit {
            case "ns": seconds = 1e-9
            case "us", "µs": seconds = 1e-6
            case "ms": seconds = 1e-3
            case "s": seconds = 1
            case "m": seconds = 60
            case "h": seconds = 3600
            case "d": seconds = 86_400
            default: return nil
            }
            total += value * seconds
        }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    public static func size(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let numberEnd = trimmed.firstIndex { !($0.isNumber || $0 == ".") } ?? trimmed.endIndex
        guard numberEnd > trimmed.startIndex, let value = Double(trimmed[trimmed.startIndex..<numberEnd]) else { return nil }
        let unit = trimmed[numberEnd...].trimmingCharacters(in: .whitespaces)
        let multiplier: Double
        switch unit {
        case "", "B": multiplier = 1
        case "KiB", "Ki", "K", "k": multiplier = 1024
        case "MiB", "Mi", "M": multiplier = 1024 * 1024
        case "GiB", "Gi", "G": multiplier = 1024 * 1024 * 1024
        case "KB", "kB": multiplier = 1000
        case "MB": multiplier = 1_000_000
        case "GB": multiplier = 1_000_000_000
        default: return nil
        }
        let bytes = value * multiplier
        guard bytes >= 0, bytes < Double(Int.max) else { return nil }
        return Int(bytes)
    }
}

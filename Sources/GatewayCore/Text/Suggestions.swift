/// "Did you mean" suggestions by edit distance, used for unknown config keys and unknown tool names, so a
/// person or an agent gets the nearest valid name instead of a bare "not found".
public enum Suggestions {
    /// Levenshtein distance over Unicode scalars (insert, delete, substitute each cost 1).
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let left = Array(a.unicodeScalars), right = Array(b.unicodeScalars)
        if left.isEmpty { return right.count }
        if right.isEmpty { return left.count }
        var previous = Array(0...right.count)
        var current = [Int](repeating: 0, count: right.count + 1)
        for i in 1...left.count {
            current[0] = i
            for j in 1...right.count {
                let substitution = previous[j - 1] + (left[i - 1] == right[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[right.count]
    }

    /// Up to `limit` candidates closest to `name`, nearest first. A candidate qualifies when its distance is at
    /// most a third of the longer name (at least 2), or when one name contains the other (a missing prefix).
    public static func closest(to name: String, among candidates: some Sequence<String>, limit: Int = 3) -> [String] {
        let lowered = name.lowercased()
        var scored: [(name: String, distance: Int)] = []
        for candidate in candidates {
            let candidateLowered = candidate.lowercased()
            var distance = editDistance(lowered, candidateLowered)
            if !lowered.isEmpty, candidateLowered.hasSuffix(lowered) || candidateLowered.hasPrefix(lowered) {
                distance = min(distance, 1)
            }
            let threshold = max(2, max(lowered.count, candidateLowered.count) / 3)
            if distance <= threshold { scored.append((candidate, distance)) }
        }
        scored.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.name < $1.name }
        return scored.prefix(limit).map(\.name)
    }

    /// The single best suggestion, if any.
    public static func best(for name: String, among candidates: some Sequence<String>) -> String? {
        closest(to: name, among: candidates, limit: 1).first
    }
}

/// Session ids are long sealed tokens and bearer credentials for their session; logs carry a short stable
/// digest (FNV-1a, 64 bits) instead, enough to correlate lines without exposing the id.
public enum SessionLogID {
    public static func short(_ sessionID: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sessionID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

import GatewayCore
import Yams

/// One entry of `backends.<name>.versions` (issue 7, item 7): a build of a stdio server that takes `weight`
/// parts of the backend's calls.
public struct StdioBackendVersion: Sendable, Equatable {
    public var name: String
    public var command: [String]
    /// Laid over the backend's `env` for this version's processes.
    public var env: [String: String] = [:]
    public var weight: Int
    /// The last known good version: the baseline canaries are judged against and where their traffic goes
    /// back to on a rollback.
    public var isStable = false

    public init(name: String, command: [String], env: [String: String] = [:], weight: Int, isStable: Bool = false) {
        self.name = name
        self.command = command
        self.env = env
        self.weight = weight
        self.isStable = isStable
    }
}

extension StdioBackendVersion: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "StdioBackendVersion(name: \(name), command: \(command), env: \(env.keys.sorted()) [values redacted], weight: \(weight), stable: \(isStable))"
    }
    public var debugDescription: String { description }
}

/// `backends.<name>.canary`: when a canary version is rolled back (the seed's lifecycle chapter: "error rate
/// exceeding baseline by 50%, P95 latency increase beyond SLA").
public struct CanaryConfig: Sendable, Equatable {
    public var window: Duration = .seconds(300)
    public var minCalls = 20
    public var maxErrorRatioIncrease = 0.5
    /// The seed's alerting threshold ("P95 latency exceeding 2 seconds").
    public var slaP95: Duration = .seconds(2)

    public init() {}

    public var policy: CanaryPolicy {
        CanaryPolicy(window: window, minCalls: minCalls, maxErrorRatioIncrease: maxErrorRatioIncrease, slaP95: slaP95)
    }
}

extension StdioBackendConfig {
    /// The stable version (the one marked `stable: true`, else the first); nil for a single-version backend.
    public var stableVersionIndex: Int? {
        guard !versions.isEmpty else { return nil }
        return versions.firstIndex(where: \.isStable) ?? 0
    }

    /// The configuration of one version's processes: the backend's settings with the version's command, and
    /// its `env` laid over the backend's.
    public func forVersion(_ index: Int) -> StdioBackendConfig {
        var config = self
        config.command = versions[index].command
        config.env.merge(versions[index].env) { _, versionValue in versionValue }
        config.versions = []
        return config
    }
}

extension NodeReader {
    static let versionKeys = ["name", "command", "env", "weight", "stable"]

    /// `backends.<name>.versions`: two or more versions, each with a unique name, a command and a weight;
    /// at most one marked `stable: true`; weights summing to more than zero. Nil (with the problems reported)
    /// when the list is unusable.
    mutating func readStdioVersions(_ node: Node, path: String) -> [StdioBackendVersion]? {
        guard let items = sequence(node, path: path) else { return nil }
        guard items.count >= 2 else {
            problem(node, path, "lists the versions to split calls between and needs at least two (for one version, use `command` instead)")
            return nil
        }
        var versions: [StdioBackendVersion] = []
        var usable = true
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let map = mapping(item, path: itemPath, allowed: Self.versionKeys) else {
                usable = false
                continue
            }
            var name: String?
            if let v = map["name"], let text = string(v, path: itemPath + ".name") {
                if text.isEmpty || !text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) {
                    problem(v, itemPath + ".name", "a version name is a metric label and must use only [A-Za-z0-9_.-]")
                } else if versions.contains(where: { $0.name == text }) {
                    problem(v, itemPath + ".name", "\"\(text)\" names two versions; each needs its own name")
                } else {
                    name = text
                }
            } else if map["name"] == nil {
                problem(item, itemPath + ".name", "is required (for example stable or canary)")
            }
            var command: [String]?
            if let v = map["command"] {
                if let list = stringList(v, path: itemPath + ".command") {
                    if list.isEmpty || list[0].isEmpty { problem(v, itemPath + ".command", "must not be empty") } else { command = list }
                }
            } else {
                problem(item, itemPath + ".command", "is required (a list: program and arguments)")
            }
            var weight: Int?
            if let v = map["weight"] {
                weight = int(v, path: itemPath + ".weight", range: 0...1_000_000)
            } else {
                problem(item, itemPath + ".weight", "is required: the version's share of calls, a whole number (weights 90 and 10 send one call in ten here)")
            }
            let env = map["env"].flatMap { stringMap($0, path: itemPath + ".env") } ?? [:]
            let isStable = map["stable"].flatMap { bool($0, path: itemPath + ".stable") } ?? false
            guard let name, let command, let weight else {
                usable = false
                continue
            }
            versions.append(StdioBackendVersion(name: name, command: command, env: env, weight: weight, isStable: isStable))
        }
        guard usable else { return nil }
        let stable = versions.indices.filter { versions[$0].isStable }
        if stable.count > 1 {
            problem(node, path, "marks \(stable.map { versions[$0].name }.joined(separator: " and ")) as stable; at most one version may be (the default is the first)")
            return nil
        }
        if versions.reduce(0, { $0 + $1.weight }) == 0 {
            problem(node, path, "the weights add up to 0, so no version would get any calls; give at least one a positive weight")
            return nil
        }
        return versions
    }

    /// `backends.<name>.canary`: the rollback thresholds.
    mutating func readCanary(_ node: Node, path: String, into canary: inout CanaryConfig) {
        guard let map = mapping(node, path: path, allowed: ["window", "min_calls", "max_error_ratio_increase", "sla_p95"]) else { return }
        if let v = map["window"], let d = duration(v, path: path + ".window", minimum: .seconds(1)) { canary.window = d }
        if let v = map["min_calls"], let n = int(v, path: path + ".min_calls", range: 1...1_000_000) { canary.minCalls = n }
        if let v = map["max_error_ratio_increase"], let ratio = double(v, path: path + ".max_error_ratio_increase") {
            if ratio >= 0 {
                canary.maxErrorRatioIncrease = ratio
            } else {
                problem(v, path + ".max_error_ratio_increase", "must be 0 or more (0.5: roll back when the canary's error ratio exceeds the stable version's by more than 50%)")
            }
        }
        if let v = map["sla_p95"], let d = duration(v, path: path + ".sla_p95", minimum: .milliseconds(1)) { canary.slaP95 = d }
    }

    /// Reads `versions` and `canary` of a stdio backend and checks how they combine with its other keys.
    /// Returns false when the backend is unusable.
    mutating func readStdioRollout(_ map: [String: Node], node: Node, path: String, into stdio: inout StdioBackendConfig) -> Bool {
        guard let versionsNode = map["versions"] else {
            if let canaryNode = map["canary"] {
                problem(canaryNode, path + ".canary", "applies only to a backend with `versions` (the canary thresholds judge a version against the stable one)")
            }
            return true
        }
        if let commandNode = map["command"] {
            problem(commandNode, path + ".command", "cannot be combined with `versions`: each version has its own command")
        }
        if stdio.isolation == .session {
            problem(map["isolation"] ?? node, path + ".versions", "needs `isolation: shared`: calls are split between versions call by call, and a session's process must keep its state")
        }
        if let canaryNode = map["canary"] { readCanary(canaryNode, path: path + ".canary", into: &stdio.canary) }
        guard let versions = readStdioVersions(versionsNode, path: path + ".versions") else { return false }
        stdio.versions = versions
        if let stableIndex = stdio.stableVersionIndex { stdio.command = versions[stableIndex].command }
        return true
    }
}

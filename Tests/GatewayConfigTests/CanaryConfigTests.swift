import Foundation
import GatewayCore
import Testing

@testable import GatewayConfig

@Suite struct CanaryConfigTests {
    func load(_ backend: String) throws(ConfigError) -> GatewayConfiguration {
        try ConfigLoader(interpolator: Interpolator(environment: [:], readFile: { _ in "" })).load(yaml: "backends:\n  tools:\n" + backend, file: "gw.yaml")
    }

    /// Every problem's "path: message", for matching.
    func problems(_ backend: String) -> [String] {
        do {
            _ = try load(backend)
            return []
        } catch {
            return error.problems.map { "\($0.path): \($0.message)" }
        }
    }

    func stdioConfig(_ config: GatewayConfiguration) -> StdioBackendConfig? {
        guard case .stdio(let stdio) = config.backends.first?.kind else { return nil }
        return stdio
    }

    @Test func versionsWithWeightsAndCanaryThresholds() throws {
        let config = try load("""
                env: { SHARED: "1", MODE: base }
                instances: 2
                versions:
                  - { name: stable, command: [/opt/v1/server], weight: 90 }
                  - { name: canary, command: [/opt/v2/server, --fast], env: { MODE: new }, weight: 10 }
                canary: { window: 10m, min_calls: 50, max_error_ratio_increase: 0.25, sla_p95: 1500ms }
            """)
        let stdio = try #require(stdioConfig(config))
        #expect(stdio.versions.map(\.name) == ["stable", "canary"])
        #expect(stdio.versions.map(\.weight) == [90, 10])
        #expect(stdio.stableVersionIndex == 0, "the first version is stable unless one is marked")
        #expect(stdio.command == ["/opt/v1/server"], "command is the stable version's")
        #expect(stdio.canary.window == .seconds(600))
        #expect(stdio.canary.minCalls == 50)
        #expect(stdio.canary.maxErrorRatioIncrease == 0.25)
        #expect(stdio.canary.slaP95 == .milliseconds(1500))
        let canary = stdio.forVersion(1)
        #expect(canary.command == ["/opt/v2/server", "--fast"])
        #expect(canary.env == ["SHARED": "1", "MODE": "new"], "the version's env is laid over the backend's")
        #expect(canary.instances == 2)
        #expect(canary.versions.isEmpty)
    }

    @Test func defaultsFollowTheSeed() throws {
        let stdio = try #require(stdioConfig(try load("""
                versions:
                  - { name: a, command: [a], weight: 1 }
                  - { name: b, command: [b], weight: 1, stable: true }
            """)))
        #expect(stdio.stableVersionIndex == 1)
        #expect(stdio.command == ["b"])
        #expect(stdio.canary == CanaryConfig())
        #expect(stdio.canary.window == .seconds(300))
        #expect(stdio.canary.minCalls == 20)
        #expect(stdio.canary.maxErrorRatioIncrease == 0.5)
        #expect(stdio.canary.slaP95 == .seconds(2))
    }

    @Test func eachVersionProblemNamesItsKeyPath() {
        let found = problems("""
                versions:
                  - { name: "bad name", command: [], weight: -1, colour: red }
                  - { command: [x] }
            """)
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[0].name:") })
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[0].command: must not be empty") })
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[0].weight: -1 is out of range") })
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[0].colour: unknown key") })
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[1].name: is required") })
        #expect(found.contains { $0.hasPrefix("backends.tools.versions[1].weight: is required") })
    }

    @Test func listLevelRulesAreChecked() {
        #expect(problems("""
                versions:
                  - { name: only, command: [x], weight: 1 }
            """).contains { $0.hasPrefix("backends.tools.versions: lists the versions") })
        #expect(problems("""
                versions:
                  - { name: a, command: [x], weight: 0 }
                  - { name: b, command: [y], weight: 0 }
            """).contains { $0.hasPrefix("backends.tools.versions: the weights add up to 0") })
        #expect(problems("""
                versions:
                  - { name: a, command: [x], weight: 1, stable: true }
                  - { name: b, command: [y], weight: 1, stable: true }
            """).contains { $0.hasPrefix("backends.tools.versions: marks a and b as stable") })
        #expect(problems("""
                versions:
                  - { name: a, command: [x], weight: 1 }
                  - { name: a, command: [y], weight: 1 }
            """).contains { $0.hasPrefix("backends.tools.versions[1].name: \"a\" names two versions") })
    }

    @Test func versionsDoNotCombineWithCommandOrSessionIsolation() {
        let versions = """
                versions:
                  - { name: a, command: [x], weight: 1 }
                  - { name: b, command: [y], weight: 1 }
            """
        #expect(problems("    command: [z]\n" + versions).contains { $0.hasPrefix("backends.tools.command: cannot be combined with `versions`") })
        #expect(problems("    isolation: session\n" + versions).contains { $0.hasPrefix("backends.tools.versions: needs `isolation: shared`") })
    }

    @Test func canaryThresholdsAreValidated() {
        let versions = """
                versions:
                  - { name: a, command: [x], weight: 1 }
                  - { name: b, command: [y], weight: 1 }
            """
        let found = problems(versions + "\n    canary: { window: 10ms, min_calls: 0, max_error_ratio_increase: -1, sla_p95: soon, extra: 1 }")
        #expect(found.contains { $0.hasPrefix("backends.tools.canary.window:") })
        #expect(found.contains { $0.hasPrefix("backends.tools.canary.min_calls:") })
        #expect(found.contains { $0.hasPrefix("backends.tools.canary.max_error_ratio_increase: must be 0 or more") })
        #expect(found.contains { $0.hasPrefix("backends.tools.canary.sla_p95:") })
        #expect(found.contains { $0.hasPrefix("backends.tools.canary.extra: unknown key") })
        #expect(problems("    command: [x]\n    canary: { min_calls: 5 }").contains {
            $0.hasPrefix("backends.tools.canary: applies only to a backend with `versions`")
        })
        #expect(problems("    type: plugin\n    plugin: diagnostics\n" + versions).contains {
            $0.hasPrefix("backends.tools.versions: applies to stdio backends")
        })
    }

    @Test func secretsInVersionEnvAreNotPrinted() throws {
        let stdio = try #require(stdioConfig(try load("""
                versions:
                  - { name: a, command: [x], env: { TOKEN: hunter2 }, weight: 1 }
                  - { name: b, command: [y], weight: 1 }
            """)))
        #expect(!"\(stdio)".contains("hunter2"))
        #expect(!"\(stdio.versions[0])".contains("hunter2"))
        #expect("\(stdio)".contains("a=1"))
    }
}

import GatewayCore
import Testing

@testable import GatewayConfig

/// `backends.<name>.health` and `server.readiness.quorum` (issue 7, items 4 and 8).
@Suite struct SupervisionConfigTests {
    func load(_ yaml: String) throws(ConfigError) -> GatewayConfiguration {
        try ConfigLoader(interpolator: Interpolator(environment: [:])).load(yaml: yaml, file: "gw.yaml")
    }

    func problems(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    func stdioConfig(_ config: GatewayConfiguration, _ name: String) -> StdioBackendConfig? {
        guard case .stdio(let stdio)? = config.backend(named: name)?.kind else { return nil }
        return stdio
    }

    @Test func defaults() throws {
        let config = try load("""
            backends:
              time: { command: [time-server] }
            """)
        let health = try #require(stdioConfig(config, "time")).health
        #expect(health.interval == .seconds(10))
        #expect(health.timeout == .seconds(5))
        #expect(health.stableAfter == .seconds(30))
        #expect(health.maxRestarts == 5)
        #expect(health.restartWindow == .seconds(60))
        #expect(health.crashLoopCooldown == .seconds(60))
        #expect(config.server.readinessQuorum == .any)
    }

    @Test func everyKeyIsRead() throws {
        let config = try load("""
            server:
              readiness: { quorum: 0.5 }
            backends:
              time:
                command: [time-server]
                health: { interval: 2s, timeout: 500ms, stable_after: 1m, max_restarts: 3, restart_window: 20s, crash_loop_cooldown: 45s }
            """)
        let health = try #require(stdioConfig(config, "time")).health
        #expect(health.interval == .seconds(2))
        #expect(health.timeout == .milliseconds(500))
        #expect(health.stableAfter == .seconds(60))
        #expect(health.maxRestarts == 3)
        #expect(health.restartWindow == .seconds(20))
        #expect(health.crashLoopCooldown == .seconds(45))
        #expect(config.server.readinessQuorum == .fraction(0.5))
    }

    @Test func quorumWords() throws {
        for (text, expected) in [("any", ReadinessQuorum.any), ("all", .all), ("ALL", .all), ("1", .fraction(1)), ("0", .fraction(0))] {
            let config = try load("""
                server: { readiness: { quorum: \(text) } }
                backends: { diag: { type: plugin, plugin: diagnostics } }
                """)
            #expect(config.server.readinessQuorum == expected, "quorum \(text)")
        }
    }

    @Test func badValuesNameTheirKeyPath() {
        let found = problems("""
            server:
              readiness: { quorum: most, quorom: 1 }
            backends:
              time:
                command: [time-server]
                health: { interval: 10ms, timeout: soon, max_restarts: -1, intervall: 1s }
              diag: { type: plugin, plugin: diagnostics, health: { interval: 1s } }
            """)
        #expect(found.contains { $0.contains("server.readiness.quorum: \"most\" is not \"any\", \"all\" or a share") })
        #expect(found.contains { $0.contains("server.readiness.quorom: unknown key; did you mean \"quorum\"?") })
        #expect(found.contains { $0.contains("backends.time.health.interval: \"10ms\" is shorter than the minimum of 100ms") })
        #expect(found.contains { $0.contains("backends.time.health.timeout: \"soon\" is not a duration") })
        #expect(found.contains { $0.contains("backends.time.health.max_restarts: -1 is out of range") })
        #expect(found.contains { $0.contains("backends.time.health.intervall: unknown key; did you mean \"interval\"?") })
        #expect(found.contains { $0.contains("backends.diag.health: applies to stdio backends, not to a plugin backend") })
    }

    @Test func aShareAboveOneIsRefused() {
        let found = problems("""
            server: { readiness: { quorum: 1.5 } }
            backends: { diag: { type: plugin, plugin: diagnostics } }
            """)
        #expect(found.count == 1)
        #expect(found.first?.contains("gw.yaml:1: server.readiness.quorum") == true)
    }
}

import Testing

@testable import GatewayConfig

/// `sessions.replay_buffer` (issue 4, item 7): SSE events kept per stream for `Last-Event-ID`; 0 disables.
@Suite struct ReplayBufferConfigTests {
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

    @Test func defaultsTo256() throws {
        let config = try load("""
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.sessions.replayBuffer == 256)
    }

    @Test(arguments: [0, 2, 10_000])
    func acceptsTheRange(_ value: Int) throws {
        let config = try load("""
            sessions: { replay_buffer: \(value) }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.sessions.replayBuffer == value)
    }

    @Test(arguments: ["-1", "10001", "lots"])
    func refusesOutsideTheRangeNamingTheKey(_ value: String) {
        let found = problems("""
            sessions: { replay_buffer: \(value) }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(found.count == 1)
        #expect(found.first?.contains("sessions.replay_buffer:") == true, "\(found)")
    }
}

import Testing

@testable import GatewayConfig

/// `server.legacy_sse` (issue 4, item 8): off by default, served when on, and never on the paths it needs.
@Suite struct LegacySSEConfigTests {
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

    @Test func offByDefault() throws {
        let config = try load("""
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.server.legacySSE == false)
    }

    @Test func onIsServedWithoutANotice() throws {
        let config = try load("""
            server: { legacy_sse: true }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.server.legacySSE)
        #expect(!config.notices.contains { $0.path == "server.legacy_sse" })
    }

    @Test func anEndpointOnALegacyPathIsAProblem() {
        for endpoint in ["/sse", "/messages"] {
            let found = problems("""
                server: { endpoint: \(endpoint), legacy_sse: true }
                backends:
                  diag: { type: plugin, plugin: diagnostics }
                """)
            #expect(found.count == 1)
            #expect(found.first?.contains("gw.yaml:1: server.legacy_sse:") == true, "\(found)")
            #expect(found.first?.contains(endpoint) == true)
        }
        #expect(problems("""
            server: { endpoint: /sse, legacy_sse: false }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """).isEmpty)
    }

    @Test func notABoolean() {
        let found = problems("""
            server: { legacy_sse: sometimes }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(found.count == 1)
        #expect(found.first?.contains("server.legacy_sse") == true, "\(found)")
    }
}

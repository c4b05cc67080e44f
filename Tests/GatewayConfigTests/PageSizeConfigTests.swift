import Testing

@testable import GatewayConfig

/// `tools.page_size`: items per page of the merged lists (tools, resources, templates, prompts).
@Suite struct PageSizeConfigTests {
    func load(_ yaml: String) throws(ConfigError) -> GatewayConfiguration {
        try ConfigLoader(interpolator: Interpolator(environment: [:])).load(yaml: yaml, file: "gw.yaml")
    }

    @Test func defaultsToOneHundred() throws {
        let config = try load("""
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.tools.pageSize == 100)
    }

    @Test func isReadAndValidated() throws {
        let config = try load("""
            tools: { page_size: 2 }
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.tools.pageSize == 2)
        for bad in ["0", "-1", "many"] {
            do {
                _ = try load("""
                    tools: { page_size: \(bad) }
                    backends:
                      diag: { type: plugin, plugin: diagnostics }
                    """)
                Issue.record("page_size \(bad) was accepted")
            } catch {
                #expect(error.problems.contains { $0.path == "tools.page_size" })
            }
        }
    }
}

import GatewayConfig
import Testing

@Suite("Reload plan")
struct ReloadPlanTests {
    private func load(_ yaml: String) throws -> GatewayConfiguration {
        try ConfigLoader().load(yaml: yaml, file: "test.yaml")
    }

    private let base = """
        backends:
          diag: { type: plugin, plugin: diagnostics }
          example: { type: stdio, command: [example-server], call_timeout: 5s }
          time: { type: stdio, command: [time-server], tools: { include: ["*"] } }
        """

    @Test("backends are sorted into added, removed, replaced (process settings), reconfigured (catalog or access) and unchanged")
    func classifies() throws {
        let old = try load(base)
        let new = try load("""
            backends:
              example: { type: stdio, command: [example-server], call_timeout: 9s }
              time: { type: stdio, command: [time-server], tools: { exclude: ["secret_*"] } }
              docs: { type: plugin, plugin: diagnostics }
            """)
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.added == ["docs"])
        #expect(plan.removed == ["diag"])
        #expect(plan.replaced == ["example"])
        #expect(plan.reconfigured == ["time"])
        #expect(plan.unchanged.isEmpty)
        #expect(plan.changesBackends)
        #expect(plan.needsRestart.isEmpty)
    }

    @Test("the same file is a no-op, even when lines moved; the log level alone needs no restart")
    func unchanged() throws {
        let old = try load(base)
        let new = try load("# a comment moves every line\n" + base + "\nobservability: { log: { level: debug } }\n")
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.unchanged == ["diag", "example", "time"])
        #expect(!plan.changesBackends)
        #expect(plan.needsRestart.isEmpty)
    }

    @Test("sections the running daemon cannot swap are named as needing a restart")
    func restartOnly() throws {
        let old = try load(base)
        let new = try load(base + "\nserver: { listen: \"127.0.0.1:9999\" }\nlimits: { max_inflight: 10 }\nobservability: { metrics: { path: /m } }\n")
        #expect(ReloadPlan(from: old, to: new).needsRestart == ["server", "limits", "observability (except log.level)"])
    }
}

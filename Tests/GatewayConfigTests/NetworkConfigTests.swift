import Foundation
import GatewayCore
import Testing

@testable import GatewayConfig

/// `server.allowed_ips`, `server.trusted_proxies` and the connection limits under `server.limits`.
@Suite struct NetworkConfigTests {
    private let backends = """
        backends:
          diag: { type: plugin, plugin: diagnostics }
        """

    private func load(_ server: String) throws(ConfigError) -> GatewayConfiguration {
        try ConfigLoader(interpolator: Interpolator(environment: [:], readFile: { _ in throw CocoaError(.fileReadNoSuchFile) }))
            .load(yaml: server + "\n" + backends, file: "gw.yaml")
    }

    private func problems(_ server: String) -> [ConfigProblem] {
        do {
            _ = try load(server)
            return []
        } catch {
            return error.problems
        }
    }

    @Test func defaultsAreWhatAProductionUserExpects() throws {
        let server = try load("").server
        #expect(server.maxHeaderBytes == 32 * 1024)
        #expect(server.requestTimeout == .seconds(60))
        #expect(server.idleTimeout == .seconds(75))
        #expect(server.maxConnections == 10_000)
        #expect(server.allowedIPs.isEmpty && server.trustedProxies.isEmpty, "every client allowed, no proxy trusted")
    }

    @Test func readsEveryKey() throws {
        let server = try load("""
            server:
              allowed_ips: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
              trusted_proxies: ["127.0.0.1/32"]
              limits: { max_header_bytes: 16KiB, idle_timeout: 2s, max_connections: 5, request_timeout: 2s }
            """).server
        #expect(server.allowedIPs.map(\.description) == ["10.0.0.0/8", "2001:db8:0:0:0:0:0:0/32", "192.0.2.7/32"])
        #expect(server.trustedProxies.map(\.description) == ["127.0.0.1/32"])
        #expect(server.maxHeaderBytes == 16 * 1024)
        #expect(server.idleTimeout == .seconds(2))
        #expect(server.maxConnections == 5)
        #expect(server.requestTimeout == .seconds(2))
    }

    @Test func badValuesNameTheirKeyPath() {
        let found = problems("""
            server:
              allowed_ips: ["10.0.0.0/8", "10.1.2.3/8", "not-an-ip"]
              trusted_proxies: ["::/129"]
              limits: { max_header_bytes: 100, idle_timeout: 1ms, max_connections: 0, max_header_size: 1 }
            """)
        let paths = Set(found.map(\.path))
        #expect(paths.isSuperset(of: [
            "server.allowed_ips[1]", "server.allowed_ips[2]", "server.trusted_proxies[0]",
            "server.limits.max_header_bytes", "server.limits.idle_timeout", "server.limits.max_connections",
        ]), "\(found)")
        #expect(found.contains { $0.path == "server.allowed_ips[1]" && $0.message.contains("10.0.0.0/8") }, "suggests the network")
        #expect(found.contains { $0.path == "server.limits.max_header_size" && $0.message.contains("max_header_bytes") }, "an unknown limit is an error, with a suggestion")
    }
}

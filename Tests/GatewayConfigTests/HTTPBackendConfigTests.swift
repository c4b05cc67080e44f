import Foundation
import GatewayCore
import Testing

@testable import GatewayConfig

/// `type: http` backends (HTTPBackendConfig.swift; issue 4, item 11).
@Suite struct HTTPBackendConfigTests {
    func load(_ backend: String, env: [String: String] = [:]) throws(ConfigError) -> GatewayConfiguration {
        try ConfigLoader(interpolator: Interpolator(environment: env, readFile: { _ in "" }))
            .load(yaml: "backends:\n  docs:\n" + backend, file: "gw.yaml")
    }

    func problems(_ backend: String, env: [String: String] = [:]) -> [String] {
        do {
            _ = try load(backend, env: env)
            return []
        } catch {
            return error.problems.map { "\($0.path): \($0.message)" }
        }
    }

    @Test func httpsBackendWithSecretHeadersAndPerClientSessions() throws {
        let config = try load("""
                type: http
                url: https://docs.example.com/mcp
                headers: { Authorization: "Bearer ${DOCS_TOKEN}", X-Tenant: acme }
                session: per_client
            """, env: ["DOCS_TOKEN": "t0ps3cret"])
        guard case .http(let http) = config.backends.first?.kind else {
            Issue.record("not an http backend")
            return
        }
        #expect(http.url == "https://docs.example.com/mcp")
        #expect(http.headers == ["Authorization": "Bearer t0ps3cret", "X-Tenant": "acme"])
        #expect(http.session == .perClient)
        #expect(!"\(config.backends[0].kind)".contains("t0ps3cret"), "descriptions never carry header values")
    }

    @Test func defaultsAreSharedSessionAndNoHeaders() throws {
        let config = try load("    type: http\n    url: http://127.0.0.1:9000/mcp\n")
        guard case .http(let http) = config.backends.first?.kind else {
            Issue.record("not an http backend")
            return
        }
        #expect(http.session == .shared)
        #expect(http.headers.isEmpty)
    }

    @Test func plainHTTPOnlyForLoopback() {
        #expect(problems("    type: http\n    url: http://docs.example.com/mcp\n").contains { $0.hasPrefix("backends.docs.url: must be an https URL") })
        #expect(problems("    type: http\n    url: http://localhost:8080/mcp\n").isEmpty)
        #expect(problems("    type: http\n    url: http://[::1]:8080/mcp\n").isEmpty)
    }

    @Test func problemsNameTheirKeyPath() {
        #expect(problems("    type: http\n").contains { $0.hasPrefix("backends.docs.url: is required") })
        #expect(problems("    type: http\n    url: not a url\n").contains { $0.hasPrefix("backends.docs.url: is not an absolute http(s) URL") })
        #expect(problems("    type: http\n    url: https://x.example/mcp\n    session: per_user\n").contains {
            $0.hasPrefix("backends.docs.session:") && $0.contains("per_client")
        })
        #expect(problems("    type: http\n    url: https://x.example/mcp\n    headers: { MCP-Protocol-Version: x }\n").contains {
            $0.hasPrefix("backends.docs.headers.MCP-Protocol-Version: is set by the gateway")
        })
        #expect(problems("    type: http\n    url: https://x.example/mcp\n    isolation: session\n").contains {
            $0.hasPrefix("backends.docs.isolation: applies to stdio backends")
        })
        #expect(problems("    type: http\n    url: https://x.example/mcp\n    sesion: shared\n").contains {
            $0.hasPrefix("backends.docs.sesion: unknown key") && $0.contains("\"session\"")
        })
    }

    @Test func headerValueWithLineBreakIsRefusedWithoutEchoingIt() {
        let found = problems("    type: http\n    url: https://x.example/mcp\n    headers: { X-Key: \"${KEY}\" }\n", env: ["KEY": "abc\r\nEvil: 1"])
        #expect(found.contains { $0.hasPrefix("backends.docs.headers.X-Key:") && $0.contains("line break") })
        #expect(!found.joined().contains("abc"))
    }

    @Test func redactedURLDropsCredentials() {
        let redacted = HTTPBackendConfig.redactedURL("https://user:pw@x.example/mcp?token=abc")
        #expect(redacted.hasPrefix("https://x.example/mcp?"))
        #expect(!redacted.contains("abc") && !redacted.contains("pw") && !redacted.contains("user"))
        #expect(!HTTPBackendConfig.redactedURL("https://user:pw@x.example/mcp").contains("pw"))
    }
}

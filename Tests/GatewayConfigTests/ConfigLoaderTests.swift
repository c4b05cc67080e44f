import Foundation
import GatewayCore
import Testing

@testable import GatewayConfig

@Suite struct ConfigLoaderTests {
    func loader(env: [String: String] = [:], files: [String: String] = [:]) -> ConfigLoader {
        ConfigLoader(interpolator: Interpolator(environment: env, readFile: { path in
            guard let contents = files[path] else { throw CocoaError(.fileReadNoSuchFile) }
            return contents
        }))
    }

    func problems(_ yaml: String, env: [String: String] = [:]) -> [ConfigProblem] {
        do {
            _ = try loader(env: env).load(yaml: yaml, file: "gw.yaml")
            return []
        } catch {
            return error.problems
        }
    }

    let minimal = """
        backends:
          diag: { type: plugin, plugin: diagnostics }
        """

    @Test func defaultsFollowTheContract() throws {
        let config = try loader().load(yaml: minimal)
        #expect(config.server.listen == ListenAddress(host: "127.0.0.1", port: 8080), "loopback unless configured")
        #expect(config.server.endpoint == "/mcp")
        #expect(config.server.sseKeepalive == .seconds(15))
        #expect(config.server.maxBody == 4 * 1024 * 1024)
        #expect(config.sessions.idleTimeout == .seconds(1800))
        #expect(config.sessions.max == 10_000)
        #expect(config.tools.separator == "__")
        #expect(config.tools.validation == .strict)
        #expect(config.backends.map(\.name) == ["diag"])
    }

    @Test func fullStdioBackend() throws {
        let config = try loader().load(yaml: """
            server:
              listen: "0.0.0.0:9000"
              sse_keepalive: 1m30s
              limits: { max_body: 64KiB, max_json_depth: 32, request_timeout: 500ms }
            backends:
              time:
                type: stdio
                command: [python3, -m, mcp_server_time]
                env: { TZ: UTC }
                cwd: /tmp
                isolation: session
                max_sessions: 7
                call_timeout: 5s
            """)
        #expect(config.server.listen.port == 9000)
        #expect(config.server.sseKeepalive == .seconds(90))
        #expect(config.server.maxBody == 65_536)
        #expect(config.server.maxJSONDepth == 32)
        #expect(config.server.requestTimeout == .milliseconds(500))
        let backend = try #require(config.backend(named: "time"))
        #expect(backend.callTimeout == .seconds(5))
        guard case .stdio(let stdio) = backend.kind else {
            Issue.record("expected a stdio backend")
            return
        }
        #expect(stdio.command == ["python3", "-m", "mcp_server_time"])
        #expect(stdio.env == ["TZ": "UTC"])
        #expect(stdio.cwd == "/tmp")
        #expect(stdio.isolation == .session)
        #expect(stdio.maxSessions == 7)
    }

    @Test func unknownKeyNamesPathLineAndSuggestion() {
        let found = problems("""
            sever:
              listen: "127.0.0.1:1"
            backends:
              diag: { type: plugin, plugin: diagnostics, call_timout: 1s }
            """)
        #expect(found.contains { $0.path == "sever" && $0.line == 1 && $0.message.contains("did you mean \"server\"") })
        #expect(found.contains { $0.path == "backends.diag.call_timout" && $0.line == 4 && $0.message.contains("did you mean \"call_timeout\"") })
        #expect(found.first?.description.hasPrefix("gw.yaml:1: sever: unknown key") == true)
    }

    @Test func badValuesNameTheirKey() {
        let found = problems("""
            server:
              sse_keepalive: 5 parsecs
              listen: nowhere
              limits: { max_body: lots }
            sessions:
              max: -3
            tools:
              validation: strikt
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(found.contains { $0.path == "server.sse_keepalive" && $0.line == 2 })
        #expect(found.contains { $0.path == "server.listen" && $0.line == 3 })
        #expect(found.contains { $0.path == "server.limits.max_body" })
        #expect(found.contains { $0.path == "sessions.max" && $0.message.contains("out of range") })
        #expect(found.contains { $0.path == "tools.validation" && $0.message.contains("did you mean \"strict\"") })
    }

    @Test func interpolationOfEnvironmentDefaultsAndFiles() throws {
        let config = try loader(env: ["PORT": "7001", "EMPTY": ""], files: ["/run/secrets/key": String(repeating: "ab", count: 32) + "\n"]).load(yaml: """
            server:
              listen: "127.0.0.1:${PORT}"
              endpoint: "${ENDPOINT:-/gateway}"
              public_url: "https://${EMPTY:-mcp.example.com}"
            sessions:
              keys: ["${file:/run/secrets/key}"]
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(config.server.listen.port == 7001)
        #expect(config.server.endpoint == "/gateway")
        #expect(config.server.publicURL == "https://mcp.example.com")
        #expect(config.sessions.keys == [[UInt8](repeating: 0xAB, count: 32)], "file contents, trailing newline trimmed")
    }

    @Test func missingVariablesAndFilesAreErrorsNamingTheKey() {
        let found = problems("""
            server:
              listen: "127.0.0.1:${NO_SUCH_PORT}"
            sessions:
              keys: ["${file:/nonexistent/key}"]
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        #expect(found.contains { $0.path == "server.listen" && $0.message.contains("NO_SUCH_PORT is not set") })
        #expect(found.contains { $0.path == "sessions.keys[0]" && $0.message.contains("/nonexistent/key") })
    }

    @Test func sessionKeysMustBe32BytesAndAreNeverEchoed() {
        let found = problems("""
            sessions:
              keys: ["secret-but-too-short"]
            backends:
              diag: { type: plugin, plugin: diagnostics }
            """)
        let problem = found.first { $0.path == "sessions.keys[0]" }
        #expect(problem != nil)
        #expect(problem?.description.contains("secret-but-too-short") == false)
    }

    @Test func sessionKeyFormats() {
        #expect(SessionKeyText.decode(String(repeating: "0f", count: 32)) == [UInt8](repeating: 0x0F, count: 32))
        #expect(SessionKeyText.decode(Data(repeating: 7, count: 32).base64EncodedString()) == [UInt8](repeating: 7, count: 32))
        #expect(SessionKeyText.decode("abcd") == nil)
    }

    @Test func unsupportedFeaturesRefuseRatherThanRunUnprotected() {
        #expect(problems("auth: { mode: oauth }\n" + minimal).contains { $0.path == "auth.oauth" }, "oauth without its settings")
        #expect(problems("auth: { mode: api_key }\n" + minimal).contains { $0.path == "auth.api_keys" })
        let oauth = problems("auth: { mode: oauth, oauth: { issuer: i, audience: a, jwks_url: \"http://auth.example.com/jwks\", algorithms: [HS256, none] } }\n" + minimal)
        #expect(oauth.contains { $0.path == "auth.oauth.jwks_url" }, "plain http to a remote issuer")
        #expect(oauth.filter { $0.path == "auth.oauth.algorithms" }.count == 2, "an HMAC algorithm and none are each refused")
        #expect(problems("backends:\n  d: { type: plugin, plugin: diagnostics, access: { scopes: [x] } }\n").contains { $0.path == "backends.d.access" }, "access rules need auth")
    }

    @Test func stdioBackendNeedsACommandAndKnownType() {
        let found = problems("""
            backends:
              broken: { type: stdio }
              odd: { type: stdoi, command: [x] }
              mixed: { type: plugin, plugin: diagnostics, command: [x] }
            """)
        #expect(found.contains { $0.path == "backends.broken.command" })
        #expect(found.contains { $0.path == "backends.odd.type" && $0.message.contains("did you mean \"stdio\"") })
        #expect(found.contains { $0.path == "backends.mixed.command" && $0.message.contains("stdio backends") })
    }

    @Test func backendNameMustNotContainTheSeparator() {
        #expect(problems("backends:\n  a__b: { type: plugin, plugin: diagnostics }\n").contains { $0.path == "backends.a__b" })
    }

    @Test func invalidYAMLReportsTheLine() {
        let found = problems("server:\n  listen: [unclosed\n")
        #expect(found.first?.line != nil)
        #expect(found.first?.message.contains("invalid YAML") == true)
    }

    @Test func units() {
        #expect(Units.duration("250ms") == .milliseconds(250))
        #expect(Units.duration("1h30m") == .seconds(5400))
        #expect(Units.duration("2d") == .seconds(172_800))
        #expect(Units.duration("30") == nil, "a duration needs a unit")
        #expect(Units.size("4MiB") == 4_194_304)
        #expect(Units.size("1GB") == 1_000_000_000)
        #expect(Units.size("512") == 512)
        #expect(Units.size("12 parsecs") == nil)
    }

    @Test func descriptionsNeverCarrySecrets() throws {
        let key = String(repeating: "ab", count: 32)
        let config = try loader(env: ["TOKEN": "backend-token-value", "SECRET": "client-secret-value"]).load(yaml: """
            sessions: { keys: ["\(key)"] }
            auth:
              mode: oauth
              oauth: { issuer: "https://i.example", audience: "https://a.example/mcp", jwks_url: "https://i.example/jwks",
                       introspection: { url: "https://i.example/introspect", client_id: gw, client_secret: "${SECRET}" } }
              api_keys: [ { id: bot, sha256: "\(key)" } ]
            backends:
              b: { type: stdio, command: [x], env: { TOKEN: "${TOKEN}" } }
            """)
        for text in [String(describing: config), String(reflecting: config), String(describing: config.sessions), String(reflecting: config.auth),
                     String(reflecting: config.backends), String(describing: config.auth.oauth as Any)] {
            #expect(!text.contains("backend-token-value"))
            #expect(!text.contains("client-secret-value"))
            #expect(!text.contains(key))
            #expect(!text.contains("171, 171"), "key bytes")
        }
    }
}

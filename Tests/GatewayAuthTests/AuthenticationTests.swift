import Crypto
import GatewayConfig
import GatewayCore
import Logging
import Testing

@testable import GatewayAuth

@Suite struct APIKeyTests {
    let keys = [
        APIKeyConfig(id: "ci-bot", sha256: Array(SHA256.hash(data: Array("secret-one".utf8))), scopes: ["mcp:tools"], tenant: "acme"),
        APIKeyConfig(id: "ops", sha256: Array(SHA256.hash(data: Array("secret-two".utf8))), scopes: [], tenant: nil),
    ]

    @Test func aKnownKeyIsItsPrincipal() throws {
        let principal = try #require(APIKeyVerifier(keys: keys).principal(for: "secret-one"))
        #expect(principal.id == "api-key:ci-bot")
        #expect(principal.subject == "ci-bot")
        #expect(principal.tenant == "acme")
        #expect(principal.scopes == ["mcp:tools"])
        #expect(APIKeyVerifier(keys: keys).principal(for: "secret-two")?.subject == "ops")
    }

    @Test func unknownKeysAndNearMissesAreRefused() {
        let verifier = APIKeyVerifier(keys: keys)
        for presented in ["", "secret-on", "secret-one ", "SECRET-ONE", String(repeating: "x", count: 4096)] {
            #expect(verifier.principal(for: presented) == nil)
        }
    }

    @Test func constantTimeComparison() {
        #expect(APIKeyVerifier.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!APIKeyVerifier.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!APIKeyVerifier.constantTimeEquals([1, 2], [1, 2, 3]))
    }
}

@Suite struct JWTClaimTests {
    let config: OAuthConfig = {
        var config = OAuthConfig(issuer: "https://auth.example.com", audience: "https://mcp.example.com/mcp")
        config.jwksFile = "/nonexistent"
        config.tenantClaim = "org"
        config.leeway = .seconds(30)
        return config
    }()
    let now = 1_800_000_000.0

    func claims(_ overrides: JSONObject = [:]) -> JSONObject {
        var base: JSONObject = [
            "iss": "https://auth.example.com", "aud": "https://mcp.example.com/mcp", "sub": "alice",
            "exp": .number(JSONNumber(Int(now) + 60)), "scope": "mcp:tools files:read", "org": "acme",
        ]
        for (key, value) in overrides { base[key] = value.isNull ? nil : value }
        return base
    }

    func check(_ overrides: JSONObject = [:]) async -> Result<Principal, TokenRejection> {
        let verifier = JWTVerifier(config: config, logger: Logger(label: "test"))
        do {
            return .success(try await verifier.checkClaims(claims(overrides), now: now))
        } catch {
            return .failure(error)
        }
    }

    @Test func validClaimsGiveTheBoundPrincipal() async throws {
        let principal = try await check().get()
        #expect(principal.id == "https://auth.example.com#alice", "sessions bind to issuer + subject")
        #expect(principal.subject == "alice")
        #expect(principal.scopes == ["mcp:tools", "files:read"])
        #expect(principal.tenant == "acme")
    }

    @Test func audienceMayBeAListAndIsCanonicalised() async throws {
        _ = try await check(["aud": ["https://other.example", "HTTPS://MCP.EXAMPLE.COM/mcp/"]]).get()
        guard case .failure = await check(["aud": "https://mcp.example.com/other"]) else {
            Issue.record("another resource's token must be refused")
            return
        }
    }

    @Test func registeredClaimsAreEnforcedWithLeeway() async {
        #expect((try? await check(["exp": .number(JSONNumber(Int(now) - 20))]).get()) != nil, "within the leeway")
        #expect((try? await check(["exp": .number(JSONNumber(Int(now) - 31))]).get()) == nil, "expired")
        #expect((try? await check(["nbf": .number(JSONNumber(Int(now) + 20))]).get()) != nil, "within the leeway")
        #expect((try? await check(["nbf": .number(JSONNumber(Int(now) + 31))]).get()) == nil, "not yet valid")
        #expect((try? await check(["iss": "https://evil.example"]).get()) == nil)
        #expect((try? await check(["sub": nil]).get()) == nil)
        #expect((try? await check(["exp": nil]).get()) == nil)
    }

    @Test func scopesFromScp() async throws {
        let principal = try await check(["scope": nil, "scp": ["a", "b"]]).get()
        #expect(principal.scopes == ["a", "b"])
    }
}

@Suite struct AccessPolicyTests {
    let policy = AccessPolicy(rules: [
        "hr": BackendAccess(tenants: ["acme"]),
        "ops": BackendAccess(principals: ["alice"]),
        "files": BackendAccess(scopes: ["files:read", "files:write"]),
    ])

    @Test func isolationByTenantAndPrincipal() {
        let ann = Principal(id: "i#ann", subject: "ann", tenant: "acme")
        let bob = Principal(id: "i#bob", subject: "bob", tenant: "globex")
        let alice = Principal(id: "i#alice", subject: "alice")
        #expect(policy.canSee(backend: "hr", principal: ann))
        #expect(!policy.canSee(backend: "hr", principal: bob))
        #expect(!policy.canSee(backend: "hr", principal: alice), "no tenant claim: not in the tenant")
        #expect(policy.canSee(backend: "ops", principal: alice))
        #expect(!policy.canSee(backend: "ops", principal: ann))
        #expect(policy.canSee(backend: "unrestricted", principal: bob))
        #expect(policy.isolates)
    }

    @Test func stepUpScopesAreNamed() {
        let reader = Principal(id: "i#r", subject: "r", scopes: ["files:read"])
        #expect(policy.missingScopes(backend: "files", principal: reader) == ["files:write"])
        #expect(policy.canSee(backend: "files", principal: reader), "step-up backends stay visible")
        #expect(policy.missingScopes(backend: "hr", principal: reader).isEmpty)
    }

    @Test func canonicalResources() {
        #expect(JWTVerifier.sameResource("https://MCP.example.com/mcp/", "https://mcp.example.com/mcp"))
        #expect(!JWTVerifier.sameResource("https://mcp.example.com/MCP", "https://mcp.example.com/mcp"), "paths are case-sensitive")
    }
}

/// Who may see and call a backend (CONTRACT.md `backends.<n>.access`; issue "security" §3). One policy decides
/// both what a principal sees in lists and what it may call, so nothing leaks through a list.
///
/// - `tenants` and `principals` are isolation: a principal outside them neither sees the backend's tools nor
///   can tell that they exist (a call is answered exactly as for an unknown tool).
/// - `scopes` are step-up: the tools are listed to everyone who can see the backend, and a call without the
///   scopes is refused naming them (HTTP 403 `insufficient_scope`, so the client can ask for more:
///   2025-11-25/basic/authorization#runtime-insufficient-scope-errors).
public struct BackendAccess: Sendable, Equatable {
    public var scopes: [String]
    public var tenants: [String]
    public var principals: [String]

    public init(scopes: [String] = [], tenants: [String] = [], principals: [String] = []) {
        self.scopes = scopes
        self.tenants = tenants
        self.principals = principals
    }

    public var isOpen: Bool { scopes.isEmpty && tenants.isEmpty && principals.isEmpty }
}

public struct AccessPolicy: Sendable {
    private let rules: [String: BackendAccess]

    public init(rules: [String: BackendAccess] = [:]) {
        self.rules = rules.filter { !$0.value.isOpen }
    }

    /// True when some backend is hidden from some principals (lists then depend on the caller).
    public var isolates: Bool { rules.values.contains { !$0.tenants.isEmpty || !$0.principals.isEmpty } }

    public func canSee(backend: String, principal: Principal) -> Bool {
        guard let rule = rules[backend] else { return true }
        if !rule.tenants.isEmpty {
            guard let tenant = principal.tenant, rule.tenants.contains(tenant) else { return false }
        }
        if !rule.principals.isEmpty {
            guard rule.principals.contains(principal.subject) || rule.principals.contains(principal.id) else { return false }
        }
        return true
    }

    /// Scopes the backend requires that the principal lacks, in configured order.
    public func missingScopes(backend: String, principal: Principal) -> [String] {
        guard let rule = rules[backend] else { return [] }
        return rule.scopes.filter { !principal.scopes.contains($0) }
    }
}

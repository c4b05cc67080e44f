import Testing

@testable import GatewayCore

@Suite struct CatalogNamingTests {
    func tool(_ name: String) -> JSONObject { ["name": .string(name), "inputSchema": ["type": "object"]] }

    func sources() -> [CatalogSource] {
        [
            CatalogSource(backend: "git", tools: [tool("status"), tool("log"), tool("search")]),
            CatalogSource(backend: "docs", tools: [tool("search"), tool("read")]),
        ]
    }

    @Test func alwaysPrefixes() {
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: sources())
        #expect(catalog.exposedNames == ["git__status", "git__log", "git__search", "docs__search", "docs__read"])
        #expect(catalog.problems.isEmpty)
    }

    @Test func conditionalPrefixesOnlySharedNames() {
        let catalog = Catalog(separator: ".", prefixMode: .conditional, sources: sources())
        #expect(catalog.exposedNames == ["status", "log", "git.search", "docs.search", "read"])
        #expect(catalog.tool(named: "read")?.backend == "docs")
        #expect(catalog.tool(named: "git.search")?.originalName == "search")
    }

    @Test func neverMakesACollisionAnError() {
        let catalog = Catalog(separator: "__", prefixMode: .never, sources: sources())
        #expect(catalog.exposedNames == ["status", "log", "search", "read"])
        #expect(catalog.tool(named: "search")?.backend == "git", "the first backend keeps the name")
        #expect(catalog.problems.contains { $0.severity == .error && $0.backend == "docs" && $0.message.contains("collides") })
    }

    @Test func longNamesAreShortenedDeterministicallyAndStayDistinct() {
        let backend = String(repeating: "x", count: 50)
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: [
            CatalogSource(backend: backend, tools: [tool("create_a_very_long_named_thing"), tool("create_a_very_long_named_other")]),
        ])
        let names = catalog.exposedNames
        #expect(names.count == 2)
        #expect(names.allSatisfy { $0.count == Catalog.maximumNameLength })
        #expect(Set(names).count == 2, "a hash of the full name keeps shortened names apart")
        #expect(names == Catalog(separator: "__", prefixMode: .always, sources: [
            CatalogSource(backend: backend, tools: [tool("create_a_very_long_named_thing"), tool("create_a_very_long_named_other")]),
        ]).exposedNames, "deterministic across builds, replicas and restarts")
        #expect(catalog.renamed.count == 2)
        #expect(catalog.tool(named: names[0])?.originalName == "create_a_very_long_named_thing")
    }

    @Test func invalidCharactersAreReplacedAndMarked() {
        let exposed = Catalog.exposedName(for: "fs__read file/λ")
        #expect(exposed.hasPrefix("fs__read_file__-"))
        #expect(exposed.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) })
        #expect(Catalog.exposedName(for: "plain_name-1.2") == "plain_name-1.2", "valid names are untouched")
    }

    @Test func includeAndExcludeGlobs() {
        let catalog = Catalog(separator: "__", prefixMode: .always, sources: [
            CatalogSource(backend: "git", tools: [tool("status"), tool("log"), tool("search"), tool("stash")], include: ["s*", "log"], exclude: ["st?sh"]),
        ])
        #expect(catalog.exposedNames == ["git__status", "git__log", "git__search"])
    }

    @Test func globs() {
        #expect(Glob.matches("*", "anything"))
        #expect(Glob.matches("time__*", "time__get_current_time"))
        #expect(!Glob.matches("time__*", "timer__x"))
        #expect(Glob.matches("a?c", "abc"))
        #expect(!Glob.matches("a?c", "abbc"))
        #expect(Glob.matches("*_time", "get_current_time"))
        #expect(Glob.matches("*", ""))
        #expect(!Glob.matches("?", ""))
    }
}

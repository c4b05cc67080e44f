import Foundation
import GatewayCore
import Testing

@testable import GatewayConfig

/// `server.tls`: keys, the version floor, and files that must exist before the server starts.
@Suite struct TLSConfigTests {
    let backends = """
        backends:
          diag: { type: plugin, plugin: diagnostics }
        """

    /// A temporary directory with a readable cert and key (their content is the server's concern, not the loader's).
    func files() throws -> (dir: URL, cert: String, key: String, ca: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cert = dir.appendingPathComponent("chain.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        let ca = dir.appendingPathComponent("ca.pem").path
        for path in [cert, key, ca] { try Data("-----BEGIN X-----\n".utf8).write(to: URL(fileURLWithPath: path)) }
        return (dir, cert, key, ca)
    }

    func load(_ yaml: String) -> Result<GatewayConfiguration, ConfigError> {
        Result { () throws(ConfigError) in try ConfigLoader().load(yaml: yaml + "\n" + backends, file: "gw.yaml") }
    }

    func problems(_ yaml: String) -> [ConfigProblem] {
        if case .failure(let error) = load(yaml) { return error.problems }
        return []
    }

    @Test func parsesEveryKey() throws {
        let f = try files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let config = try load("server: { tls: { cert: \(f.cert), key: \(f.key), client_ca: \(f.ca), min_version: \"1.3\" } }").get()
        #expect(config.server.tls == TLSConfig(cert: f.cert, key: f.key, clientCA: f.ca, minVersion: .v1_3))
    }

    @Test func minVersionDefaultsTo12AndAcceptsAnUnquotedNumber() throws {
        let f = try files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        #expect(try load("server: { tls: { cert: \(f.cert), key: \(f.key) } }").get().server.tls?.minVersion == .v1_2)
        #expect(try load("server: { tls: { cert: \(f.cert), key: \(f.key), min_version: 1.3 } }").get().server.tls?.minVersion == .v1_3)
        #expect(try load("server: { listen: \"127.0.0.1:8443\" }").get().server.tls == nil, "no tls key: plain HTTP")
    }

    @Test func refusesVersionsOtherThan12And13() throws {
        let f = try files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        for version in ["1.1", "1.0", "TLSv1.2", "1.4"] {
            let found = problems("server: { tls: { cert: \(f.cert), key: \(f.key), min_version: \"\(version)\" } }")
            #expect(found.contains { $0.path == "server.tls.min_version" && $0.message.contains("\"1.2\" or \"1.3\"") }, "\(version)")
        }
    }

    @Test func missingKeysAreNamed() {
        let found = problems("server: { tls: { min_version: \"1.2\" } }")
        #expect(found.contains { $0.path == "server.tls.cert" && $0.message.contains("required") })
        #expect(found.contains { $0.path == "server.tls.key" && $0.message.contains("required") })
        #expect(problems("server: { tls: { cert: a.pem, key: b.pem, ciphers: all } }").contains { $0.path == "server.tls.ciphers" })
    }

    @Test func missingOrUnreadableFilesAreNamedByTheirKey() throws {
        let f = try files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let missing = f.dir.appendingPathComponent("absent.pem").path
        var found = problems("server: { tls: { cert: \(missing), key: \(f.key) } }")
        #expect(found.contains { $0.path == "server.tls.cert" && $0.message.contains("absent.pem") && $0.message.contains("does not exist") })
        found = problems("server: { tls: { cert: \(f.cert), key: \(f.dir.path) } }")
        #expect(found.contains { $0.path == "server.tls.key" && $0.message.contains("is a directory") })
        found = problems("server: { tls: { cert: \(f.cert), key: \(f.key), client_ca: \(missing) } }")
        #expect(found.contains { $0.path == "server.tls.client_ca" && $0.message.contains("does not exist") })
    }
}

import Foundation
import Yams

extension NodeReader {
    /// `server.tls`: the keys, the version floor, and that every named file exists and is readable now, so a
    /// wrong path stops `serve` (exit 2) and `check` with the key that names it, instead of the first handshake.
    /// Whether the files hold a usable PEM chain and a matching key is the server's check (it parses them).
    mutating func readTLS(_ node: Node) -> TLSConfig? {
        guard let tls = mapping(node, path: "server.tls", allowed: ["cert", "key", "client_ca", "min_version"]) else { return nil }
        let cert = tlsFile(tls["cert"], path: "server.tls.cert", parent: node, what: "the certificate chain (PEM)")
        let key = tlsFile(tls["key"], path: "server.tls.key", parent: node, what: "the private key (PEM)")
        let clientCA = tls["client_ca"] == nil ? nil : tlsFile(tls["client_ca"], path: "server.tls.client_ca", parent: node, what: "the client CA certificates (PEM)")
        var minVersion = TLSMinimumVersion.v1_2
        if let value = tls["min_version"], let text = string(value, path: "server.tls.min_version") {
            if let version = TLSMinimumVersion(rawValue: text) { minVersion = version } else {
                problem(value, "server.tls.min_version", "\"\(text)\" is not accepted: use \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are deprecated by RFC 8996)")
            }
        }
        guard let cert, let key else { return nil }
        if tls["client_ca"] != nil, clientCA == nil { return nil }
        return TLSConfig(cert: cert, key: key, clientCA: clientCA, minVersion: minVersion)
    }

    /// A required file path under `server.tls`, checked to exist, be a regular file and be readable.
    private mutating func tlsFile(_ node: Node?, path: String, parent: Node, what: String) -> String? {
        guard let node else {
            problem(parent, path, "is required when server.tls is set: the path of \(what)")
            return nil
        }
        guard let file = string(node, path: path) else { return nil }
        if let reason = Self.unreadableFileReason(file) {
            problem(node, path, "\"\(file)\" \(reason)")
            return nil
        }
        return file
    }

    /// Why a file cannot be read, or nil when it can.
    static func unreadableFileReason(_ file: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
            return "does not exist (relative paths are from the working directory \(FileManager.default.currentDirectoryPath))"
        }
        if isDirectory.boolValue { return "is a directory, not a PEM file" }
        if !FileManager.default.isReadableFile(atPath: file) { return "is not readable by this process (check its permissions and owner)" }
        return nil
    }
}

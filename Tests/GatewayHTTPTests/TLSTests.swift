import Foundation
import GatewayConfig
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GatewayHTTP

/// Certificates and keys made by the real `openssl` command line (as an operator would), in a fresh directory.
struct TestPEMs {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A self-signed P-256 certificate for localhost and its key, written as `NAME.pem` and `NAME.key`.
    func selfSigned(_ name: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", path("\(name).key"), "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=\(name)",
        ]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "openssl req failed")
    }

    /// Replaces a file's contents by renaming a new file over it, as certificate tooling does.
    func replace(_ name: String, with data: Data) throws {
        let next = path(name + ".next")
        try data.write(to: URL(fileURLWithPath: next))
        #expect(rename(next, path(name)) == 0, "rename(2) failed")
    }

    func contents(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(name))) }

    func remove() { try? FileManager.default.removeItem(at: dir) }
}

@Suite struct TLSContextProviderTests {
    let logger = Logger(label: "tls-tests")

    @Test func reloadsWhenAFileChangesAndOnlyThen() throws {
        let pems = try TestPEMs()
        defer { pems.remove() }
        try pems.selfSigned("first")
        try pems.selfSigned("second")
        let provider = try TLSContextProvider(configuration: TLSConfig(cert: pems.path("first.pem"), key: pems.path("first.key")), logger: logger)
        let original = provider.context
        #expect(provider.reloadIfFilesChanged() == false, "nothing changed")
        #expect(provider.context === original)

        try pems.replace("first.pem", with: try pems.contents("second.pem"))
        try pems.replace("first.key", with: try pems.contents("second.key"))
        #expect(provider.reloadIfFilesChanged() == true)
        #expect(provider.context !== original, "new connections get the new certificate")
        #expect(provider.reloadIfFilesChanged() == false, "one reload per change")
    }

    @Test func aFailedReloadKeepsTheCurrentContext() throws {
        let pems = try TestPEMs()
        defer { pems.remove() }
        try pems.selfSigned("served")
        try pems.selfSigned("other")
        let provider = try TLSContextProvider(configuration: TLSConfig(cert: pems.path("served.pem"), key: pems.path("served.key")), logger: logger)
        let original = provider.context

        // Rotation caught half-way: the new certificate is in place, its key not yet.
        try pems.replace("served.pem", with: try pems.contents("other.pem"))
        #expect(provider.reloadIfFilesChanged() == false)
        #expect(provider.context === original)
        #expect(provider.reload(trigger: "SIGHUP") == false, "an explicit reload fails the same way")
        // The key arrives: the next change completes the rotation.
        try pems.replace("served.key", with: try pems.contents("other.key"))
        #expect(provider.reloadIfFilesChanged() == true)
        #expect(provider.context !== original)
    }

    @Test func unusableFilesNameTheirKey() throws {
        let pems = try TestPEMs()
        defer { pems.remove() }
        try pems.selfSigned("a")
        try pems.selfSigned("b")
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: pems.path("garbage.pem")))

        func failure(_ config: TLSConfig) -> TLSSetupError? {
            do {
                _ = try TLSContextProvider(configuration: config, logger: logger)
                return nil
            } catch {
                return error
            }
        }
        let mismatch = failure(TLSConfig(cert: pems.path("a.pem"), key: pems.path("b.key")))
        #expect(mismatch?.key == "server.tls.key")
        #expect(mismatch?.reason.contains("does not match") == true)
        #expect(failure(TLSConfig(cert: pems.path("garbage.pem"), key: pems.path("a.key")))?.key == "server.tls.cert")
        #expect(failure(TLSConfig(cert: pems.path("a.pem"), key: pems.path("a.pem")))?.key == "server.tls.key", "a certificate is not a key")
        #expect(failure(TLSConfig(cert: pems.path("a.pem"), key: pems.path("a.key"), clientCA: pems.path("garbage.pem")))?.key == "server.tls.client_ca")
        #expect(failure(TLSConfig(cert: pems.path("missing.pem"), key: pems.path("a.key")))?.key == "server.tls.cert")
        #expect(failure(TLSConfig(cert: pems.path("a.pem"), key: pems.path("a.key"), clientCA: pems.path("b.pem"), minVersion: .v1_3)) == nil)
        // Key material never appears in a message.
        #expect(mismatch?.description.contains("BEGIN") == false)
    }
}

@Suite struct TLSPipelineHandlerTests {
    @Test func plainHTTPOnTheTLSPortGetsA400AndTheConnectionCloses() throws {
        let channel = EmbeddedChannel(handler: PlaintextOnTLSPortHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n"))
        let reply = try #require(try channel.readOutbound(as: ByteBuffer.self))
        let text = String(buffer: reply)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.contains("https://"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "nothing reaches the TLS handler")
        #expect(!channel.isActive)
    }

    @Test func aTLSHandshakePassesThroughAndTheHandlerLeaves() throws {
        let channel = EmbeddedChannel(handler: PlaintextOnTLSPortHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let hello = ByteBuffer(bytes: [22, 3, 1, 0, 5, 1, 0, 0, 1, 0])
        try channel.writeInbound(hello)
        #expect(try channel.readInbound(as: ByteBuffer.self) == hello)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: PlaintextOnTLSPortHandler.self) }
        #expect(try channel.finish().isClean)
    }

    @Test func anHTTP2StreamWhoseRequestNeverEndsGets408() throws {
        let channel = EmbeddedChannel(handler: HTTP2StreamRequestDeadline(timeout: .seconds(2)))
        let head = HTTPRequestHead(version: .http2, method: .POST, uri: "/mcp")
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1999))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == nil)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        guard case .head(let response) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        #expect(response.status == .requestTimeout)
        guard case .body(.byteBuffer(let body)) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response body")
            return
        }
        #expect(String(buffer: body).contains("server.limits.request_timeout"))
    }

    @Test func anHTTP2StreamWhoseRequestEndedInTimeIsLeftAlone() throws {
        let channel = EmbeddedChannel(handler: HTTP2StreamRequestDeadline(timeout: .seconds(2)))
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http2, method: .GET, uri: "/mcp")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(try channel.readOutbound(as: HTTPServerResponsePart.self) == nil, "a long answer (an SSE stream) is not a slow request")
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        _ = try channel.readInbound(as: HTTPServerRequestPart.self)
        #expect(try channel.finish().isClean)
    }
}

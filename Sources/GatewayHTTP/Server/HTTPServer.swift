import Foundation
import GatewayBackends
import GatewayConfig
import GatewayCore
import GatewayRuntime
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The SwiftNIO HTTP/1.1 server: channel handlers on the event loops, no framework on the hot path
/// (ARCHITECTURE.md; swift-notes.md, "HTTP ceiling").
public final class HTTPServer: Sendable {
    private let channel: any Channel
    public let localAddress: SocketAddress
    /// Every accepted connection, for the drain at shutdown (Drain.swift).
    let connections: OpenConnections

    private init(channel: any Channel, connections: OpenConnections) {
        self.channel = channel
        self.localAddress = channel.localAddress!
        self.connections = connections
    }

    /// - Parameter tls: set when `server.tls` is: every connection then speaks TLS with ALPN h2/http/1.1.
    public static func start(gateway: Gateway, configuration: GatewayConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger, tls: TLSContextProvider? = nil) async throws -> HTTPServer {
        let router = HTTPRouter(gateway: gateway, configuration: configuration, logger: logger)
        let maxBody = configuration.server.maxBody
        let guards = ConnectionGuards(configuration: configuration.server)
        let connections = OpenConnections()
        let channel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelInitializer { channel in
                guards.configureServerChannel(channel).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(ConnectionRegistrar(connections: connections))
                }
            }
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                if let tls { return configureTLSConnection(channel, tls: tls, guards: guards, router: router, maxBody: maxBody, connections: connections) }
                return channel.eventLoop.makeCompletedFuture {
                    try guards.configureHTTPPipeline(channel.pipeline.syncOperations)
                    try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(router: router, maxBody: maxBody))
                }
            }
            .bind(host: configuration.server.listen.host, port: configuration.server.listen.port)
            .get()
        let server = HTTPServer(channel: channel, connections: connections)
        // Logged whatever the configured level: operators and scripts need the bound address.
        var announcer = logger
        announcer.logLevel = min(logger.logLevel, .info)
        announcer.info("listening", metadata: [
            "address": "\(server.localAddress.ipAddress ?? configuration.server.listen.host):\(server.localAddress.port ?? 0)",
            "endpoint": "\(configuration.server.endpoint)",
            "scheme": "\(tls == nil ? "http" : "https")",
        ])
        return server
    }

    /// Stops accepting connections (the connections already open go on; `drain` ends them).
    public func close() async {
        try? await channel.close()
    }
}

/// Build identity reported by `/version` and `mcp-gateway version`.
public enum GatewayVersionInfo {
    public static let name = GatewayVersion.name
    public static let version = GatewayVersion.version
    /// The git revision, stamped by the build (`MCP_GATEWAY_REVISION` at run time, set by the Makefile and the image).
    public static var revision: String {
        ProcessInfo.processInfo.environment["MCP_GATEWAY_REVISION"] ?? "unknown"
    }
}


import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import GatewayHTTP

/// The pieces of the shutdown drain that need no process: the SSE reconnection hint and the connection
/// registry's quiescing. The drain end to end is Tests/interop/test_shutdown.py.
@Suite struct DrainTests {
    @Test func retryHintIsAFieldInWholeMilliseconds() {
        #expect(ServerSentEvents.retry(after: .seconds(1)) == Array("retry: 1000\n\n".utf8))
        #expect(ServerSentEvents.retry(after: .milliseconds(1500)) == Array("retry: 1500\n\n".utf8))
    }

    /// An idle HTTP/1.1 connection stays open when draining starts (its next response says `Connection: close`)
    /// and closes when the drain quiesces every connection; it leaves the registry when it closes.
    @Test func idleHTTP1ConnectionClosesOnlyWhenQuiesced() throws {
        let connections = OpenConnections()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        connections.opened(channel)
        #expect(connections.count == 1)

        connections.beginDrain()
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)

        connections.quiesceAll()
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(connections.count == 0)
    }

    @Test func closeAllClosesWhatIsLeft() throws {
        let connections = OpenConnections()
        let channels = [EmbeddedChannel(), EmbeddedChannel()]
        for channel in channels {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            connections.opened(channel)
        }
        #expect(connections.closeAll() == 2)
        for channel in channels { channel.embeddedEventLoop.run() }
        #expect(channels.allSatisfy { !$0.isActive })
        #expect(connections.count == 0)
    }
}

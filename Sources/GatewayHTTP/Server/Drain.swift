import GatewayCore
import GatewayRuntime
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Graceful shutdown of the HTTP side (issue 7 item 5; docs/operations.md, "Drain and restart"), in order:
///
/// 1. Draining starts: `/readyz` answers 503, `initialize` and every new request get 503 with `Retry-After`
///    (`StreamableHTTPEndpoint.refuseWhileDraining`), each HTTP/1.1 response carries `Connection: close` and
///    its connection closes after it (`HTTPConnectionHandler`), HTTP/2 connections get GOAWAY (RFC 9113 §6.8:
///    their open streams finish, no new ones start), and open GET streams end with an SSE `retry:` hint.
///    The listener stays open meanwhile, so probes and stray clients get an explicit 503 rather than a refused
///    connection while the load balancer catches up.
/// 2. Calls in flight get up to `server.shutdown_grace` to finish; whatever is still running then is answered
///    with -32001 ("the gateway is shutting down") and cancelled at its backend.
/// 3. The listener closes, every connection is quiesced (NIO closes an idle HTTP/1.1 connection at once and a
///    busy one after its response), and after `flushTime` whatever is still open is closed.
///
/// The backends are stopped afterwards, by `Gateway.shutdown()`, in the spec's order.
extension HTTPServer {
    /// How long a client whose GET stream ended should wait before reconnecting, and the `Retry-After` of the
    /// refusals while draining: long enough for a load balancer to pick another replica, short enough not to
    /// leave the client idle.
    static let reconnectDelay: Duration = .seconds(1)
    /// After the last call: how long responses still being written and clients closing get, at most.
    static let flushTime: Duration = .seconds(1)

    public func drain(gateway: Gateway, grace: Duration, logger: Logger) async {
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        gateway.beginDrain()
        connections.beginDrain()
        gateway.endServerStreams(reconnectAfter: Self.reconnectDelay)
        logger.notice("draining: new sessions and requests refused, calls in flight finish", metadata: [
            "calls_in_flight": "\(gateway.callsInFlightCount)", "connections": "\(connections.count)",
            "shutdown_grace": "\(DurationFormat.describe(grace))",
        ])
        while gateway.callsInFlightCount > 0, clock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        if gateway.callsInFlightCount > 0 {
            let aborted = gateway.abortCallsInFlight(grace: grace)
            logger.warning("server.shutdown_grace elapsed: calls still in flight answered with -32001 and cancelled", metadata: [
                "calls": "\(aborted)", "shutdown_grace": "\(DurationFormat.describe(grace))",
            ])
        }
        await close()
        connections.quiesceAll()
        let flushDeadline = clock.now + Self.flushTime
        while connections.count > 0, clock.now < flushDeadline {
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        let forced = connections.closeAll()
        logger.info("drained: listener and connections closed", metadata: ["connections_force_closed": "\(forced)"])
    }
}

/// The open client connections, so a drain can reach every one of them: registered by `ConnectionRegistrar` on
/// the listening socket, removed when they close. `ServerQuiescingHelper` (swift-nio-extras) does the
/// registering and the quiesce event too, but cannot close the connections still open when the grace is over,
/// nor send GOAWAY to HTTP/2 connections alone while HTTP/1.1 ones stay open for their next response.
final class OpenConnections: Sendable {
    private struct Entry {
        let channel: any Channel
        var http2 = false
        /// `ChannelShouldQuiesceEvent` goes to each connection once: NIO's HTTP/1.1 pipeline handler asserts it.
        var quiesced = false
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.entries.count } }

    func opened(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        state.withLock { $0.entries[key] = Entry(channel: channel) }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.entries.removeValue(forKey: key) }
        }
    }

    /// ALPN chose h2 and the connection's HTTP/2 pipeline is in place; one that opens while draining is sent
    /// GOAWAY at once.
    func negotiatedHTTP2(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let quiesceNow = state.withLock { state -> Bool in
            guard var entry = state.entries[key] else { return false }
            entry.http2 = true
            entry.quiesced = state.draining
            state.entries[key] = entry
            return state.draining
        }
        if quiesceNow { Self.quiesce([channel]) }
    }

    /// HTTP/2 connections get GOAWAY; HTTP/1.1 ones stay until their next response (`Connection: close`).
    func beginDrain() {
        let http2 = state.withLock { state -> [any Channel] in
            state.draining = true
            return Self.markQuiesced(&state) { $0.http2 }
        }
        Self.quiesce(http2)
    }

    /// Every connection not yet told: an idle HTTP/1.1 one closes, a busy one closes after its response.
    func quiesceAll() {
        Self.quiesce(state.withLock { state in Self.markQuiesced(&state) { _ in true } })
    }

    /// Closes whatever is still open; returns how many.
    func closeAll() -> Int {
        let open = state.withLock { $0.entries.values.map(\.channel) }
        for channel in open { channel.close(promise: nil) }
        return open.count
    }

    private static func markQuiesced(_ state: inout State, where include: (Entry) -> Bool) -> [any Channel] {
        var chosen: [any Channel] = []
        for (key, entry) in state.entries where !entry.quiesced && include(entry) {
            state.entries[key]?.quiesced = true
            chosen.append(entry.channel)
        }
        return chosen
    }

    private static func quiesce(_ channels: [any Channel]) {
        for channel in channels {
            channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        }
    }
}

/// On the listening socket: registers each accepted connection with `OpenConnections`.
final class ConnectionRegistrar: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    let connections: OpenConnections

    init(connections: OpenConnections) { self.connections = connections }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connections.opened(unwrapInboundIn(data))
        context.fireChannelRead(data)
    }
}

extension StreamableHTTPEndpoint {
    /// While draining, a request gets 503 with `Retry-After` (CONTRACT.md, "503 while draining"): the load
    /// balancer has been told by `/readyz`, and the client retries on another replica, where a session sealed
    /// with the shared `sessions.keys` goes on. Notifications, responses and DELETE are still accepted: they
    /// start no work, and a cancellation helps the drain.
    func refuseWhileDraining(_ responder: HTTPResponder) -> Bool {
        guard gateway.isDraining else { return false }
        var headers = HTTPHeaders()
        headers.add(name: "retry-after", value: String(HTTPServer.reconnectDelay.components.seconds))
        responder.respond(Self.error(.serviceUnavailable, JSONRPCError(
            code: JSONRPCErrorCode.internalError,
            message: "The gateway is shutting down and takes no new requests; retry on another replica"
        ), headers: headers))
        return true
    }
}

extension ServerSentEvents {
    /// A block with only the reconnection time, in whole milliseconds: it sets the client's reconnection delay
    /// and dispatches no event.
    static func retry(after delay: Duration) -> [UInt8] {
        let (seconds, attoseconds) = delay.components
        return Array("retry: \(seconds * 1000 + attoseconds / 1_000_000_000_000_000)\n\n".utf8)
    }
}

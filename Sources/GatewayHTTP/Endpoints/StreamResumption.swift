import GatewayCore
import GatewayRuntime
import Logging
import NIOHTTP1

/// GET on the MCP endpoint: a new GET stream, or, with `Last-Event-ID`, the resumption of the stream that id
/// names (2025-11-25/basic/transports#resumability-and-redelivery; digest §2.5, MUST item 21). Events come
/// from the session's replay buffer (`sessions.replay_buffer`, SessionResumption.swift).
///
/// What an id that cannot be resumed gets, following the spec's "MAY replay": the header is advisory, so a
/// malformed id, an id this session never issued here (another session's, another replica's, or one whose
/// stream was dropped for space) is logged and answered as a plain GET, a new GET stream (or 409 when the
/// session already has one). An id older than what the buffer still holds replays what remains, and a log line
/// says events were lost. An id of a POST stream that has ended, with nothing after it, is 409: that stream
/// has nothing more to send, and an empty stream would only make a client reconnect again and again.
extension StreamableHTTPEndpoint {
    static let lastEventIDHeader = "last-event-id"

    func openServerStream(_ request: HTTPRequestContext, session: SessionState, responder: HTTPResponder) {
        let stream = GetStream(responder: responder, session: session, gateway: gateway)
        if let header = request.headers.first(name: Self.lastEventIDHeader), resume(header, session: session, stream: stream, responder: responder) {
            return
        }
        guard session.openGetStream(stream) else {
            responder.respond(Self.error(.conflict, .invalidRequest("this session already has an open GET stream; close it before opening another")))
            return
        }
        start(stream, session: session, responder: responder)
    }

    /// True when the request has been answered (resumed, or refused); false to open a new GET stream instead.
    private func resume(_ header: String, session: SessionState, stream: GetStream, responder: HTTPResponder) -> Bool {
        var metadata: Logger.Metadata = ["session": "\(session.logID)", "last_event_id": "\(header.prefix(64))"]
        guard let id = SSEEventID(lastEventID: header) else {
            logger.notice("Last-Event-ID is not an id this gateway issues; opening a new GET stream instead of resuming", metadata: metadata)
            return false
        }
        guard session.resumable else {
            logger.notice("Last-Event-ID ignored: sessions.replay_buffer is 0, so no stream can be resumed; opening a new GET stream", metadata: metadata)
            return false
        }
        switch session.resume(after: id, on: stream) {
        case .resumed(let replayed, let missed, let finished, let getStream):
            start(stream, session: session, responder: responder)
            metadata["replayed"] = "\(replayed)"
            metadata["stream"] = "\(getStream ? "get" : "post")"
            if missed {
                logger.notice("stream resumed, but events after Last-Event-ID were already dropped from the replay buffer (sessions.replay_buffer); replaying what remains", metadata: metadata)
            } else {
                logger.info(finished ? "ended POST stream replayed" : "stream resumed", metadata: metadata)
            }
            return true
        case .nothingLeft:
            logger.info("Last-Event-ID names a POST stream that has ended and was delivered in full", metadata: metadata)
            responder.respond(Self.error(.conflict, .invalidRequest("the stream of event \(id) has ended and every event after it was delivered; there is nothing to resume")))
            return true
        case .unknownStream:
            logger.notice("Last-Event-ID names no stream this session holds here (dropped from the replay buffer, another session's or replica's id); opening a new GET stream", metadata: metadata)
            return false
        }
    }

    private func start(_ stream: GetStream, session: SessionState, responder: HTTPResponder) {
        gateway.adjustBusy(session, by: 1)
        responder.startEventStream()
        stream.startKeepAlive(every: keepAliveInterval)
    }
}

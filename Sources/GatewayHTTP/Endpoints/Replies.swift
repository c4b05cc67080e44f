import GatewayCore
import GatewayRuntime
import NIOCore

/// The answer to one POSTed request (transports#sending-messages-to-the-server, MUST items 13-14): plain
/// `application/json` when the response comes first, which is the common case and the cheapest; it becomes a
/// `text/event-stream` the moment a related message (progress) must precede the response, and that stream ends
/// after the response. Every event has an id unique in the session that names its stream.
final class PostReply: ReplyChannel {
    private let responder: HTTPResponder
    private let session: SessionState
    private let challenges: AuthChallenges
    private var streamNumber = 0
    private var eventNumber = 0

    init(responder: HTTPResponder, session: SessionState, challenges: AuthChallenges) {
        self.responder = responder
        self.session = session
        self.challenges = challenges
    }

    /// Step-up authorisation: 403 with the `insufficient_scope` challenge when the answer has not started;
    /// inside an already-open event stream only the JSON-RPC error can still be sent.
    func sendInsufficientScope(_ scopes: [String], response: [UInt8]) {
        guard responder.state == .pending else {
            sendResponse(response)
            return
        }
        responder.respondJSON(status: .forbidden, response, headers: challenges.insufficientScopeHeaders(scopes))
    }

    /// The first related message turns the answer into an event stream, which on 2025-11-25 opens with a
    /// priming event (an id, empty data) so the client can resume it from the start (SessionResumption.swift).
    func sendRelated(_ message: [UInt8]) {
        if responder.state == .pending {
            streamNumber = session.nextStreamNumber()
            responder.startEventStream()
            if session.sendsPrimingEvents { emit([]) }
        }
        emit(message)
    }

    func sendResponse(_ message: [UInt8]) {
        if responder.state == .streaming {
            emit(message)
            responder.endStream()
            session.postStreamFinished(streamNumber)
        } else {
            responder.respondJSON(message)
        }
    }

    /// A cancelled request gets no response: an event stream that ends without one.
    func finishWithoutResponse() {
        if responder.state == .pending { responder.startEventStream() }
        responder.endStream()
        if streamNumber > 0 { session.postStreamFinished(streamNumber) }
    }

    /// Writes one event and hands it to the session, which keeps it for a `Last-Event-ID` resumption (the
    /// client may have lost this connection; the request goes on, MUST item 20).
    private func emit(_ data: [UInt8]) {
        eventNumber += 1
        let event = ReplayEvent(id: SSEEventID(stream: streamNumber, event: eventNumber), data: data)
        responder.writeStream(ServerSentEvents.event(id: event.id.description, data: data))
        session.postStreamEvent(event)
    }
}

/// Collects the responses to a 2025-03-26 batch and answers them as one JSON array.
final class BatchCollector {
    private let responder: HTTPResponder
    private var responses: [[UInt8]] = []
    private var outstanding = 0
    private var expecting = false

    init(responder: HTTPResponder) {
        self.responder = responder
    }

    func add(immediate response: [UInt8]) {
        responses.append(response)
    }

    func expect(_ count: Int) {
        outstanding += count
        expecting = true
        finishIfDone()
    }

    func slot() -> any ReplyChannel { Slot(collector: self) }

    fileprivate func deliver(_ response: [UInt8]?) {
        if let response { responses.append(response) }
        outstanding -= 1
        finishIfDone()
    }

    private func finishIfDone() {
        guard expecting, outstanding == 0 else { return }
        expecting = false
        if responses.isEmpty {
            responder.respond(status: .accepted)
            return
        }
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (index, response) in responses.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: response)
        }
        body.append(UInt8(ascii: "]"))
        responder.respondJSON(body)
    }

    private final class Slot: ReplyChannel {
        let collector: BatchCollector
        init(collector: BatchCollector) { self.collector = collector }
        /// Progress inside a batch has no stream to travel on; the batch's answer is one JSON array.
        func sendRelated(_ message: [UInt8]) {}
        func sendResponse(_ message: [UInt8]) { collector.deliver(message) }
        func finishWithoutResponse() { collector.deliver(nil) }
        /// Inside a batch the refusal is the JSON-RPC error among the batch's responses.
        func sendInsufficientScope(_ scopes: [String], response: [UInt8]) { collector.deliver(response) }
    }
}

/// A session's GET stream: open until the client leaves or the session ends, with keep-alive comments; also
/// the GET that resumes a POST stream after `Last-Event-ID`, which ends with that POST's response.
/// Confined to the connection's event loop; `send` and `close()` may come from any thread and hop there.
final class GetStream: EventStream, @unchecked Sendable {
    private let responder: HTTPResponder
    private let session: SessionState
    private let gateway: Gateway
    private let eventLoop: any EventLoop
    private var keepAlive: RepeatedTask?
    private var closed = false

    init(responder: HTTPResponder, session: SessionState, gateway: Gateway) {
        self.responder = responder
        self.session = session
        self.gateway = gateway
        self.eventLoop = responder.eventLoop
    }

    func startKeepAlive(every interval: TimeAmount) {
        keepAlive = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            guard !closed else { return }
            responder.writeStream(ServerSentEvents.keepAlive)
        }
        responder.closeFuture.whenComplete { [self] _ in finish() }
    }

    func close() {
        eventLoop.execute { [self] in finish() }
    }

    /// An event numbered by the session, whose id names this stream (transports#resumability-and-redelivery).
    func send(_ event: ReplayEvent) {
        eventLoop.execute { [self] in
            guard !closed else { return }
            responder.writeStream(ServerSentEvents.event(id: event.id.description, data: event.data))
        }
    }

    /// A message without an id. The session numbers everything it sends on a Streamable HTTP stream
    /// (`send(_: ReplayEvent)`); this is only the `ServerStream` fallback.
    func send(_ message: [UInt8]) {
        eventLoop.execute { [self] in
            guard !closed else { return }
            responder.writeStream(ServerSentEvents.event(id: nil, data: message))
        }
    }

    /// An SSE `retry:` field, then the end of the stream: the client waits that long and reconnects (with
    /// `Last-Event-ID`), which sends it to another replica while this one shuts down (WHATWG HTML,
    /// "Server-sent events"; 2025-11-25/basic/transports#listening-for-messages-from-the-server).
    func close(reconnectAfter delay: Duration) {
        eventLoop.execute { [self] in
            guard !closed else { return }
            responder.writeStream(ServerSentEvents.retry(after: delay))
            finish()
        }
    }

    private func finish() {
        guard !closed else { return }
        closed = true
        keepAlive?.cancel()
        responder.endStream()
        session.detachGetStream(self)
        gateway.adjustBusy(session, by: -1)
    }
}

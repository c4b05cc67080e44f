import GatewayCore

/// A Streamable HTTP SSE stream whose events carry ids: the session's GET stream, or a GET that resumes a POST
/// stream. `send` and `close` hop to the stream's event loop in call order, so events enqueued under the
/// session's lock go out in the order they were numbered.
public protocol EventStream: ServerStream {
    /// One event: a JSON-RPC message, or a priming event (an id with empty data).
    func send(_ event: ReplayEvent)
}

/// What a GET with `Last-Event-ID` found (2025-11-25/basic/transports#resumability-and-redelivery).
public enum Resumption: Sendable {
    /// The stream is resumed on the new connection: `replayed` events were queued on it. `missed`: events after
    /// the client's id had already been dropped from the buffer. `finished`: a POST stream that has ended, so
    /// the new connection ends after the replay. `getStream`: it was the session's GET stream, which goes on
    /// on the new connection.
    case resumed(replayed: Int, missed: Bool, finished: Bool, getStream: Bool)
    /// A POST stream that ended, and the client has every event of it: there is nothing to resume.
    case nothingLeft
    /// The id names no stream this session holds here (never issued, dropped for space, another replica's, or
    /// an event the stream never had).
    case unknownStream
}

/// Resumability of a session's Streamable HTTP streams (digest §2.5, MUST items 21-22): every event sent on them
/// is numbered `<stream>-<event>` and kept in the session's bounded `SessionReplayLog`; a GET with
/// `Last-Event-ID` replays that stream's later events. All under the session's lock, so a message is either in
/// a replay or sent on the connection that resumed, never both or neither.
extension SessionState {
    /// `sessions.replay_buffer` is not zero.
    public var resumable: Bool { state.withLockedValue { $0.replay.isEnabled } }

    /// 2025-11-25 streams open with a priming event, an id with empty data, so the client has an id to resume
    /// from even before the first message (2025-11-25/basic/transports#sending-messages-to-the-server). Only
    /// when the gateway can resume: with `replay_buffer: 0` an id would invite a reconnection that replays nothing.
    public var sendsPrimingEvents: Bool { claims.protocolVersion >= .v2025_11_25 && resumable }

    /// Opens a new GET stream on `stream` (a number of its own, events from 1, a priming event first where the
    /// version has them); false when the session already has its GET stream open (one per session, as the
    /// Python SDK) or has ended.
    public func openGetStream(_ stream: any EventStream) -> Bool {
        let priming = sendsPrimingEvents
        return state.withLockedValue { state in
            guard !state.ended, state.getStream == nil else { return false }
            let number = state.nextStreamNumber
            state.nextStreamNumber += 1
            state.getStream = stream
            state.getStreamNumber = number
            state.getStreamLastEvent = 0
            if priming {
                state.getStreamLastEvent = 1
                let event = ReplayEvent(id: SSEEventID(stream: number, event: 1), data: [])
                state.replay.record(event)
                stream.send(event)
            }
            return true
        }
    }

    /// Resumes the stream `id` names on `stream`: queues its events after `id`, then either makes `stream` the
    /// session's GET stream (closing the connection it replaces, which the client has evidently lost), or, for
    /// a POST stream, ends `stream` after the replay when the POST's request is over, else has the rest of that
    /// request's events (up to its response) follow on `stream`. Never another stream's events.
    public func resume(after id: SSEEventID, on stream: any EventStream) -> Resumption {
        let (outcome, replaced) = state.withLockedValue { state -> (Resumption, (any ServerStream)?) in
            guard !state.ended, case .stream(let events, let missed, let finished) = state.replay.replay(after: id) else {
                return (.unknownStream, nil)
            }
            if id.stream == state.getStreamNumber {
                let previous = state.getStream
                state.getStream = stream
                for event in events { stream.send(event) }
                return (.resumed(replayed: events.count, missed: missed, finished: false, getStream: true), previous)
            }
            if finished, events.isEmpty { return (.nothingLeft, nil) }
            for event in events { stream.send(event) }
            if finished { return (.resumed(replayed: events.count, missed: missed, finished: true, getStream: false), nil) }
            let previous = state.followers.updateValue(stream, forKey: id.stream)
            return (.resumed(replayed: events.count, missed: missed, finished: false, getStream: false), previous)
        }
        replaced?.close()
        if case .resumed(_, _, true, _) = outcome { stream.close() }
        return outcome
    }

    /// An event a POST stream just sent: kept for resumption, and passed on to a GET that resumed that stream.
    public func postStreamEvent(_ event: ReplayEvent) {
        state.withLockedValue { state in
            state.replay.record(event)
            (state.followers[event.id.stream] as? any EventStream)?.send(event)
        }
    }

    /// A POST stream has ended (its response, or a cancellation): a GET following it ends too.
    public func postStreamFinished(_ number: Int) {
        let follower = state.withLockedValue { state -> (any ServerStream)? in
            state.replay.finish(stream: number)
            return state.followers.removeValue(forKey: number)
        }
        follower?.close()
    }

    /// A server-initiated message on the session's Streamable HTTP GET stream, numbered and kept for
    /// resumption: true when sent or queued for a resumption, false when dropped (no connection and nothing
    /// kept); nil when the session has no such stream (the legacy HTTP+SSE stream, stdio, or no GET yet).
    func publishOnGetStream(_ message: [UInt8]) -> Bool? {
        state.withLockedValue { state -> Bool? in
            guard !state.ended, let number = state.getStreamNumber else { return nil }
            let connection = state.getStream as? any EventStream
            guard connection != nil || state.replay.isEnabled else { return false }
            state.getStreamLastEvent += 1
            let event = ReplayEvent(id: SSEEventID(stream: number, event: state.getStreamLastEvent), data: message)
            state.replay.record(event)
            connection?.send(event)
            return true
        }
    }

    /// Removes and returns the GETs following POST streams (the session ends, or the gateway drains).
    func takeFollowers() -> [any ServerStream] {
        state.withLockedValue { state in
            defer { state.followers.removeAll() }
            return Array(state.followers.values)
        }
    }
}

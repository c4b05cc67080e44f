import GatewayCore
import GatewayObservability
import NIOConcurrencyHelpers
import NIOCore

/// What one replica holds for one session beyond its sealed claims: requests in flight (for cancellation),
/// the server-to-client GET stream, and counters for SSE event ids. Thread-safe: a session's requests may
/// arrive on several connections at once.
public final class SessionState: Sendable {
    public let id: String
    public let claims: SessionClaims
    /// A short digest of the id, for logs (the id itself is a bearer credential for the session).
    public let logID: String
    /// `streamable_http`, `sse` or `stdio`: the label of `mcp_sessions_active` / `mcp_sessions_total`.
    public let transport: String
    /// Requests relayed from backends awaiting this client's answer, and its `logging/setLevel` level.
    let clientRequests = ClientRequestTable()
    let state = NIOLockedValueBox(Mutable())

    struct Mutable {
        var inFlight: [RequestID: ToolCallExecution] = [:]
        var getStream: (any ServerStream)?
        var nextStreamNumber = 1
        var initialized = false
        var ended = false
        /// Per exposed tool, the last failure an agent could recover from, and when (agent-layer metrics).
        var recentFailures: [String: (kind: AgentRecovery, at: NIODeadline)] = [:]
        /// Resumability (SessionResumption.swift): what went out on the session's SSE streams, the number of
        /// its current GET stream and that stream's last event number, and GETs resuming POST streams.
        var replay = SessionReplayLog(limits: .init(eventsPerStream: 0))
        var getStreamNumber: Int?
        var getStreamLastEvent = 0
        var followers: [Int: any ServerStream] = [:]
    }

    /// How long after a failure a success of the same tool still counts as recovering from it (CONTRACT.md).
    static let recoveryWindow = TimeAmount.seconds(60)

    /// - Parameter replayBuffer: `sessions.replay_buffer`, the events kept per SSE stream for `Last-Event-ID`.
    public init(id: String, claims: SessionClaims, transport: String = "streamable_http", replayBuffer: Int = 0) {
        self.id = id
        self.claims = claims
        self.logID = SessionLogID.short(id)
        self.transport = transport
        state.withLockedValue { state in
            state.replay = SessionReplayLog(limits: .init(eventsPerStream: replayBuffer))
            // Stream numbers start at random, so an event id from another replica's copy of this session (or
            // from before it was rebuilt from its sealed id) names no stream here instead of the wrong one.
            state.nextStreamNumber = Int.random(in: 1...(1 << 31))
        }
    }

    /// Remembers failures an agent can recover from and reports a recovery when the same tool then succeeds
    /// within `recoveryWindow`: invalid arguments then success is a self-correction; a backend error or
    /// timeout then success is a retry recovery. Tool errors (`isError`) and refusals by policy are neither.
    func noteToolOutcome(tool: String, _ outcome: ToolCallOutcome, validationRefused: Bool, now: NIODeadline) -> AgentRecovery? {
        state.withLockedValue { state in
            switch outcome {
            case .rejected where validationRefused:
                state.recentFailures[tool] = (.selfCorrection, now)
            case .error, .timeout:
                state.recentFailures[tool] = (.retryRecovery, now)
            case .ok:
                guard !state.recentFailures.isEmpty, let failure = state.recentFailures.removeValue(forKey: tool) else { return nil }
                return now - failure.at <= Self.recoveryWindow ? failure.kind : nil
            default:
                break
            }
            if state.recentFailures.count > 256 {
                state.recentFailures = state.recentFailures.filter { now - $0.value.at <= Self.recoveryWindow }
            }
            return nil
        }
    }

    public var protocolVersion: ProtocolVersion { claims.protocolVersion }

    /// A number for a new stream of this session; SSE event ids embed it so they are unique across the
    /// session's streams and say which stream they belong to (transports#resumability-and-redelivery).
    public func nextStreamNumber() -> Int {
        state.withLockedValue { state in
            defer { state.nextStreamNumber += 1 }
            return state.nextStreamNumber
        }
    }

    public func markInitialized() { state.withLockedValue { $0.initialized = true } }

    /// Requests of this session still being served.
    public var inFlightCount: Int { state.withLockedValue { $0.inFlight.count } }

    /// Registers a call under the client's request id; false when that id is already in flight (a requester
    /// never reuses an id within a session, MUST item 5).
    func register(_ id: RequestID, _ execution: ToolCallExecution) -> Bool {
        state.withLockedValue { state in
            guard !state.ended, state.inFlight[id] == nil else { return false }
            state.inFlight[id] = execution
            return true
        }
    }

    func unregister(_ id: RequestID, _ execution: ToolCallExecution) {
        state.withLockedValue { state in
            if state.inFlight[id] === execution { state.inFlight[id] = nil }
        }
    }

    func execution(for id: RequestID) -> ToolCallExecution? {
        state.withLockedValue { $0.inFlight[id] }
    }

    /// Attaches the session's GET stream; false if one is already open (one per session, as the Python SDK).
    public func attachGetStream(_ stream: any ServerStream) -> Bool {
        state.withLockedValue { state in
            guard !state.ended, state.getStream == nil else { return false }
            state.getStream = stream
            return true
        }
    }

    public func detachGetStream(_ stream: any ServerStream) {
        state.withLockedValue { state in
            if state.getStream === stream { state.getStream = nil }
            state.followers = state.followers.filter { $0.value !== stream }
        }
    }

    /// Calls of this session still in flight (a drain that ran out of `server.shutdown_grace` answers them).
    var executionsInFlight: [ToolCallExecution] { state.withLockedValue { Array($0.inFlight.values) } }

    /// Ends the session's GET stream, telling the client when to reconnect (an SSE `retry:` field,
    /// 2025-11-25/basic/transports#resumability-and-redelivery); the session itself goes on.
    /// Sends a server-initiated message on the session's GET stream (or the stdio pipe); false when the session
    /// has no stream open to carry it (the client then sees the change at its next list request). A Streamable
    /// HTTP GET stream whose connection dropped still takes it into the replay buffer, for the client to get
    /// when it resumes with `Last-Event-ID` (true: queued, as digest §2.4 asks of a resumable stream).
    func sendToClient(_ message: [UInt8]) -> Bool {
        if let handled = publishOnGetStream(message) { return handled }
        guard let stream = state.withLockedValue({ $0.ended ? nil : $0.getStream }) else { return false }
        stream.send(message)
        return true
    }

    func endGetStream(reconnectAfter delay: Duration) {
        let stream = state.withLockedValue { state -> (any ServerStream)? in
            defer { state.getStream = nil }
            return state.getStream
        }
        stream?.close(reconnectAfter: delay)
        for follower in takeFollowers() { follower.close(reconnectAfter: delay) }
    }

    /// The session is over: close its stream and cancel what it has in flight.
    func end() {
        let (stream, executions) = state.withLockedValue { state -> ((any ServerStream)?, [ToolCallExecution]) in
            state.ended = true
            defer {
                state.getStream = nil
                state.inFlight.removeAll()
                state.replay.removeAll()
            }
            return (state.getStream, Array(state.inFlight.values))
        }
        stream?.close()
        for follower in takeFollowers() { follower.close() }
        for execution in executions { execution.cancel(reason: "the session ended") }
        clientRequests.end()
    }
}

/// A server-to-client stream of a session (the GET stream), closed when the session ends.
public protocol ServerStream: AnyObject, Sendable {
    /// A server-initiated message (a notification such as `notifications/tools/list_changed`).
    func send(_ message: [UInt8])
    func close()
    /// Ends the stream with a hint of when to reconnect (the gateway is shutting down).
    func close(reconnectAfter delay: Duration)
}

extension ServerStream {
    public func close(reconnectAfter delay: Duration) { close() }
}

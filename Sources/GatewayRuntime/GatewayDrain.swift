import GatewayCore

/// Draining before a shutdown (issue 7 item 5; docs/operations.md, "Drain and restart"): the transports stop
/// taking work, the calls in flight get up to `server.shutdown_grace` to finish, and whatever is still running
/// after it is answered with an error, so no client waits for a response that never comes.
extension Gateway {
    /// From now on `/readyz` is 503, `initialize` is refused (`InitializeOutcome.draining`) and the transports
    /// refuse new requests; the calls already in flight go on.
    public func beginDrain() {
        draining.withLockedValue { $0 = true }
    }

    /// `tools/call` requests dispatched to a backend (or queued at its concurrency gate) and not yet answered.
    public var callsInFlightCount: Int {
        callsInFlight.values.reduce(0) { $0 + $1.value }
    }

    /// Ends every open GET stream with an SSE `retry:` hint so its client reconnects, to another replica once
    /// the load balancer has seen this one's `/readyz` fail (2025-11-25/basic/transports#listening-for-messages-from-the-server).
    public func endServerStreams(reconnectAfter delay: Duration) {
        for session in liveSessions { session.endGetStream(reconnectAfter: delay) }
    }

    /// Answers every call still in flight with -32001 naming its backend, and cancels it at the backend
    /// (`notifications/cancelled` to a stdio backend). Returns how many there were.
    @discardableResult
    public func abortCallsInFlight(grace: Duration) -> Int {
        var aborted = 0
        for session in liveSessions {
            for execution in session.executionsInFlight {
                aborted += 1
                execution.abort(JSONRPCError(
                    code: JSONRPCErrorCode.backendUnavailable,
                    message: "The gateway is shutting down: the call to backend '\(execution.backendName)' did not finish within server.shutdown_grace (\(DurationFormat.describe(grace))); retry it on another replica",
                    data: ["backend": .string(execution.backendName)]
                ))
            }
        }
        return aborted
    }

    private var liveSessions: [SessionState] {
        sessions.withLockedValue { table in table.entries.values.map(\.attachment) }
    }
}

import DequeModule

/// `backends.<n>.max_concurrency` with its bounded `queue`: at most `maxConcurrency` calls run at the backend;
/// up to `queueCapacity` more wait; beyond that a call is refused ("backend saturated", -32001).
///
/// Fair across sessions: waiting calls sit in one FIFO queue per session, and a freed slot goes to the sessions
/// in round-robin order (the session served longest ago first), so a session that queued a hundred calls delays
/// another session's one call by at most one call per busy session, not by a hundred. Within a session, calls
/// keep their order. The queue bound is global (it bounds memory), and a session may use all of it when no
/// other session waits.
///
/// Pure: the shell keeps it behind a lock and runs whatever ticket `release` hands back.
public struct ConcurrencyLimiter<Ticket: Hashable & Sendable>: Sendable {
    public enum Admission: Sendable, Equatable {
        /// Run now: a slot is taken; call `release` when the call ends.
        case run
        /// Wait: `release` hands the ticket back when a slot frees for it; `cancel` removes it.
        case queued
        /// At `max_concurrency` with a full queue.
        case rejected
    }

    public let maxConcurrency: Int
    public let queueCapacity: Int
    public private(set) var inflight = 0
    public private(set) var queued = 0
    private var queues: [String: Deque<Ticket>] = [:]
    /// Sessions with waiting calls, in the order they will be served.
    private var turn: Deque<String> = []
    private var sessionOfTicket: [Ticket: String] = [:]

    public init(maxConcurrency: Int, queueCapacity: Int) {
        precondition(maxConcurrency >= 1 && queueCapacity >= 0, "max_concurrency >= 1, queue >= 0")
        self.maxConcurrency = maxConcurrency
        self.queueCapacity = queueCapacity
    }

    public mutating func acquire(session: String, ticket: Ticket) -> Admission {
        if inflight < maxConcurrency {
            inflight += 1
            return .run
        }
        guard queued < queueCapacity else { return .rejected }
        queued += 1
        sessionOfTicket[ticket] = session
        if queues[session, default: []].isEmpty { turn.append(session) }
        queues[session, default: []].append(ticket)
        return .queued
    }

    /// A running call ended. Returns the waiting call that now holds its slot (run it), or nil when none waits.
    public mutating func release() -> Ticket? {
        guard let session = turn.popFirst() else {
            inflight = max(0, inflight - 1)
            return nil
        }
        let ticket = queues[session]!.removeFirst()
        if queues[session]!.isEmpty {
            queues[session] = nil
        } else {
            turn.append(session)
        }
        queued -= 1
        sessionOfTicket[ticket] = nil
        return ticket
    }

    /// A waiting call gave up (timed out or cancelled): it leaves the queue. False when it was not waiting
    /// (already running, or unknown).
    @discardableResult
    public mutating func cancel(ticket: Ticket) -> Bool {
        guard let session = sessionOfTicket.removeValue(forKey: ticket), var queue = queues[session],
              let index = queue.firstIndex(of: ticket) else { return false }
        queue.remove(at: index)
        queued -= 1
        if queue.isEmpty {
            queues[session] = nil
            if let position = turn.firstIndex(of: session) { turn.remove(at: position) }
        } else {
            queues[session] = queue
        }
        return true
    }
}

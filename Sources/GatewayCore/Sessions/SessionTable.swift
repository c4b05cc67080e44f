/// The per-replica table of live sessions (issue "spine" §3), a pure state machine over a monotonic clock in
/// nanoseconds. It holds what cannot travel in the sealed id: activity times, whether a session is busy
/// (requests in flight or an open stream), and an opaque attachment the I/O shell keeps per session (streams,
/// pending requests, per-session backend processes).
///
/// Policy: at most `capacity` sessions; at the cap the least recently active idle session is evicted; when none
/// is idle a new session is refused (the shell answers 503 with Retry-After). Sessions idle longer than
/// `idleTimeout` expire. Ended ids are remembered (tombstones) so that a DELETEd or expired id is a 404 here
/// even though its seal is still valid.
public struct SessionTable<Attachment> {
    public struct Entry {
        public var claims: SessionClaims
        public var attachment: Attachment
        public var lastActivity: Int64
        /// Requests in flight plus open streams; a busy session is never idle.
        public var busy: Int
    }

    public enum Admission {
        /// Admitted; `evicted` were removed to make room and must be torn down by the shell.
        case admitted(evicted: [(id: String, attachment: Attachment)])
        /// At the cap with no idle session to evict.
        case full(retryAfterSeconds: Int)
    }

    public enum Lookup {
        case live(Attachment)
        /// Not known here but the seal is valid: it was re-created from its claims (another replica's session,
        /// or one from before a restart).
        case resumed(Attachment, evicted: [(id: String, attachment: Attachment)])
        /// Ended on this replica (deleted, expired or evicted): a 404.
        case ended
        /// Unknown here and no room to resume it.
        case full(retryAfterSeconds: Int)
    }

    public let capacity: Int
    public let idleTimeout: Int64
    public private(set) var entries: [String: Entry] = [:]
    private var tombstones: [String: Int64] = [:]
    private let tombstoneLifetime: Int64

    public init(capacity: Int, idleTimeout: Duration, tombstoneLifetime: Duration = .seconds(86_400)) {
        self.capacity = max(1, capacity)
        self.idleTimeout = idleTimeout.nanoseconds
        self.tombstoneLifetime = tombstoneLifetime.nanoseconds
    }

    public var count: Int { entries.count }

    public func isIdle(_ entry: Entry) -> Bool { entry.busy == 0 }

    public mutating func admit(id: String, claims: SessionClaims, attachment: Attachment, now: Int64) -> Admission {
        var evicted: [(id: String, attachment: Attachment)] = []
        if entries.count >= capacity {
            guard let victim = oldestIdle() else { return .full(retryAfterSeconds: retryAfterSeconds(now: now)) }
            if let removed = end(victim, now: now) { evicted.append((victim, removed)) }
        }
        entries[id] = Entry(claims: claims, attachment: attachment, lastActivity: now, busy: 0)
        return .admitted(evicted: evicted)
    }

    /// Finds a session and marks it active; re-creates one this replica has not seen from its opened claims.
    public mutating func lookup(id: String, claims: SessionClaims, now: Int64, makeAttachment: () -> Attachment) -> Lookup {
        if var entry = entries[id] {
            entry.lastActivity = now
            entries[id] = entry
            return .live(entry.attachment)
        }
        if tombstones[id] != nil { return .ended }
        let attachment = makeAttachment()
        switch admit(id: id, claims: claims, attachment: attachment, now: now) {
        case .admitted(let evicted): return .resumed(attachment, evicted: evicted)
        case .full(let retryAfter): return .full(retryAfterSeconds: retryAfter)
        }
    }

    /// Adds `delta` to the busy count (a request or stream begins: +1; ends: -1) and refreshes activity.
    public mutating func adjustBusy(id: String, by delta: Int, now: Int64) {
        guard var entry = entries[id] else { return }
        entry.busy = max(0, entry.busy + delta)
        entry.lastActivity = now
        entries[id] = entry
    }

    /// Ends a session (DELETE, or teardown); returns its attachment for the shell to release.
    @discardableResult
    public mutating func end(_ id: String, now: Int64) -> Attachment? {
        tombstones[id] = now
        return entries.removeValue(forKey: id)?.attachment
    }

    /// Removes sessions idle for longer than `idleTimeout` and forgets old tombstones.
    public mutating func expire(now: Int64) -> [(id: String, attachment: Attachment)] {
        var expired: [(id: String, attachment: Attachment)] = []
        for (id, entry) in entries where entry.busy == 0 && now - entry.lastActivity >= idleTimeout {
            expired.append((id, entry.attachment))
        }
        for (id, _) in expired { end(id, now: now) }
        if tombstones.count > 0 {
            tombstones = tombstones.filter { now - $0.value < tombstoneLifetime }
        }
        return expired
    }

    public func claims(of id: String) -> SessionClaims? { entries[id]?.claims }

    private func oldestIdle() -> String? {
        var best: (id: String, at: Int64)?
        for (id, entry) in entries where entry.busy == 0 {
            if best == nil || entry.lastActivity < best!.at { best = (id, entry.lastActivity) }
        }
        return best?.id
    }

    /// How long until the first idle slot could appear: the idle timeout of the least recently active session,
    /// bounded to something a client should reasonably wait.
    private func retryAfterSeconds(now: Int64) -> Int {
        let oldest = entries.values.map(\.lastActivity).min() ?? now
        let waitNanos = max(0, idleTimeout - (now - oldest))
        return min(60, max(1, Int(waitNanos / 1_000_000_000)))
    }
}

extension SessionTable: Sendable where Attachment: Sendable {}
extension SessionTable.Entry: Sendable where Attachment: Sendable {}

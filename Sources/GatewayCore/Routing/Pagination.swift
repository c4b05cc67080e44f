/// Seals and opens the gateway's pagination cursors. The core is pure (no crypto library), so the shell
/// supplies the implementation (HMAC-SHA256 in GatewayRuntime); a cursor it cannot open (tampered, sealed
/// with another key, garbage) is refused with -32602.
public protocol CursorSealing: Sendable {
    func seal(_ payload: [UInt8]) -> String
    func open(_ cursor: String) -> [UInt8]?
}

/// The gateway's own cursors over its merged lists (2025-11-25/server/utilities/pagination): clients treat
/// them as opaque; the gateway puts in them which list, the list's generation (a hash of its content) and the
/// offset of the next page, and seals them, so a tampered cursor, or one issued before the list changed, is
/// -32602 ("Invalid params") rather than a silently wrong page.
public struct Pagination: Sendable {
    /// Items per page (`tools.page_size`).
    public var pageSize: Int
    public var sealer: (any CursorSealing)?

    public init(pageSize: Int, sealer: (any CursorSealing)?) {
        self.pageSize = max(1, pageSize)
        self.sealer = sealer
    }

    /// Every list on one page; no cursor is issued and any cursor is refused.
    public static let onePage = Pagination(pageSize: Int.max, sealer: nil)

    /// One page of `items`: the slice and the cursor for the next page (nil on the last page), or the error
    /// for a cursor that is not one of ours for this list as it is now.
    public func page<Item>(_ items: [Item], list: String, generation: UInt64, cursor: JSONValue?) -> Result<(items: ArraySlice<Item>, next: String?), JSONRPCError> {
        var offset = 0
        switch cursor {
        case nil, .null?:
            break
        case .string(let text)?:
            guard let sealer, let payload = sealer.open(text), let decoded = Self.decode(payload), decoded.list == list else {
                return .failure(.invalidParams("Invalid cursor for \(list): pass back the nextCursor of the previous page unchanged, or omit it to start over"))
            }
            guard decoded.generation == generation else {
                return .failure(.invalidParams("Stale cursor for \(list): the list changed since this cursor was issued; list again from the first page"))
            }
            guard decoded.offset <= items.count else {
                return .failure(.invalidParams("Invalid cursor for \(list): it points past the end of the list"))
            }
            offset = decoded.offset
        case let other?:
            return .failure(.invalidParams("Invalid cursor for \(list): params.cursor must be a string, got \(other.typeName)"))
        }
        // Without a sealer no cursor can be issued, so the whole rest is one page.
        let size = sealer == nil ? Int.max : pageSize
        let end = size >= items.count - offset ? items.count : offset + size
        let next: String? = end < items.count ? sealer.map { $0.seal(Self.encode(list: list, generation: generation, offset: end)) } : nil
        return .success((items[offset..<end], next))
    }

    static func encode(list: String, generation: UInt64, offset: Int) -> [UInt8] {
        Array("\(list)\n\(String(generation, radix: 16))\n\(offset)".utf8)
    }

    static func decode(_ payload: [UInt8]) -> (list: String, generation: UInt64, offset: Int)? {
        let fields = String(decoding: payload, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard fields.count == 3, let generation = UInt64(fields[1], radix: 16), let offset = Int(fields[2]), offset >= 0 else { return nil }
        return (String(fields[0]), generation, offset)
    }
}

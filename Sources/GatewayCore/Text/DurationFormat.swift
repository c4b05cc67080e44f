/// Human-readable durations for messages ("3s", "250ms", "1m30s"), the inverse of the config syntax.
public enum DurationFormat {
    public static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 != 0 || milliseconds < 1000 { return "\(milliseconds)ms" }
        let total = milliseconds / 1000
        if total % 3600 == 0 { return "\(total / 3600)h" }
        if total % 60 == 0 { return "\(total / 60)m" }
        if total > 60 { return "\(total / 60)m\(total % 60)s" }
        return "\(total)s"
    }
}

extension Duration {
    /// Whole nanoseconds, saturating; convenient for clocks kept as integers in the pure core.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return product &+ attoseconds / 1_000_000_000
    }
}

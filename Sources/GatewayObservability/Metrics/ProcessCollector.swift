import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// The standard `process_*` metrics (Prometheus client conventions), read from `/proc/self` at scrape time
/// only, so they cost nothing between scrapes. On systems without `/proc` they stay at zero.
final class ProcessCollector: Sendable {
    private struct Gauges: Sendable {
        let residentMemory: Gauge
        let virtualMemory: Gauge
        let cpuSeconds: Gauge
        let openFDs: Gauge
        let maxFDs: Gauge
        let startTime: Gauge
    }

    private let gauges = NIOLockedValueBox<Gauges?>(nil)

    func register(in registry: PrometheusCollectorRegistry) {
        let made = Gauges(
            residentMemory: registry.gauge(name: "process_resident_memory_bytes", labels: [], help: "Resident memory size in bytes."),
            virtualMemory: registry.gauge(name: "process_virtual_memory_bytes", labels: [], help: "Virtual memory size in bytes."),
            // A gauge carrying a counter's value: the registry's counters are integers, CPU time is not.
            cpuSeconds: registry.gauge(name: "process_cpu_seconds_total", labels: [], help: "Total user and system CPU time spent in seconds."),
            openFDs: registry.gauge(name: "process_open_fds", labels: [], help: "Number of open file descriptors."),
            maxFDs: registry.gauge(name: "process_max_fds", labels: [], help: "Maximum number of open file descriptors."),
            startTime: registry.gauge(name: "process_start_time_seconds", labels: [], help: "Start time of the process since the Unix epoch in seconds.")
        )
        gauges.withLockedValue { $0 = made }
    }

    func update() {
        guard let gauges = gauges.withLockedValue({ $0 }) else { return }
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Double(fields[0]), let resident = Double(fields[1]) {
                gauges.virtualMemory.set(pages * pageSize)
                gauges.residentMemory.set(resident * pageSize)
            }
        }
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
            // Fields after the command name, which may contain spaces: state is field 3, utime 14, stime 15, starttime 22.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 19, let user = Double(fields[11]), let system = Double(fields[12]), let start = Double(fields[19]), ticks > 0 {
                gauges.cpuSeconds.set((user + system) / ticks)
                if let bootTime = Self.bootTime { gauges.startTime.set(bootTime + start / ticks) }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            gauges.openFDs.set(Double(max(0, entries.count - 1)))  // minus the descriptor that lists the directory
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { gauges.maxFDs.set(Double(limit.rlim_cur)) }
    }

    /// `btime` from /proc/stat: the boot time, to which a process's start time in ticks is relative.
    private static let bootTime: Double? = {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }()
}

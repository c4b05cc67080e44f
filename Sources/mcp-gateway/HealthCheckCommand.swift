import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mcp-gateway healthcheck [--url URL] [--timeout DURATION]`: one plain HTTP/1.0 GET, exit 0 when the answer
/// is 200 and 1 otherwise. It exists for the container image's HEALTHCHECK: the slim runtime image has no curl
/// or wget, and a probe must not pull in an HTTP client library. HTTP/1.0 (RFC 1945 §5, §6) keeps the exchange
/// to one request and one response ended by the server closing the connection: no chunked decoding, no
/// keep-alive. Only `http://` is supported: the probe targets the gateway on loopback inside its own container.
struct HealthCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Probe a running gateway's /healthz with one HTTP GET: exit 0 on 200, else 1.",
        discussion: "For container HEALTHCHECKs in images without curl. Plain http:// only (the probe runs beside the gateway)."
    )

    @Option(name: .long, help: "The URL to GET (http:// only).")
    var url = "http://127.0.0.1:8080/healthz"

    @Option(name: .long, help: "Give up after this long: connect, send and receive together (e.g. 500ms, 3s).")
    var timeout = "3s"

    func validate() throws {
        guard HealthCheckTarget(url: url) != nil else {
            throw ValidationError("--url \"\(url)\" is not an http://host[:port][/path] URL (https is not supported: probe the gateway on loopback)")
        }
        guard let seconds = Self.seconds(timeout), seconds > 0 else {
            throw ValidationError("--timeout \"\(timeout)\" is not a positive duration such as 500ms or 3s")
        }
    }

    func run() throws {
        guard let target = HealthCheckTarget(url: url), let seconds = Self.seconds(timeout) else { throw ExitCode(2) }
        switch HealthProbe.get(target, timeoutSeconds: seconds) {
        case .success(let status) where status == 200:
            print("healthy: GET \(url) answered 200")
        case .success(let status):
            print("unhealthy: GET \(url) answered \(status)")
            throw ExitCode(1)
        case .failure(let failure):
            print("unhealthy: GET \(url): \(failure.message)")
            throw ExitCode(1)
        }
    }

    /// `500ms`, `3s`, `1m` or a bare number of seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [(suffix: String, scale: Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
        for unit in units where text.hasSuffix(unit.suffix) {
            return Double(text.dropLast(unit.suffix.count))
                .flatMap { $0.isFinite ? $0 * unit.scale : nil }
        }
        return Double(text).flatMap { $0.isFinite ? $0 : nil }
    }
}

/// The parts of an `http://host[:port][/path]` URL the probe needs.
struct HealthCheckTarget: Equatable {
    var host: String
    var port: UInt16
    var path: String

    init?(url: String) {
        let scheme = "http://"
        guard url.lowercased().hasPrefix(scheme) else { return nil }
        let rest = url.dropFirst(scheme.count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        let remainder = String(rest.dropFirst(authority.count))
        path = remainder.isEmpty ? "/" : (remainder.hasPrefix("/") ? remainder : "/" + remainder)
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        // A bracketed IPv6 literal (RFC 3986 §3.2.2), else host[:port].
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.isEmpty {
                port = 80
            } else {
                guard after.hasPrefix(":"), let parsed = UInt16(after.dropFirst()), parsed > 0 else { return nil }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let parsed = UInt16(authority[authority.index(after: colon)...]), parsed > 0 else { return nil }
            port = parsed
        } else {
            host = String(authority)
            port = 80
        }
        if host.isEmpty || path.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " }) { return nil }
    }

    /// The `Host` header value (RFC 9110 §7.2): IPv6 literals keep their brackets.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }
}

/// One HTTP/1.0 GET over a blocking POSIX socket, every step bounded by the same deadline.
enum HealthProbe {
    struct Failure: Error {
        var message: String
    }

    static func get(_ target: HealthCheckTarget, timeoutSeconds: Double) -> Result<Int, Failure> {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var results: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(target.host, String(target.port), &hints, &results)
        guard resolved == 0, let first = results else {
            return .failure(Failure(message: "cannot resolve \(target.host): \(String(cString: gai_strerror(resolved)))"))
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address for \(target.host)"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let address = candidate {
            candidate = address.pointee.ai_next
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .failure(Failure(message: "timed out after \(timeoutSeconds)s")) }
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
            if fd < 0 {
                lastError = "socket: \(String(cString: strerror(errno)))"
                continue
            }
            defer { close(fd) }
            setTimeout(fd, seconds: remaining)
            // connect(2) honours SO_SNDTIMEO on Linux, so a black-holed address cannot hang the probe.
            if connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
                let reason = errno == EINPROGRESS ? "timed out after \(timeoutSeconds)s" : String(cString: strerror(errno))
                lastError = "connect to \(target.host) port \(target.port): \(reason)"
                continue
            }
            return exchange(fd, target: target, deadline: deadline, timeoutSeconds: timeoutSeconds)
        }
        return .failure(Failure(message: lastError))
    }

    private static func exchange(_ fd: Int32, target: HealthCheckTarget, deadline: Date, timeoutSeconds: Double) -> Result<Int, Failure> {
        let request = Array("GET \(target.path) HTTP/1.0\r\nHost: \(target.hostHeader)\r\nUser-Agent: mcp-gateway-healthcheck\r\nAccept: */*\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let written = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, noSignal) }
            if written <= 0 {
                return .failure(Failure(message: "send: \(String(cString: strerror(errno)))"))
            }
            sent += written
        }
        // The status line is all that is needed (RFC 9112 §4): read until its end, the server's close, or the deadline.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !received.contains(UInt8(ascii: "\n")) && received.count < 8192 {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .failure(Failure(message: "timed out after \(timeoutSeconds)s waiting for the response")) }
            setTimeout(fd, seconds: remaining)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "timed out after \(timeoutSeconds)s waiting for the response" : "recv: \(String(cString: strerror(errno)))"
                return .failure(Failure(message: reason))
            }
            if count == 0 { break }
            received.append(contentsOf: buffer[0..<count])
        }
        guard let status = statusCode(received) else {
            return .failure(Failure(message: "not an HTTP response"))
        }
        return .success(status)
    }

    /// The status code of an `HTTP/1.x NNN reason` status line.
    static func statusCode(_ bytes: [UInt8]) -> Int? {
        let line = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]) else { return nil }
        return code
    }

    /// A peer that closed before the request was sent must fail the probe, not kill it with SIGPIPE.
    #if canImport(Glibc)
    private static let noSignal = Int32(MSG_NOSIGNAL)
    #else
    private static let noSignal: Int32 = 0
    #endif

    private static func setTimeout(_ fd: Int32, seconds: Double) {
        let bounded = max(seconds, 0.001)
        let whole = bounded.rounded(.down)
        let micros = (bounded - whole) * 1_000_000
        #if canImport(Glibc)
        var value = timeval(tv_sec: Int(whole), tv_usec: Int(micros))
        #else
        var value = timeval(tv_sec: Int(whole), tv_usec: Int32(micros))
        #endif
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}

import Foundation
import GatewayConfig
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Holds the TLS server context built from `server.tls` and replaces it when the files change or SIGHUP
/// arrives, so a renewed certificate is served without a restart.
///
/// Each new connection takes the context current at accept time (`context`, one uncontended lock per
/// connection, never per request); a live connection keeps the context it was accepted with, because its
/// `NIOSSLHandler` holds its own reference. A reload that fails (unreadable file, bad PEM, key not matching the
/// certificate, a half-written file during rotation) keeps the previous context and logs why; the next change
/// to any of the files, or the next SIGHUP, tries again.
public final class TLSContextProvider: Sendable {
    /// ALPN protocols offered, preferred first (RFC 7301; "h2" is RFC 9113 §3.2, "http/1.1" RFC 9112).
    public static let applicationProtocols = ["h2", "http/1.1"]

    public let configuration: TLSConfig
    private let logger: Logger
    private let current: Mutex<NIOSSLContext>
    /// The files' identities when the current context was last built or tried; held while a reload builds, so
    /// a SIGHUP and a file change never build at once.
    private let reloadState: Mutex<[FileStamp?]>

    /// Builds the first context; its failure is a startup error naming the key whose file is at fault.
    public init(configuration: TLSConfig, logger: Logger) throws(TLSSetupError) {
        self.configuration = configuration
        self.logger = logger
        let stamps = Self.stamps(of: configuration)
        let loaded = try Self.makeContext(configuration)
        self.current = Mutex(loaded.context)
        self.reloadState = Mutex(stamps)
        Self.logLoaded(loaded, configuration: configuration, trigger: "startup", logger: logger)
    }

    /// The context for a connection being accepted now.
    public var context: NIOSSLContext {
        current.withLock { $0 }
    }

    /// Rebuilds the context from the files; on failure keeps the current one. Returns whether it was replaced.
    @discardableResult
    public func reload(trigger: String) -> Bool {
        reloadState.withLock { stamps in
            stamps = Self.stamps(of: configuration)
            return rebuild(trigger: trigger)
        }
    }

    /// Rebuilds the context if any file's identity (device, inode, size, modification time, after following
    /// symbolic links, which is how Kubernetes swaps a mounted secret) changed since the last attempt.
    @discardableResult
    public func reloadIfFilesChanged() -> Bool {
        reloadState.withLock { stamps in
            let now = Self.stamps(of: configuration)
            guard now != stamps else { return false }
            stamps = now
            return rebuild(trigger: "file change")
        }
    }

    /// Polls the files every `pollInterval` and reloads on each signal from `reloads` (SIGHUP), until the
    /// service group shuts down. Live connections are never touched.
    public func watch(reloads: AsyncStream<Void>?, pollInterval: Duration = .seconds(2)) async {
        await withTaskGroup(of: Void.self) { group in
            if let reloads {
                group.addTask {
                    for await _ in reloads { self.reload(trigger: "SIGHUP") }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: pollInterval) } catch { return }
                    self.reloadIfFilesChanged()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func rebuild(trigger: String) -> Bool {
        do {
            let loaded = try Self.makeContext(configuration)
            current.withLock { $0 = loaded.context }
            Self.logLoaded(loaded, configuration: configuration, trigger: trigger, logger: logger)
            return true
        } catch {
            logger.error("tls reload failed; still serving the previous certificate", metadata: [
                "trigger": "\(trigger)", "error": "\(error)",
            ])
            return false
        }
    }

    // MARK: - Building a context

    struct Loaded {
        var context: NIOSSLContext
        var leaf: NIOSSLCertificate
        var chainLength: Int
    }

    static func makeContext(_ config: TLSConfig) throws(TLSSetupError) -> Loaded {
        let chain = try certificates(at: config.cert, key: "server.tls.cert")
        let keyBytes = try read(config.key, key: "server.tls.key")
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw TLSSetupError(key: "server.tls.key", file: config.key, reason: "is not an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1; passphrase-protected keys are not supported)")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        tls.minimumTLSVersion = config.minVersion == .v1_3 ? .tlsv13 : .tlsv12
        tls.applicationProtocols = applicationProtocols
        if let clientCA = config.clientCA {
            let authorities = try certificates(at: clientCA, key: "server.tls.client_ca")
            // Verify the client's chain against these roots only (not the system store); a client certificate
            // names no host to check. Their names go in the CertificateRequest (RFC 8446 §4.2.4) so a client
            // with several certificates picks the right one.
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates(authorities)
            tls.sendCANameList = true
        }
        do {
            return Loaded(context: try NIOSSLContext(configuration: tls), leaf: chain[0], chainLength: chain.count)
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw TLSSetupError(key: "server.tls.key", file: config.key, reason: "does not match the certificate in server.tls.cert (\(config.cert))")
        } catch {
            throw TLSSetupError(key: "server.tls", file: config.cert, reason: "cannot be used for TLS: \(error)")
        }
    }

    private static func certificates(at path: String, key: String) throws(TLSSetupError) -> [NIOSSLCertificate] {
        let bytes = try read(path, key: key)
        let problem = TLSSetupError(key: key, file: path, reason: "is not a PEM certificate file: expected one or more complete \"-----BEGIN CERTIFICATE-----\" blocks")
        guard let certificates = try? NIOSSLCertificate.fromPEMBytes(bytes), !certificates.isEmpty else { throw problem }
        return certificates
    }

    private static func read(_ path: String, key: String) throws(TLSSetupError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TLSSetupError(key: key, file: path, reason: "cannot be read (missing, a directory, or no permission)")
        }
        return Array(data)
    }

    private static func logLoaded(_ loaded: Loaded, configuration: TLSConfig, trigger: String, logger: Logger) {
        let expiry = Date(timeIntervalSince1970: TimeInterval(loaded.leaf.notValidAfter))
        var metadata: Logger.Metadata = [
            "trigger": "\(trigger)",
            "cert": "\(configuration.cert)",
            "serial": "\(loaded.leaf.serialNumber.map { String($0, radix: 16).leftPadded(to: 2) }.joined())",
            "not_after": "\(expiry.formatted(.iso8601))",
            "chain_length": "\(loaded.chainLength)",
            "min_version": "\(configuration.minVersion.rawValue)",
            "client_certificates": "\(configuration.clientCA == nil ? "not requested" : "required")",
        ]
        if expiry < Date() {
            metadata["problem"] = "the certificate has expired: clients will refuse it"
            logger.warning("tls certificate loaded", metadata: metadata)
        } else {
            // Logged whatever the configured level, like `listening`: which certificate is served matters.
            var announcer = logger
            announcer.logLevel = min(logger.logLevel, .info)
            announcer.info("tls certificate loaded", metadata: metadata)
        }
    }

    // MARK: - File identity

    struct FileStamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    static func stamps(of config: TLSConfig) -> [FileStamp?] {
        [config.cert, config.key, config.clientCA].compactMap { $0 }.map(stamp)
    }

    /// `stat(2)`, following symbolic links; nil when the file is missing.
    static func stamp(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        return FileStamp(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: Int(modified.tv_sec), modifiedNanoseconds: Int(modified.tv_nsec)
        )
    }
}

/// A `server.tls` file that cannot serve: the key that names it, the path, and what is wrong with it.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var file: String
    public var reason: String

    public var description: String { "\(key): \"\(file)\" \(reason)" }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Keeps a `TLSContextProvider` current for the life of the service group: file polling and SIGHUP.
public struct TLSReloadService: Service {
    public let provider: TLSContextProvider
    public let reloads: AsyncStream<Void>?

    public init(provider: TLSContextProvider, reloads: AsyncStream<Void>?) {
        self.provider = provider
        self.reloads = reloads
    }

    public func run() async {
        await provider.watch(reloads: reloads)
    }
}

import Foundation
import GatewayConfig
import GatewayCore
import Logging
import NIOCore
import NIOPosix

/// One stdio MCP server process and the gateway's client side of it (2025-11-25/basic/transports#stdio).
///
/// Many client calls are multiplexed over its pipe: each gets a fresh backend-side request id (and progress
/// token) that is mapped back to the caller, so concurrent sessions never see each other's replies
/// (MUST item 5). All mutable state is confined to `eventLoop`.
final class StdioProcess: @unchecked Sendable {
    enum State { case idle, starting, ready, stopping, exited }

    enum Pending {
        case handshake(EventLoopPromise<JSONValue>)
        case call(sink: any BackendCallSink, clientToken: JSONValue?, relay: (any ClientRelay)?)
    }

    let backendName: String
    let eventLoop: any EventLoop
    private let config: StdioBackendConfig
    let logger: Logger
    private let maximumLineLength: Int
    private(set) var state: State = .idle
    private var child: ChildProcess?
    private var channel: (any Channel)?
    private var stderrChannel: (any Channel)?
    private var nextRequestID = 1
    private var flushScheduled = false
    private var pending: [Int: Pending] = [:]
    private var exitPromise: EventLoopPromise<Void>
    private var waitingForReady: [(BackendCall, any BackendCallSink, StdioInFlight)] = []
    /// Called once on the event loop when the process is gone (crash, exit or shutdown).
    var onExit: ((ChildProcess.Exit?) -> Void)?
    /// Called on the event loop when the server says its tool list changed.
    var onToolsListChanged: (() -> Void)?
    /// Set for a process that serves one session (`isolation: session`): a server request or log message that
    /// arrives while no call is in flight still belongs to that session, reached through its last call's relay.
    var relaysToLastCaller = false
    private var lastRelay: (any ClientRelay)?
    /// Requests of the server relayed to a client and not answered yet, by the server's id: the server may
    /// cancel them (`notifications/cancelled`).
    private var relayed: [RequestID: any RelayedRequest] = [:]
    /// Called on the event loop with a `notifications/message` that no single call in flight explains.
    var onUnrelatedLog: ((JSONObject) -> Void)?
    /// Called once on the event loop when the ready process has been silent for `health.interval` and then
    /// left a `ping` unanswered for `health.timeout`; the argument says so in words. Set before `start`, it
    /// turns the health checks on; the owner decides what to do (kill and replace the process).
    var onUnresponsive: ((String) -> Void)?
    /// When the process last sent a JSON-RPC message (any reply, request or notification): proof of life,
    /// so a process that keeps talking is never pinged.
    private(set) var lastHeard = NIODeadline.now()
    private var healthTimer: Scheduled<Void>?

    private(set) var tools: [JSONObject] = []
    private(set) var serverCapabilities = JSONObject()
    /// Resources, resource templates and prompts, read at the handshake and on list_changed (StdioProcess+Lists.swift).
    var featureLists = FeatureLists()
    /// Called on the event loop with a server's `notifications/resources/list_changed`,
    /// `notifications/prompts/list_changed` or `notifications/resources/updated`.
    var onFeatureNotification: ((String, JSONObject?) -> Void)?

    var pid: Int32? { child?.pid }
    var inFlightCount: Int { pending.count }

    init(backendName: String, config: StdioBackendConfig, eventLoop: any EventLoop, logger: Logger, maximumLineLength: Int = 64 * 1024 * 1024) {
        self.backendName = backendName
        self.config = config
        self.eventLoop = eventLoop
        self.logger = logger
        self.maximumLineLength = maximumLineLength
        self.exitPromise = eventLoop.makePromise()
    }

    /// Spawns the process and performs the handshake: `initialize`, then `notifications/initialized`, then
    /// `tools/list` (following cursors) when the server has tools (2025-11-25/basic/lifecycle#initialization).
    func start(handshakeTimeout: Duration) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        state = .starting
        let child: ChildProcess
        do {
            let loop = eventLoop
            child = try ChildProcess.spawn(config) { [weak self] exit in
                guard let process = self else { return }
                loop.execute { process.processExited(exit) }
            }
        } catch {
            // Nothing was spawned, so no termination handler will run: report the exit here, so the
            // supervisor schedules the next attempt just as it does after a crash.
            logger.error("backend process could not be started", metadata: ["error": "\(error)"])
            state = .exited
            exitPromise.succeed()
            failWaiting(reason: "\(error)")
            let callback = onExit
            onExit = nil
            callback?(nil)
            return eventLoop.makeFailedFuture(error)
        }
        self.child = child
        logger.info("backend process started", metadata: ["pid": "\(child.pid)", "command": "\(config.command[0])"])
        let stdoutHandler = StdoutHandler(process: self)
        let lineLimit = maximumLineLength
        let stdoutFuture = NIOPipeBootstrap(group: eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLength: lineLimit)))
                    try channel.pipeline.syncOperations.addHandler(stdoutHandler)
                }
            }
            .takingOwnershipOfDescriptors(input: child.stdoutRead, output: child.stdinWrite)
        let stderrHandler = StderrHandler(logger: logger)
        let stderrFuture = NIOPipeBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLength: 64 * 1024)))
                    try channel.pipeline.syncOperations.addHandler(stderrHandler)
                }
            }
            .takingOwnershipOfDescriptor(input: child.stderrRead)

        return stdoutFuture.and(stderrFuture).flatMap { channels -> EventLoopFuture<JSONValue> in
            self.channel = channels.0
            self.stderrChannel = channels.1
            return self.request("initialize", params: [
                "protocolVersion": .string(ProtocolVersion.latest.rawValue),
                "capabilities": .object(RelayedServerRequest.declaredToBackends),
                "clientInfo": ["name": "mcp-gateway", "version": .string(GatewayVersion.version)],
            ])
        }
        .flatMap { result -> EventLoopFuture<Void> in
            self.serverCapabilities = result["capabilities"]?.objectValue ?? JSONObject()
            self.notify("notifications/initialized", params: nil)
            let features = self.listFeatures(FeatureLists.methods(for: self.serverCapabilities))
            guard self.serverCapabilities["tools"] != nil else { return features }
            return self.listTools(cursor: nil, accumulated: []).map { self.tools = $0 }.and(features).map { _ in }
        }
        .withTimeout(handshakeTimeout, on: eventLoop, description: "the MCP handshake with backend '\(backendName)'")
        .map {
            guard self.state == .starting else { return }
            self.state = .ready
            self.lastHeard = .now()
            self.scheduleHealthCheck()
            self.logger.info("backend ready", metadata: ["pid": "\(child.pid)", "tools": "\(self.tools.count)"])
            let waiting = self.waitingForReady
            self.waitingForReady = []
            for (call, sink, handle) in waiting { self.send(call, sink: sink, handle: handle) }
        }
        .flatMapErrorThrowing { error in
            self.logger.error("backend failed to start", metadata: ["error": "\(error)"])
            self.failWaiting(reason: "it failed to start: \(error)")
            _ = self.terminate(grace: .milliseconds(500))
            throw error
        }
    }

    /// Re-reads the tool list (after `notifications/tools/list_changed`).
    func refreshTools() -> EventLoopFuture<Void> {
        guard state == .ready else { return eventLoop.makeSucceededVoidFuture() }
        return listTools(cursor: nil, accumulated: []).map { self.tools = $0 }
    }

    private func listTools(cursor: String?, accumulated: [JSONObject]) -> EventLoopFuture<[JSONObject]> {
        var params = JSONObject()
        if let cursor { params["cursor"] = .string(cursor) }
        return request("tools/list", params: params).flatMap { result in
            var tools = accumulated
            for tool in result["tools"]?.arrayValue ?? [] {
                if let object = tool.objectValue { tools.append(object) }
            }
            if let next = result["nextCursor"]?.stringValue, !next.isEmpty, tools.count < 100_000 {
                return self.listTools(cursor: next, accumulated: tools)
            }
            return self.eventLoop.makeSucceededFuture(tools)
        }
    }

    // MARK: - Calls

    /// Sends a client call, or queues it while the handshake is still running.
    func send(_ call: BackendCall, sink: any BackendCallSink, handle: StdioInFlight) {
        eventLoop.preconditionInEventLoop()
        switch state {
        case .starting, .idle:
            waitingForReady.append((call, sink, handle))
            return
        case .stopping, .exited:
            sink.backendFinished(.error(.backendUnavailable(backendName, "its process is not running")))
            return
        case .ready:
            break
        }
        guard !handle.isCancelled else { return }
        let id = nextRequestID
        nextRequestID += 1
        var params = call.params
        if call.progressToken != nil {
            // The backend-side token is the backend-side request id: unique among this process's active requests.
            var meta = params["_meta"]?.objectValue ?? JSONObject()
            meta["progressToken"] = .number(JSONNumber(id))
            params["_meta"] = .object(meta)
        }
        pending[id] = .call(sink: sink, clientToken: call.progressToken, relay: call.relay)
        if relaysToLastCaller, let relay = call.relay { lastRelay = relay }
        handle.attach(process: self, id: id)
        write(JSONRPCRequest(id: RequestID(id), method: call.method, params: params).serialized())
    }

    /// Cancels a call: its reply will be dropped and the server is told (basic/utilities/cancellation).
    func cancel(id: Int, reason: String) {
        eventLoop.preconditionInEventLoop()
        guard pending.removeValue(forKey: id) != nil else { return }
        notify("notifications/cancelled", params: ["requestId": .number(JSONNumber(id)), "reason": .string(reason)])
    }

    func request(_ method: String, params: JSONObject?) -> EventLoopFuture<JSONValue> {
        let id = nextRequestID
        nextRequestID += 1
        let promise = eventLoop.makePromise(of: JSONValue.self)
        pending[id] = .handshake(promise)
        write(JSONRPCRequest(id: RequestID(id), method: method, params: params).serialized())
        return promise.futureResult
    }

    private func notify(_ method: String, params: JSONObject?) {
        write(JSONRPCNotification(method: method, params: params).serialized())
    }

    private func respond(id: JSONValue, _ body: [UInt8]) {
        write(body)
    }

    /// Writes one message line. Flushes are coalesced: calls hopping here from many connections in one event
    /// loop tick leave in one `writev`, so a busy backend pipe costs a syscall per batch, not per call.
    private func write(_ message: [UInt8]) {
        guard let channel else { return }
        var buffer = channel.allocator.buffer(capacity: message.count + 1)
        buffer.writeBytes(message)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.write(buffer, promise: nil)
        if !flushScheduled {
            flushScheduled = true
            eventLoop.execute {
                self.flushScheduled = false
                self.channel?.flush()
            }
        }
    }

    // MARK: - Inbound

    /// One line from the server's stdout. Only the envelope is parsed; a result's raw bytes go to the client.
    func received(line: ByteBuffer) {
        let bytes = Array(line.readableBytesView)
        guard !bytes.isEmpty else { return }
        let scan: JSONScan
        do {
            scan = try JSONParser.scan(bytes, maxDepth: 512)
        } catch {
            logger.warning("skipped a line on stdout that is not JSON (stdio servers must write only MCP messages there)", metadata: [
                "line": "\(String(decoding: bytes.prefix(200), as: UTF8.self))", "error": "\(error)",
            ])
            return
        }
        guard case .object(let members) = scan else {
            logger.warning("skipped a JSON value on stdout that is not a JSON-RPC object")
            return
        }
        lastHeard = .now()
        var idRange: Range<Int>?, methodRange: Range<Int>?, resultRange: Range<Int>?, errorRange: Range<Int>?, paramsRange: Range<Int>?
        for member in members {
            switch member.key {
            case "id": idRange = member.range
            case "method": methodRange = member.range
            case "result": resultRange = member.range
            case "error": errorRange = member.range
            case "params": paramsRange = member.range
            default: break
            }
        }
        func value(_ range: Range<Int>?) -> JSONValue? {
            guard let range else { return nil }
            return try? JSONParser.parse(bytes[range], maxDepth: 512)
        }
        if let methodRange, let method = value(methodRange)?.stringValue {
            let params = value(paramsRange)?.objectValue
            if let id = value(idRange) {
                serverRequest(id: id, method: method, params: params)
            } else {
                serverNotification(method: method, params: params)
            }
            return
        }
        guard let id = value(idRange)?.intValue, let entry = pending.removeValue(forKey: id) else {
            return // A late reply to a cancelled or timed-out request: dropped (cancellation#timing).
        }
        switch entry {
        case .handshake(let promise):
            if let result = value(resultRange) {
                promise.succeed(result)
            } else {
                let error = value(errorRange).flatMap(JSONRPCError.init(json:)) ?? .internalError("malformed reply")
                promise.fail(error)
            }
        case .call(let sink, _, _):
            if let resultRange {
                sink.backendFinished(.result(Array(bytes[resultRange])))
            } else if let error = value(errorRange).flatMap(JSONRPCError.init(json:)) {
                sink.backendFinished(.error(error))
            } else {
                sink.backendFinished(.error(.internalError("backend '\(backendName)' sent a reply with neither result nor error")))
            }
        }
    }

    /// A request from the server. `ping` is answered here. `sampling/createMessage`, `elicitation/create` and
    /// `roots/list` go to the client whose call caused them (`relatedRelay`), and its answer comes back under the
    /// server's own id; anything else, or a request no call explains, is refused with an error the server can log.
    private func serverRequest(id: JSONValue, method: String, params: JSONObject?) {
        guard let requestID = RequestID(id) else { return }
        if method == "ping" {
            write(JSONRPCEncoder.response(id: requestID, result: .object(JSONObject())))
            return
        }
        guard RelayedServerRequest.capabilityByMethod[method] != nil else {
            write(JSONRPCEncoder.error(id: requestID, JSONRPCError(code: JSONRPCErrorCode.methodNotFound, message: "The gateway does not relay \(method) to clients")))
            return
        }
        guard let relay = relatedRelay(params: params) else {
            let inFlight = pending.values.count { if case .call = $0 { true } else { false } }
            let why = inFlight == 0
                ? "no client call is in flight on this backend process to relate it to"
                : "\(inFlight) client calls from possibly different sessions are in flight on this shared backend process; send it while serving exactly one, name the call in params._meta.relatedRequestId, or use isolation: session"
            write(JSONRPCEncoder.error(id: requestID, JSONRPCError(code: JSONRPCErrorCode.internalError, message: "The gateway cannot tell which client \(method) is for: \(why)")))
            return
        }
        relayed[requestID] = relay.relayRequest(method: method, params: params) { [weak self] reply in
            guard let self else { return }
            self.eventLoop.execute {
                guard self.relayed.removeValue(forKey: requestID) != nil else { return } // cancelled by the server
                switch reply {
                case .result(let raw): self.write(JSONRPCEncoder.response(id: requestID, rawResult: raw))
                case .error(let error): self.write(JSONRPCEncoder.error(id: requestID, error))
                }
            }
        }
    }

    /// The call a server request or log message belongs to (MCP messages from a server carry no session):
    /// the call named by `params._meta.relatedRequestId` when the server names one of this process's request
    /// ids; else the only call in flight; else, for a process serving one session, that session's last call
    /// (its relay falls back to the session's GET stream). Several calls in flight on a shared process are
    /// ambiguous: nil, so nothing reaches a session that did not cause it.
    private func relatedRelay(params: JSONObject?) -> (any ClientRelay)? {
        if let related = params?["_meta"]?["relatedRequestId"]?.intValue, case .call(_, _, let relay)? = pending[related] {
            return relay
        }
        var only: (any ClientRelay)?
        var calls = 0
        for entry in pending.values {
            guard case .call(_, _, let relay) = entry else { continue }
            calls += 1
            only = relay
        }
        if calls == 1, let only { return only }
        if relaysToLastCaller { return lastRelay ?? only }
        return nil
    }

    private func serverNotification(method: String, params: JSONObject?) {
        switch method {
        case "notifications/progress":
            guard let params, let token = params["progressToken"]?.intValue, case .call(let sink, let clientToken, _)? = pending[token],
                  let clientToken else { return }
            var forwarded = params
            forwarded["progressToken"] = clientToken
            sink.backendProgress(forwarded)
        case "notifications/tools/list_changed":
            onToolsListChanged?()
        case "notifications/cancelled":
            guard let requested = params?["requestId"], let id = RequestID(requested), let request = relayed.removeValue(forKey: id) else { return }
            request.cancel(reason: params?["reason"]?.stringValue)
        case "notifications/resources/list_changed", "notifications/prompts/list_changed", "notifications/resources/updated":
            onFeatureNotification?(method, params)
        case "notifications/message":
            guard let params else { return }
            if let relay = relatedRelay(params: params) {
                relay.relayLog(params)
            } else if let onUnrelatedLog {
                onUnrelatedLog(params)
            }
            logger.debug("backend log message", metadata: [
                "backend_level": "\(params["level"]?.stringValue ?? "info")",
                "data": "\(params["data"].map { $0.jsonString } ?? "")",
            ])
        default:
            logger.debug("backend notification not relayed", metadata: ["method": "\(method)"])
        }
    }

    // MARK: - Health (basic/utilities/ping)

    /// Arms the timer for the next health check: `health.interval` after the process was last heard from.
    /// One timer per process, re-armed when it fires, so traffic costs nothing but a timestamp.
    private func scheduleHealthCheck() {
        guard onUnresponsive != nil, state == .ready else { return }
        let due = lastHeard + .nanoseconds(config.health.interval.nanoseconds)
        healthTimer = eventLoop.scheduleTask(deadline: due) { self.healthCheckDue() }
    }

    /// Silent for the whole interval: send a `ping` (2025-11-25/basic/utilities/ping). "If no response is
    /// received within a reasonable timeout period, the sender MAY consider the connection stale": an answer
    /// of any kind (a result, or even an error) is life; silence until `health.timeout` is not.
    private func healthCheckDue() {
        healthTimer = nil
        guard state == .ready else { return }
        let silentFor = NIODeadline.now() - lastHeard
        guard silentFor >= .nanoseconds(config.health.interval.nanoseconds) else {
            scheduleHealthCheck()
            return
        }
        let timeout = config.health.timeout
        let id = nextRequestID
        nextRequestID += 1
        let answered = eventLoop.makePromise(of: JSONValue.self)
        pending[id] = .handshake(answered)
        write(JSONRPCRequest(id: RequestID(id), method: "ping", params: nil).serialized())
        let reason = "did not answer a health ping within \(DurationFormat.describe(timeout))"
        let deadline = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            guard self.pending.removeValue(forKey: id) != nil else { return }
            answered.fail(TimeoutError(description: reason))
        }
        let sent = NIODeadline.now()
        answered.futureResult.whenComplete { result in
            deadline.cancel()
            // Not ready any more: the process is going away and its exit is handled elsewhere.
            guard self.state == .ready else { return }
            if case .failure(let error) = result, error is TimeoutError {
                self.logger.error("backend process unresponsive", metadata: [
                    "pid": "\(self.pid ?? 0)", "error": "\(reason)", "silent_ms": "\((NIODeadline.now() - self.lastHeard).nanoseconds / 1_000_000)",
                ])
                let callback = self.onUnresponsive
                self.onUnresponsive = nil
                callback?(reason)
                return
            }
            self.logger.debug("health ping answered", metadata: ["rtt_ms": "\((NIODeadline.now() - sent).nanoseconds / 1_000_000)"])
            self.scheduleHealthCheck()
        }
    }

    // MARK: - Exit and shutdown

    /// The child's stdout reached EOF or the pipe broke: treat the process as gone for calls now, even before
    /// it is reaped, so every call in flight fails at once.
    func pipeClosed() {
        guard state != .exited else { return }
        failAll(reason: state == .stopping ? "it is shutting down" : "its process exited")
    }

    private func processExited(_ exit: ChildProcess.Exit) {
        let wasStopping = state == .stopping
        state = .exited
        healthTimer?.cancel()
        failAll(reason: "its process \(exit)")
        if wasStopping {
            logger.info("backend process stopped", metadata: ["pid": "\(child?.pid ?? 0)", "exit": "\(exit)"])
        } else {
            logger.error("backend process exited unexpectedly", metadata: ["pid": "\(child?.pid ?? 0)", "exit": "\(exit)"])
        }
        channel?.close(promise: nil)
        stderrChannel?.close(promise: nil)
        exitPromise.succeed()
        let callback = onExit
        onExit = nil
        callback?(exit)
    }

    private func failAll(reason: String) {
        let entries = pending
        pending.removeAll()
        for (_, entry) in entries {
            switch entry {
            case .handshake(let promise): promise.fail(JSONRPCError.backendUnavailable(backendName, reason))
            case .call(let sink, _, _): sink.backendFinished(.error(.backendUnavailable(backendName, reason)))
            }
        }
        failWaiting(reason: reason)
    }

    private func failWaiting(reason: String) {
        let waiting = waitingForReady
        waitingForReady = []
        for (_, sink, _) in waiting { sink.backendFinished(.error(.backendUnavailable(backendName, reason))) }
    }

    /// Stops the process as the spec orders it (2025-11-25/basic/lifecycle#shutdown): close stdin, wait,
    /// SIGTERM, wait, SIGKILL. Completes once the child has been reaped. Calls in flight fail at once with
    /// -32001 giving `reason`. SIGTERM goes with SIGCONT, so a stopped (SIGSTOP, `kill -STOP`) child can
    /// still act on it instead of waiting for SIGKILL.
    func terminate(grace: Duration, reason: String = "it is shutting down") -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        guard let child, state != .exited else {
            state = .exited
            return exitPromise.futureResult
        }
        if state != .stopping {
            state = .stopping
            healthTimer?.cancel()
            failAll(reason: reason)
            channel?.close(mode: .output, promise: nil)
            let nanos = grace.nanoseconds
            eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
                guard self.state != .exited else { return }
                self.logger.warning("backend did not exit after stdin closed; sending SIGTERM", metadata: ["pid": "\(child.pid)"])
                child.signal(SIGTERM)
                child.signal(SIGCONT)
                self.eventLoop.scheduleTask(in: .nanoseconds(nanos)) {
                    guard self.state != .exited else { return }
                    self.logger.warning("backend did not exit after SIGTERM; sending SIGKILL", metadata: ["pid": "\(child.pid)"])
                    child.signal(SIGKILL)
                }
            }
        }
        return exitPromise.futureResult
    }
}

/// A call's handle: cancellation hops to the process's event loop, where the id is known.
final class StdioInFlight: BackendInFlight, @unchecked Sendable {
    // Confined to the owning process's event loop.
    private weak var process: StdioProcess?
    private var id: Int?
    private(set) var isCancelled = false
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func attach(process: StdioProcess, id: Int) {
        self.process = process
        self.id = id
    }

    func cancel(reason: String) {
        eventLoop.execute {
            self.isCancelled = true
            if let id = self.id { self.process?.cancel(id: id, reason: reason) }
        }
    }
}

/// Reads the server's stdout lines into the process.
final class StdoutHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let process: StdioProcess

    init(process: StdioProcess) {
        self.process = process
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        process.received(line: unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let oversized = event as? OversizedLine {
            context.fireErrorCaught(StdioProtocolError.oversizedLine(oversized.length))
        } else if event is ChannelEvent, case .inputClosed = event as! ChannelEvent {
            process.pipeClosed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        process.pipeClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case StdioProtocolError.oversizedLine = error { return }
        context.close(promise: nil)
    }
}

enum StdioProtocolError: Error {
    case oversizedLine(Int)
}

/// Drains the server's stderr continuously into the log under the backend's name (the child must never block
/// on a full pipe; stderr is logs, not errors: 2025-11-25/basic/transports#stdio).
final class StderrHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        guard !text.isEmpty else { return }
        logger.info("\(text)", metadata: ["source": "stderr"])
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension EventLoopFuture where Value: Sendable {
    /// Fails with a timeout error if the future has not completed in time.
    func withTimeout(_ timeout: Duration, on eventLoop: any EventLoop, description: String) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            promise.fail(TimeoutError(description: "\(description) did not complete within \(DurationFormat.describe(timeout))"))
        }
        whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    let description: String
}

/// The gateway's version, reported to backends as `clientInfo` and to clients as `serverInfo`.
public enum GatewayVersion {
    public static let version = "0.1.0"
    public static let name = "mcp-gateway"
}

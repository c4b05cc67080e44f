import GatewayCore
import NIOCore

/// Reading a stdio server's resources, resource templates and prompts (2025-11-25/server/resources,
/// server/prompts), each followed through `nextCursor` to its end (server/utilities/pagination).
extension StdioProcess {
    /// Reads the given lists into `featureLists`; a list the server fails to give is logged and left empty
    /// rather than failing the handshake, since its tools may still serve.
    func listFeatures(_ methods: [(method: String, key: String)]) -> EventLoopFuture<Void> {
        let reads = methods.map { entry in
            listAll(entry.method, key: entry.key, cursor: nil, accumulated: []).map { items in
                self.featureLists.set(entry.key, items)
            }.recover { error in
                self.logger.warning("backend did not list \(entry.key)", metadata: ["method": "\(entry.method)", "error": "\(error)"])
            }
        }
        return EventLoopFuture.andAllComplete(reads, on: eventLoop)
    }

    /// Re-reads the lists a `notifications/*/list_changed` names.
    func refreshFeatures(after notification: String) -> EventLoopFuture<Void> {
        guard state == .ready else { return eventLoop.makeSucceededVoidFuture() }
        return listFeatures(FeatureLists.methods(forListChanged: notification, capabilities: serverCapabilities))
    }

    private func listAll(_ method: String, key: String, cursor: String?, accumulated: [JSONObject]) -> EventLoopFuture<[JSONObject]> {
        var params = JSONObject()
        if let cursor { params["cursor"] = .string(cursor) }
        return request(method, params: params).flatMap { result in
            var items = accumulated
            for item in result[key]?.arrayValue ?? [] {
                if let object = item.objectValue { items.append(object) }
            }
            if let next = result["nextCursor"]?.stringValue, !next.isEmpty, items.count < 100_000 {
                return self.listAll(method, key: key, cursor: next, accumulated: items)
            }
            return self.eventLoop.makeSucceededFuture(items)
        }
    }

    /// Everything this process lists, as one snapshot.
    var listings: BackendListings {
        BackendListings(
            capabilities: serverCapabilities, tools: tools, resources: featureLists.resources,
            resourceTemplates: featureLists.resourceTemplates, prompts: featureLists.prompts
        )
    }
}

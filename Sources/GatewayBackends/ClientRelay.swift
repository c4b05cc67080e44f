import GatewayCore

/// The client side of one backend call: where a backend's own requests to the client (`sampling/createMessage`,
/// `elicitation/create`, `roots/list`) and its log notifications go while it serves the call
/// (2025-11-25/basic/transports#sending-messages-to-the-server: such requests "SHOULD relate to the originating
/// client request"). The gateway's runtime implements it per call; a backend never learns about sessions or HTTP.
public protocol ClientRelay: AnyObject, Sendable {
    /// Forwards a server-to-client request to the client whose call this is. `answer` is called exactly once,
    /// from any thread, with the client's result (raw JSON) or an error to give the backend, unless the backend
    /// cancels the request first through the returned handle.
    @discardableResult
    func relayRequest(method: String, params: JSONObject?, answer: @escaping @Sendable (BackendReply) -> Void) -> any RelayedRequest
    /// A `notifications/message` the backend sent while serving this call (server/utilities/logging).
    func relayLog(_ params: JSONObject)
}

/// A request relayed to a client. The backend that sent it may cancel it (`notifications/cancelled` from the
/// server, basic/utilities/cancellation): the client is told under the gateway's id and no answer follows.
public protocol RelayedRequest: Sendable {
    func cancel(reason: String?)
}

/// The server-to-client requests the gateway relays, and the client capability each needs
/// (client/sampling, client/elicitation, client/roots): a client that did not declare it is never asked.
public enum RelayedServerRequest {
    public static let capabilityByMethod: [String: String] = [
        "sampling/createMessage": "sampling",
        "elicitation/create": "elicitation",
        "roots/list": "roots",
    ]

    /// What the gateway declares to every backend in its `initialize`: it can relay all three, sampling with
    /// tools and both elicitation modes (2025-11-25), and refuses per request when the session at the other end
    /// did not declare what the request needs.
    public static let declaredToBackends: JSONObject = [
        "sampling": ["tools": .object(JSONObject())],
        "elicitation": ["form": .object(JSONObject()), "url": .object(JSONObject())],
        "roots": .object(JSONObject()),
    ]
}

/// A backend's log notification that no single call explains (a shared process serving several calls at once,
/// or none): the gateway delivers it to every session whose `logging/setLevel` admits it.
public protocol BackendLogObserver: AnyObject, Sendable {
    func backendLogMessage(_ backend: String, params: JSONObject)
}

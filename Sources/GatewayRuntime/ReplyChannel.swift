import GatewayCore

/// Where the answer to one client request goes: a POST's response (JSON, or an SSE stream once a notification
/// must precede the response), a batch collector, or a stdio line. Implemented by each transport; all calls
/// arrive on the transport's event loop.
public protocol ReplyChannel: AnyObject {
    /// A message related to the request that precedes its response (progress), MUST item 14.
    func sendRelated(_ message: [UInt8])
    /// The final response; the channel is finished after it.
    func sendResponse(_ message: [UInt8])
    /// The client cancelled the request: no response will be sent (basic/utilities/cancellation).
    func finishWithoutResponse()
    /// The principal lacks scopes the call needs: over HTTP a 403 `insufficient_scope` challenge naming them
    /// (2025-11-25/basic/authorization#runtime-insufficient-scope-errors); elsewhere the JSON-RPC error
    /// (-32005) in `response`.
    func sendInsufficientScope(_ scopes: [String], response: [UInt8])
}

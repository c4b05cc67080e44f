import AsyncHTTPClient
import Foundation
import GatewayConfig
import GatewayCore
import NIOCore
import NIOHTTP1

/// Opaque access tokens checked with OAuth 2.0 Token Introspection (RFC 7662): the gateway POSTs the token to
/// the authorization server with its own client credentials (HTTP Basic, §2.1) and trusts the answer only if
/// it is `active`, unexpired, from the configured issuer (when stated) and for this gateway's audience (when
/// stated). Answers are cached by the token's SHA-256 until `exp` by the `Authenticator`.
public struct TokenIntrospector: Sendable {
    let config: IntrospectionConfig
    let oauth: OAuthConfig

    public init(config: IntrospectionConfig, oauth: OAuthConfig) {
        self.config = config
        self.oauth = oauth
    }

    public func introspect(_ token: String) async throws(TokenRejection) -> Principal {
        var request = HTTPClientRequest(url: config.url)
        request.method = .POST
        let credentials = Data("\(Self.formEncode(config.clientID)):\(Self.formEncode(config.clientSecret))".utf8).base64EncodedString()
        request.headers.add(name: "authorization", value: "Basic \(credentials)")
        request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: "token=\(Self.formEncode(token))&token_type_hint=access_token"))
        let body: ByteBuffer
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            guard response.status == .ok else {
                throw TokenRejection.keysUnavailable("the introspection endpoint answered HTTP \(response.status.code)")
            }
            body = try await response.body.collect(upTo: 256 * 1024)
        } catch let rejection as TokenRejection {
            throw rejection
        } catch {
            throw .keysUnavailable("the introspection endpoint is unreachable")
        }
        guard let answer = try? JSONParser.parse(Array(body.readableBytesView)), case .object(let claims) = answer else {
            throw .keysUnavailable("the introspection endpoint did not answer JSON")
        }
        guard claims["active"]?.boolValue == true else { throw .invalid("the token is not active") }
        let now = Date().timeIntervalSince1970
        let leeway = Double(oauth.leeway.components.seconds)
        if let exp = claims["exp"]?.doubleValue, now > exp + leeway { throw .invalid("the token has expired") }
        if let issuer = claims["iss"]?.stringValue, issuer != oauth.issuer { throw .invalid("the token was issued by another issuer") }
        switch claims["aud"] {
        case .string(let single)?:
            guard JWTVerifier.sameResource(single, oauth.audience) else { throw .invalid("the token was not issued for this resource") }
        case .array(let list)?:
            guard list.contains(where: { $0.stringValue.map { JWTVerifier.sameResource($0, oauth.audience) } ?? false }) else {
                throw .invalid("the token was not issued for this resource")
            }
        default:
            break
        }
        guard let subject = claims["sub"]?.stringValue ?? claims["username"]?.stringValue, !subject.isEmpty else {
            throw .invalid("the introspection answer names no subject")
        }
        let scopes = Set((claims["scope"]?.stringValue ?? "").split(separator: " ").map(String.init))
        let tenant = oauth.tenantClaim.flatMap { claims[$0]?.stringValue }
        let issuer = claims["iss"]?.stringValue ?? oauth.issuer
        // Without `exp` the answer is cached briefly only: revocation must take effect soon.
        let expiry = claims["exp"]?.doubleValue ?? (now + 60)
        return Principal(id: "\(issuer)#\(subject)", subject: subject, issuer: issuer, tenant: tenant, scopes: scopes, expiresAt: expiry)
    }

    /// application/x-www-form-urlencoded (RFC 6749 Appendix B).
    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

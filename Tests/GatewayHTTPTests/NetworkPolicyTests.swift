import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GatewayHTTP

@Suite struct CIDRTests {
    private func network(_ text: String) throws -> IPNetwork { try IPNetwork(parsing: text) }
    private func address(_ text: String) -> IPAddress { IPAddress(text)! }

    @Test func parsesIPv4AndIPv6Blocks() throws {
        #expect(try network("10.0.0.0/8").description == "10.0.0.0/8")
        #expect(try network("192.168.1.7").prefixLength == 32, "a bare address is one host")
        #expect(try network("2001:db8::/32").description == "2001:db8:0:0:0:0:0:0/32")
        #expect(try network("::1").prefixLength == 128)
        #expect(try network("0.0.0.0/0").contains(address("203.0.113.9")))
        #expect(try network("::/0").contains(address("2001:db8::1")))
    }

    @Test func matchesOnlyInsideThePrefix() throws {
        let ten = try network("10.0.0.0/8")
        #expect(ten.contains(address("10.255.3.4")))
        #expect(!ten.contains(address("11.0.0.1")))
        #expect(!ten.contains(address("127.0.0.1")))
        let odd = try network("192.168.4.0/22")
        #expect(odd.contains(address("192.168.7.255")))
        #expect(!odd.contains(address("192.168.8.0")))
        let v6 = try network("2001:db8:abcd::/48")
        #expect(v6.contains(address("2001:db8:abcd:12::1")))
        #expect(!v6.contains(address("2001:db8:abce::1")))
    }

    @Test func ipv4NeverMatchesIPv6ButMappedAddressesAreIPv4() throws {
        #expect(!(try network("::/0")).contains(address("10.0.0.1")))
        #expect(!(try network("0.0.0.0/0")).contains(address("::1")))
        // What a dual-stack socket reports for an IPv4 peer.
        #expect(try network("127.0.0.0/8").contains(address("::ffff:127.0.0.1")))
        #expect(try network("::ffff:10.0.0.0/104").description == "10.0.0.0/8")
    }

    @Test func parsesIPv6TextForms() {
        #expect(IPAddress("::")?.bytes == Array(repeating: 0, count: 16))
        #expect(IPAddress("fe80::1%eth0")?.bytes.last == 1, "the zone index is dropped")
        #expect(IPAddress("1:2:3:4:5:6:7:8")?.bytes[15] == 8)
        #expect(IPAddress("64:ff9b::192.0.2.33")?.bytes[12...] == [192, 0, 2, 33])
        #expect(IPAddress("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPAddress("1::2::3") == nil)
        #expect(IPAddress("12345::") == nil)
        #expect(IPAddress(":::") == nil)
    }

    @Test func refusesMalformedBlocks() {
        #expect(throws: IPNetwork.ParseError.notAnAddress("10.0.0/8")) { try network("10.0.0/8") }
        #expect(throws: IPNetwork.ParseError.notAnAddress("010.0.0.0/8"), "leading zeros read as octal elsewhere") { try network("010.0.0.0/8") }
        #expect(throws: IPNetwork.ParseError.notAnAddress("256.0.0.0/8")) { try network("256.0.0.0/8") }
        #expect(throws: IPNetwork.ParseError.notAnAddress("example.com/8")) { try network("example.com/8") }
        #expect(throws: IPNetwork.ParseError.badPrefixLength("10.0.0.0/33")) { try network("10.0.0.0/33") }
        #expect(throws: IPNetwork.ParseError.badPrefixLength("10.0.0.0/")) { try network("10.0.0.0/") }
        #expect(throws: IPNetwork.ParseError.badPrefixLength("::/129")) { try network("::/129") }
        #expect(throws: IPNetwork.ParseError.hostBitsSet("10.1.2.3/8", suggestion: "10.0.0.0/8")) { try network("10.1.2.3/8") }
    }
}

@Suite struct ForwardedForTests {
    private let proxies = [try! IPNetwork(parsing: "127.0.0.1/32"), try! IPNetwork(parsing: "10.0.0.0/8")]
    private func resolve(peer: String, _ forwardedFor: [String]) -> ClientAddressResolution.Outcome {
        ClientAddressResolution.resolve(peer: IPAddress(peer)!, forwardedFor: forwardedFor, trustedProxies: proxies)
    }

    @Test func anUntrustedPeerIsTheClientWhateverItClaims() {
        #expect(resolve(peer: "198.51.100.4", ["203.0.113.7"]) == .address(IPAddress("198.51.100.4")!))
    }

    @Test func aTrustedPeerNamesTheClientRightMostUntrustedFirst() {
        #expect(resolve(peer: "127.0.0.1", ["203.0.113.7"]) == .address(IPAddress("203.0.113.7")!))
        // The client wrote the first entry itself; the proxy appended the address it saw.
        #expect(resolve(peer: "127.0.0.1", ["1.2.3.4, 203.0.113.7"]) == .address(IPAddress("203.0.113.7")!))
        // Trusted hops are skipped; several fields are one list.
        #expect(resolve(peer: "127.0.0.1", ["198.51.100.9", "203.0.113.7, 10.1.1.1"]) == .address(IPAddress("203.0.113.7")!))
    }

    @Test func withoutTheHeaderOrOnlyProxiesTheFarthestKnownHopIsTheClient() {
        #expect(resolve(peer: "127.0.0.1", []) == .address(IPAddress("127.0.0.1")!))
        #expect(resolve(peer: "127.0.0.1", ["10.9.9.9, 10.1.1.1"]) == .address(IPAddress("10.9.9.9")!))
    }

    @Test func entriesWithPortsAndBracketsAreReadAndGarbageIsReported() {
        #expect(resolve(peer: "127.0.0.1", ["203.0.113.7:5123"]) == .address(IPAddress("203.0.113.7")!))
        #expect(resolve(peer: "127.0.0.1", ["[2001:db8::7]:443"]) == .address(IPAddress("2001:db8::7")!))
        #expect(resolve(peer: "127.0.0.1", ["203.0.113.7, unknown"]) == .unparseable("unknown"))
    }
}

@Suite struct ClientAddressPolicyTests {
    private func run(_ policy: ClientAddressPolicy, peer: String, forwardedFor: String? = nil) throws -> MiddlewareOutcome {
        var headers = HTTPHeaders()
        if let forwardedFor { headers.add(name: "x-forwarded-for", value: forwardedFor) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/healthz", headers: headers)
        let context = HTTPRequestContext(head: head, peerAddress: try SocketAddress(ipAddress: peer, port: 40000))
        return policy.handle(context, eventLoop: EmbeddedEventLoop())
    }

    @Test func recordsTheClientAndRefusesOutsiders() throws {
        let policy = ClientAddressPolicy(allowedIPs: [try IPNetwork(parsing: "203.0.113.0/24")], trustedProxies: [try IPNetwork(parsing: "127.0.0.1/32")])
        guard case .next(let allowed) = try run(policy, peer: "127.0.0.1", forwardedFor: "203.0.113.7") else {
            Issue.record("a client inside allowed_ips behind a trusted proxy was refused")
            return
        }
        #expect(allowed.clientAddress == IPAddress("203.0.113.7"))
        guard case .respond(let refused) = try run(policy, peer: "127.0.0.1", forwardedFor: "198.51.100.1") else {
            Issue.record("a client outside allowed_ips was admitted")
            return
        }
        #expect(refused.status == .forbidden)
        let body = String(decoding: refused.body, as: UTF8.self)
        #expect(body.contains("198.51.100.1") && body.contains("server.allowed_ips") && !body.contains("203.0.113.0"))
    }

    @Test func withoutAnAllowlistEveryoneIsAdmittedUnparsed() throws {
        guard case .next(let context) = try run(ClientAddressPolicy(allowedIPs: [], trustedProxies: []), peer: "::1", forwardedFor: "203.0.113.7") else {
            Issue.record("refused without an allowlist")
            return
        }
        // Nothing depends on the address then, so the hot path does not pay for resolving it; and a forged
        // X-Forwarded-For is certainly not taken.
        #expect(context.clientAddress == nil)
    }

    @Test func anUntrustedPeersForwardedForIsIgnored() throws {
        guard case .next(let context) = try run(ClientAddressPolicy(allowedIPs: [try IPNetwork(parsing: "::1/128")], trustedProxies: []), peer: "::1", forwardedFor: "203.0.113.7") else {
            Issue.record("the peer itself is allowed")
            return
        }
        #expect(context.clientAddress == IPAddress("::1"), "X-Forwarded-For from an untrusted peer is ignored")
    }
}

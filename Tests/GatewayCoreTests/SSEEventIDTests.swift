import GatewayCore
import Testing

@Suite struct SSEEventIDTests {
    @Test func parsesTheGatewaysOwnIDs() {
        #expect(SSEEventID(lastEventID: "1-1") == SSEEventID(stream: 1, event: 1))
        #expect(SSEEventID(lastEventID: "42-1337") == SSEEventID(stream: 42, event: 1337))
        #expect(SSEEventID(lastEventID: " \t7-3\t ") == SSEEventID(stream: 7, event: 3))
        #expect(SSEEventID(lastEventID: "\(Int.max)-\(Int.max)") == SSEEventID(stream: .max, event: .max))
    }

    @Test func printsWhatItParses() {
        let id = SSEEventID(stream: 12, event: 9)
        #expect(id.description == "12-9")
        #expect(SSEEventID(lastEventID: id.description) == id)
    }

    @Test(arguments: [
        "", " ", "1", "1-", "-1", "1--1", "1-1-1", "0-1", "1-0", "01-1", "1-01", "+1-1", "1-+1", "-1-1",
        "1 -1", "1- 1", "a-1", "1-a", "1-1\n", "1-1\r", "1.0-1", "١-١", "9223372036854775808-1", "1-9223372036854775808",
        "99999999999999999999999-1",
    ])
    func rejectsAnythingElse(_ value: String) {
        #expect(SSEEventID(lastEventID: value) == nil)
    }

    @Test func acceptsSubstrings() {
        let header = "id=5-6"
        #expect(SSEEventID(lastEventID: header.dropFirst(3)) == SSEEventID(stream: 5, event: 6))
    }
}

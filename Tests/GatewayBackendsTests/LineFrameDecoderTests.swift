import NIOCore
import NIOEmbedded
import Testing

@testable import GatewayBackends

@Suite struct LineFrameDecoderTests {
    func lines(from chunks: [String], maximumLength: Int = 1024) throws -> [String] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maximumLength: maximumLength)))
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
        }
        var result: [String] = []
        while let line = try channel.readInbound(as: ByteBuffer.self) {
            result.append(String(buffer: line))
        }
        _ = try? channel.finish()
        return result
    }

    @Test func splitsOnNewlinesAcrossChunks() throws {
        #expect(try lines(from: [#"{"a":"#, "1}\n{\"b\"", ":2}\n"]) == [#"{"a":1}"#, #"{"b":2}"#])
    }

    @Test func stripsCarriageReturns() throws {
        #expect(try lines(from: ["one\r\ntwo\n"]) == ["one", "two"])
    }

    @Test func anOversizedLineIsDroppedWholeAndLaterLinesSurvive() throws {
        let long = String(repeating: "x", count: 100)
        #expect(try lines(from: [long, long, "\nafter\n"], maximumLength: 64) == ["after"])
    }

    @Test func manyLinesInOneChunk() throws {
        let text = (0..<500).map { "\($0)" }.joined(separator: "\n") + "\n"
        #expect(try lines(from: [text]) == (0..<500).map { "\($0)" })
    }
}

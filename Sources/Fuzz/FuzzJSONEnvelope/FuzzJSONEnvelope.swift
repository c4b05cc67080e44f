import FuzzChecks

/// Fuzz target: the JSON-RPC envelope parser (see `JSONEnvelopeCheck`).
/// `make fuzz` runs it under libFuzzer; a normal build replays the files given as arguments (docs/fuzzing.md).
@main
enum FuzzJSONEnvelope {
    static func main() {
        FuzzDriver.main { input in FuzzDriver.run(JSONEnvelopeCheck.check, input) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.run(JSONEnvelopeCheck.check, FuzzDriver.bytes(data, size))
    return 0
}
#endif

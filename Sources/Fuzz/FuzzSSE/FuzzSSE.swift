import FuzzChecks
import FuzzSSEChecks

/// Fuzz target: SSE framing and the Last-Event-ID parser (see `SSECheck`).
/// `make fuzz` runs it under libFuzzer; a normal build replays the files given as arguments (docs/fuzzing.md).
@main
enum FuzzSSE {
    static func main() {
        FuzzDriver.main { input in FuzzDriver.run(SSECheck.check, input) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.run(SSECheck.check, FuzzDriver.bytes(data, size))
    return 0
}
#endif

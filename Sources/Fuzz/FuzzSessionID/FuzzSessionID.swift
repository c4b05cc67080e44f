import FuzzChecks
import FuzzSessionChecks

/// Fuzz target: the session-id opener on arbitrary text (see `SessionIDCheck.checkArbitrary`).
/// `make fuzz` runs it under libFuzzer; a normal build replays the files given as arguments (docs/fuzzing.md).
@main
enum FuzzSessionID {
    static func main() {
        FuzzDriver.main { input in FuzzDriver.run(SessionIDCheck.checkArbitrary, input) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.run(SessionIDCheck.checkArbitrary, FuzzDriver.bytes(data, size))
    return 0
}
#endif

import FuzzChecks
import FuzzSessionChecks

/// Fuzz target: the session-id opener on edits of a valid sealed id (see `SessionIDCheck.checkMutation`).
/// `make fuzz` runs it under libFuzzer; a normal build replays the files given as arguments (docs/fuzzing.md).
@main
enum FuzzSessionIDMutation {
    static func main() {
        FuzzDriver.main { input in FuzzDriver.run(SessionIDCheck.checkMutation, input) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.run(SessionIDCheck.checkMutation, FuzzDriver.bytes(data, size))
    return 0
}
#endif

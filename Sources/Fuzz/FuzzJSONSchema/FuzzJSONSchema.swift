import FuzzChecks

/// Fuzz target: the JSON Schema compiler and evaluator (see `JSONSchemaCheck`).
/// `make fuzz` runs it under libFuzzer; a normal build replays the files given as arguments (docs/fuzzing.md).
@main
enum FuzzJSONSchema {
    static func main() {
        FuzzDriver.main { input in FuzzDriver.run(JSONSchemaCheck.check, input) }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.run(JSONSchemaCheck.check, FuzzDriver.bytes(data, size))
    return 0
}
#endif

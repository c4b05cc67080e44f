#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The entry point every fuzz executable shares (docs/fuzzing.md). Built with `-DFUZZING` and
/// `-sanitize=fuzzer` (`make fuzz`), it hands control to libFuzzer, which calls the executable's
/// `LLVMFuzzerTestOneInput`. In a normal build the same executable replays inputs instead: each argument is a
/// file or a directory of files, each file is one input, so regression inputs run without libFuzzer.
public enum FuzzDriver {
    public static func main(check: ([UInt8]) -> Void) {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in LLVMFuzzerTestOneInput(data, size) })
        #else
        let arguments = CommandLine.arguments.dropFirst()
        guard !arguments.isEmpty else {
            FileHandle.standardError.write(Data("usage: \(CommandLine.arguments[0]) <input file or directory>...\n".utf8))
            exit(2)
        }
        var replayed = 0
        for path in arguments {
            for file in inputFiles(at: path) {
                guard let bytes = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("cannot read \(file)\n".utf8))
                    exit(1)
                }
                check(Array(bytes))
                replayed += 1
            }
        }
        print("replayed \(replayed) inputs without a failure")
        #endif
    }

    /// The regular files at `path`: the file itself, or a directory's files (not recursive), sorted so a
    /// replay is reproducible.
    public static func inputFiles(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(path)/\($0)" }
    }

    /// libFuzzer's input as an array (empty input has a null pointer).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }
}

#if FUZZING
/// libFuzzer's driver (compiler-rt/lib/fuzzer/FuzzerInterface.h). SwiftPM defines `main` for an executable
/// target itself, so the executable calls the driver from its `@main` instead of using libFuzzer's `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Defined by each fuzz executable (`@_cdecl("LLVMFuzzerTestOneInput")`).
@_silgen_name("LLVMFuzzerTestOneInput")
func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt
#endif

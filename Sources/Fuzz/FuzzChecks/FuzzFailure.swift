/// A broken invariant found by a fuzz check. libFuzzer reports it as a crash (the input is saved); the
/// regression tests report it as a failed expectation.
public struct FuzzFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

@inline(__always)
public func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFailure) {
    if !condition { throw FuzzFailure(message()) }
}

extension FuzzDriver {
    /// Runs a throwing check the way libFuzzer and the replay expect: a broken invariant stops the process
    /// with its description.
    public static func run(_ check: ([UInt8]) throws(FuzzFailure) -> Void, _ input: [UInt8]) {
        do {
            try check(input)
        } catch {
            fatalError("fuzz invariant broken: \(error.description)")
        }
    }
}

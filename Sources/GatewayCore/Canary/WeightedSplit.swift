/// Splits calls between a backend's versions by weight (issue 7, item 7: "calls are split by weight"), with
/// smooth weighted round-robin, the algorithm of nginx's upstream module: each pick adds every weight to its
/// version's running score, takes the version with the highest score (the first on a tie) and subtracts the
/// total weight from it.
///
/// Deterministic, so the split is exact rather than right on average: within any run of `total` consecutive
/// picks from the start (or from the last weight change) each version gets exactly its weight, and after any
/// number of picks each version's count is within one of its share. With 90/10 the canary takes one call in
/// every ten, spread out (not ten in a row), so a canary sees traffic from the first calls on. A random split
/// would need hundreds of calls before a 10% canary reliably saw its share.
public struct WeightedSplit: Sendable, Equatable {
    public private(set) var weights: [Int]
    private var scores: [Int]
    private var total: Int

    /// - Precondition: at least one weight, none negative, and a positive sum (the configuration checks this).
    public init(weights: [Int]) {
        precondition(!weights.isEmpty && weights.allSatisfy { $0 >= 0 } && weights.reduce(0, +) > 0, "weights: non-negative, sum > 0")
        self.weights = weights
        self.scores = Array(repeating: 0, count: weights.count)
        self.total = weights.reduce(0, +)
    }

    /// The index of the version the next call goes to. A version of weight 0 is never picked.
    public mutating func next() -> Int {
        var best = -1
        for index in scores.indices where weights[index] > 0 {
            scores[index] += weights[index]
            if best < 0 || scores[index] > scores[best] { best = index }
        }
        scores[best] -= total
        return best
    }

    /// Changes the weights and starts the sequence over, so the new split is exact from the next call on.
    /// - Precondition: same count, none negative, a positive sum.
    public mutating func setWeights(_ newWeights: [Int]) {
        precondition(newWeights.count == weights.count && newWeights.allSatisfy { $0 >= 0 } && newWeights.reduce(0, +) > 0, "weights: non-negative, sum > 0")
        weights = newWeights
        total = newWeights.reduce(0, +)
        scores = Array(repeating: 0, count: newWeights.count)
    }
}

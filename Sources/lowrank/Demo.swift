import ArgumentParser

/// `lowrank demo`: the most useful thing LowRank does at this stage (the core benchmark; later the main job).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main job on the default data.",
        discussion: "Today: the numerical core benchmark (GEMM, SVD, permute, einsum) against plain BLAS and numpy."
    )

    func run() throws {
        try runReportingErrors { try CoreBenchmark().run(json: false) }
    }
}

// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "LowRank",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Decompositions", targets: ["Decompositions"]),
        .executable(name: "lowrank", targets: ["lowrank"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLinearAlgebra",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-openmp-dev", "liblapacke-dev", "pkg-config"])]
        ),
        .target(
            name: "TensorCore",
            dependencies: ["CLinearAlgebra", .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(
            name: "Decompositions",
            dependencies: ["TensorCore"],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "lowrank",
            dependencies: [
                "TensorCore",
                "Decompositions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DecompositionsTests", dependencies: ["Decompositions", "TensorCore"]),
    ],
    swiftLanguageModes: [.v6]
)

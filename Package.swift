// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "LowRank",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Decompositions", targets: ["Decompositions"]),
        .library(name: "Autodiff", targets: ["Autodiff"]),
        .library(name: "NeuralNetworks", targets: ["NeuralNetworks"]),
        .library(name: "Compression", targets: ["Compression"]),
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
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "TensorCore",
            dependencies: ["CLinearAlgebra", "CDNNL", .product(name: "RealModule", package: "swift-numerics")],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(
            name: "Decompositions",
            dependencies: ["TensorCore"],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(
            name: "Autodiff",
            dependencies: ["TensorCore"],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(
            name: "NeuralNetworks",
            dependencies: ["TensorCore", "Autodiff", "CZlib"],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(name: "Compression", dependencies: ["TensorCore", "Decompositions", "Autodiff", "NeuralNetworks"], swiftSettings: [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]),
        .executableTarget(
            name: "lowrank",
            dependencies: [
                "TensorCore",
                "Decompositions",
                "Autodiff",
                "NeuralNetworks",
                "Compression",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DecompositionsTests", dependencies: ["Decompositions", "TensorCore"]),
        .testTarget(name: "AutodiffTests", dependencies: ["Autodiff", "TensorCore"]),
        .testTarget(name: "NeuralNetworksTests", dependencies: ["NeuralNetworks", "Autodiff", "TensorCore"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "NeuralNetworks", "Autodiff", "Decompositions", "TensorCore"]),
    ],
    swiftLanguageModes: [.v6]
)

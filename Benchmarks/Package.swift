// swift-tools-version:6.1
// Brook's allocation benchmarks (issue 17): ordo-one/benchmark with its malloc interposer,
// in a package of their own so that the broker's build and test command do not carry them.
// Run from this directory: `swift package benchmark` (see ../docs/benchmarks.md); hold the
// recorded counts with `swift package benchmark thresholds check`.
import PackageDescription

// The broker's package, one directory up: a path dependency's identity is its directory's name.
let brook = Context.packageDirectory.split(separator: "/").dropLast().last.map { String($0).lowercased() } ?? "main"

let package = Package(
    name: "BrookBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BrookBroker", package: brook),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

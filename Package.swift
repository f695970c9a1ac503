// swift-tools-version:6.0
// Brook: a Kafka-compatible event-streaming platform.
// Module direction (never reversed): BrookCore -> BrookRecords -> BrookStorage -> brook.
// See docs/design.md for the full layout and what each module owns.
import PackageDescription

let package = Package(
    name: "Brook",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "brook", targets: ["brook"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "BrookCore"),
        // CRC32C with the CPU's CRC instructions (SSE4.2 / ARMv8) and a portable fallback.
        .target(name: "CBrookCRC"),
        .target(
            name: "BrookRecords",
            dependencies: [
                "BrookCore", "CBrookCRC",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "BrookStorage",
            dependencies: [
                "BrookCore", "BrookRecords",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "brook",
            dependencies: [
                "BrookCore", "BrookRecords", "BrookStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "BrookCoreTests", dependencies: ["BrookCore"]),
        .testTarget(
            name: "BrookRecordsTests",
            dependencies: ["BrookRecords", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "BrookStorageTests",
            dependencies: [
                "BrookStorage", "BrookRecords",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

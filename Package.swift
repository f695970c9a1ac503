// swift-tools-version:6.1
// Brook: a Kafka-compatible event-streaming platform.
// Module direction (never reversed): BrookCore -> BrookRecords -> BrookProtocol / BrookStorage
// -> BrookGroups / BrookTxn -> BrookBroker -> BrookServer -> brook; BrookClient needs only BrookProtocol
// and BrookSecurity (SASL), which needs only BrookCore; BrookCrypto gives BrookSecurity its digests
// over swift-crypto, to the server, the client and the tools (not to the broker library, the
// fuzzing harness or the benchmarks, which then build without a crypto library).
// See docs/design.md for the full layout and what each module owns.
import PackageDescription
import Foundation

let package = Package(
    name: "Brook",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "brook", targets: ["brook"]),
        .executable(name: "brook-sim", targets: ["brook-sim"]),
        .executable(name: "brook-fuzz", targets: ["brook-fuzz"]),
        // The broker as a library, for the allocation benchmarks in Benchmarks/.
        .library(name: "BrookBroker", targets: ["BrookBroker", "BrookProtocol", "BrookRecords", "BrookCore"]),
        // The Kafka client library: producer, cluster client, connections (pure Swift, no librdkafka).
        .library(name: "BrookClient", targets: ["BrookClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Tracing (off unless tracing.otlp.endpoint is set): the API the server's spans use, and
        // swift-otel's OTLP/HTTP exporter for the executable (its gRPC exporter left out: a long build).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .target(name: "BrookCore"),
        // CRC32C with the CPU's CRC instructions (SSE4.2 / ARMv8) and a portable fallback.
        .target(name: "CBrookCRC"),
        // gzip through zlib; zstd and lz4 through their runtime libraries, loaded with dlopen
        // (a fresh machine has them without headers). Snappy is in Swift (BrookRecords).
        .target(name: "CBrookCodecs", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        .target(
            name: "BrookRecords",
            dependencies: [
                "BrookCore", "CBrookCRC", "CBrookCodecs",
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
        // The wire codec: generated message types (scripts/protogen.py), headers, error codes.
        .target(
            name: "BrookProtocol",
            dependencies: ["BrookCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The group coordinator (classic protocol and KIP-848) and committed offsets: a state
        // machine with no I/O, driven by the broker.
        .target(
            name: "BrookGroups",
            dependencies: ["BrookCore", "BrookProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Idempotent producers and transactions: per-partition producer state and the
        // transaction coordinator, state machines with no I/O, driven by the broker.
        .target(name: "BrookTxn", dependencies: ["BrookCore", "BrookRecords", "BrookProtocol"]),
        // Raft as a pure state machine (step / tick / ready / advance): no clock, disk or socket.
        .target(name: "BrookRaft", dependencies: ["BrookCore"]),
        // The cluster's pure cores: the KRaft metadata image, the controller's decisions
        // (registration, fencing, placement, ISR changes, elections) and partition replication
        // (high watermark, ISR proposals). No clock, disk or socket: driven like BrookRaft.
        .target(name: "BrookCluster", dependencies: ["BrookCore", "BrookProtocol"]),
        // A whole quorum on one thread from a seed: fake clock, network and disk, faults, checks;
        // and the same for the replicated cluster's controller and partition replication.
        .target(name: "BrookSimulation", dependencies: ["BrookRaft", "BrookCluster", "BrookStorage", "BrookProtocol", "BrookCore"]),
        .executableTarget(
            name: "brook-sim",
            dependencies: ["BrookSimulation", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The quorum over real time and a real transport: the durable Raft log on the storage
        // engine, the TCP transport between controllers, the driver running the metadata image
        // and the active controller, the client, and a broker's side (registration, heartbeats,
        // following the metadata log).
        .target(
            name: "BrookQuorum",
            dependencies: [
                "BrookCore", "BrookRaft", "BrookRecords", "BrookStorage", "BrookCluster", "BrookProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Authentication without I/O: SCRAM (server and client exchanges, credentials, over
        // digests it is given), PLAIN, JAAS option parsing, listener security protocols.
        .target(name: "BrookSecurity", dependencies: ["BrookCore"]),
        // MQTT 3.1.1 and 5.0 without I/O: the packet codec, topic names and filters, the mapping
        // of MQTT topics to Kafka topics, and a client's session (subscriptions, QoS flows).
        .target(name: "BrookMQTT", dependencies: ["BrookCore", .product(name: "NIOCore", package: "swift-nio")]),
        // The digests SCRAM needs and OAUTHBEARER's JWS signatures, over swift-crypto.
        .target(
            name: "BrookCrypto",
            dependencies: [
                "BrookSecurity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // Request handlers (one file per API), topics and partitions; no sockets.
        .target(
            name: "BrookBroker",
            dependencies: [
                "BrookCore", "BrookRecords", "BrookStorage", "BrookProtocol", "BrookGroups", "BrookTxn", "BrookCluster",
                "BrookSecurity", "BrookMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // SwiftNIO: listeners (TLS through swift-nio-ssl), framing, ordered responses, sendfile.
        .target(
            name: "BrookServer",
            dependencies: [
                "BrookCore", "BrookProtocol", "BrookBroker", "BrookStorage", "BrookCluster", "BrookClient", "BrookSecurity", "BrookCrypto",
                "BrookQuorum", "BrookGroups", "BrookTxn", "BrookMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // The Kafka client library (and what the command-line tools use).
        .target(
            name: "BrookClient",
            dependencies: [
                "BrookCore", "BrookProtocol", "BrookRecords", "BrookSecurity", "BrookCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "brook",
            dependencies: [
                "BrookCore", "BrookRecords", "BrookStorage", "BrookProtocol", "BrookGroups", "BrookBroker",
                "BrookServer", "BrookClient", "BrookRaft", "BrookQuorum", "BrookSecurity", "BrookCrypto", "BrookMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        // The fuzzing harness (docs/reliability.md): one target per decoder family, replayed from
        // Tests/Fuzz/corpus by `brook-fuzz replay` and BrookFuzzTests, run under libFuzzer by
        // scripts/fuzz.sh (a BROOK_FUZZ=1 build, below).
        .target(
            name: "BrookFuzzTargets",
            dependencies: [
                "BrookCore", "BrookRecords", "BrookProtocol", "BrookGroups", "BrookTxn", "BrookQuorum", "BrookCluster",
                "BrookSecurity", "BrookMQTT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "brook-fuzz", dependencies: ["BrookFuzzTargets"]),
        // The client library's example package (Examples/Quickstart), built here too so that
        // every build compiles it and the executable checks run it against a broker.
        .executableTarget(name: "brook-quickstart", dependencies: ["BrookClient"], path: "Examples/Quickstart/Sources/Quickstart"),
        .testTarget(name: "BrookCoreTests", dependencies: ["BrookCore"]),
        .testTarget(name: "BrookClientTests", dependencies: [
            "BrookClient", "BrookCore", "BrookRecords", "BrookGroups", "BrookProtocol",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "BrookMQTTTests", dependencies: ["BrookMQTT", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "BrookSecurityTests",
            dependencies: ["BrookSecurity", "BrookCrypto", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "BrookQuorumTests",
            dependencies: [
                "BrookQuorum", "BrookRaft", "BrookStorage", "BrookCore", "BrookCluster", "BrookProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "BrookRaftTests", dependencies: ["BrookRaft", "BrookSimulation", "BrookCore"]),
        .testTarget(
            name: "BrookClusterTests",
            dependencies: ["BrookCluster", "BrookSimulation", "BrookStorage", "BrookProtocol", "BrookCore"]
        ),
        .testTarget(name: "BrookTxnTests", dependencies: ["BrookTxn", "BrookCore", "BrookProtocol"]),
        .testTarget(name: "BrookGroupsTests", dependencies: ["BrookGroups", "BrookCore", "BrookProtocol"]),
        .testTarget(
            name: "BrookRecordsTests",
            dependencies: ["BrookRecords", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "BrookProtocolTests",
            dependencies: ["BrookProtocol", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["golden"]
        ),
        .testTarget(
            name: "BrookBrokerTests",
            dependencies: [
                "BrookBroker", "BrookServer", "BrookProtocol", "BrookRecords", "BrookStorage", "BrookGroups", "BrookTxn",
                "BrookSecurity", "BrookClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "BrookFuzzTests", dependencies: ["BrookFuzzTargets"]),
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

// BROOK_FUZZ=1 (scripts/fuzz.sh, scratch path .build-fuzz): Brook's own modules are compiled with
// libFuzzer's coverage instrumentation, and brook-fuzz links libFuzzer's runtime without its
// main (brook-fuzz keeps its own and calls LLVMFuzzerRunDriver). swift-nio and the other
// dependencies stay uninstrumented, so coverage is the decoders' own.
if ProcessInfo.processInfo.environment["BROOK_FUZZ"] == "1" {
    for target in package.targets where target.type == .regular || target.type == .executable {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-sanitize=fuzzer"]), .define("BROOK_FUZZ")]
        target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-fsanitize=fuzzer-no-link"])]
    }
    let fuzzer = package.targets.first { $0.name == "brook-fuzz" }!
    fuzzer.linkerSettings = [.unsafeFlags([libFuzzerRuntime(), "-lstdc++", "-lm"])]
}

/// libclang_rt.fuzzer_no_main of the toolchain: BROOK_FUZZ_RUNTIME, else found beside the
/// `swiftc` on PATH (<toolchain>/usr/lib/clang/<version>/lib/linux/).
func libFuzzerRuntime() -> String {
    let environment = ProcessInfo.processInfo.environment
    if let path = environment["BROOK_FUZZ_RUNTIME"] { return path }
    let files = FileManager.default
    #if arch(arm64)
    let name = "libclang_rt.fuzzer_no_main-aarch64.a"
    #else
    let name = "libclang_rt.fuzzer_no_main-x86_64.a"
    #endif
    for directory in (environment["PATH"] ?? "").split(separator: ":") + ["/opt/swift/usr/bin"]
    where files.fileExists(atPath: "\(directory)/swiftc") {
        let clang = URL(fileURLWithPath: "\(directory)/swiftc").resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("lib/clang").path
        for version in (try? files.contentsOfDirectory(atPath: clang)) ?? [] {
            let path = "\(clang)/\(version)/lib/linux/\(name)"
            if files.fileExists(atPath: path) { return path }
        }
    }
    fatalError("BROOK_FUZZ=1: \(name) not found; set BROOK_FUZZ_RUNTIME to its path")
}

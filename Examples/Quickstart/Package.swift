// swift-tools-version:6.1
// A program that depends on BrookClient as any Swift package would: it makes a topic with the
// admin client, sends records with the producer and reads them back in a consumer group.
//
//   brook serve &                       # or any Kafka-compatible broker on 127.0.0.1:9092
//   swift run --package-path Examples/Quickstart Quickstart [bootstrap] [consumer|classic]
import PackageDescription

// The Brook repository's package, two directories up: a path dependency's identity is its
// directory's name.
let brook = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { String($0).lowercased() } ?? "main"

let package = Package(
    name: "Quickstart",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The Brook repository, two directories up (elsewhere: its URL and a version).
        .package(path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "Quickstart",
            dependencies: [.product(name: "BrookClient", package: brook)]
        ),
    ]
)

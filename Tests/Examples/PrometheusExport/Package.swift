// swift-tools-version: 6.0
// A sample application that embeds the store the way a user's package would (a dependency by path), logs
// through swift-log and exports the store's metrics in Prometheus format through swift-metrics and
// swift-prometheus. CI builds and runs it (`Tools/sample.sh`); it exits non-zero when the metrics are missing.
import PackageDescription

let package = Package(
    name: "PrometheusExport",
    dependencies: [
        // The library by path; a symlink named after the package, because a path dependency is known by its
        // directory's name (the repository may be cloned under any name).
        .package(path: "DurableQueue"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
    ],
    targets: [
        .executableTarget(name: "PrometheusExport", dependencies: [
            .product(name: "DurableQueue", package: "DurableQueue"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
    ]
)

// swift-tools-version: 6.0
// libFuzzer targets, kept in their own package so that the main package builds and tests without the
// fuzzer runtime. Build and run them with `bash Tools/fuzz.sh` (from the repository root).
import PackageDescription

let package = Package(
    name: "Fuzz",
    dependencies: [.package(name: "DurableQueue", path: "../..")],
    targets: [
        .executableTarget(name: "fuzz-frame", dependencies: [.product(name: "LogFormat", package: "DurableQueue")]),
        .executableTarget(name: "fuzz-recovery", dependencies: [
            .product(name: "DurableLog", package: "DurableQueue"),
            .product(name: "WALSimulation", package: "DurableQueue"),
            .product(name: "LogFormat", package: "DurableQueue"),
        ]),
    ]
)

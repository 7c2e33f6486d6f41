// swift-tools-version: 6.0
import PackageDescription

// Linux only (built and tested with glibc; Darwin untested). Every libc call of the library targets' Swift code is
// in Sources/DurableLog/Platform.swift (DurableQueue and WALSimulation use its `package` functions), so a port
// starts there; CCRC32C's ARM CPU check also uses Linux's getauxval. No `platforms:` entry: it cannot name Linux.

// Dependencies run one way: C targets -> LogFormat -> DurableLog -> benchmarks, tools and tests.
let package = Package(
    name: "DurableQueue",
    products: [
        .library(name: "DurableLog", targets: ["DurableLog"]),
        .library(name: "LogFormat", targets: ["LogFormat"]),
        .library(name: "WALSimulation", targets: ["WALSimulation"]),
        .library(name: "DurableQueue", targets: ["DurableQueue"]),
        .library(name: "DurableQueueService", targets: ["DurableQueueService"]),
        .library(name: "Coordination", targets: ["Coordination"]),
        .library(name: "ReplicatedQueue", targets: ["ReplicatedQueue"]),
        .executable(name: "wal-bench", targets: ["WALBench"]),
        .executable(name: "walctl", targets: ["walctl"]),
        .executable(name: "wal-torture", targets: ["wal-torture"]),
        .executable(name: "queue-node", targets: ["queue-node"]),
        .executable(name: "queue-chaos", targets: ["queue-chaos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        // Line framing for queue-node's test-client protocol (LineBasedFrameDecoder).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.30.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // `swift package generate-documentation` (the DocC catalogs under Sources/*/*.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // Hardware CRC32C (SSE4.2 / ARMv8 CRC) chosen at run time, with a portable table fallback.
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        // The system's liblz4 (Debian: liblz4-dev), never a vendored copy.
        .systemLibrary(
            name: "CLZ4",
            path: "Sources/CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // Pure values, no I/O: LSNs, segment and frame headers, batch encoding, codecs, checksums.
        .target(name: "LogFormat", dependencies: ["CCRC32C", "CLZ4"]),
        // Files, the group committer, recovery and readers.
        .target(name: "DurableLog", dependencies: [
            "LogFormat", .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // The queue layer: queues with confirms and acks, streams with offsets, checkpoints, reclamation.
        .target(name: "DurableQueue", dependencies: [
            "DurableLog", "LogFormat", .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // A store as a swift-service-lifecycle Service (its own product: the core needs no lifecycle library).
        .target(name: "DurableQueueService", dependencies: [
            "DurableQueue", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The replication group's coordination (leader lease, fenced state, watch) behind the `Coordinator`
        // protocol: etcd's v3 JSON gateway over async-http-client, and an in-memory twin for simulations.
        // `Replication` and `ReplicatedQueue` use it through the protocol only.
        .target(name: "Coordination", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // Replication of one log: the stream's messages, the leader's and the follower's side of a connection,
        // the in-sync set's commit point (see DESIGN.md, "Replication").
        .target(name: "Replication", dependencies: [
            "DurableLog", "LogFormat", "Coordination", .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // A store replicated over a group: the store of each term a node leads, its role, its outcomes.
        .target(name: "ReplicatedQueue", dependencies: [
            "DurableQueue", "Replication", "DurableLog", "LogFormat", "Coordination",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Seeded runs of a replicated log: replicas on simulated disks, a simulated network, the in-memory
        // coordinator (for tests and `wal-torture --cluster`).
        .target(name: "ClusterSimulation", dependencies: ["Replication", "WALSimulation", "DurableLog", "LogFormat", "Coordination"]),
        // A file system that simulates power loss (unsynced writes dropped or torn), for tests and torture runs.
        .target(name: "WALSimulation", dependencies: [
            "DurableLog", "LogFormat", .product(name: "Logging", package: "swift-log"),
        ]),

        // The benchmark workload generator (../shared/bench/WORKLOAD.md) and the benchmark itself, which runs
        // the system's SQLite (Debian: libsqlite3-dev) side by side on the same work.
        .target(name: "Workload", path: "Benchmarks/Workload"),
        .systemLibrary(
            name: "CSQLite",
            path: "Benchmarks/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .executableTarget(
            name: "WALBench",
            dependencies: [
                "DurableLog", "DurableQueue", "Workload", "CLZ4", "CSQLite", "Replication", "Coordination", "ReplicatedQueue",
                .product(name: "Histogram", package: "hdrhistogram-swift"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/WALBench"
        ),

        // The log-inspection CLI: info, verify, dump, recover.
        .executableTarget(
            name: "walctl",
            dependencies: ["DurableLog", "LogFormat", "DurableQueue",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/walctl"
        ),

        // Simulated power cuts over many seeds, beyond what the default test run covers.
        .executableTarget(
            name: "wal-torture",
            dependencies: ["WALSimulation", "ClusterSimulation", "DurableLog",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tools/wal-torture"
        ),

        // The cluster as real processes: a replica per process (queue-node), the protocol its test clients
        // speak (NodeWire), and the chaos campaign that kills, stops and wipes them under a private etcd.
        .target(name: "NodeWire", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
        ], path: "Tools/NodeWire"),
        .executableTarget(name: "queue-node", dependencies: [
            "NodeWire", "ReplicatedQueue", "DurableQueue", "Coordination", .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
        ], path: "Tools/queue-node"),
        .executableTarget(name: "queue-chaos", dependencies: [
            "NodeWire", "EtcdTestSupport", "WALSimulation", "queue-node", "walctl",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Tools/queue-chaos"),

        // A child process for the crash tests: appends under load and reports each confirm on stdout.
        .executableTarget(name: "WALCrashChild", dependencies: [
            "DurableLog", .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/WALCrashChild"),
        .testTarget(name: "LogFormatTests", dependencies: ["LogFormat", "CCRC32C", "WALSimulation"]),
        .testTarget(name: "DurableLogTests", dependencies: ["DurableLog", "WALSimulation", "WALCrashChild", "walctl"]),
        .executableTarget(name: "QueueCrashChild", dependencies: [
            "DurableQueue", .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/QueueCrashChild"),
        .testTarget(name: "DurableQueueTests", dependencies: [
            "DurableQueue", "DurableLog", "WALSimulation", "QueueCrashChild", "walctl",
            .product(name: "Logging", package: "swift-log"), .product(name: "MetricsTestKit", package: "swift-metrics"),
            "DurableQueueService", .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            "ReplicatedQueue", "Coordination",
        ]),
        // The Coordinator contract, run against the in-memory coordinator and a private etcd (PrivateEtcd.swift
        // starts it; it needs an HTTP client and sockets, which WALSimulation, under every test, should not).
        // A private etcd for tests (started with Process on loopback, stopped by PID); its own target, so that
        // the coordination and the replication tests share it and WALSimulation needs no sockets.
        .target(name: "EtcdTestSupport", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Tests/EtcdTestSupport"),
        .testTarget(name: "CoordinationTests", dependencies: [
            "Coordination", "EtcdTestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "ReplicationTests", dependencies: [
            "Replication", "DurableLog", "WALSimulation", "Coordination", "ClusterSimulation", "EtcdTestSupport",
            "wal-torture",  // run by the test that replays a seed in another process
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "ReplicatedQueueTests", dependencies: [
            "ReplicatedQueue", "DurableQueue", "DurableLog", "LogFormat", "Coordination", .product(name: "Logging", package: "swift-log"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ]),
        .testTarget(name: "ChaosTests", dependencies: ["queue-chaos", "queue-node", "NodeWire", "DurableQueue"]),
        .testTarget(name: "WorkloadTests", dependencies: ["Workload", "WALBench"], path: "Tests/WorkloadTests"),
    ]
)

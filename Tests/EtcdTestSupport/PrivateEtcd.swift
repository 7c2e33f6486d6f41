import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOPosix
import Synchronization

/// A private etcd for the tests: its own temporary data directory and free loopback ports, started with
/// `Process`, ready when `/health` says true (polled with a deadline), stopped by PID (SIGTERM, then wait for the
/// exit), its directory removed. Never the system's etcd service.
///
/// It lives in a test-support target of its own rather than in WALSimulation: it needs an HTTP client and
/// sockets, and WALSimulation sits under every test target and wal-torture, which need neither. The coordination
/// and replication tests use it; the replication simulations use `InMemoryCoordinator` and no etcd.
public final class PrivateEtcd: @unchecked Sendable {  // Process is not Sendable; `running` guards it.
    /// The client URL, e.g. http://127.0.0.1:40123.
    public let endpoint: String
    private let directory: URL
    private let launchArguments: (binary: String, arguments: [String], log: URL)
    private let running: Mutex<(process: Process, exited: ExitSignal)>

    private init(endpoint: String, process: Process, directory: URL, exited: ExitSignal,
                 launchArguments: (binary: String, arguments: [String], log: URL)) {
        self.endpoint = endpoint
        self.directory = directory
        self.launchArguments = launchArguments
        self.running = Mutex((process, exited))
    }

    /// The running etcd's process id.
    public var pid: Int32 { running.withLock { $0.process.processIdentifier } }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Starts an etcd and waits until it is healthy (at most `readyWithin`). A port taken between choosing it and
    /// etcd binding it ("address already in use") is retried with new ports, up to 5 times.
    public static func start(readyWithin: Duration = .seconds(20)) async throws -> PrivateEtcd {
        guard let binary = locateBinary() else {
            throw Failure(description: """
                etcd is not installed, and the etcd half of CoordinationTests needs it: run \
                `bash Tools/ensure-dependencies.sh --test-tools` (installs Debian's etcd-server), or set ETCD to its path
                """)
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("coordination-etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let probe = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            for attempt in 1...5 {
                if let etcd = try await launch(binary, in: directory, attempt: attempt, probe: probe,
                                               readyWithin: readyWithin) {
                    try await probe.shutdown()
                    return etcd
                }
            }
            throw Failure(description: "etcd found its ports taken 5 times in a row")
        } catch {
            try? await probe.shutdown()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// SIGTERM by PID, waits for the exit (SIGKILL after 10 s), removes the data directory.
    public func stop() async {
        let (process, exited) = running.withLock { $0 }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        if await !exited.wait(upTo: .seconds(10)) {
            kill(process.processIdentifier, SIGKILL)
            _ = await exited.wait(upTo: .seconds(10))
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// SIGKILL by PID (a crash: no clean shutdown), waits for the exit; the data directory stays for `restart`.
    public func crash() async {
        let (process, exited) = running.withLock { $0 }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        _ = await exited.wait(upTo: .seconds(10))
    }

    /// Starts etcd again on the same ports and data directory (after `crash`), and waits until it is healthy.
    public func restart(readyWithin: Duration = .seconds(20)) async throws {
        let (process, exited) = try Self.spawn(launchArguments)
        running.withLock { $0 = (process, exited) }
        let probe = HTTPClient(eventLoopGroupProvider: .singleton)
        var healthy = false
        let deadline = ContinuousClock.now + readyWithin
        while !healthy, !exited.hasExited, ContinuousClock.now < deadline {
            healthy = await Self.isHealthy(endpoint, probe: probe)
            if !healthy { try? await Task.sleep(for: .milliseconds(25)) }
        }
        try? await probe.shutdown()
        if exited.hasExited { throw Failure(description: "etcd exited when restarted; see \(launchArguments.log.path)") }
        if !healthy { throw Failure(description: "etcd was not healthy within \(readyWithin) of its restart") }
    }

    private static func spawn(_ launch: (binary: String, arguments: [String], log: URL)) throws -> (Process, ExitSignal) {
        if !FileManager.default.fileExists(atPath: launch.log.path) {
            _ = FileManager.default.createFile(atPath: launch.log.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: launch.log)
        defer { try? log.close() }
        _ = try? log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launch.binary)
        process.arguments = launch.arguments
        process.standardOutput = log
        process.standardError = log
        let exited = ExitSignal()
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        return (process, exited)
    }

    /// One start on new ports: the etcd when healthy, nil when a port was taken (retry), or a failure.
    private static func launch(_ binary: String, in directory: URL, attempt: Int, probe: HTTPClient,
                               readyWithin: Duration) async throws -> PrivateEtcd? {
        let clientPort = try await freeLoopbackPort(), peerPort = try await freeLoopbackPort()
        let name = "coordination-tests-\(UUID().uuidString.prefix(8))"
        let client = "http://127.0.0.1:\(clientPort)", peer = "http://127.0.0.1:\(peerPort)"
        let logURL = directory.appendingPathComponent("etcd-\(attempt).log")
        let launchArguments = (binary: binary, arguments: [
            "--name", name, "--data-dir", directory.appendingPathComponent("data-\(attempt)").path,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "\(name)=\(peer)", "--initial-cluster-state", "new",
        ], log: logURL)
        let (process, exited) = try spawn(launchArguments)
        let etcd = PrivateEtcd(endpoint: client, process: process, directory: directory, exited: exited,
                               launchArguments: launchArguments)

        // Polled with a deadline: etcd has no readiness signal but its health endpoint (ready in 0.5-1.5 s here).
        let deadline = ContinuousClock.now + readyWithin
        while ContinuousClock.now < deadline {
            if exited.hasExited {
                let text = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
                if text.contains("address already in use") { return nil }
                throw Failure(description: "etcd exited before it was healthy; its log ends:\n\(text.suffix(2000))")
            }
            if await isHealthy(client, probe: probe) {
                // A port we chose could have been taken by another server that is also healthy: make sure the
                // etcd answering is ours.
                guard await memberNames(client, probe: probe).contains(name) else {
                    await etcd.stop()
                    return nil
                }
                return etcd
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        await etcd.stop()
        throw Failure(description: "etcd was not healthy within \(readyWithin)")
    }

    private static func isHealthy(_ endpoint: String, probe: HTTPClient) async -> Bool {
        guard let response = try? await probe.execute(HTTPClientRequest(url: endpoint + "/health"), timeout: .seconds(1)),
              response.status == .ok,
              let body = try? await response.body.collect(upTo: 1 << 16) else { return false }
        return String(buffer: body).contains("\"true\"")
    }

    private static func memberNames(_ endpoint: String, probe: HTTPClient) async -> String {
        var request = HTTPClientRequest(url: endpoint + "/v3/cluster/member/list")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: "{}"))
        guard let response = try? await probe.execute(request, timeout: .seconds(2)),
              let body = try? await response.body.collect(upTo: 1 << 16) else { return "" }
        return String(buffer: body)
    }

    /// A loopback port nobody listens on now (bound to port 0, then closed). It may be taken again before etcd
    /// binds it, which `launch` detects and retries.
    public static func freeLoopbackPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port
        try await channel.close()
        guard let port else { throw Failure(description: "a bound socket without a port") }
        return port
    }

    private static func locateBinary() -> String? {
        if let path = ProcessInfo.processInfo.environment["ETCD"], !path.isEmpty {
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { "\($0)/etcd" } + ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// The child's exit, awaited without blocking a thread (Process's terminationHandler resumes the waiters).
final class ExitSignal: Sendable {
    private struct State {
        var exited = false
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var next = 0
    }
    private let state = Mutex(State())

    var hasExited: Bool { state.withLock { $0.exited } }

    func signal() {
        let waiters = state.withLock { s in
            s.exited = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// True when the process exited within `limit`.
    func wait(upTo limit: Duration) async -> Bool {
        let id = state.withLock { s in defer { s.next += 1 }; return s.next }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let already = self.state.withLock { s in
                        if s.exited { return true }
                        s.waiters[id] = continuation
                        return false
                    }
                    if already { continuation.resume(returning: true) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: false)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || hasExited
        }
    }
}

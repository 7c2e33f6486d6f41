import Coordination
import DurableQueue
import Foundation
import LogFormat
import ReplicatedQueue

/// Awaited publishes to a replicated store of three members in this process (`ReplicatedQueueStore`, the
/// in-memory coordinator, loopback TCP): each confirm waits for both followers' disks. `viaFollower`: the
/// publishes are made on a follower and forwarded to the leader. As `ReplicatedRun`, the three share this
/// machine's one disk and CPUs: a lower bound for members on separate machines.
struct ReplicatedQueueRun {
    var concurrency: Int
    var viaFollower = false
    var messagesMax: Int
    var secondsMax: Double

    func run(messages: MessageSet, directory: String) async throws -> Measurement {
        let base = directory + "/replicated-store-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let coordinator = InMemoryCoordinator(clock: ManualClock())
        let names = ["alpha", "beta", "gamma"]
        var endpoints: [String: Endpoint] = [:]
        for name in names { endpoints[name] = Endpoint(host: "127.0.0.1", port: try freeLoopbackPort()) }
        var nodes: [String: ReplicatedQueueStore] = [:]
        for name in names {
            var replication = ReplicationOptions(member: name, listen: endpoints[name]!,
                                                 peers: endpoints.filter { $0.key != name })
            replication.leaseTTL = .seconds(30)
            nodes[name] = try await ReplicatedQueueStore.start(directory: base + "/" + name, replication: replication,
                                                               coordinator: coordinator)
        }
        // Wait for a leader with both followers in sync.
        var leaderName = ""
        while true {
            if let state = try await coordinator.read().state, state.inSync.count == 3, let leader = state.leader?.member,
               case .leader = nodes[leader]!.role {
                leaderName = leader
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let store = try await nodes[leaderName]!.leaderStore()
        try await store.declareQueue("bench")
        let target = viaFollower ? nodes[names.first { $0 != leaderName }!]! : nodes[leaderName]!
        let bodies = messages.bodies()

        let countersBefore = store.logCounters
        let shared = SharedProgress()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: start + UInt64(secondsMax * 1e9), shared: shared) { _, i in
            _ = try await target.publish(to: "bench", bodies[i % bodies.count])
        }
        let cpuEnd = processCPUSeconds()
        let counters = store.logCounters.since(countersBefore)
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9
        for node in nodes.values { await node.shutdown() }

        var measurement = Measurement(
            scenario: "queue replicated x3\(viaFollower ? " via follower" : "") c=\(concurrency)" + messages.label,
            concurrency: concurrency, codec: "lz4", syncsInFlight: StoreOptions().log.syncsInFlightMax,
            messages: Int(latencies.totalCount), seconds: seconds, latencies: latencies,
            recordsPerSync: counters.recordsPerSync, bytesWrittenPerRecord: counters.bytesWrittenPerRecord,
            cpuSeconds: cpuEnd - cpuStart, messageBytes: messages.size)
        measurement.syncMicrosecondsMean = counters.syncMicrosecondsMean
        return measurement
    }
}

/// A TCP port free on loopback now: bound to port 0, read back, released.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
    return Int(UInt16(bigEndian: address.sin_port))
}

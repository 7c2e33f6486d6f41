import Coordination
import DurableLog
import Foundation
import LogFormat
import NIOPosix
import Replication
import Synchronization

/// Awaited appends to a replicated log of three replicas in this process: a leader whose confirms wait for
/// both followers' disks (`minInsyncReplicas` 2, both followers in sync), each follower on its own loopback TCP
/// connection, running its own group commit and `fdatasync`. All three directories are on the one disk this
/// machine has, so the three replicas' syncs share it: a lower bound for replicas on separate machines, and
/// the same CPUs run all three.
struct ReplicatedRun {
    var concurrency: Int
    var messagesMax: Int
    var secondsMax: Double

    func run(messages: MessageSet, directory: String) async throws -> Measurement {
        let base = directory + "/replicated-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var leaderOptions = LogOptions()
        leaderOptions.leaderEpoch = 1
        leaderOptions.confirmsWaitForReplicas = true
        let leader = try WriteAheadLog.open(directory: base + "/leader", options: leaderOptions)
        var history = EpochHistory()
        try history.begin(epoch: 1, at: .first)
        try history.save(directory: base + "/leader")
        let members = [ReplicaIdentity(member: "beta", incarnation: 1), ReplicaIdentity(member: "gamma", incarnation: 2)]
        let tracker = InSyncTracker(log: leader, inSync: Set(members), minInsyncReplicas: 2)
        let sessions = LeaderSessions()
        leader.observeWrites { [sessions] in sessions.pumpAll() }
        let listener = try await ReplicationListener.bind(host: "127.0.0.1", port: 0, group: group) { [history] connection in
            let session = LeaderSession(log: leader, history: history, epoch: 1, tracker: tracker, send: connection.send)
            sessions.add(session)
            connection.deliver { message in if let message { session.receive(message) } }
        }
        var followers: [(FollowerSession, ReplicationConnection)] = []
        for member in members {
            var options = LogOptions()
            options.isReplica = true
            options.identity = leader.identity
            let dir = base + "/" + member.member
            let log = try WriteAheadLog.open(directory: dir, options: options)
            let connection = try await ReplicationDialer.connect(host: "127.0.0.1", port: listener.port, group: group)
            let session = try FollowerSession(log: log, configuration: .init(directory: dir, options: options, replica: member,
                                                                             leaderEpoch: 1), send: connection.send)
            connection.deliver { message in if let message { session.receive(message) } }
            session.start()
            followers.append((session, connection))
        }
        while !followers.allSatisfy({ $0.0.isFollowing }) { try await Task.sleep(for: .milliseconds(1)) }

        let countersBefore = leader.counters
        let shared = SharedProgress()
        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let latencies = try await runAwaitedProducers(concurrency: concurrency, messagesMax: messagesMax,
                                                      deadline: start + UInt64(secondsMax * 1e9), shared: shared) { _, i in
            _ = try await leader.append(messages.bytes[messages.range(i)])
        }
        let cpuEnd = processCPUSeconds()
        let counters = leader.counters.since(countersBefore)
        let seconds = Double(shared.lastConfirm.load(ordering: .relaxed) - start) / 1e9

        leader.observeWrites(nil)
        for (session, connection) in followers {
            connection.close()
            try? session.log.close()
        }
        try? await listener.close()
        try? leader.close()
        try? await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: base)

        var measurement = Measurement(
            scenario: "wal replicated x3 c=\(concurrency)" + messages.label, concurrency: concurrency, codec: "lz4",
            syncsInFlight: leaderOptions.syncsInFlightMax, messages: Int(latencies.totalCount), seconds: seconds,
            latencies: latencies, recordsPerSync: counters.recordsPerSync, bytesWrittenPerRecord: counters.bytesWrittenPerRecord,
            cpuSeconds: cpuEnd - cpuStart, messageBytes: messages.size)
        measurement.syncMicrosecondsMean = counters.syncMicrosecondsMean
        return measurement
    }
}

/// The leader's sessions, pumped after each group the log writes.
private final class LeaderSessions: Sendable {
    private let sessions = Mutex<[LeaderSession]>([])
    func add(_ session: LeaderSession) { sessions.withLock { $0.append(session) } }
    func pumpAll() { for session in sessions.withLock({ $0 }) { session.pump() } }
}

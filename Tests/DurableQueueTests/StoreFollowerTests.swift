import Foundation
import LogFormat
import Testing
import DurableLog
@testable import DurableQueue

/// A follower's copy of the state: applied from the log only through what is committed, checkpointed and
/// truncated as a leader's store would be, and handed to a store that opens on the same log.
@Suite(.timeLimit(.minutes(5))) struct StoreFollowerTests {
    /// A store's directory holding `count` messages in "q" (and its checkpoint-free log).
    private func filledStore(_ dir: TemporaryDirectory, count: Int, options: StoreOptions) async throws -> [MessageID] {
        let store = try await QueueStore.open(directory: dir.path, options: options)
        try await store.declareQueue("q")
        var ids: [MessageID] = []
        for i in 0..<count { ids.append(try await store.publish(to: "q", text("m\(i)"))) }
        try store.log.close()  // as a crash would leave it: no final checkpoint
        return ids
    }

    @Test func itAppliesOnlyWhatIsCommittedAndAStoreOpensFromItWithoutReplaying() async throws {
        let dir = TemporaryDirectory()
        let options = testOptions()
        let ids = try await filledStore(dir, count: 40, options: options)
        let log = try WriteAheadLog.open(directory: "\(dir.path)/wal", options: QueueStore.logOptions(options))
        let follower = StoreFollower(directory: dir.path, options: options)
        let committed = LSN(ids[19].rawValue)
        try follower.catchUp(log: log, committed: committed)
        #expect(follower.appliedLSN == committed)
        // Never past what the log holds, however far the leader's watermark claims.
        try follower.catchUp(log: log, committed: LSN(log.durableLSN.rawValue + 100))
        #expect(follower.appliedLSN == log.durableLSN)

        let end = log.durableLSN
        let store = try await QueueStore.open(directory: dir.path, options: options, log: log, writeGate: { nil },
                                              warm: follower)
        #expect(store.openReport.replayedRecords == 0)
        #expect(store.openReport.checkpointLSN == .none, "the checkpoint on disk is what counts for deleting segments")
        #expect(store.queueInfo("q")?.ready == 40)
        #expect(store.log.durableLSN > end, "the session start")
        let taken = try await take(40, from: try store.consume(queue: "q"))
        #expect(taken.map(\.messageID) == ids)
        #expect(follower.appliedLSN == .none, "the copy went to the store")
        try await store.shutdown()
    }

    @Test func itCheckpointsAndDeletesSegmentsNothingNeeds() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions(segmentBytes: 64 << 10)
        let ids = try await filledStore(dir, count: 1, options: options)
        // Acked messages: nothing keeps the early segments alive once a checkpoint covers them.
        do {
            let store = try await QueueStore.open(directory: dir.path, options: options)
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<300 {
                // Random bytes: LZ4 cannot shrink them, so the log spans several segments.
                _ = try await store.publish(to: "q", Message(body: (0..<1000).map { _ in UInt8.random(in: 0...255, using: &generator) }))
            }
            let consumer = try store.consume(queue: "q", prefetch: 400)
            let all = try await take(301, from: consumer)
            try await consumer.ack(all.last!.tag, multiple: true)
            try store.log.close()
        }
        options.checkpointEveryBytes = 1
        let log = try WriteAheadLog.open(directory: "\(dir.path)/wal", options: QueueStore.logOptions(options))
        defer { try? log.close() }
        let segmentsBefore = log.segments.count
        #expect(segmentsBefore >= 4)
        let follower = StoreFollower(directory: dir.path, options: options)
        try follower.catchUp(log: log, committed: log.durableLSN)
        try follower.checkpointIfDue(log: log)  // sets the baseline: the log's counters start at this open
        #expect(try Checkpoint.read(directory: dir.path, fileSystem: PosixFileSystem()) == nil)
        _ = try await log.append(StoreRecord.sessionStart(time: 0).encode())
        try follower.catchUp(log: log, committed: log.durableLSN)
        try follower.checkpointIfDue(log: log)
        let checkpoint = try StoreLoader.loadCheckpoint(directory: dir.path, fileSystem: PosixFileSystem())
        #expect(checkpoint.appliedLSN == log.durableLSN.rawValue)
        #expect(log.segments.count < segmentsBefore, "segments before the checkpoint deleted (\(segmentsBefore) before)")
        #expect(log.firstLSN > LSN(ids[0].rawValue))
    }

    /// A leader's checkpoint sent to a replica behind its first segment: read with the LSN its header names,
    /// checked whole before it replaces the replica's own (damaged bytes, or an LSN other than the one sent,
    /// replace nothing), and the replica's copy starts again from it.
    @Test func aLeadersCheckpointIsCheckedWholeBeforeItReplacesTheReplicas() async throws {
        let leaderDir = TemporaryDirectory(), replicaDir = TemporaryDirectory()
        let options = testOptions()
        let ids = try await filledStore(leaderDir, count: 30, options: options)
        do {
            let store = try await QueueStore.open(directory: leaderDir.path, options: options)
            try store.checkpoint()
            try await store.shutdown()
        }
        let offered = try #require(try StoreFollower.latestCheckpoint(directory: leaderDir.path))
        #expect(offered.covers.rawValue >= ids.last!.rawValue)
        #expect(try StoreFollower.latestCheckpoint(directory: replicaDir.path) == nil)

        let own = Checkpoint.encode(StoreState())
        try Checkpoint.write(own, directory: replicaDir.path, fileSystem: PosixFileSystem())
        let replica = StoreFollower(directory: replicaDir.path, options: options)
        let offeredBytes = try offered.file.read(at: 0, count: offered.file.size)
        #expect(offeredBytes.count == offered.file.size)
        // As a follower receives it: a file in its log directory, renamed into place once checked.
        let received = replicaDir.path + "/wal/snapshot.incoming"
        try FileManager.default.createDirectory(atPath: replicaDir.path + "/wal", withIntermediateDirectories: true)
        var damaged = offeredBytes
        damaged[damaged.count / 2] ^= 0x40
        for (bytes, covers) in [(damaged, offered.covers), (offeredBytes, offered.covers + 1), (Array(offeredBytes.prefix(40)), offered.covers)] {
            _ = FileManager.default.createFile(atPath: received, contents: Data(bytes))
            let error = #expect(throws: WALError.self) { try replica.install(checkpointFile: received, covers: covers) }
            #expect(error?.code == .corruption)
            #expect(try Checkpoint.read(directory: replicaDir.path, fileSystem: PosixFileSystem()) == own, "nothing replaced")
        }

        _ = FileManager.default.createFile(atPath: received, contents: Data(offeredBytes))
        try replica.install(checkpointFile: received, covers: offered.covers)
        #expect(try Checkpoint.read(directory: replicaDir.path, fileSystem: PosixFileSystem()) == offeredBytes)
        #expect(!FileManager.default.fileExists(atPath: received), "taken: renamed into place")
        // The copy loads it at its next catch-up, with no log records before or after it to apply.
        let log = try WriteAheadLog.open(directory: "\(leaderDir.path)/wal", options: QueueStore.logOptions(options))
        defer { try? log.close() }
        try replica.catchUp(log: log, committed: offered.covers)
        #expect(replica.appliedLSN == offered.covers)
        let copy = try #require(replica.take())
        #expect(copy.state.queues.values.first?.ready.count == 30)
    }
}

import Foundation
import Glibc
import Testing
import DurableLog
@testable import DurableQueue

/// What an application can get wrong: every case is a clear error with its own code, never a crash, and the
/// store goes on working after it.
@Suite(.timeLimit(.minutes(1))) struct MisuseTests {
    @Test(arguments: [2 << 20, 9 << 20, 100_000_000])
    func anOversizedStreamAppendIsRefusedLikeAPublish(bytes: Int) async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareStream("s")
        try await store.declareQueue("q")
        let body = Message(body: [UInt8](repeating: 7, count: bytes))
        let append = await expectQueueError(.invalidArgument) { try await store.append(to: "s", body) }
        let publish = await expectQueueError(.invalidArgument) { try await store.publish(to: "q", body) }
        #expect(append?.code == .invalidArgument && publish?.code == .invalidArgument)
        #expect(append?.message.contains("recordBytesMax") == true)
        // Nothing was written and the store goes on.
        #expect(try await store.append(to: "s", text("fits")) == 0)
        #expect(store.streamInfo("s")?.nextOffset == 1)
    }

    @Test func aRecordJustUnderTheLimitFitsEveryPath() async throws {
        let dir = TemporaryDirectory()
        let options = testOptions()
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareStream("s")
        try await store.declareQueue("q")
        let largest = Message(body: [UInt8](repeating: 1, count: options.log.recordBytesMax - 96))
        try await store.append(to: "s", largest)
        try await store.publish(to: "q", largest)
        let oneMore = Message(body: largest.body + [1])
        let e = await expectQueueError(.invalidArgument) { try await store.append(to: "s", oneMore) }
        #expect(e?.code == .invalidArgument)
    }

    @Test(arguments: [
        (QueueOptions(deliveryLimit: -1), "deliveryLimit"),
        (QueueOptions(deliveryLimit: 0), "deliveryLimit"),
        (QueueOptions(maxLength: -1), "maxLength"),
        (QueueOptions(ackTimeout: .seconds(-1)), "ackTimeout"),
        (QueueOptions(ackTimeout: .zero), "ackTimeout"),
        (QueueOptions(ackTimeout: .microseconds(1500)), "ackTimeout"),
        (QueueOptions(deadLetterQueue: ""), "deadLetterQueue"),
    ])
    func badQueueOptionsAreRefusedAtTheDoor(options: QueueOptions, named: String) async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        for durable in [true, false] {
            var o = options
            o.durable = durable
            let e = await expectQueueError(.invalidArgument) { try await store.declareQueue("q", options: o) }
            #expect(e?.code == .invalidArgument && e?.message.contains(named) == true)
        }
        #expect(store.queues().isEmpty)
    }

    @Test func badStreamOptionsAreRefusedAtTheDoor() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        for (o, named) in [(StreamOptions(maxBytes: -5), "maxBytes"), (StreamOptions(maxAge: .milliseconds(-1)), "maxAge"),
                           (StreamOptions(maxAge: .nanoseconds(10)), "maxAge")] {
            let e = await expectQueueError(.invalidArgument) { try await store.declareStream("s", options: o) }
            #expect(e?.code == .invalidArgument && e?.message.contains(named) == true)
        }
        #expect(store.streamInfo("s") == nil)
    }

    /// The values at the edges of each range are accepted and read back equal after a restart, so the
    /// same declaration matches itself then.
    @Test func edgeOptionsSurviveARestartUnchanged() async throws {
        let dir = TemporaryDirectory()
        let queue = QueueOptions(deliveryLimit: 1, deadLetterQueue: "dlq", ackTimeout: .milliseconds(1), maxLength: 0)
        let stream = StreamOptions(maxBytes: 0, maxAge: .milliseconds(1))
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q", options: queue)
        try await store.declareStream("s", options: stream)
        try store.close()
        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q", options: queue)
        try await store.declareStream("s", options: stream)
    }

    @Test func aSecondOpenInThisProcessSaysSo() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        let e = await expectQueueError(.locked) {
            _ = try await QueueStore.open(directory: dir.path, options: testOptions())
        }
        #expect(e?.code == .locked && e?.message.contains("this process") == true)
        #expect(e?.log?.code == .locked)
        try store.close()
        // Closed: it opens again.
        try await QueueStore.open(directory: dir.path, options: testOptions()).close()
    }

    @Test func aFileWhereTheStoreDirectoryBelongsIsAnIOFailureWithItsErrno() async throws {
        let dir = TemporaryDirectory()
        let file = dir.path + "/file"
        #expect(FileManager.default.createFile(atPath: file, contents: Data([1])))
        let e = await expectQueueError(.ioFailure) {
            _ = try await QueueStore.open(directory: file + "/store", options: testOptions())
        }
        #expect(e?.code == .ioFailure && e?.log?.errno == ENOTDIR)
        #expect(e?.message.contains("opening the store") == true)
    }

    @Test func aFileWhereTheLogDirectoryBelongsIsAnIOFailure() async throws {
        let dir = TemporaryDirectory()
        #expect(FileManager.default.createFile(atPath: dir.path + "/wal", contents: Data([1])))
        let e = await expectQueueError(.ioFailure) {
            _ = try await QueueStore.open(directory: dir.path, options: testOptions())
        }
        #expect(e?.code == .ioFailure && e?.log?.errno == ENOTDIR)
    }

    @Test func logOptionsThatDoNotFitAreAnInvalidStore() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.log.segmentBytes = 1000
        let e = await expectQueueError(.invalidStore) {
            _ = try await QueueStore.open(directory: dir.path, options: options)
        }
        #expect(e?.code == .invalidStore && e?.message.contains("segmentBytes") == true)
    }

    /// A background checkpoint that fails is kept where an operator sees it, and cleared by the next pass
    /// that succeeds; the store goes on confirming meanwhile.
    @Test func aFailedBackgroundCheckpointIsSurfacedAndClearedOnSuccess() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        var options = testOptions()
        options.checkpointEveryBytes = 1
        let store = try await QueueStore.open(directory: dir.path, options: options, fileSystem: fs)
        defer { try? store.close() }
        try await store.declareQueue("q")
        fs.inject(.init(.rename, errno: ENOSPC, sticky: true))
        try await store.publish(to: "q", text("a"))
        await store.maintain()
        await store.maintain()
        let failure = try #require(store.maintenanceFailure)
        #expect(failure.error.code == .ioFailure && failure.error.log?.errno == ENOSPC && failure.consecutive == 2)
        try await store.publish(to: "q", text("b"))  // confirms go on
        fs.clearFaults()
        try await store.publish(to: "q", text("c"))
        await store.maintain()
        #expect(store.maintenanceFailure == nil)
        #expect(store.diskUsage.checkpointLSN == store.diskUsage.lastLSN)
    }
}

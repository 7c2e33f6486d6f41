import Foundation
import Testing
import DurableLog
@testable import DurableQueue

/// A publisher made with `maxUnconfirmed`: its publishes wait for room in the window, a confirm frees room
/// and resumes them, and a publish that gives up (cancelled, refused) leaves no sequence number behind.
/// The log's syncs are held at the fault-injecting file system's gate, so nothing is confirmed until the test
/// lets it be.
@Suite(.timeLimit(.minutes(5))) struct PublisherWindowTests {
    @Test func aFullWindowRefusesATryAndTheConfirmThatFreesRoomResumesAWaitingPublish() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { fs.releaseSyncs(); try? store.close() }
        try await store.declareQueue("q")
        let publisher = try store.publisher(maxUnconfirmed: 3)
        #expect(publisher.maxUnconfirmed == 3 && store.publisher().maxUnconfirmed == nil)
        fs.holdSyncs(pathSuffix: ".wal")
        for i in 1...3 {
            #expect(try await publisher.publish(to: "q", text("\(i)")).rawValue == UInt64(i))
        }
        #expect(fs.waitForHeldSync(seconds: 10), "the first group's sync reached the gate")
        let refusal = await expectQueueError(.pendingFull) { try await publisher.tryPublish(to: "q", text("refused")) }
        #expect(refusal?.message.contains("maxUnconfirmed") == true)
        let fourth = Task { try await publisher.publish(to: "q", text("4")) }
        fs.releaseSyncs()
        let sequence = try await withDeadline(10, "the waiting publish") { try await fourth.value }
        #expect(sequence.rawValue == 4, "the refused try took no sequence number")
        #expect(try await publisher.waitForConfirms())
        let c = try store.consume(queue: "q", prefetch: 10)
        #expect(try await take(4, from: c).map(\.text) == ["1", "2", "3", "4"])
    }

    @Test func aPublishWaitingForRoomEndsOnCancellationWithNothingPublished() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { fs.releaseSyncs(); try? store.close() }
        try await store.declareQueue("q")
        let publisher = try store.publisher(maxUnconfirmed: 1)
        fs.holdSyncs(pathSuffix: ".wal")
        #expect(try await publisher.publish(to: "q", text("a")).rawValue == 1)
        // Cancelled before or after it starts to wait: either way it ends without publishing.
        let waiting = Task { try await publisher.publish(to: "q", text("b")) }
        waiting.cancel()
        let e = await expectQueueError(.cancelled) { _ = try await withDeadline(10, "the cancelled publish") { try await waiting.value } }
        #expect(e?.message.contains("nothing was published") == true)
        fs.releaseSyncs()
        #expect(try await publisher.publish(to: "q", text("c")).rawValue == 2, "the cancelled publish took no sequence number")
        #expect(try await publisher.waitForConfirms())
        let c = try store.consume(queue: "q", prefetch: 10)
        #expect(try await take(2, from: c).map(\.text) == ["a", "c"])
        #expect(store.queueInfo("q")?.ready == 0 && store.queueInfo("q")?.unacked == 2)
    }

    @Test func aPublishRefusedBeforeItTookANumberGivesItsRoomBack() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions(), fileSystem: fs)
        defer { fs.releaseSyncs(); try? store.close() }
        try await store.declareQueue("q")
        let publisher = try store.publisher(maxUnconfirmed: 1)
        fs.holdSyncs(pathSuffix: ".wal")
        await expectQueueError(.notFound) { try await publisher.publish(to: "missing", text("x")) }
        // With the window's one place still taken, this would wait for a confirm that the held sync never gives.
        let sequence = try await withDeadline(10, "a publish into the window the refused one left") {
            try await publisher.publish(to: "q", text("y"))
        }
        #expect(sequence.rawValue == 1)
        fs.releaseSyncs()
        #expect(try await publisher.waitForConfirms())
    }

    @Test func manyTasksShareOneWindowAndEveryPublishIsConfirmedOnce() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let publisher = try store.publisher(maxUnconfirmed: 4)
        let sequences = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var mine: [UInt64] = []
                    for i in 0..<50 { mine.append(try await publisher.publish(to: "q", text("\(t)-\(i)")).rawValue) }
                    return mine
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all
        }
        #expect(sequences.sorted() == Array(1...400))
        #expect(try await publisher.waitForConfirms())
        #expect(store.queueInfo("q")?.ready == 400)
    }

    @Test func aWindowBelowOneIsRefused() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        expectQueueError(.invalidArgument) { try store.publisher(maxUnconfirmed: 0) }
        expectQueueError(.invalidArgument) { try store.publisher(maxUnconfirmed: -5) }
    }
}

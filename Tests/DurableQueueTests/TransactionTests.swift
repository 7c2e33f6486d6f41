import Foundation
import Testing
import WALSimulation
import DurableLog
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct TransactionTests {
    @Test func commitMakesEverythingVisibleAtOnceAndDurably() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("a")
        try await store.declareQueue("b")
        try await store.declareStream("s")
        let tx = store.transaction()
        try tx.publish(to: "a", text("a1"))
        try tx.publish(to: "b", text("b1"))
        try tx.append(to: "s", text("s1"))
        try tx.commitOffset(stream: "s", group: "g", offset: 1)
        try tx.publish(to: "a", text("a2"))
        #expect(store.queueInfo("a")?.ready == 0 && store.queueInfo("b")?.ready == 0)
        #expect(store.streamInfo("s")?.nextOffset == 0)
        let result = try await tx.commit()
        #expect(result.messageIDs.count == 3 && result.offsets == [0])
        #expect(store.queueInfo("a")?.ready == 2 && store.queueInfo("b")?.ready == 1)
        await #expect { try await tx.commit() } throws: { ($0 as? QueueError)?.code == .invalidArgument }  // one-shot
        try dropWithoutClosing(store)

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        let c = try store.consume(queue: "a", prefetch: 10)
        let got = try await take(2, from: c)
        #expect(got.map(\.text) == ["a1", "a2"] && got.map(\.messageID) == [result.messageIDs[0], result.messageIDs[2]])
        #expect(try store.read(stream: "s", from: 0).map { String(decoding: $0.message.body, as: UTF8.self) } == ["s1"])
        #expect(try store.committedOffset(stream: "s", group: "g") == 1)
    }

    @Test func rollbackDiscardsAndGivesAckedDeliveriesBack() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("in")
        try await store.declareQueue("out")
        try await store.publish(to: "in", text("x"))
        let c = try store.consume(queue: "in", prefetch: 1)
        let d = try await take(1, from: c)[0]
        let tx = store.transaction()
        try tx.ack(d.tag, on: c)
        try tx.publish(to: "out", text("X"))
        // Claimed by the transaction: no other ack settles it meanwhile.
        await #expect { try await c.ack(d.tag) } throws: { ($0 as? QueueError)?.code == .unknownDeliveryTag }
        tx.rollback()
        #expect(store.queueInfo("out")?.ready == 0)
        #expect(store.queueInfo("in")?.unacked == 1)
        try await c.ack(d.tag)  // out with the consumer again
        #expect(store.queueInfo("in") == QueueInfo(name: "in", durable: true, ready: 0, unacked: 0, consumers: 1,
                                                    deadLettered: 0, liveBytes: 0))
    }

    /// Consume, transform, produce: the input's ack and the outputs commit together, so after a crash the
    /// input is either still queued with no output, or gone with its output stored: never both, never neither.
    @Test func consumeTransformProduceIsExactlyOnceAcrossARestart() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("in")
        try await store.declareQueue("out")
        for i in 0..<10 { try await store.publish(to: "in", text("\(i)")) }
        let c = try store.consume(queue: "in", prefetch: 10)
        let inputs = try await take(10, from: c)
        for d in inputs.prefix(6) {
            let tx = store.transaction()
            try tx.ack(d.tag, on: c)
            try tx.publish(to: "out", text("done-" + d.text))
            try await tx.commit()
        }
        // The last four are in flight when the process dies: one transaction holds its ack but never commits.
        let open = store.transaction()
        try open.ack(inputs[6].tag, on: c)
        try open.publish(to: "out", text("done-6"))
        try dropWithoutClosing(store)
        open.rollback()

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        let again = try store.consume(queue: "in", prefetch: 10)
        let left = try await take(4, from: again)
        #expect(left.map(\.text) == ["6", "7", "8", "9"] && left.allSatisfy(\.redelivered))
        let outputConsumer = try store.consume(queue: "out", prefetch: 10)
        let outputs = try await take(6, from: outputConsumer)
        #expect(outputs.map(\.text) == (0..<6).map { "done-\($0)" })
        #expect(store.queueInfo("out")?.ready == 0)  // and no output of input 6
    }

    @Test func aCommitThatCannotApplyWholeAppliesNothing() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("in")
        try await store.declareQueue("out")
        try await store.declareQueue("full", options: QueueOptions(maxLength: 1, overflow: .rejectPublish))
        try await store.publish(to: "in", text("x"))
        let c = try store.consume(queue: "in", prefetch: 1)
        let d = try await take(1, from: c)[0]

        let tx = store.transaction()
        try tx.ack(d.tag, on: c)
        try tx.publish(to: "out", text("1"))
        try tx.publish(to: "full", text("2"))
        try tx.publish(to: "full", text("3"))  // one more than the queue takes
        await #expect { try await tx.commit() } throws: { ($0 as? QueueError)?.code == .transactionAborted }
        #expect(store.queueInfo("out")?.ready == 0 && store.queueInfo("full")?.ready == 0)
        #expect(store.queueInfo("in")?.unacked == 1)

        // The refused transaction released its claim: a new one can ack the same delivery.
        let retry = store.transaction()
        try retry.ack(d.tag, on: c)
        try retry.publish(to: "out", text("1"))
        try await store.deleteQueue("out")
        await #expect { try await retry.commit() } throws: { ($0 as? QueueError)?.code == .transactionAborted }
        try await c.ack(d.tag)
        #expect(store.queueInfo("in")?.unacked == 0)
    }

    @Test func aTransactionLargerThanThePendingBufferIsRefusedUpFront() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        try await store.declareQueue("q")
        let tx = store.transaction()
        let body = Message(body: [UInt8](repeating: 7, count: 16 << 10))
        var added = 0
        do {
            while true {
                try tx.publish(to: "q", body)
                added += 1
            }
        } catch {
            #expect(error.code == .invalidArgument)
        }
        #expect(added >= 10)  // 256 KiB of pending buffer
        let result = try await tx.commit()  // what fit is committed
        #expect(result.messageIDs.count == added && store.queueInfo("q")?.ready == added)
    }

    /// An ack that would take the transaction past the log's pending limits is refused, and its delivery is
    /// out with the consumer again (not claimed by a transaction that cannot hold it).
    @Test func anAckBeyondThePendingLimitsIsRefusedAndReleased() async throws {
        let dir = TemporaryDirectory()
        var options = testOptions()
        options.log.pendingRecordsMax = 8
        let store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        try await store.declareQueue("q")
        for i in 0..<10 { try await store.publish(to: "q", text("\(i)")) }
        let c = try store.consume(queue: "q", prefetch: 10)
        let got = try await take(10, from: c)
        let tx = store.transaction()
        var refused: Delivery?
        for d in got {
            do { try tx.ack(d.tag, on: c) } catch {
                #expect(error.code == .invalidArgument)
                refused = d
                break
            }
        }
        let d = try #require(refused, "the limit (8 records with the commit) was never reached")
        try await c.ack(d.tag)  // released: an ordinary ack settles it
        try await tx.commit()
        #expect(store.queueInfo("q")?.unacked == 10 - 7 - 1)
    }

    /// A transaction spanning several frames, its tail lost at every point a power cut could leave it:
    /// recovery shows all of it or none of it.
    @Test func aTransactionAcrossFramesIsAllOrNothingWhereverTheLogIsCut() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("before"))
        try dropWithoutClosing(store)
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal")
            .filter { $0.hasSuffix(".wal") }.sorted().last)
        let segmentPath = dir.path + "/wal/" + segment
        let start = try extent(of: segmentPath)

        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        let tx = store.transaction()
        var generator = SplitMix64(seed: testSeed("TransactionTests"))
        for _ in 0..<100 {  // about 100 KiB of incompressible bodies: several 32 KiB frames
            try tx.publish(to: "q", Message(body: (0..<1024).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        }
        try await tx.commit()
        try dropWithoutClosing(store)
        let end = try extent(of: segmentPath)
        #expect(end - start > 3 * (32 << 10))

        var outcomes: Set<Int> = []
        for cut in stride(from: start, through: end, by: max(1, (end - start) / 40)) + [end] {
            let copy = TemporaryDirectory()
            try FileManager.default.removeItem(atPath: copy.path)
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
            let handle = try #require(FileHandle(forWritingAtPath: copy.path + "/wal/" + segment))
            try handle.seek(toOffset: UInt64(cut))
            try handle.write(contentsOf: [UInt8](repeating: 0, count: end - cut))
            try handle.close()
            let recovered = try await QueueStore.open(directory: copy.path, options: testOptions())
            let ready = try #require(recovered.queueInfo("q")).ready
            #expect(ready == 1 || ready == 101, "cut at \(cut): \(ready) messages")
            outcomes.insert(ready)
            try recovered.close()
        }
        #expect(outcomes == [1, 101])
    }

    /// The offset just past the last non-zero byte of a preallocated segment.
    private func extent(of path: String) throws -> Int {
        let bytes = try #require(FileManager.default.contents(atPath: path))
        return (bytes.lastIndex { $0 != 0 } ?? -1) + 1
    }
}

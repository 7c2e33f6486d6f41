import Foundation
import LogFormat
import Testing
import DurableLog
@testable import DurableQueue

@Suite(.timeLimit(.minutes(10))) struct CheckpointTests {
    @Test func recordsRoundTrip() throws {
        let records: [StoreRecord] = [
            .sessionStart(time: 123),
            .declareQueue(name: "q", options: QueueOptions(durable: true, deliveryLimit: 5, deadLetterQueue: "d",
                                                           ackTimeout: .milliseconds(1500), maxLength: 0, overflow: .rejectPublish)),
            .declareQueue(name: "plain", options: QueueOptions()),
            .deleteQueue(queue: 9),
            .publish(queue: 7, time: -1, headers: ["k": "v", "a": ""], body: [1, 2, 3]),
            .checkout(queue: 7, consumer: 3, max: 100),
            .ack(queue: 7, messages: [1, 2, .max]),
            .requeue(queue: 7, reason: .ackTimeout, messages: []),
            .reject(queue: 7, messages: [5]),
            .relocate(queue: 7, message: 8, headers: [:], body: []),
            .declareStream(name: "s", options: StreamOptions(maxBytes: 0, maxAge: .seconds(60))),
            .deleteStream(stream: 4),
            .streamAppend(stream: 4, time: 5, headers: ["x": "y"], body: Array(repeating: 9, count: 1000)),
            .commitOffset(stream: 4, group: "g", offset: 77),
            .trimStream(stream: 4, before: 10),
            .txPart(tx: 3, .publish(queue: 7, time: 1, headers: [:], body: [4, 5])),
            .txPart(tx: 3, .ack(queue: 7, messages: [2])),
            .txPart(tx: 3, .commitOffset(stream: 4, group: "g", offset: 1)),
            .txCommit(tx: 3, parts: 3),
            .registerProducer(name: "p", time: 99),
            .stamped(producer: 12, epoch: 2, sequence: 40, .streamAppend(stream: 4, time: 5, headers: [:], body: [1])),
            .expireProducer(producer: 12, idleSince: -5),
            .prepareHalf(queue: 7, time: 6, headers: ["t": "1"], body: [7, 7]),
            .resolveHalf(message: 30, .commit),
            .resolveHalf(message: 30, .rollback),
            .resolveHalf(message: 30, .expired),
            .resolveHalf(message: 30, .moved(queue: 9)),
            .halfChecked(message: 30, time: 8),
        ]
        for r in records {
            let bytes = r.encode()
            #expect(try bytes.withUnsafeBytes { try StoreRecord.decode($0) } == r)
            // The size it announces to the log, and its encoding in place (a slot of the pending batch), are
            // those of the same bytes.
            #expect(r.encodedBytes == bytes.count)
            var slot = [UInt8](repeating: 0xEE, count: r.encodedBytes)
            slot.withUnsafeMutableBytes { r.encode(into: $0) }
            #expect(slot == bytes)
            // Every truncation is refused, never misread.
            for cut in 0..<bytes.count {
                #expect(throws: ByteReader.Malformed.self) {
                    try bytes.withUnsafeBytes { try StoreRecord.decode(UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
                }
            }
            // A replay reads publishes and stream appends without their bodies: what it reads is what the state
            // keeps of the decoded record, and it refuses every truncation and a trailing byte as decode does.
            let payload = try bytes.withUnsafeBytes { try StoreRecord.payload(in: $0) }
            switch r {
            case .publish(let queue, let time, _, let body):
                #expect(payload == .init(kind: .publish, target: queue, time: time, bodyBytes: body.count))
            case .streamAppend(let stream, let time, _, let body):
                #expect(payload == .init(kind: .streamAppend, target: stream, time: time, bodyBytes: body.count))
            default:
                #expect(payload == nil, "\(r)")
            }
            guard payload != nil else { continue }
            for cut in 1..<bytes.count {
                #expect(throws: ByteReader.Malformed.self) {
                    try bytes.withUnsafeBytes { try StoreRecord.payload(in: UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
                }
            }
            #expect(throws: ByteReader.Malformed.self) { try (bytes + [0]).withUnsafeBytes { try StoreRecord.payload(in: $0) } }
        }
        // Nesting is limited to the kinds that make sense (a declaration inside a transaction is refused).
        let nested = StoreRecord.txPart(tx: 1, .declareQueue(name: "x", options: QueueOptions())).encode()
        #expect(throws: ByteReader.Malformed.self) { try nested.withUnsafeBytes { try StoreRecord.decode($0) } }
        let stampedAck = StoreRecord.stamped(producer: 1, epoch: 0, sequence: 1, .ack(queue: 1, messages: [])).encode()
        #expect(throws: ByteReader.Malformed.self) { try stampedAck.withUnsafeBytes { try StoreRecord.decode($0) } }
    }

    @Test func checkpointRoundTripsTheState() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("dlq")
        try await store.declareQueue("q", options: QueueOptions(deliveryLimit: 1, deadLetterQueue: "dlq"))
        for i in 0..<20 { try await store.publish(to: "q", text("\(i)")) }
        let c = try store.consume(queue: "q", prefetch: 5)
        let got = try await take(5, from: c)
        try await c.ack(got[0].tag)
        try await c.nack(got[1].tag, requeue: true)  // over the limit: to the DLQ
        try await store.declareStream("s")
        for i in 0..<7 { try await store.append(to: "s", text("\(i)")) }
        try await store.commitOffset(stream: "s", group: "g", offset: 3)
        let producer = try await store.registerProducer(name: "p")
        _ = try await producer.publish(to: "q", text("idem"), sequence: 1)
        _ = try await producer.append(to: "s", text("idem"), sequence: 1)
        _ = try await store.prepare(to: "q", text("half"))
        let state = store.core.withLock { $0.state }
        #expect(state.producers.count == 1 && state.halfMessages.count == 1)
        let bytes = Checkpoint.encode(state)
        let decoded = try bytes.withUnsafeBytes { try Checkpoint.decode($0) }
        #expect(Checkpoint.encode(decoded) == bytes)
        #expect(decoded.appliedLSN == state.appliedLSN && decoded.liveBytes == state.liveBytes)
        let q = state.queueIDs["q"]!
        #expect(decoded.queues[q]!.unacked.count == state.queues[q]!.unacked.count)
        #expect(decoded.queues[q]!.ready == state.queues[q]!.ready)
        #expect(decoded.producers == state.producers && decoded.producerIDs == state.producerIDs)
        #expect(decoded.halfMessages == state.halfMessages)
        // A flipped byte anywhere is refused.
        for i in stride(from: 0, to: bytes.count, by: 7) {
            var bad = bytes
            bad[i] ^= 0x10
            #expect(throws: ByteReader.Malformed.self) { try bad.withUnsafeBytes { try Checkpoint.decode($0) } }
        }
        try store.close()
    }

    /// The open decodes the checkpoint file as it reads it, through a window: whatever the window's size, it
    /// decodes what the whole file in memory decodes, and refuses what that refuses (a flipped byte as a checksum
    /// mismatch, a cut file as a torn write).
    @Test func theCheckpointFileDecodesThroughAnyWindowAsItDoesInMemory() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.declareQueue("other")
        for i in 0..<300 { try await store.publish(to: i % 3 == 0 ? "other" : "q", text("message \(i)")) }
        let c = try store.consume(queue: "q", prefetch: 7)
        let got = try await take(7, from: c)
        try await c.nack(got[2].tag, requeue: true)
        try await store.declareStream("s")
        for i in 0..<9 { try await store.append(to: "s", text("\(i)")) }
        let producer = try await store.registerProducer(name: "p")
        _ = try await producer.publish(to: "q", text("idem"), sequence: 1)
        _ = try await store.prepare(to: "q", text("half"))
        let state = store.core.withLock { $0.state }
        try store.close()
        let bytes = Checkpoint.encode(state)
        let inMemory = try bytes.withUnsafeBytes { try Checkpoint.decode($0) }
        let fileSystem = PosixFileSystem()
        let home = TemporaryDirectory()
        func load(_ file: [UInt8], window: Int) throws -> Result<StoreState, ByteReader.Malformed>? {
            try Checkpoint.write(file, directory: home.path, fileSystem: fileSystem)
            return try Checkpoint.load(directory: home.path, fileSystem: fileSystem, windowBytes: window)
        }
        #expect(try Checkpoint.load(directory: home.path, fileSystem: fileSystem) == nil, "no file, no state")
        for window in [1, 23, 100, 4_096, 1 << 20] {
            let loaded = try #require(try load(bytes, window: window)).get()
            #expect(Checkpoint.encode(loaded) == bytes, "window \(window)")
            #expect(Checkpoint.encode(loaded) == Checkpoint.encode(inMemory))
        }
        for i in stride(from: 0, to: bytes.count, by: 11) {
            var bad = bytes
            bad[i] ^= 0x10
            guard case .failure(let error)? = try load(bad, window: 64) else {
                Issue.record("byte \(i) flipped and the file still loaded")
                continue
            }
            if i >= 32 { #expect(error.description == "checksum mismatch", "byte \(i): \(error)") }
        }
        for cut in [0, 10, 32, 33, bytes.count / 2, bytes.count - 1] {
            guard case .failure? = try load(Array(bytes[0..<cut]), window: 64) else {
                Issue.record("a file cut at \(cut) bytes still loaded")
                continue
            }
        }
    }

    /// The checkpoint is streamed to its file through a buffer, its header (and the checksum that joins the
    /// header's bytes to the body's) written last: whatever the buffer's size, and with a declaration longer
    /// than the buffer, the file holds exactly the bytes `encode` makes in memory, and it loads.
    @Test func theStreamedCheckpointFileHoldsExactlyWhatEncodeMakes() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        let longName = String(repeating: "q", count: 250)  // its declaration is longer than the smaller buffers
        try await store.declareQueue(longName)
        try await store.declareQueue("other")
        for i in 0..<400 { try await store.publish(to: i % 4 == 0 ? "other" : longName, text("message \(i)")) }
        let c = try store.consume(queue: longName, prefetch: 9)
        let got = try await take(9, from: c)
        try await c.ack(got[0].tag)
        try await store.declareStream("s")
        for i in 0..<9 { try await store.append(to: "s", text("\(i)")) }
        _ = try await store.prepare(to: "other", text("half"))
        let state = store.core.withLock { $0.state }
        try store.close()
        let expected = Checkpoint.encode(state)
        let fileSystem = FaultInjectingFileSystem()
        let home = TemporaryDirectory()
        for window in [1, 23, 100, 4_096, 1 << 20] {
            let syncsBefore = fileSystem.calls(.dataSync)
            let size = try Checkpoint.write(state, directory: home.path, fileSystem: fileSystem, windowBytes: window,
                                            syncEveryBytes: 4_096)
            #expect(size == expected.count)
            #expect(try Checkpoint.read(directory: home.path, fileSystem: fileSystem) == expected, "window \(window)")
            // Synced once 4 KiB of body went out since the last sync (with a larger buffer, after its first
            // write), then once more with the header in place.
            let syncs = fileSystem.calls(.dataSync) - syncsBefore
            let body = expected.count - Checkpoint.headerBytes
            #expect(body > 8_192 && syncs >= (window <= 4_096 ? body / 4_096 + 1 : 2), "window \(window): \(syncs) syncs")
            let loaded = try #require(try Checkpoint.load(directory: home.path, fileSystem: fileSystem)).get()
            #expect(Checkpoint.encode(loaded) == expected)
        }
        #expect(Checkpoint.fileBytes(directory: home.path, fileSystem: fileSystem) == expected.count)
    }

    /// A write or sync that fails while the checkpoint streams out is thrown (the exact code), and the
    /// checkpoint in place stays what it was: the new one was only ever in the temporary file.
    @Test func aFailedStreamedCheckpointLeavesThePreviousOneInPlace() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        for i in 0..<200 { try await store.publish(to: "q", text("message \(i)")) }
        let before = store.core.withLock { $0.state }
        for i in 0..<200 { try await store.publish(to: "q", text("more \(i)")) }
        let after = store.core.withLock { $0.state }
        try store.close()
        let home = TemporaryDirectory()
        for operation in [FaultInjectingFileSystem.Operation.write, .dataSync] {
            for failing in [0, 1, 3] {
                let fileSystem = FaultInjectingFileSystem()
                try Checkpoint.write(before, directory: home.path, fileSystem: fileSystem)
                fileSystem.inject(.init(operation, after: failing))
                do {
                    try Checkpoint.write(after, directory: home.path, fileSystem: fileSystem, windowBytes: 512,
                                         syncEveryBytes: 1_024)
                    Issue.record("\(operation) \(failing): the write did not fail")
                } catch {
                    #expect(error.code == .ioFailure, "\(operation) \(failing): \(error)")
                }
                #expect(try Checkpoint.read(directory: home.path, fileSystem: PosixFileSystem()) == Checkpoint.encode(before),
                        "\(operation) \(failing)")
            }
        }
    }

    /// A deep queue's checkpoint spaces the next one by its own size (`checkpointSpacingFactor`), so that the
    /// checkpoints' writes stay a bounded share of the log's: with `checkpointEveryBytes` at 1 byte, the next
    /// checkpoint comes after the first publish with the factor at 0, and only once the log has grown by four
    /// times the last checkpoint's size with the factor at 4.
    @Test func aLargeCheckpointSpacesTheNextByItsSize() async throws {
        var options = testOptions()
        options.checkpointEveryBytes = 1 << 20
        #expect(!options.checkpointDue(logBytesSince: (1 << 20) - 1, lastCheckpointBytes: 0))
        #expect(options.checkpointDue(logBytesSince: 1 << 20, lastCheckpointBytes: 1 << 18))
        #expect(!options.checkpointDue(logBytesSince: (4 << 20) - 1, lastCheckpointBytes: 1 << 20))
        #expect(options.checkpointDue(logBytesSince: 4 << 20, lastCheckpointBytes: 1 << 20))
        #expect(!options.checkpointDue(logBytesSince: UInt64(Int.max) - 1, lastCheckpointBytes: .max), "no overflow")
        options.checkpointSpacingFactor = 0
        #expect(options.checkpointDue(logBytesSince: 1 << 20, lastCheckpointBytes: 1 << 30))

        for factor in [0, 4] {
            let dir = TemporaryDirectory()
            var options = testOptions()
            options.checkpointEveryBytes = 1
            options.checkpointSpacingFactor = factor
            let store = try await QueueStore.open(directory: dir.path, options: options)
            try await store.declareQueue("q")
            let publisher = store.publisher()
            for i in 0..<2_000 { try await publisher.publish(to: "q", text("m\(i)")) }
            #expect(try await publisher.waitForConfirms())
            await store.maintain()
            let first = store.diskUsage
            #expect(first.checkpointLSN == first.lastLSN, "factor \(factor): checkpointed")
            #expect(first.checkpointBytes > 2_000 * 23, "factor \(factor): \(first.checkpointBytes) bytes")
            let logAtFirst = store.logCounters.bytesUncompressed
            var grownAtNext: UInt64?
            var batchBytes: UInt64 = 0
            for batch in 0..<400 where grownAtNext == nil {
                let before = store.logCounters.bytesUncompressed
                for i in 0..<20 { try await publisher.publish(to: "q", text("b\(batch).\(i)")) }
                #expect(try await publisher.waitForConfirms())
                let after = store.logCounters.bytesUncompressed
                batchBytes = max(batchBytes, after - before)
                await store.maintain()
                if store.diskUsage.checkpointLSN > first.checkpointLSN { grownAtNext = after - logAtFirst }
            }
            let grown = try #require(grownAtNext, "factor \(factor): no second checkpoint")
            if factor == 0 {
                #expect(grown <= batchBytes, "factor 0: the next checkpoint after \(grown) bytes of log")
            } else {
                let spacing = UInt64(factor * first.checkpointBytes)
                #expect(grown >= spacing && grown <= spacing + batchBytes,
                        "factor \(factor): the next checkpoint after \(grown) bytes of log, spacing \(spacing)")
            }
            try store.close()
        }
    }

    /// A version 1 checkpoint (written before producers and half messages existed: the same layout without
    /// their two sections) still loads.
    @Test func aVersionOneCheckpointStillLoads() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        for i in 0..<5 { try await store.publish(to: "q", text("\(i)")) }
        let state = store.core.withLock { $0.state }
        try store.close()
        var bytes = Checkpoint.encode(state)
        bytes.removeLast(4 + 8)  // no producers (u32 count), no half messages (u64 count)
        bytes.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
            b.storeBytes(of: UInt64(b.count - Checkpoint.headerBytes).littleEndian, toByteOffset: 16, as: UInt64.self)
            let head = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<24]))
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[Checkpoint.headerBytes...]), continuing: head)
            b.storeBytes(of: crc.littleEndian, toByteOffset: 24, as: UInt32.self)
        }
        let decoded = try bytes.withUnsafeBytes { try Checkpoint.decode($0) }
        let q = state.queueIDs["q"]!
        #expect(decoded.appliedLSN == state.appliedLSN && decoded.queues[q]!.ready == state.queues[q]!.ready)
        #expect(decoded.producers.isEmpty && decoded.halfMessages.isEmpty)
    }

    @Test func openReplaysOnlyTheTailAfterACheckpoint() async throws {
        let dir = TemporaryDirectory()
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        for i in 0..<500 { try await store.publish(to: "q", text("\(i)")) }
        try store.checkpoint()
        for i in 500..<510 { try await store.publish(to: "q", text("\(i)")) }
        // Drop the store without close (no final checkpoint), as a crash would.
        let log = store.log
        store.maintenanceTask.withLock { $0?.cancel() }
        try log.close()
        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        #expect(store.openReport.replayedRecords == 10)
        #expect(store.queueInfo("q")?.ready == 510)
        let c = try store.consume(queue: "q", prefetch: 1000)
        let all = try await take(510, from: c)
        #expect(all.map(\.text) == (0..<510).map { "\($0)" })
    }

    /// A longer `checkpoint.tmp` left by a crash before its rename must not leave its tail in the next checkpoint.
    @Test func aLeftoverTemporaryCheckpointDoesNotSpoilTheNextOne() async throws {
        let dir = TemporaryDirectory()
        let garbage = [UInt8](repeating: 0xAB, count: 1 << 20)
        _ = FileManager.default.createFile(atPath: dir.path + "/checkpoint.tmp", contents: Data(garbage))
        var store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("x"))
        try store.checkpoint()
        try store.close()
        store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        #expect(store.openReport.checkpointLSN > .none)
        #expect(store.queueInfo("q")?.ready == 1)
    }

    @Test func damagedCheckpointIsReportedNotServed() async throws {
        let dir = TemporaryDirectory()
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        try await store.publish(to: "q", text("x"))
        try store.close()
        let path = dir.path + "/checkpoint"
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 3] ^= 1
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        await #expect {
            _ = try await QueueStore.open(directory: dir.path, options: testOptions())
        } throws: { ($0 as? QueueError)?.code == .corruption }
    }

    /// On the real file system the checkpoint is decoded beside the log's recovery (the header's LSN tells the
    /// log what is covered); one that cannot serve two threads (FaultInjectingFileSystem says so) gets the two one
    /// after the other. Both open a crashed store to the same state, and a damaged checkpoint refuses either open
    /// with the log closed again: once the checkpoint is gone, the store rebuilds from the log.
    @Test func anOpenBesideTheLogAndOneAfterItAgree() async throws {
        let tmp = TemporaryDirectory()
        #expect(PosixFileSystem().servesConcurrentCallers && !FaultInjectingFileSystem().servesConcurrentCallers)
        let live = tmp.path + "/live", crashed = tmp.path + "/crashed"
        var store = try await QueueStore.open(directory: live, options: testOptions())
        try await store.declareQueue("q")
        for i in 0..<20 { try await store.publish(to: "q", text("m\(i)")) }
        try store.checkpoint()
        for i in 20..<30 { try await store.publish(to: "q", text("m\(i)")) }
        // Every publish is confirmed, so on disk: a copy now is the store as a crash leaves it.
        try FileManager.default.copyItem(atPath: live, toPath: crashed)
        try store.close()
        let covered = Checkpoint.peekCoveredLSN(directory: crashed, fileSystem: PosixFileSystem())
        #expect(covered > 20)
        func copyOfCrashed(_ name: String) throws -> String {
            let path = tmp.path + "/" + name
            try FileManager.default.copyItem(atPath: crashed, toPath: path)
            return path
        }
        let fileSystems: [any FileSystem] = [PosixFileSystem(), FaultInjectingFileSystem()]
        for (n, fileSystem) in fileSystems.enumerated() {
            store = try await QueueStore.open(directory: try copyOfCrashed("open\(n)"), options: testOptions(),
                                              fileSystem: fileSystem)
            #expect(store.openReport.checkpointLSN == LSN(covered))
            #expect(store.openReport.replayedRecords >= 10)
            #expect(store.queueInfo("q")?.ready == 30)
            try store.close()
        }
        let damaged = try copyOfCrashed("damaged")
        let path = damaged + "/checkpoint"
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 3] ^= 1
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        for fileSystem in fileSystems {
            await #expect {
                _ = try await QueueStore.open(directory: damaged, options: testOptions(), fileSystem: fileSystem)
            } throws: { ($0 as? QueueError)?.code == .corruption }
        }
        try FileManager.default.removeItem(atPath: path)
        #expect(Checkpoint.peekCoveredLSN(directory: damaged, fileSystem: PosixFileSystem()) == 0)
        store = try await QueueStore.open(directory: damaged, options: testOptions())
        defer { try? store.close() }
        #expect(store.openReport.checkpointLSN == .none)
        #expect(store.queueInfo("q")?.ready == 30)
    }
}

import Foundation
import LogFormat
import Testing
import DurableLog
@testable import DurableQueue

/// A store with a damaged confirmed frame refuses to open and says what salvage would drop; opened in
/// salvage mode it keeps every intact record, drops exactly the messages whose bodies were lost (saying
/// which), records that in a checkpoint, and opens normally from then on.
@Suite(.serialized, .timeLimit(.minutes(2))) struct SalvageStoreTests {
    /// The frame holding `lsn`: its file, offset and header.
    private func frame(holding lsn: UInt64, in wal: String) throws -> (path: String, offset: Int, header: FrameHeader) {
        var found: (String, Int, FrameHeader)?
        try LogInspector.forEachRecord(directory: wal, from: LSN(lsn), through: LSN(lsn)) { _, _, header, path, offset in
            found = (path, offset, header)
            return false
        }
        return try #require(found)
    }

    private func flipByte(in path: String, at offset: Int) throws {
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try #require(try handle.read(upToCount: 1)?.first)
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [byte ^ 0x20])
    }

    private func salvaging(_ o: StoreOptions) -> StoreOptions {
        var o = o
        o.log.recoveryMode = .salvage
        return o
    }

    /// Publishes `count` messages in groups of 10 (so frames hold several); returns their ids in order.
    private func publish(_ count: Int, from first: Int, to store: QueueStore) async throws -> [UInt64] {
        var ids: [UInt64] = []
        for start in stride(from: 0, to: count, by: 10) {
            let group = try await withThrowingTaskGroup(of: (Int, UInt64).self) { g in
                for i in start..<min(start + 10, count) {
                    g.addTask { (i, try await store.publish(to: "q", text("m\(first + i) " + String(repeating: "x", count: 300))).rawValue) }
                }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            ids += group.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return ids
    }

    @Test(arguments: [false, true])
    func salvageDropsExactlyTheLostMessagesAndTheStoreOpensAfter(damageAfterCheckpoint: Bool) async throws {
        let dir = TemporaryDirectory()
        let options = testOptions()
        var store = try await QueueStore.open(directory: dir.path, options: options)
        try await store.declareQueue("q")
        var ids = try await publish(200, from: 0, to: store)
        try store.checkpoint()
        let checkpointLSN = store.diskUsage.checkpointLSN.rawValue
        ids += try await publish(100, from: 200, to: store)
        try dropWithoutClosing(store)

        // A frame in the middle: before the checkpoint's end, or after it.
        let target = damageAfterCheckpoint ? ids[250] : ids[100]
        let victim = try frame(holding: target, in: dir.path + "/wal")
        let lost = Set(ids.filter { $0 >= victim.header.firstLSN.rawValue && $0 < victim.header.endLSN.rawValue })
        #expect(!lost.isEmpty && (victim.header.endLSN.rawValue <= checkpointLSN) != damageAfterCheckpoint)
        try flipByte(in: victim.path, at: victim.offset + FrameHeader.encodedBytes + 3)

        let refused = await expectQueueError(.corruption) { _ = try await QueueStore.open(directory: dir.path, options: options) }
        #expect(refused?.code == .corruption && refused?.log?.message.contains("salvage would mark LSNs") == true)
        // walctl's view (the inspector) refuses too, instead of showing the queue up to the damage.
        let inspected = expectQueueError(.corruption) { _ = try StoreInspector.summarize(directory: dir.path) }
        #expect(inspected?.code == .corruption)

        store = try await QueueStore.open(directory: dir.path, options: salvaging(options))
        let salvage = try #require(store.openReport.salvage)
        // Before the checkpoint's end the messages are known and dropped by id; after it, the publishes
        // themselves are gone and their range is reported as uncertain.
        #expect(Set(salvage.droppedMessages.map(\.id.rawValue)) == (damageAfterCheckpoint ? [] : lost))
        #expect(salvage.droppedMessages.allSatisfy { $0.queue == "q" })
        let lostRange = victim.header.firstLSN...victim.header.endLSN.previous
        #expect(salvage.lostLSNs == [lostRange])
        #expect(salvage.uncertainLSNs == (damageAfterCheckpoint ? [lostRange] : []))
        let delivered = try await drain("q", store)
        #expect(delivered.map(\.messageID.rawValue).sorted() == ids.filter { !lost.contains($0) }.sorted())
        try store.close()

        // From now on a normal open: the lost records are known, nothing more is dropped.
        store = try await QueueStore.open(directory: dir.path, options: options)
        defer { try? store.close() }
        #expect(store.openReport.salvage?.lostLSNs == [lostRange])
        #expect(store.openReport.salvage?.droppedMessages.isEmpty == true)
        #expect(store.queueInfo("q")?.ready == ids.count - lost.count)
        #expect(try StoreInspector.summarize(directory: dir.path).queues.first?.ready == ids.count - lost.count)
        // The damaged bytes are in quarantine.
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal/quarantine")
        #expect(entries.count == 1)
    }

    @Test func aLostStreamRecordKeepsItsOffsetAndReadsSkipIt() async throws {
        let dir = TemporaryDirectory()
        let options = testOptions()
        var store = try await QueueStore.open(directory: dir.path, options: options)
        try await store.declareStream("s")
        for i in 0..<30 { try await store.append(to: "s", text("r\(i)")) }
        try store.close()
        // Record offsets 0...29 are in their own frames (one append at a time); damage the one of offset 10.
        var lsns: [UInt64] = []
        try LogInspector.forEachRecord(directory: dir.path + "/wal") { lsn, _, _, _, _ in lsns.append(lsn.rawValue); return true }
        let streamLSNs = Array(lsns.dropFirst(2).prefix(30))  // after the session start and the declaration
        let victim = try frame(holding: streamLSNs[10], in: dir.path + "/wal")
        #expect(victim.header.recordCount == 1)
        try flipByte(in: victim.path, at: victim.offset + 20)
        store = try await QueueStore.open(directory: dir.path, options: salvaging(options))
        defer { try? store.close() }
        let salvage = try #require(store.openReport.salvage)
        #expect(salvage.lostStreamRecords.map(\.offset) == [10] && salvage.lostStreamRecords.first?.stream == "s")
        let records = try store.read(stream: "s", from: 0, limit: 100)
        #expect(records.map(\.offset) == Array(0..<10) + Array(11..<30))
        #expect(store.streamInfo("s")?.nextOffset == 30)
    }
}

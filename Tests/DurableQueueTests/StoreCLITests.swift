import Foundation
import LogFormat
import Testing
import WALSimulation
import DurableLog
@testable import DurableQueue

/// `walctl` on a store directory: it finds the log in `wal/`, checks the checkpoint and the replay as the
/// store's open would, and never answers "clean" (exit 0) for a store that does not open.
@Suite(.serialized, .timeLimit(.minutes(2))) struct StoreCLITests {
    private func walctl(_ arguments: String...) throws -> ToolRun {
        try ToolRun.run(productsDirectory() + "/walctl", arguments)
    }

    /// A closed store with one queue of 40 messages (in frames of several), checkpointed halfway.
    private func makeStore(_ dir: TemporaryDirectory) async throws -> [MessageID] {
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        try await store.declareQueue("q")
        var ids: [MessageID] = []
        for round in 0..<4 {
            ids += try await withThrowingTaskGroup(of: MessageID.self) { g in
                for i in 0..<10 { g.addTask { try await store.publish(to: "q", text("m\(round)-\(i)\u{1B}[31m")) } }
                return try await g.reduce(into: []) { $0.append($1) }
            }
            if round == 1 { try store.checkpoint() }
        }
        try store.close()
        return ids.sorted()
    }

    /// Flips a payload byte of the frame holding `lsn`.
    private func damage(_ dir: TemporaryDirectory, at id: MessageID) throws {
        let lsn = id.rawValue  // a persistent message's id is the LSN of its publish record
        var spot: (String, Int)?
        try LogInspector.forEachRecord(directory: dir.path + "/wal", from: LSN(lsn), through: LSN(lsn)) { _, _, _, path, offset in
            spot = (path, offset)
            return false
        }
        let (path, offset) = try #require(spot)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[offset + FrameHeader.encodedBytes + 2] ^= 0x04
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }

    @Test func aStoreDirectoryIsVerifiedWithItsCheckpoint() async throws {
        let dir = TemporaryDirectory()
        _ = try await makeStore(dir)
        let verify = try walctl("verify", dir.path)
        #expect(verify.status == 0 && verify.output.contains("store: checkpoint LSN") && verify.output.contains("consistent"))
        #expect(verify.errors.contains("is a store directory"))
        let info = try walctl("info", dir.path + "/wal")
        #expect(info.status == 0 && info.output.contains("checkpoint LSN") && !info.output.contains("checkpoint none"))
        // A checkpoint the log does not continue: the store would not open, and verify says so.
        let checkpoint = dir.path + "/checkpoint"
        var bytes = [UInt8](FileManager.default.contents(atPath: checkpoint)!)
        bytes[bytes.count / 2] ^= 0xFF
        #expect(FileManager.default.createFile(atPath: checkpoint, contents: Data(bytes)))
        let broken = try walctl("verify", dir.path)
        #expect(broken.status == 2 && broken.output.contains("store: corruption"))
    }

    @Test func aDirectoryWithoutALogIsRefused() throws {
        let dir = TemporaryDirectory()
        for command in ["verify", "info", "dump", "queues"] {
            let result = try walctl(command, dir.path)
            #expect(result.status == 74 && result.errors.contains("holds no log"), "\(command)")
        }
    }

    @Test func aDamagedStoreIsNeverShownAsClean() async throws {
        let dir = TemporaryDirectory()
        let ids = try await makeStore(dir)
        try damage(dir, at: ids[25])
        let queues = try walctl("queues", dir.path)
        #expect(queues.status == 2 && queues.errors.contains("salvage would mark LSNs"))
        let verify = try walctl("verify", dir.path)
        #expect(verify.status == 2 && verify.output.contains("salvage would mark LSNs"))
        // dump prints up to the damage, then says why it stopped.
        let dump = try walctl("dump", dir.path)
        #expect(dump.status == 2 && dump.errors.contains("stopped at LSN"))
        #expect(dump.output.contains("declare queue 'q'") && dump.output.contains("publish to queue #"))
    }

    @Test func dumpNeverWritesControlBytes() async throws {
        let dir = TemporaryDirectory()
        _ = try await makeStore(dir)
        let dump = try walctl("dump", "--payload", "text", "--width", "0", dir.path)
        #expect(dump.status == 0 && dump.output.contains("[31m"))
        #expect(!dump.output.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" })
    }

    @Test func recoverSalvagesAndSaysWhatTheStoreWillDrop() async throws {
        let dir = TemporaryDirectory()
        let ids = try await makeStore(dir)
        try damage(dir, at: ids[5])
        let before = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").sorted()
        let dry = try walctl("recover", "--dry-run", dir.path)
        #expect(dry.status == 2 && dry.output.contains("with --salvage: salvage would mark LSNs"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").sorted() == before)
        let refused = try walctl("recover", dir.path)
        #expect(refused.status == 2)
        let done = try walctl("recover", "--salvage", dir.path)
        #expect(done.status == 0 && done.output.contains("marked lost") && done.output.contains("drops"))
        let list = try walctl("quarantine", dir.path)
        #expect(list.status == 0 && list.output.contains("action: patch"))
        #expect(try walctl("verify", dir.path).status == 0)
        let store = try await QueueStore.open(directory: dir.path, options: testOptions())
        defer { try? store.close() }
        let dropped = try #require(store.openReport.salvage).droppedMessages.map(\.id)
        #expect(!dropped.isEmpty && dropped.contains(ids[5]))
        #expect(store.queueInfo("q")?.ready == ids.count - dropped.count)
    }

    @Test func statsAndTailShowTheLog() async throws {
        let dir = TemporaryDirectory()
        let ids = try await makeStore(dir)
        let stats = try walctl("stats", "--json", dir.path)
        #expect(stats.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any])
        #expect((object["records"] as? Int ?? 0) >= ids.count && (object["recordsPerFrame"] as? Double ?? 0) >= 1)
        let tail = try walctl("tail", "--last", "3", dir.path)
        let lines = tail.output.split(separator: "\n")
        #expect(tail.status == 0 && lines.count == 3, "\(tail.output)")
        // The closed store's last records: its final publishes and the session's close.
        #expect(lines.allSatisfy { $0.split(separator: "\t").count == 3 })
        #expect(try walctl("tail", "--help").output.contains("Example: walctl tail --follow"))
    }
}

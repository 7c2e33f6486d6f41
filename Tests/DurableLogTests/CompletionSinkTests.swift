import Foundation
import Glibc
import LogFormat
import Synchronization
import Testing
@testable import DurableLog

/// A layer that appends with a `CompletionSink` gets each release's confirms in one call, in LSN order, with
/// the tokens it appended with; a failed sync fails them all in one call, and nothing after it is confirmed.
@Suite(.serialized, .timeLimit(.minutes(1))) struct CompletionSinkTests {
    final class Token {
        let number: Int
        init(_ number: Int) { self.number = number }
    }

    final class RecordingSink: CompletionSink {
        struct Call {
            var confirms: [(lsn: LSN, token: Int)]
            var failure: WALError?
        }
        let calls = Mutex<[Call]>([])

        func complete(_ submissions: [(firstLSN: LSN, token: AnyObject)], failure: WALError?) {
            let confirms = submissions.map { ($0.firstLSN, ($0.token as? Token)?.number ?? -1) }
            calls.withLock { $0.append(Call(confirms: confirms, failure: failure)) }
        }

        var confirmed: Int { calls.withLock { $0.reduce(0) { $0 + $1.confirms.count } } }
    }

    private func append(_ log: WriteAheadLog, _ bytes: [UInt8], sink: RecordingSink, token: Int) throws -> Bool {
        try log.tryAppend(count: 1, totalBytes: bytes.count + BatchPayload.lengthPrefixBytes,
                          records: { add in bytes.withUnsafeBytes { add($0) } }, sink: sink, token: Token(token))
    }

    @Test func oneReleaseIsOneCallInLSNOrder() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions(), fileSystem: fs)
        defer { try? log.close() }
        let sink = RecordingSink()
        // The first submission's sync is held: the next ten gather behind it and are released by one sync.
        fs.holdSyncs(pathSuffix: ".wal")
        #expect(try append(log, [0], sink: sink, token: 0))
        #expect(await heldSyncArrives(fs))
        fs.stopHoldingSyncs()
        for i in 1...10 { #expect(try append(log, [UInt8(i), 1], sink: sink, token: i)) }
        fs.releaseOldestHeldSync()
        try await waitUntil("all eleven confirmed") { sink.confirmed == 11 }

        let calls = sink.calls.withLock { $0 }
        #expect(calls.allSatisfy { $0.failure == nil })
        #expect(calls.first?.confirms.map(\.token) == [0])
        // The ten that waited behind the held sync were made durable by one sync: one call, not ten.
        #expect(calls.count == 2)
        let all = calls.flatMap(\.confirms)
        #expect(all.map(\.token) == Array(0...10))
        #expect(all.map(\.lsn) == (1...11).map { LSN($0) })
    }

    @Test func aFailedSyncFailsTheWholeReleaseInOneCall() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions(), fileSystem: fs)
        defer { try? log.close() }
        let sink = RecordingSink()
        fs.holdSyncs(pathSuffix: ".wal")
        #expect(try append(log, [0], sink: sink, token: 0))
        #expect(await heldSyncArrives(fs))
        for i in 1...5 { #expect(try append(log, [UInt8(i)], sink: sink, token: i)) }
        fs.releaseOldestHeldSync(failing: EIO)
        try await waitUntil("all six completed") { sink.confirmed == 6 }

        let calls = sink.calls.withLock { $0 }
        // The group whose sync failed gets the sync's error; the records behind it, never written, get the
        // log's failure (in the same call or the next).
        #expect(calls.first?.failure?.code == .ioFailure && calls.first?.failure?.errno == EIO)
        #expect(calls.allSatisfy { $0.failure != nil })
        #expect(calls.flatMap(\.confirms).map(\.token) == Array(0...5))
        #expect(log.durableLSN == .none)
        // Nothing is confirmed after the failure: the log refuses new submissions.
        let refused = #expect(throws: WALError.self) { try append(log, [9], sink: sink, token: 9) }
        #expect(refused?.code == .logFailed)
    }
}

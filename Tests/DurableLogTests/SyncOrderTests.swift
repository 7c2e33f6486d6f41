import Foundation
import Glibc
import LogFormat
import Testing
@testable import DurableLog

/// With two syncs in flight, a later sync that returns first proves nothing on its own: an earlier one that
/// then fails (a write-back error may be reported to one caller only) fails both groups, and nothing is
/// confirmed before the earlier one returned. Driven end to end through the file system: the first
/// `fdatasync` is held open, the second completes, then the first is failed.
@Suite(.serialized, .timeLimit(.minutes(1))) struct SyncOrderTests {
    private func twoSyncsInFlight() -> LogOptions {
        var o = smallOptions()
        o.syncsInFlightMax = 2
        o.runAheadBytes = 1
        return o
    }

    @Test func anEarlierSyncFailingAfterALaterOneReturnedFailsBoth() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: twoSyncsInFlight(), fileSystem: fs)
        fs.holdSyncs(pathSuffix: ".wal")
        let first = Task { try await log.append([1, 1, 1]) }
        #expect(await heldSyncArrives(fs), "the first group's sync never started")
        fs.stopHoldingSyncs()
        let completedBefore = fs.syncsCompleted
        let second = Task { try await log.append([2, 2, 2]) }
        // The second group is written and its own sync returns while the first is still held.
        try await waitUntil("the second sync returned") { fs.syncsCompleted > completedBefore }
        fs.releaseOldestHeldSync(failing: EIO)

        let firstError = await expectWALError(.ioFailure) { try await first.value }
        // The second group was written and synced before the first sync failed: it is failed with that same
        // cause (the write-back error may have been its data's too).
        let secondError = await expectWALError(.ioFailure) { try await second.value }
        #expect(firstError?.errno == EIO && secondError?.errno == EIO)
        #expect(log.durableLSN == .none)
        let after = await expectWALError(.logFailed) { try await log.append([3]) }
        #expect(after?.code == .logFailed)
        _ = try? log.close()
    }

    @Test func aLaterSyncIsConfirmedOnlyOnceTheEarlierOneSucceeds() async throws {
        let dir = TemporaryDirectory()
        let fs = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: twoSyncsInFlight(), fileSystem: fs)
        defer { try? log.close() }
        fs.holdSyncs(pathSuffix: ".wal")
        let first = Task { try await log.append([1]) }
        #expect(await heldSyncArrives(fs))
        fs.stopHoldingSyncs()
        let completedBefore = fs.syncsCompleted
        let second = Task { try await log.append([2]) }
        try await waitUntil("the second sync returned") { fs.syncsCompleted > completedBefore }
        // The later sync returned, yet the watermark waits for the earlier one.
        #expect(log.durableLSN == .none)
        fs.releaseOldestHeldSync()
        #expect(try await first.value == LSN(1))
        #expect(try await second.value == LSN(2))
        #expect(log.durableLSN == LSN(2))
    }
}

/// Waits (on a thread of its own: the wait blocks, and the cooperative pool must stay free for the append
/// that is to reach the gate) until a sync is held at the file system's gate.
func heldSyncArrives(_ fs: FaultInjectingFileSystem, seconds: Double = 60) async -> Bool {
    await withCheckedContinuation { c in
        Thread.detachNewThread { c.resume(returning: fs.waitForHeldSync(seconds: seconds)) }
    }
}

/// Polls `condition` (every millisecond, up to 10 s): for states another thread reaches, never for time.
func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimeout(what: what) }
        try await Task.sleep(for: .milliseconds(1))
    }
}

struct WaitTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "\(what) did not happen within 10 s" }
}

import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import DurableLog

/// `LogOptions.threadless`, the mode the cluster simulation runs its logs in: nothing is written, synced or
/// confirmed until the owner calls `performIO`, a write alone confirms nothing (a power cut may still take it),
/// a sync confirms in LSN order on the caller's thread, and a close writes out what is pending and seals.
@Suite struct ThreadlessLogTests {
    static var options: LogOptions {
        var options = PowerLossTrial.defaultOptions
        options.threadless = true
        return options
    }

    /// The LSNs confirmed, in the order the confirms came.
    final class Confirms: Sendable {
        let lsns = Mutex<[LSN]>([])
        var all: [LSN] { lsns.withLock { $0 } }
    }

    /// Appends `records` by callback, noting each confirm in `confirmed`.
    func append(_ records: [[UInt8]], to log: WriteAheadLog, confirmed: Confirms) throws {
        for record in records {
            try record.withUnsafeBytes { bytes in
                try log.append(bytes) { result in
                    if case .success(let lsn) = result { confirmed.lsns.withLock { $0.append(lsn) } }
                }
            }
        }
    }

    @Test func nothingIsWrittenSyncedOrConfirmedUntilTheOwnerRunsTheIO() throws {
        let disk = SimulatedDisk()
        let log = try WriteAheadLog.open(directory: "/sim/log", options: Self.options, fileSystem: disk)
        let confirmed = Confirms()
        let records = (0..<3).map { PowerLossTrial.record(seed: 7, stream: 0, index: $0) }
        let operationsBefore = disk.operations
        try append(records, to: log, confirmed: confirmed)
        #expect(disk.operations == operationsBefore, "an append wrote to the disk by itself")
        #expect(log.durableLSN == .none)

        // Written, not synced: confirmed nothing, and a power cut may take it.
        #expect(log.performIO(write: true, sync: false))
        #expect(disk.operations > operationsBefore)
        #expect(log.durableLSN == .none)
        #expect(confirmed.all.isEmpty)

        // The sync confirms all three, in LSN order, on this thread, before performIO returns.
        #expect(log.performIO(write: false, sync: true))
        #expect(log.durableLSN == LSN(3))
        #expect(confirmed.all == [LSN(1), LSN(2), LSN(3)])
        #expect(!log.performIO(), "nothing was left to do")

        // A close writes and syncs what is pending, then seals: the next open finds a clean shutdown.
        try append([PowerLossTrial.record(seed: 7, stream: 0, index: 3)], to: log, confirmed: confirmed)
        try log.close()
        #expect(confirmed.all == [LSN(1), LSN(2), LSN(3), LSN(4)])
        let reopened = try WriteAheadLog.open(directory: "/sim/log", options: Self.options, fileSystem: disk)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.cleanShutdown)
        for (index, record) in (records + [PowerLossTrial.record(seed: 7, stream: 0, index: 3)]).enumerated() {
            #expect(try reopened.read(LSN(UInt64(index + 1))) == record)
        }
    }

    @Test func aPowerCutBetweenTheWriteAndTheSyncLosesOnlyWhatWasNeverConfirmed() throws {
        var unsyncedKept = 0, unsyncedLost = 0
        for seed in UInt64(1)...40 {
            let disk = SimulatedDisk()
            let log = try WriteAheadLog.open(directory: "/sim/log", options: Self.options, fileSystem: disk)
            let confirmed = Confirms()
            let first = (0..<4).map { PowerLossTrial.record(seed: seed, stream: 0, index: $0) }
            try append(first, to: log, confirmed: confirmed)
            _ = log.performIO()
            let second = (4..<8).map { PowerLossTrial.record(seed: seed, stream: 0, index: $0) }
            try append(second, to: log, confirmed: confirmed)
            _ = log.performIO(write: true, sync: false)
            disk.crash()
            try? log.close()
            #expect(confirmed.all == (1...4).map { LSN(UInt64($0)) }, "seed \(seed)")

            let recovered = try WriteAheadLog.open(directory: "/sim/log", options: Self.options,
                                                   fileSystem: disk.crashImage(seed: seed))
            defer { try? recovered.close() }
            for (index, record) in first.enumerated() {
                #expect(try recovered.read(LSN(UInt64(index + 1))) == record, "seed \(seed): a confirmed record")
            }
            // What survives of the unsynced write is a prefix of it, each record whole.
            let end = recovered.durableLSN.rawValue
            #expect((4...8).contains(end), "seed \(seed): recovered through \(end)")
            if end > 4 { unsyncedKept += 1 } else { unsyncedLost += 1 }
            for lsn in UInt64(5)...max(5, end) where lsn <= end {
                #expect(try recovered.read(LSN(lsn)) == second[Int(lsn) - 5], "seed \(seed): LSN \(lsn)")
            }
        }
        // The crash images both kept and lost the unsynced write: the cut really fell between write and sync.
        #expect(unsyncedKept > 0 && unsyncedLost > 0, "kept \(unsyncedKept), lost \(unsyncedLost)")
    }
}

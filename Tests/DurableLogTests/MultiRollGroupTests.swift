import LogFormat
import Synchronization
import Testing
import WALSimulation
@testable import DurableLog

/// One group larger than a segment rolls more than once while it is written; before each roll the log syncs
/// the segment it leaves, and that sync must reach that segment's file. (It synced the file the group started
/// in: at the second roll that one was closed, so the sync failed with a bad descriptor, or, had the number
/// been reused by another open, would have synced some other file and confirmed records never made durable.)
@Suite struct MultiRollGroupTests {
    @Test func aGroupSpanningSeveralSegmentsIsConfirmedOnlyAfterEachIsSyncedAndSurvivesAPowerCut() throws {
        var options = PowerLossTrial.defaultOptions
        options.threadless = true
        options.pendingBytesMax = 1 << 20  // room for one group of several 64 KiB segments
        options.compression = .none  // the records are words repeated: compressed, they would fill fewer
        let disk = SimulatedDisk()
        let log = try WriteAheadLog.open(directory: "/sim/log", options: options, fileSystem: disk)
        let records = (0..<400).map { PowerLossTrial.record(seed: 3, stream: 0, index: $0) }
        #expect(records.reduce(0) { $0 + $1.count } > 4 * options.segmentBytes)
        let confirmed = Mutex<[LSN]>([])
        let failures = Mutex<[WALError]>([])
        for record in records {
            try record.withUnsafeBytes { bytes in
                try log.append(bytes) { result in
                    switch result {
                    case .success(let lsn): confirmed.withLock { $0.append(lsn) }
                    case .failure(let error): failures.withLock { $0.append(error) }
                    }
                }
            }
        }
        // One write takes the whole pending batch: a single group across the rolls.
        while log.performIO() {}
        let failed = failures.withLock { $0 }
        #expect(failed.isEmpty, "\(failed.count) appends failed, the first: \(String(describing: failed.first))")
        #expect(confirmed.withLock { $0.count } == records.count)
        #expect(log.segments.count >= 4)

        disk.crash()
        try? log.close()
        let reopened = try WriteAheadLog.open(directory: "/sim/log", options: options, fileSystem: disk.crashImage(seed: 9))
        defer { try? reopened.close() }
        for lsn in confirmed.withLock({ $0 }) {
            #expect(try reopened.read(lsn) == records[Int(lsn.rawValue) - 1], "confirmed LSN \(lsn) lost at the power cut")
        }
    }
}

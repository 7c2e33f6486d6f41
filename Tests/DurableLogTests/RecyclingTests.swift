import Foundation
import LogFormat
import Testing
@testable import DurableLog

/// Segments freed by truncation are reused as they are (no zero-fill): their old frames stay behind the
/// write position, and neither recovery, the inspector nor a reader ever takes them for live records.
@Suite(.timeLimit(.minutes(2)))
struct RecyclingTests {
    /// Appends `count` records of about 1 KiB from `start` on, each awaited.
    func append(_ log: WriteAheadLog, from start: Int, count: Int) async throws -> [LSN: [UInt8]] {
        var written: [LSN: [UInt8]] = [:]
        for i in start..<(start + count) {
            let record = testRecord(0, i, size: 1000)
            written[try await log.append(record)] = record
        }
        return written
    }

    /// Small segments, stored raw so that the record counts below fill a known number of them.
    var options: LogOptions {
        var o = smallOptions(segmentBytes: 128 << 10)
        o.compression = .none
        return o
    }

    @Test func freedSegmentsAreReusedWithoutZeroFillAndTheirOldFramesAreNeverLive() async throws {
        let dir = TemporaryDirectory()
        let fileSystem = FaultInjectingFileSystem()
        var kept: [LSN: [UInt8]] = [:]
        do {
            let log = try WriteAheadLog.open(directory: dir.path, options: options, fileSystem: fileSystem)
            // About four segments, then everything but the active one goes.
            _ = try await append(log, from: 0, count: 500)
            let freedBefore = log.durableLSN.next
            try log.truncate(before: freedBefore)
            #expect(log.segments.count == 1)
            let spares = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("spare-") }
            #expect(spares.count == SegmentPreparer.sparesMax, "freed segments are kept as spares: \(spares)")
            let allocationsBefore = fileSystem.calls(.allocate)
            // The next two segments come from the spares (or the first one was prepared before the
            // truncation): nothing more is allocated or zero-filled.
            var next = 500
            while log.segments.count < 3 && next < 1000 {
                kept.merge(try await append(log, from: next, count: 10)) { a, _ in a }
                next += 10
            }
            #expect(log.segments.count == 3)
            #expect(fileSystem.calls(.allocate) == allocationsBefore, "a spare was available, yet a file was allocated")
            try log.close()
        }
        // The active segment is a recycled file: its old frames (another segment id, older LSNs) follow the
        // seal. Recovery and the inspector see a clean end; every record reads back as written.
        let inspection = try LogInspector.inspect(directory: dir.path, verifyPayloads: true)
        #expect(inspection.verdict == .clean)
        #expect(inspection.cleanShutdown)
        let last = try #require(segmentPaths(dir.path).last)
        let ids = Set(intactFramesAnywhere(last).map(\.header.segmentID))
        #expect(ids.count > 1, "the recycled segment still holds frames of its former life")

        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        #expect(log.recoveryReport.tornTail == nil && log.recoveryReport.salvaged == nil)
        #expect(log.recoveryReport.cleanShutdown)
        var served = 0
        try log.forEachRecord(from: log.firstLSN) { lsn, bytes in
            if let expected = kept[lsn] { #expect(Array(bytes) == expected, "LSN \(lsn)") }
            served += 1
            return true
        }
        #expect(served >= kept.count)
        // Writing on after the reopen continues in the recycled segment over its old bytes.
        let more = try await append(log, from: 1000, count: 20)
        for (lsn, record) in more { #expect(try log.read(lsn) == record) }
    }

    @Test func sparesOutliveARestart() async throws {
        let dir = TemporaryDirectory()
        do {
            let log = try WriteAheadLog.open(directory: dir.path, options: options)
            _ = try await append(log, from: 0, count: 500)
            try log.truncate(before: log.durableLSN.next)
            try log.close()
        }
        let spares = { try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("spare-") } }
        #expect(try spares().count == SegmentPreparer.sparesMax)
        let fileSystem = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, options: options, fileSystem: fileSystem)
        defer { try? log.close() }
        #expect(try spares().count == SegmentPreparer.sparesMax, "recovery keeps the spares")
        var next = 500
        while log.segments.count < 3 && next < 1000 {
            _ = try await append(log, from: next, count: 10)
            next += 10
        }
        #expect(log.segments.count == 3)
        #expect(fileSystem.calls(.allocate) == 0, "two rolls after the restart, both into spares")
        #expect(try spares().isEmpty)
    }

    @Test func aSegmentPreparedBeforeARestartIsTakenAsItIsNotFilledAgain() async throws {
        let dir = TemporaryDirectory()
        do {
            let log = try WriteAheadLog.open(directory: dir.path, options: options)
            var next = 0
            // Until the next segment is asked for; the close waits for its preparation to end.
            while log.preparedSegments == 0 && next < 100 {
                _ = try await append(log, from: next, count: 5)
                next += 5
            }
            #expect(log.segments.count == 1, "the log rolled before the next segment was asked for")
            try log.close()
        }
        let ready = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("ready-") }
        #expect(ready.count == 1, "the segment prepared whole keeps a name recovery keeps: \(ready)")
        let readyPath = "\(dir.path)/\(try #require(ready.first))"
        let inode = try #require(try FileManager.default.attributesOfItem(atPath: readyPath)[.systemFileNumber] as? Int)

        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? log.close() }
        #expect(FileManager.default.fileExists(atPath: readyPath), "recovery keeps it")
        var next = 1000
        while log.segments.count == 1 && next < 2000 {
            _ = try await append(log, from: next, count: 5)
            next += 5
        }
        let active = try #require(log.segments.last).path
        let activeInode = try FileManager.default.attributesOfItem(atPath: active)[.systemFileNumber] as? Int
        #expect(activeInode == inode, "the roll after the restart went into a new file, not the one prepared before it")
    }

    /// A crash (no seal) in a recycled segment: the old bytes after the last frame are the middle of an older
    /// frame, which recovery must take for the end of the data, not for a torn write or for damage.
    @Test func anUnsealedRecycledSegmentReopensWithoutCuttingOrZeroing() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        _ = try await append(log, from: 0, count: 500)
        try log.truncate(before: log.durableLSN.next)
        // Two rolls after the truncation: the second one at the latest goes into a recycled file.
        var kept: [LSN: [UInt8]] = [:]
        var next = 500
        while log.segments.count < 3 && next < 1000 {
            kept.merge(try await append(log, from: next, count: 10)) { a, _ in a }
            next += 10
        }
        #expect(log.segments.count == 3)
        try log.close()
        // Drop the seal frame, as a crash before the close would have.
        let last = try #require(segmentPaths(dir.path).last)
        let own = frameOffsets(last)
        let seal = try #require(own.last)
        #expect(seal.header.kind == .seal)
        let sizeBefore = readFile(last)
        patchFile(last, at: seal.offset, [UInt8](repeating: 0x5A, count: FrameHeader.encodedBytes))

        let reopened = try WriteAheadLog.open(directory: dir.path, options: options)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.salvaged == nil)
        for (lsn, record) in kept { #expect(try reopened.read(lsn) == record) }
        // Nothing beyond the last own frame was zeroed: the recycled file's older frames are still there.
        let after = readFile(last)
        #expect(after.count == sizeBefore.count)
        #expect(Set(intactFramesAnywhere(last).map(\.header.segmentID)).count > 1)
    }
}

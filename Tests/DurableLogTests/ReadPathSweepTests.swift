import Foundation
import LogFormat
import Testing
@testable import DurableLog

/// Damage that happens after the log opened (a disk that changes under it) is found by the reader: every
/// byte of a confirmed frame flipped in turn, every read of its records refuses by name (file, offset, LSNs),
/// and the records around it still read.
@Suite(.timeLimit(.minutes(2))) struct ReadPathSweepTests {
    @Test func everyFlippedByteOfAConfirmedFrameIsRefusedOnRead() throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        defer { try? log.close() }
        var records: [[UInt8]] = []
        for i in 0..<5 {
            let r = testRecord(1, i, size: 300)
            _ = try r.withUnsafeBytes { try log.appendAndWait($0) }
            records.append(r)
        }
        let path = try #require(segmentPaths(dir.path).first)
        let victim = frameOffsets(path)[2]
        #expect(victim.header.firstLSN == LSN(3) && victim.header.recordCount == 1)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        defer { try? handle.close() }
        let covered = FrameHeader.encodedBytes + Int(victim.header.storedBytes)
        for i in 0..<covered {
            let at = UInt64(victim.offset + i)
            try handle.seek(toOffset: at)
            let original = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: at)
            try handle.write(contentsOf: [original ^ UInt8(1 << (i % 8))])

            let e = expectWALError(.corruption, "byte \(i)") { try log.read(LSN(3)) }
            #expect(e?.code == .corruption && e?.offset == victim.offset && e?.path == path
                    && e?.lsnRange?.contains(3) == true, "byte \(i): \(String(describing: e))")
            var walked: [UInt64] = []
            let walk = expectWALError(.corruption, "byte \(i)") {
                try log.forEachRecord(from: .first) { lsn, _ in walked.append(lsn.rawValue); return true }
            }
            #expect(walk?.code == .corruption && walked == [1, 2], "byte \(i)")
            #expect(try log.read(LSN(4)) == records[3], "byte \(i)")

            try handle.seek(toOffset: at)
            try handle.write(contentsOf: [original])
        }
        #expect(try log.read(LSN(3)) == records[2])
    }
}

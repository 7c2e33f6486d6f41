import Foundation
import LogFormat
import Testing
@testable import DurableLog

/// Salvage never deletes a byte: a damaged span between intact frames is replaced by a `.lost` frame for
/// exactly its records (everything after it stays), a span it cannot bound is cut, and whatever leaves the
/// log is copied or moved into `quarantine/` first, with a manifest.
@Suite(.serialized, .timeLimit(.minutes(2))) struct SalvageTests {
    private func salvageOptions(segmentBytes: Int = 256 << 10) -> LogOptions {
        var o = smallOptions(segmentBytes: segmentBytes)
        o.recoveryMode = .salvage
        return o
    }

    /// The quarantine entries of a log directory: (entry path, its manifest text).
    private func quarantine(_ logDir: String) -> [(path: String, manifest: String)] {
        let root = logDir + "/quarantine"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        return names.map { name in
            let manifest = (try? String(contentsOfFile: "\(root)/\(name)/MANIFEST", encoding: .utf8)) ?? ""
            return ("\(root)/\(name)", manifest)
        }
    }

    @Test func theErrorSaysWhatSalvageWouldDrop() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        var bytes = image.unsealed
        bytes[image.frames[2].offset + 70] ^= 0x01
        let dir = image.install(bytes, in: tmp)
        let e = expectWALError(.corruption) { try WriteAheadLog.open(directory: dir, options: smallOptions()) }
        #expect(e?.code == .corruption && e?.message.contains("salvage would mark LSNs 3...3") == true)
        // The dry run says the same and changes nothing.
        let inspection = try LogInspector.inspect(directory: dir)
        guard case .patch(let plan) = inspection.salvagePlan else { Issue.record("no patch plan"); return }
        #expect(plan.lostLSNs == 3...3 && plan.offset == image.frames[2].offset && plan.quarantinedTo == nil)
        #expect(readFile(dir + "/" + image.segmentName) == bytes && quarantine(dir).isEmpty)
    }

    @Test func aDamagedFrameIsReplacedAndEverythingAfterItKept() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        var bytes = image.unsealed
        let victim = image.frames[2]
        bytes[victim.offset + 70] ^= 0x01
        let dir = image.install(bytes, in: tmp)
        let log = try WriteAheadLog.open(directory: dir, options: salvageOptions())
        let report = log.recoveryReport
        #expect(report.nextLSN == LSN(7) && report.lostLSNs == [3...3])
        let patch = try #require(report.patches.first)
        #expect(report.patches.count == 1 && patch.lostLSNs == 3...3 && patch.offset == victim.offset
                && patch.bytes == victim.header.frameBytes)
        // The lost record refuses by name; the others read back.
        let lost = expectWALError(.recordsLost) { try log.read(LSN(3)) }
        #expect(lost?.code == .recordsLost && lost?.lsnRange == 3...3)
        var seen: [[UInt8]] = []
        var lostRanges: [ClosedRange<UInt64>] = []
        try log.forEachRecord(from: .first, onLost: { lostRanges.append($0) }) { _, r in seen.append(Array(r)); return true }
        #expect(seen == [0, 1, 3, 4, 5].map { image.records[$0] } && lostRanges == [3...3])
        let walk = expectWALError(.recordsLost) { try log.forEachRecord(from: .first) { _, _ in true } }
        #expect(walk?.code == .recordsLost)
        // It goes on: a new record after the kept ones.
        let next = try [UInt8]([9, 9]).withUnsafeBytes { try log.appendAndWait($0) }
        #expect(next == LSN(7))
        try log.close()
        // The damaged bytes are in quarantine, byte for byte, with a manifest.
        let entries = quarantine(dir)
        let entry = try #require(entries.first)
        #expect(entries.count == 1 && patch.quarantinedTo == entry.path)
        #expect(entry.manifest.contains("action: patch") && entry.manifest.contains("lost LSNs: 3...3"))
        let saved = FileManager.default.contents(atPath: "\(entry.path)/\(image.segmentName)@\(victim.offset)").map { [UInt8]($0) }
        #expect(saved == Array(bytes[victim.offset..<(victim.offset + victim.header.frameBytes)]))
        // A normal open now: the lost frame is an intact part of the log.
        let again = try WriteAheadLog.open(directory: dir, options: smallOptions())
        defer { try? again.close() }
        #expect(again.recoveryReport.lostLSNs == [3...3] && again.recoveryReport.patches.isEmpty)
        #expect(try again.read(LSN(7)) == [9, 9])
        #expect(try LogInspector.inspect(directory: dir, verifyPayloads: false).lostLSNs == [3...3])
    }

    @Test func twoDamagedFramesAreBothReplaced() throws {
        let image = try LogImage(count: 8)
        let tmp = TemporaryDirectory()
        var bytes = image.unsealed
        bytes[image.frames[1].offset + 60] ^= 0x40
        bytes[image.frames[5].offset + 8] ^= 0x40
        let dir = image.install(bytes, in: tmp)
        let log = try WriteAheadLog.open(directory: dir, options: salvageOptions())
        defer { try? log.close() }
        #expect(log.recoveryReport.lostLSNs == [2...2, 6...6] && log.recoveryReport.patches.count == 2)
        #expect(quarantine(dir).count == 2)
    }

    /// Damage to the last frame of a closed segment: the span runs to the segment's end, and the next
    /// segment (which continues exactly) stays.
    @Test func theLastFrameOfAClosedSegmentIsReplacedUpToItsEnd() throws {
        let tmp = TemporaryDirectory()
        let options = smallOptions(segmentBytes: 64 << 10)
        let records = try writeLog(tmp.path, count: 800, options: options)
        let paths = segmentPaths(tmp.path)
        try #require(paths.count >= 3)
        let frames = frameOffsets(paths[0]).filter { $0.header.kind == .records }
        let victim = try #require(frames.last)
        var bytes = readFile(paths[0])
        bytes[victim.offset + 60] ^= 0x01
        #expect(FileManager.default.createFile(atPath: paths[0], contents: Data(bytes)))
        let log = try WriteAheadLog.open(directory: tmp.path, options: salvageOptions(segmentBytes: 64 << 10))
        defer { try? log.close() }
        let lostLSN = victim.header.firstLSN.rawValue
        #expect(log.recoveryReport.lostLSNs == [lostLSN...lostLSN])
        #expect(log.recoveryReport.patches.first?.bytes == bytes.count - victim.offset)
        var seen = 0
        try log.forEachRecord(from: .first, onLost: { _ in }) { lsn, r in
            #expect(Array(r) == records[Int(lsn.rawValue) - 1])
            seen += 1
            return true
        }
        #expect(seen == records.count - 1 && log.recoveryReport.nextLSN == LSN(UInt64(records.count + 1)))
    }

    /// A damaged segment header cannot be bounded: the log is cut there, and the segments it takes out are
    /// moved to quarantine whole (nothing deleted).
    @Test func aCutMovesTheSegmentsItTakesOutToQuarantine() throws {
        let tmp = TemporaryDirectory()
        let options = smallOptions(segmentBytes: 64 << 10)
        try writeLog(tmp.path, count: 800, options: options)
        let paths = segmentPaths(tmp.path)
        try #require(paths.count >= 3)
        let originals = paths.map { readFile($0) }
        var header = originals[1]
        header[10] ^= 0xFF
        #expect(FileManager.default.createFile(atPath: paths[1], contents: Data(header)))
        let firstOfSecond = try #require(frameOffsets(paths[1]).first?.header.firstLSN)
        let e = expectWALError(.corruption) { try WriteAheadLog.open(directory: tmp.path, options: options) }
        #expect(e?.message.contains("salvage would cut the log before LSN \(firstOfSecond)") == true)
        let log = try WriteAheadLog.open(directory: tmp.path, options: salvageOptions(segmentBytes: 64 << 10))
        defer { try? log.close() }
        #expect(log.recoveryReport.nextLSN == firstOfSecond && log.recoveryReport.salvaged != nil)
        let entry = try #require(quarantine(tmp.path).first)
        #expect(entry.manifest.contains("action: cut"))
        for (i, path) in paths.enumerated().dropFirst() {
            let name = URL(fileURLWithPath: path).lastPathComponent
            let moved = FileManager.default.contents(atPath: "\(entry.path)/\(name)").map { [UInt8]($0) }
            #expect(moved == (i == 1 ? header : originals[i]), "segment \(name) is not in quarantine as it was")
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}

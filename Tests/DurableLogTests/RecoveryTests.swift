import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// A log of a few records, each in its own frame, whose image the tests damage and reopen.
struct LogImage {
    let records: [[UInt8]]
    let segment: [UInt8]
    let segmentName: String
    /// Record frames (the seal written by close excluded).
    let frames: [(offset: Int, header: FrameHeader)]
    let sealOffset: Int

    init(count: Int) throws {
        let dir = TemporaryDirectory()
        records = try writeLog(dir.path, count: count)
        let path = segmentPaths(dir.path)[0]
        segment = readFile(path)
        segmentName = URL(fileURLWithPath: path).lastPathComponent
        let all = frameOffsets(path)
        precondition(all.last?.header.kind == .seal && all.count == count + 1)
        frames = Array(all.dropLast())
        sealOffset = all.last!.offset
    }

    /// The image as a crash would leave it: no seal.
    var unsealed: [UInt8] {
        var bytes = segment
        for i in sealOffset..<(sealOffset + 64) { bytes[i] = 0 }
        return bytes
    }

    /// Writes `bytes` as the log's only segment in a fresh directory.
    func install(_ bytes: [UInt8], in dir: TemporaryDirectory) -> String {
        let logDir = dir.sub("log-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logDir + "/" + segmentName, contents: Data(bytes))
        return logDir
    }

    func frameEnd(_ i: Int) -> Int { frames[i].offset + frames[i].header.frameBytes }
}

/// Opens a damaged image and checks that it opens at `expectedNext` with every earlier record intact.
func expectOpens(_ dir: String, image: LogImage, expectedNext: Int, options: LogOptions = smallOptions(),
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> RecoveryReport {
    let log = try WriteAheadLog.open(directory: dir, options: options)
    defer { try? log.close() }
    #expect(log.recoveryReport.nextLSN == LSN(UInt64(expectedNext)), sourceLocation: sourceLocation)
    let recovered = try readAll(log)
    #expect(recovered == Array(image.records.prefix(expectedNext - 1)), sourceLocation: sourceLocation)
    return log.recoveryReport
}

func expectCorruption(_ dir: String, offset: Int, firstLSN: UInt64,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let log = try WriteAheadLog.open(directory: dir, options: smallOptions())
        try? log.close()
        Issue.record("open succeeded on a log with damaged confirmed data", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == .corruption, sourceLocation: sourceLocation)
        #expect(error.offset == offset, sourceLocation: sourceLocation)
        #expect(error.lsnRange?.lowerBound == firstLSN, sourceLocation: sourceLocation)
        #expect(error.path?.hasSuffix(".wal") == true, sourceLocation: sourceLocation)
    }
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct RecoveryTests {
    @Test func lastFrameCutAtEveryByteOffsetOpensAtThePreviousFrame() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        let last = image.frames[5]
        let covered = FrameHeader.encodedBytes + Int(last.header.storedBytes)
        for cut in 0..<covered {
            var bytes = image.unsealed
            for i in (last.offset + cut)..<image.sealOffset { bytes[i] = 0 }
            let dir = image.install(bytes, in: tmp)
            let report = try expectOpens(dir, image: image, expectedNext: 6)
            #expect((report.tornTail != nil) == (cut > 0), "cut \(cut)")
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    @Test func cutTailIsZeroedAndTheLogAppendsAfterIt() async throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        var bytes = image.unsealed
        for i in (image.frames[5].offset + 30)..<image.sealOffset { bytes[i] = 0 }
        let dir = image.install(bytes, in: tmp)
        let log = try WriteAheadLog.open(directory: dir, options: smallOptions())
        #expect(log.recoveryReport.tornTail?.offset == image.frames[5].offset)
        #expect(log.recoveryReport.tornTail?.cause == .defectiveFrame)
        let after = readFile(dir + "/" + image.segmentName)
        #expect(after[image.frames[5].offset..<image.sealOffset].allSatisfy { $0 == 0 })
        #expect(try await log.append([42]) == LSN(6))
        try log.close()
        let again = try WriteAheadLog.open(directory: dir, options: smallOptions())
        #expect(try again.read(LSN(6)) == [42])
        #expect(again.recoveryReport.cleanShutdown)
        try again.close()
    }

    @Test func garbledLastFrameAndGarbageAfterTheEndAreATornTail() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        var rng = SplitMix64(seed: testSeed("garbledLastFrame"))
        for start in stride(from: 0, to: image.frames[5].header.frameBytes, by: 37) {
            var bytes = image.unsealed
            for i in (image.frames[5].offset + start)..<(image.sealOffset + 200) { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            let report = try expectOpens(image.install(bytes, in: tmp), image: image, expectedNext: 6)
            #expect(report.tornTail != nil)
        }
        var bytes = image.unsealed
        for i in image.sealOffset..<(image.sealOffset + 3000) { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let report = try expectOpens(image.install(bytes, in: tmp), image: image, expectedNext: 7)
        #expect(report.tornTail?.offset == image.sealOffset)
    }

    @Test func flippedByteInAConfirmedFrameFailsOpenNamingIt() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        let victim = image.frames[2]
        let covered = FrameHeader.encodedBytes + Int(victim.header.storedBytes)
        for i in 0..<covered {
            var bytes = image.unsealed
            bytes[victim.offset + i] ^= 0x10
            expectCorruption(image.install(bytes, in: tmp), offset: victim.offset, firstLSN: 3)
        }
    }

    @Test func damageToTheLastFrameBeforeASealIsCorruption() throws {
        let image = try LogImage(count: 4)
        let tmp = TemporaryDirectory()
        var bytes = image.segment
        bytes[image.frames[3].offset + 60] ^= 0xFF
        expectCorruption(image.install(bytes, in: tmp), offset: image.frames[3].offset, firstLSN: 4)
    }

    @Test func framesFromAnotherSegmentOrAnEarlierPositionAreNeverLive() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        // An intact copy of frame 2 after the end: old LSNs, so stale.
        var bytes = image.unsealed
        let copy = Array(image.segment[image.frames[1].offset..<image.frameEnd(1)])
        bytes.replaceSubrange(image.sealOffset..<(image.sealOffset + copy.count), with: copy)
        var report = try expectOpens(image.install(bytes, in: tmp), image: image, expectedNext: 7)
        #expect(report.tornTail?.offset == image.sealOffset)
        // An intact frame that continues the LSNs but carries another segment id (an earlier use of the file).
        var payload: [UInt8] = []
        [UInt8]([1, 2, 3]).withUnsafeBytes { BatchPayload.append($0, to: &payload) }
        var frame = [UInt8](repeating: 0, count: FrameEncoder.scratchBytesMax(payloadBytes: payload.count))
        let header = payload.withUnsafeBytes { p in frame.withUnsafeMutableBytes { o in
            FrameEncoder.encode(payload: p, recordCount: 1, segmentID: SegmentID(99), firstLSN: LSN(7),
                                durableLSN: LSN(6), leaderEpoch: 0, compression: .none, into: o)
        } }
        bytes = image.unsealed
        bytes.replaceSubrange(image.sealOffset..<(image.sealOffset + header.frameBytes), with: frame.prefix(header.frameBytes))
        report = try expectOpens(image.install(bytes, in: tmp), image: image, expectedNext: 7)
        #expect(report.tornTail != nil)
    }

    /// Groups written in order but synced in overlap: after a crash, a later frame can be intact while an
    /// earlier one is torn. Its watermark tells whether the torn one had been confirmed.
    @Test func intactFrameAfterATornOneDecidesByItsWatermark() throws {
        let image = try LogImage(count: 6)
        let tmp = TemporaryDirectory()
        func frame(lsn: UInt64, durable: UInt64) -> [UInt8] {
            var payload: [UInt8] = []
            testRecord(9, Int(lsn)).withUnsafeBytes { BatchPayload.append($0, to: &payload) }
            var out = [UInt8](repeating: 0, count: FrameEncoder.scratchBytesMax(payloadBytes: payload.count))
            let h = payload.withUnsafeBytes { p in out.withUnsafeMutableBytes { o in
                FrameEncoder.encode(payload: p, recordCount: 1, segmentID: image.frames[0].header.segmentID,
                                    firstLSN: LSN(lsn), durableLSN: LSN(durable), leaderEpoch: 0,
                                    compression: .lz4, into: o)
            } }
            return Array(out.prefix(h.frameBytes))
        }
        for (watermark, isCorruption) in [(UInt64(6), false), (UInt64(7), true)] {
            var bytes = image.unsealed
            let f7 = frame(lsn: 7, durable: 6)
            let f8 = frame(lsn: 8, durable: watermark)
            bytes.replaceSubrange(image.sealOffset..<(image.sealOffset + f7.count), with: f7)
            bytes.replaceSubrange((image.sealOffset + f7.count)..<(image.sealOffset + f7.count + f8.count), with: f8)
            bytes[image.sealOffset + 10] ^= 0x04   // tear frame 7
            let dir = image.install(bytes, in: tmp)
            if isCorruption {
                expectCorruption(dir, offset: image.sealOffset, firstLSN: 7)
            } else {
                let report = try expectOpens(dir, image: image, expectedNext: 7)
                #expect(report.tornTail?.framesDropped == 1)
                #expect(report.tornTail?.droppedLSNs == 8...8)
                #expect(report.tornTail?.cause == .defectiveFrame)
                let after = readFile(dir + "/" + image.segmentName)
                // Both frames were zeroed; the reopened log's own close then sealed it at the same place.
                #expect(after[(image.sealOffset + FrameEncoder.frameBytesMax(payloadBytes: 0))...].allSatisfy { $0 == 0 })
            }
        }
    }

    @Test func segmentSequenceIsCheckedAndAnEmptyTornLastSegmentIsRemoved() async throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        let options = smallOptions(segmentBytes: 64 << 10)
        let log = try WriteAheadLog.open(directory: dir, options: options)
        for i in 0..<600 { _ = try await log.append(testRecord(4, i, size: 500)) }
        try log.close()
        let paths = segmentPaths(dir)
        #expect(paths.count >= 3)
        let pristine = paths.map(readFile)
        func restore() { for (p, b) in zip(paths, pristine) { _ = FileManager.default.createFile(atPath: p, contents: Data(b)) } }

        // A damaged header on a middle segment: later segments prove it held confirmed data.
        var header = pristine[1]
        header[20] ^= 0xFF
        _ = FileManager.default.createFile(atPath: paths[1], contents: Data(header))
        #expect { try WriteAheadLog.open(directory: dir, options: options) } throws: {
            ($0 as? WALError)?.code == .corruption && ($0 as? WALError)?.path == paths[1]
        }
        restore()

        // A missing middle segment breaks the LSN sequence.
        try FileManager.default.removeItem(atPath: paths[1])
        #expect { try WriteAheadLog.open(directory: dir, options: options) } throws: {
            ($0 as? WALError)?.code == .corruption
        }
        restore()

        // A new last segment whose header never reached the disk, with no frames: removed as a torn tail.
        let firstOfNew = try {
            let l = try WriteAheadLog.open(directory: dir, options: options)
            defer { try? l.close() }
            return l.durableLSN.next
        }()
        let extra = dir + "/" + SegmentNames.name(firstLSN: firstOfNew)
        _ = FileManager.default.createFile(atPath: extra, contents: Data([UInt8](repeating: 0, count: 64 << 10)))
        let reopened = try WriteAheadLog.open(directory: dir, options: options)
        #expect(reopened.recoveryReport.tornTail?.segmentsRemoved == 1)
        #expect(reopened.recoveryReport.tornTail?.cause == .segmentHeader)
        #expect(!FileManager.default.fileExists(atPath: extra))
        #expect(try readAll(reopened).count == 600)
        try reopened.close()
    }

    /// A seal from an earlier close does not end the log: zeros over the frames written after it are damage
    /// to confirmed data (the final seal vouches for them), not a clean end.
    @Test func zerosAfterAnEarlierSealAreNotACleanEnd() async throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        try writeLog(dir, count: 3)
        let log = try WriteAheadLog.open(directory: dir, options: smallOptions())
        for i in 3..<6 { _ = try await log.append(testRecord(0, i)) }
        try log.close()
        let path = segmentPaths(dir)[0]
        let frames = frameOffsets(path)
        #expect(frames.map(\.header.kind) == [.records, .records, .records, .seal, .records, .records, .records, .seal])
        let firstAfterSeal = frames[4]
        patchFile(path, at: firstAfterSeal.offset, [UInt8](repeating: 0, count: firstAfterSeal.header.frameBytes))
        expectCorruption(dir, offset: firstAfterSeal.offset, firstLSN: 4)
    }

    /// Zeros over a frame in the middle of a closed (not last) segment are reported at that frame.
    @Test func zerosInsideAnEarlierSegmentAreCorruptionAtThatFrame() async throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        let options = smallOptions(segmentBytes: 64 << 10)
        let log = try WriteAheadLog.open(directory: dir, options: options)
        for i in 0..<300 { _ = try await log.append(testRecord(6, i, size: 900)) }
        try log.close()
        let first = segmentPaths(dir)[0]
        #expect(segmentPaths(dir).count > 1)
        let victim = frameOffsets(first)[3]
        patchFile(first, at: victim.offset, [UInt8](repeating: 0, count: victim.header.frameBytes))
        #expect { try WriteAheadLog.open(directory: dir, options: options) } throws: {
            let e = $0 as? WALError
            return e?.code == .corruption && e?.path == first && e?.offset == victim.offset
                && e?.lsnRange?.lowerBound == victim.header.firstLSN.rawValue
        }
    }

    /// `verifyingFrom`: covered segments are not read at open (their segment headers only); the first read of
    /// one indexes it from its frame headers. A damaged payload or frame header there is refused when read.
    @Test func segmentsCoveredByACheckpointAreIndexedFromHeadersAndStillVerifiedOnRead() async throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        let options = smallOptions(segmentBytes: 64 << 10)
        let log = try WriteAheadLog.open(directory: dir, options: options)
        for i in 0..<300 { _ = try await log.append(testRecord(7, i, size: 900)) }
        try log.close()
        let paths = segmentPaths(dir)
        #expect(paths.count >= 3)
        let everything = LSN(1000)
        // Intact: the same records, fewer bytes read.
        let full = try WriteAheadLog.open(directory: dir, options: options)
        let fullScan = full.recoveryReport.bytesScanned
        try full.close()
        var trusted = try WriteAheadLog.open(directory: dir, options: options, verifyingFrom: everything)
        #expect(trusted.recoveryReport.bytesScanned < fullScan / 2)
        for i in [0, 150, 299] { #expect(try trusted.read(LSN(UInt64(i + 1))) == testRecord(7, i, size: 900)) }
        try trusted.close()
        // A flipped payload byte in a covered segment: open does not see it, the read refuses it.
        let victim = frameOffsets(paths[0])[2]
        patchFile(paths[0], at: victim.offset + FrameHeader.encodedBytes + 10, [0xEE])
        trusted = try WriteAheadLog.open(directory: dir, options: options, verifyingFrom: everything)
        #expect { _ = try trusted.read(victim.header.firstLSN) } throws: { ($0 as? WALError)?.code == .corruption }
        try trusted.close()
        // A damaged frame header in a covered segment: open does not read it; the first read of the segment
        // walks its headers, refuses it naming the frame, and so does every read after (nothing is served).
        let other = frameOffsets(paths[1])[1]
        patchFile(paths[1], at: other.offset + 4, [0, 0, 0, 0])  // the magic
        trusted = try WriteAheadLog.open(directory: dir, options: options, verifyingFrom: everything)
        for _ in 0..<2 {
            #expect { _ = try trusted.read(other.header.firstLSN) } throws: {
                let e = $0 as? WALError
                return e?.code == .corruption && e?.path == paths[1] && e?.offset == other.offset
            }
        }
        #expect(trusted.recordsInFrame(containing: other.header.firstLSN) == nil)
        // The segments around it still read.
        #expect(try trusted.read(LSN(1)) == testRecord(7, 0, size: 900))
        #expect(try trusted.read(LSN(300)) == testRecord(7, 299, size: 900))
        try trusted.close()
        // Without the checkpoint's trust, open checks every frame and refuses the log at the first damage.
        #expect { try WriteAheadLog.open(directory: dir, options: options) } throws: {
            let e = $0 as? WALError
            return e?.code == .corruption && e?.path == paths[0] && e?.offset == victim.offset
        }
    }

    @Test func leftoverPreparedSegmentsAreDeleted() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("log")
        try writeLog(dir, count: 3)
        _ = FileManager.default.createFile(atPath: dir + "/prep-7.prep", contents: Data([1, 2, 3]))
        let log = try WriteAheadLog.open(directory: dir, options: smallOptions())
        #expect(log.recoveryReport.leftoversRemoved >= 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/prep-7.prep"))
        try log.close()
    }
}

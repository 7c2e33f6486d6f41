import Foundation
import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// Puts a segment image on a fresh simulated disk (durable), as the only segment of a log.
func simulatedLog(_ bytes: [UInt8], name: String) throws -> SimulatedDisk {
    let disk = SimulatedDisk()
    let fd = try disk.open("/sim/log/" + name, writable: true, create: true)
    try bytes.withUnsafeBytes { try disk.write(fd, $0, at: 0, path: name) }
    try disk.dataSync(fd, path: name)
    try disk.syncDirectory("/sim/log")
    disk.close(fd)
    return disk
}

func verdict(_ bytes: [UInt8], _ image: LogImage) throws -> LogInspection.Verdict {
    let disk = try simulatedLog(bytes, name: image.segmentName)
    // Recovery reads a segment through a window of a few MiB, larger than these images: the same scan through
    // windows smaller than a frame (grown for each longer one) and of an odd size must decide the same.
    var options = LogOptions()
    options.recoveryMode = .salvage
    var whole = Recovery(directory: "/sim/log", options: options, fileSystem: disk, dryRun: true)
    let expected = try whole.run().report
    for windowBytes in [64, 1_003] {
        var windowed = Recovery(directory: "/sim/log", options: options, fileSystem: disk, dryRun: true,
                                windowBytes: windowBytes)
        let report = try windowed.run().report
        #expect(report == expected, "through a window of \(windowBytes) bytes")
    }
    return try LogInspector.inspect(directory: "/sim/log", verifyPayloads: true, fileSystem: disk).verdict
}

@Suite(.timeLimit(.minutes(10))) struct CorruptionSweepTests {
    /// Every bit of a confirmed frame's header and a bit of every payload byte: refused, naming the frame.
    @Test func everyFlippedBitInAConfirmedFrameIsCorruptionAtThatFrame() throws {
        let image = try LogImage(count: 8)
        let victim = image.frames[3]
        let covered = FrameHeader.encodedBytes + Int(victim.header.storedBytes)
        var cases = 0
        for byte in 0..<covered {
            for bit in (byte < FrameHeader.encodedBytes ? Array(0..<8) : [byte % 8]) {
                var bytes = image.unsealed
                bytes[victim.offset + byte] ^= UInt8(1 << bit)
                guard case .corruption(let cut) = try verdict(bytes, image) else {
                    Issue.record("byte \(byte) bit \(bit) not reported as corruption")
                    return
                }
                #expect(cut.offset == victim.offset && cut.firstLostLSN == 4)
                cases += 1
            }
        }
        #expect(cases > 500)
    }

    /// The same bits in the last frame, which no later frame vouches for: a torn tail, cut at that frame.
    @Test func everyFlippedBitInTheUnvouchedLastFrameIsATornTail() throws {
        let image = try LogImage(count: 8)
        let last = image.frames[7]
        for byte in 0..<(FrameHeader.encodedBytes + Int(last.header.storedBytes)) {
            var bytes = image.unsealed
            bytes[last.offset + byte] ^= UInt8(1 << (byte % 8))
            guard case .tornTail(let cut) = try verdict(bytes, image) else {
                Issue.record("byte \(byte) of the last frame not a torn tail")
                return
            }
            #expect(cut.offset == last.offset && cut.firstLostLSN == 8)
        }
    }

    @Test func truncationAtEveryOffsetKeepsAnIntactPrefix() throws {
        let image = try LogImage(count: 8)
        let end = image.frameEnd(7)
        for length in stride(from: SegmentHeader.blockBytes, through: end, by: 7) {
            let disk = try simulatedLog(Array(image.unsealed.prefix(length)), name: image.segmentName)
            let log = try WriteAheadLog.open(directory: "/sim/log", options: smallOptions(), fileSystem: disk)
            let records = try readAll(log)
            let intact = image.frames.filter { $0.offset + $0.header.frameBytes <= length }.count
            // A frame whose padding alone was cut off is still intact.
            #expect(records.count >= intact && records == Array(image.records.prefix(records.count)))
            try log.close()
        }
    }

    @Test func fillsAndMisdirectedWritesAreClassifiedByWhatFollows() throws {
        let image = try LogImage(count: 8)
        // 0xFF over the tail: torn.
        var bytes = image.unsealed
        for i in image.frames[6].offset..<(image.sealOffset + 4096) { bytes[i] = 0xFF }
        guard case .tornTail(let cut) = try verdict(bytes, image) else { Issue.record("0xFF tail"); return }
        #expect(cut.firstLostLSN == 7)
        // Zeros over a frame in the middle: later frames vouch for it.
        bytes = image.unsealed
        for i in image.frames[2].offset..<image.frameEnd(2) { bytes[i] = 0 }
        guard case .corruption(let zeroed) = try verdict(bytes, image) else { Issue.record("zeroed middle"); return }
        #expect(zeroed.offset == image.frames[2].offset)
        // A misdirected write: an earlier part of the file copied over frames 4 and 5.
        bytes = image.unsealed
        let source = Array(bytes[image.frames[0].offset..<image.frames[2].offset])
        bytes.replaceSubrange(image.frames[4].offset..<(image.frames[4].offset + source.count), with: source)
        guard case .corruption(let moved) = try verdict(bytes, image) else { Issue.record("misdirected"); return }
        #expect(moved.offset == image.frames[4].offset && moved.firstLostLSN == 5)
        // An absurd length in a middle frame: refused without a large allocation.
        bytes = image.unsealed
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0xFFFF_FFF0).littleEndian, toByteOffset: image.frames[1].offset + 12, as: UInt32.self) }
        guard case .corruption(let absurd) = try verdict(bytes, image) else { Issue.record("absurd length"); return }
        #expect(absurd.offset == image.frames[1].offset)
    }

    /// An LZ4 payload damaged together with a recomputed checksum passes the scan (the CRC holds) but is never
    /// served: reads fail with `.corruption` naming the frame, and verify reports it.
    @Test func corruptLZ4WithARecomputedChecksumIsNeverServed() async throws {
        let image = try LogImage(count: 8)
        let victim = image.frames[3]
        #expect(victim.header.codec == .lz4)
        var bytes = image.segment
        let start = victim.offset + FrameHeader.encodedBytes
        for i in start..<(start + Int(victim.header.storedBytes) / 2) { bytes[i] = bytes[i] &+ 0x35 }
        let end = start + Int(victim.header.storedBytes)
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(victim.offset + 4)..<end])) }
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: victim.offset, as: UInt32.self) }
        guard case .corruption(let cut) = try verdict(bytes, image) else { Issue.record("verify missed it"); return }
        #expect(cut.offset == victim.offset && cut.firstLostLSN == 4)
        let disk = try simulatedLog(bytes, name: image.segmentName)
        let log = try WriteAheadLog.open(directory: "/sim/log", options: smallOptions(), fileSystem: disk)
        #expect(try log.read(LSN(3)) == image.records[2])
        #expect { try log.read(LSN(4)) } throws: { ($0 as? WALError)?.code == .corruption && ($0 as? WALError)?.offset == victim.offset }
        try log.close()
    }
}

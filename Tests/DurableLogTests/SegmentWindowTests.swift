import LogFormat
import Testing
import WALSimulation
@testable import DurableLog

/// Recovery reads segments through a window of a few MiB. Whatever the window's size, its answers must be the
/// ones a scan of the whole file in memory gives: at every boundary a frame, a magic or a non-zero word can
/// straddle.
@Suite struct SegmentWindowTests {
    /// A segment-like file: zeros, random bytes, intact frames of many sizes, damaged copies of frames and a
    /// frame whose length runs past the end, at 8-byte steps (and one off them).
    static func image(seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        var bytes: [UInt8] = []
        var lsn: UInt64 = 1
        while bytes.count < 40_000 {
            switch random.next() % 6 {
            case 0: bytes += [UInt8](repeating: 0, count: Int(random.next() % 64) * 8)
            case 1: bytes += (0..<Int(random.next() % 40) * 8).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 2, 3:
                let frameBytes = FrameHeader.encodedBytes + Int(random.next() % 40) * 8
                bytes += FrameEncoder.encodeLost(recordCount: 1, segmentID: SegmentID(3), firstLSN: LSN(lsn),
                                                 frameBytes: frameBytes)
                lsn += 1
            case 4:
                var frame = FrameEncoder.encodeLost(recordCount: 1, segmentID: SegmentID(3), firstLSN: LSN(lsn),
                                                    frameBytes: FrameHeader.encodedBytes + 64)
                frame[Int(random.next() % UInt64(frame.count))] ^= 0x20
                bytes += frame
            default:
                bytes += [UInt8](repeating: 0xAB, count: 4)  // puts what follows off the 8-byte steps
            }
        }
        // The last frame claims more bytes than the file holds.
        bytes += Array(FrameEncoder.encodeLost(recordCount: 1, segmentID: SegmentID(3), firstLSN: LSN(lsn),
                                               frameBytes: FrameHeader.encodedBytes + 4096).prefix(1000))
        return bytes
    }

    // The answers from the whole file in memory.
    static func nextMagic(_ bytes: [UInt8], from: Int) -> Int? {
        var p = from
        while p + FrameHeader.encodedBytes <= bytes.count {
            if bytes.withUnsafeBytes({ $0.loadUnaligned(fromByteOffset: p + 4, as: UInt32.self) }) == FrameHeader.magic.littleEndian {
                return p
            }
            p += 8
        }
        return nil
    }

    static func check(_ bytes: [UInt8], at p: Int) -> FrameCheck {
        bytes.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[p...]),
                              storedBytesMax: bytes.count - p - FrameHeader.encodedBytes)
        }
    }

    static func endOfLastNonZeroWord(_ bytes: [UInt8], from: Int) -> Int? {
        var end = bytes.count & ~7
        while end > (from & ~7) {
            if bytes[(end - 8)..<end].contains(where: { $0 != 0 }) { return end }
            end -= 8
        }
        return nil
    }

    @Test(arguments: [1, 2, 3])
    func everyAnswerThroughAnyWindowIsTheWholeFilesAnswer(seed: UInt64) throws {
        let bytes = Self.image(seed: seed)
        let disk = SimulatedDisk()
        let fd = try disk.open("/sim/segment", writable: true, create: true)
        try bytes.withUnsafeBytes { try disk.write(fd, $0, at: 0, path: "/sim/segment") }
        disk.close(fd)
        // Every offset, on any step, whose magic field holds the frame magic.
        let magics = (0..<max(0, bytes.count - FrameHeader.encodedBytes + 1)).filter { p in
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: p + 4, as: UInt32.self) } == FrameHeader.magic.littleEndian
        }
        #expect(magics.count > 100, "the image holds frames to find")
        var intact = 0
        for windowBytes in [8, 64, 100, 1_003, 4_096, 1 << 20] {
            let window = SegmentWindow(fileSystem: disk, bytes: windowBytes)
            #expect(try window.open("/sim/segment", sizeMax: 1 << 20) == bytes.count)
            for from in stride(from: 0, to: bytes.count + 16, by: 4) {
                #expect(try window.nextMagic(from: from) == Self.nextMagic(bytes, from: from), "window \(windowBytes), from \(from)")
            }
            // Bounded: only positions whose magic field starts before `before`.
            for from in stride(from: 0, to: bytes.count, by: 44) {
                for before in [from, from + 4, from + 5, from + 9, from + 300, from + 5_000, bytes.count] {
                    let whole = Self.nextMagic(bytes, from: from).flatMap { $0 + 4 < before ? $0 : nil }
                    #expect(try window.nextMagic(from: from, before: before) == whole,
                            "window \(windowBytes), from \(from), before \(before)")
                }
            }
            for p in magics {
                let expected = Self.check(bytes, at: p)
                if case .intact = expected, windowBytes == 8 { intact += 1 }
                #expect(try window.checkFrame(at: p) == expected, "window \(windowBytes), frame at \(p)")
            }
            for from in stride(from: 0, to: bytes.count, by: 12) {
                #expect(try window.endOfLastNonZeroWord(from: from) == Self.endOfLastNonZeroWord(bytes, from: from),
                        "window \(windowBytes), from \(from)")
            }
            window.close()
        }
        #expect(intact > 60, "intact frames among those checked: \(intact)")
    }

    /// The last non-zero word, and the bounded magic search, with one non-zero byte at every position of a file of
    /// zeros (what follows a crash's tail in a prepared segment), through windows smaller and larger than it.
    @Test func oneNonZeroByteAnywhereInZerosIsFound() throws {
        let size = 2_048
        let windows = [8, 64, 100, 1_003, 4_096]
        for position in 0..<size {
            var bytes = [UInt8](repeating: 0, count: size)
            bytes[position] = 0x01
            let disk = SimulatedDisk()
            let fd = try disk.open("/sim/segment", writable: true, create: true)
            try bytes.withUnsafeBytes { try disk.write(fd, $0, at: 0, path: "/sim/segment") }
            disk.close(fd)
            for windowBytes in windows {
                let window = SegmentWindow(fileSystem: disk, bytes: windowBytes)
                _ = try window.open("/sim/segment", sizeMax: 1 << 20)
                for from in [0, 8, position & ~7, position + 1, size - 8] {
                    #expect(try window.endOfLastNonZeroWord(from: from) == Self.endOfLastNonZeroWord(bytes, from: from),
                            "byte \(position), window \(windowBytes), from \(from)")
                }
                window.close()
            }
        }
    }
}

import CCRC32C
import LogFormat
import Testing
import WALSimulation

@Suite(.timeLimit(.minutes(10))) struct ChecksumTests {
    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc32c_extend_portable(0, Array("123456789".utf8), 9) == 0xE306_9283)
    }

    /// RFC 3720 (iSCSI), appendix B.4.
    @Test func rfc3720Vectors() {
        let vectors: [([UInt8], UInt32)] = [
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E),
            ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ]
        for (bytes, expected) in vectors {
            #expect(CRC32C.checksum(bytes) == expected)
            #expect(crc32c_extend_portable(0, bytes, bytes.count) == expected)
        }
    }

    @Test func hardwareAndPortableAgreeOnRandomBuffersAndSplits() {
        var rng = SplitMix64(seed: testSeed("ChecksumTests"))
        for _ in 0..<300 {
            let bytes = (0..<Int.random(in: 0...5000, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let whole = CRC32C.checksum(bytes)
            #expect(crc32c_extend_portable(0, bytes, bytes.count) == whole)
            let split = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
            let first = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<split])) }
            let both = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[split...]), continuing: first) }
            #expect(both == whole)
        }
    }

    /// The hardware path runs three interleaved chains over blocks of 256 and 8,192 bytes and joins them: every
    /// length around those blocks' thresholds, unaligned starts, and a running checksum carried in.
    @Test func hardwareAndPortableAgreeAcrossTheInterleavedBlockSizes() {
        var rng = SplitMix64(seed: testSeed("ChecksumTests.blocks"))
        let bytes = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var lengths = [0, 7, 8, 255, 767, 768, 769, 775, 776, 1_536, 24_575, 24_576, 24_577, 24_576 + 768, 49_152 + 767,
                       73_728, 73_728 + 768 + 9, 199_990]
        for _ in 0..<60 { lengths.append(Int.random(in: 0...199_990, using: &rng)) }
        bytes.withUnsafeBytes { all in
            for length in lengths {
                let offset = Int.random(in: 0..<8, using: &rng)
                let slice = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                let carried = UInt32.random(in: 0...UInt32.max, using: &rng)
                #expect(CRC32C.checksum(slice) == crc32c_extend_portable(0, slice.baseAddress, length), "length \(length)")
                #expect(CRC32C.checksum(slice, continuing: carried) == crc32c_extend_portable(carried, slice.baseAddress, length),
                        "length \(length), continuing")
            }
        }
    }

    /// `combine` joins two checksums as if the bytes had been checksummed in one run: at every split of
    /// random buffers, empty halves and lengths past the block sizes included.
    @Test func combiningTwoChecksumsEqualsTheChecksumOfBothParts() {
        var rng = SplitMix64(seed: testSeed("ChecksumTests.combine"))
        let bytes = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var cases: [(length: Int, split: Int)] = [(0, 0), (1, 0), (1, 1), (24, 24), (8_192, 1), (100_000, 32)]
        for _ in 0..<200 {
            let length = Int.random(in: 0...100_000, using: &rng)
            cases.append((length, Int.random(in: 0...length, using: &rng)))
        }
        bytes.withUnsafeBytes { all in
            for (length, split) in cases {
                let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[0..<split]))
                let second = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[split..<length]))
                let whole = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[0..<length]))
                #expect(CRC32C.combine(first, second, secondLength: length - split) == whole, "\(split) + \(length - split)")
            }
        }
    }

    @Test func usesHardwareWhereTheCPUHasIt() {
        #if arch(x86_64) || arch(arm64)
        #expect(CRC32C.isHardwareAccelerated)
        #endif
    }
}

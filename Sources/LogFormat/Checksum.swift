import CCRC32C

/// CRC32C (Castagnoli), hardware-accelerated where the CPU allows.
public enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (0 to start).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return crc32c_extend(crc, base, bytes.count)
    }

    /// The checksum of `bytes`, starting from 0.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The checksum of `A` followed by `B`, from `checksum(A)`, `checksum(B)` and `B`'s length: for a
    /// checksum that covers a header written after the body it describes.
    public static func combine(_ first: UInt32, _ second: UInt32, secondLength: Int) -> UInt32 {
        crc32c_combine(first, second, secondLength)
    }

    /// Whether checksums run on the CPU's CRC32C instructions (SSE4.2 on x86-64, the CRC extension on ARMv8),
    /// as chosen once at first use; false: a slicing-by-8 table in software, with the same results.
    public static var isHardwareAccelerated: Bool { crc32c_is_hardware_accelerated() != 0 }
}

import DurableLog
import LogFormat

/// The fields a decoder reads, from memory (`ByteReader`) or from a file through a window (`FileByteReader`),
/// so that the checkpoint, the largest thing a store reads at open, is decoded without first reading all of
/// it into one fresh buffer.
package protocol FieldReader {
    /// Bytes not read yet.
    var remaining: Int { get }
    /// The most bytes one `raw` call may ask for.
    var rawBytesMax: Int { get }
    mutating func raw(_ n: Int) throws(ByteReader.Malformed) -> UnsafeRawBufferPointer
    mutating func u8() throws(ByteReader.Malformed) -> UInt8
    mutating func u16() throws(ByteReader.Malformed) -> UInt16
    mutating func u32() throws(ByteReader.Malformed) -> UInt32
    mutating func u64() throws(ByteReader.Malformed) -> UInt64
    mutating func i64() throws(ByteReader.Malformed) -> Int64
    mutating func blob() throws(ByteReader.Malformed) -> [UInt8]
    mutating func string() throws(ByteReader.Malformed) -> String
    mutating func expectEnd() throws(ByteReader.Malformed)
}

extension ByteReader: FieldReader {
    package var rawBytesMax: Int { .max }
}

/// `count` bytes of a file from `start` on, read through a window of `windowBytes` (grown for a field longer
/// than it), with the CRC32C of every byte read so far. A read that fails is kept in `ioError` and surfaces to
/// the decoder as malformed input; check `ioError` first.
package struct FileByteReader: FieldReader {
    private let fileSystem: any FileSystem
    private let fd: Int32
    private let path: String
    private let window: OwnedBytes
    /// The file offset after the last byte loaded into the window, and where the bytes end.
    private var loadedEnd: Int
    private let end: Int
    /// The window holds unread bytes at `[position, filled)`.
    private var position = 0
    private var filled = 0
    /// CRC32C of every byte loaded so far, continuing `crcSeed`.
    private(set) var crc: UInt32
    /// The first read that failed, if one did.
    private(set) var ioError: WALError?

    package init(fileSystem: any FileSystem, fd: Int32, path: String, from start: Int, count: Int,
                 crcSeed: UInt32, windowBytes: Int = 1 << 20) {
        self.fileSystem = fileSystem
        self.fd = fd
        self.path = path
        window = OwnedBytes(max(windowBytes, 16))
        loadedEnd = start
        end = start + count
        crc = crcSeed
    }

    package var remaining: Int { filled - position + (end - loadedEnd) }
    package var rawBytesMax: Int { window.bytes.count }

    /// Reads what is left, unread, into the checksum (all of it, from a new reader: a check before decoding).
    package mutating func checksumTheRest() {
        while ioError == nil, loadedEnd < end {
            position = filled
            _ = load(atLeast: 1)
        }
        position = filled
    }

    /// Makes the next `n` bytes contiguous in the window; false when the bytes end first (or a read failed).
    private mutating func load(atLeast n: Int) -> Bool {
        let unread = filled - position
        if unread >= n { return true }
        guard n <= unread + (end - loadedEnd), ioError == nil else { return false }
        if n > window.bytes.count {
            let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
            if unread > 0 { larger.baseAddress!.copyMemory(from: window.bytes.baseAddress! + position, byteCount: unread) }
            window.bytes.deallocate()
            window.bytes = larger
        } else if unread > 0 {
            (window.bytes.baseAddress!).copyMemory(from: window.bytes.baseAddress! + position, byteCount: unread)
        }
        position = 0
        filled = unread
        while filled < n {
            let want = min(window.bytes.count - filled, end - loadedEnd)
            let target = UnsafeMutableRawBufferPointer(rebasing: window.bytes[filled..<(filled + want)])
            let got: Int
            do {
                got = try fileSystem.read(fd, into: target, at: loadedEnd, path: path)
            } catch {
                ioError = error
                return false
            }
            guard got > 0 else {
                ioError = WALError(.ioFailure, "the file ended at \(loadedEnd) bytes, before \(end)", path: path)
                return false
            }
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: window.bytes[filled..<(filled + got)]), continuing: crc)
            filled += got
            loadedEnd += got
        }
        return true
    }

    private mutating func take(_ n: Int) throws(ByteReader.Malformed) -> UnsafeRawBufferPointer {
        guard n >= 0, load(atLeast: n) else {
            throw ByteReader.Malformed(description: ioError.map { "unreadable: \($0)" }
                                       ?? "needs \(n) bytes, has \(remaining)")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: window.bytes[position..<(position + n)])
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws(ByteReader.Malformed) -> T {
        T(littleEndian: try take(MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    package mutating func raw(_ n: Int) throws(ByteReader.Malformed) -> UnsafeRawBufferPointer { try take(n) }
    package mutating func u8() throws(ByteReader.Malformed) -> UInt8 { try load(UInt8.self) }
    package mutating func u16() throws(ByteReader.Malformed) -> UInt16 { try load(UInt16.self) }
    package mutating func u32() throws(ByteReader.Malformed) -> UInt32 { try load(UInt32.self) }
    package mutating func u64() throws(ByteReader.Malformed) -> UInt64 { try load(UInt64.self) }
    package mutating func i64() throws(ByteReader.Malformed) -> Int64 { Int64(bitPattern: try load(UInt64.self)) }

    package mutating func blob() throws(ByteReader.Malformed) -> [UInt8] {
        let n = Int(try u32())
        return Array(try take(n))
    }

    package mutating func string() throws(ByteReader.Malformed) -> String {
        let raw = try blob()
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw ByteReader.Malformed(description: "a string that is not UTF-8")
        }
        return s
    }

    package mutating func expectEnd() throws(ByteReader.Malformed) {
        guard remaining == 0 else { throw ByteReader.Malformed(description: "\(remaining) unexpected bytes at the end") }
    }
}

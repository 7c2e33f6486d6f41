import LogFormat

/// Recovery's view of one segment file: the bytes it asks for, read through a window of a few MiB that is
/// reused for every segment of an open. Reading a whole 64 MiB segment into one buffer cost more in the
/// kernel's zeroing of that fresh memory than in the read itself, and held 64 MiB for the whole open; through
/// the window, the open touches a few MiB, and the checksum reads bytes the copy has just brought into cache.
///
/// Bytes past the end of the file (a file shorter than the size it was opened with) read as zeros, as a short
/// read always did. A request larger than the window (a frame longer than it) grows it.
final class SegmentWindow {
    static let defaultBytes = 4 << 20

    private let fileSystem: any FileSystem
    private var storage: UnsafeMutableRawBufferPointer
    /// The open file, and the size its bytes are asked within.
    private var file: (path: String, fd: Int32, size: Int)?
    /// Which bytes of the file `storage` holds: `[residentStart, residentStart + residentCount)`.
    private var residentStart = 0
    private var residentCount = 0

    init(fileSystem: any FileSystem, bytes: Int = SegmentWindow.defaultBytes) {
        self.fileSystem = fileSystem
        storage = .allocate(byteCount: bytes, alignment: 4096)
    }

    deinit {
        close()
        storage.deallocate()
    }

    /// The path of the open file, if one is.
    var path: String? { file?.path }

    /// Opens `path` (closing the file open before), to be read within its first `prefix` bytes (nil: its
    /// whole size); returns that size.
    func open(_ path: String, prefix: Int? = nil, sizeMax: Int) throws(WALError) -> Int {
        close()
        let fd = try fileSystem.open(path, writable: false, create: false)
        let size: Int
        do throws(WALError) {
            if let prefix { size = prefix } else { size = try fileSystem.size(fd, path: path) }
        } catch {
            fileSystem.close(fd)
            throw error
        }
        guard size <= sizeMax else {
            fileSystem.close(fd)
            throw WALError(.invalidLog, "segment file larger than any segment this log writes", path: path)
        }
        file = (path, fd, size)
        return size
    }

    /// Closes the open file, if one is.
    func close() {
        if let file { fileSystem.close(file.fd) }
        file = nil
        residentCount = 0
    }

    /// The bytes `range` of the open file (within its size), valid until the next call on this window.
    func bytes(_ range: Range<Int>) throws(WALError) -> UnsafeRawBufferPointer {
        guard let file else { preconditionFailure("no segment file is open") }
        precondition(range.lowerBound >= 0 && range.upperBound <= file.size, "bytes \(range) of a file of \(file.size)")
        if range.lowerBound < residentStart || range.upperBound > residentStart + residentCount {
            try fill(from: range.lowerBound, atLeast: range.count, file: file)
        }
        let offset = range.lowerBound - residentStart
        return UnsafeRawBufferPointer(rebasing: storage[offset..<(offset + range.count)])
    }

    /// Reads the window from `start`: as much of the file as fits, and at least `needed` bytes (grown to fit).
    private func fill(from start: Int, atLeast needed: Int, file: (path: String, fd: Int32, size: Int)) throws(WALError) {
        if needed > storage.count {
            storage.deallocate()
            storage = .allocate(byteCount: needed, alignment: 4096)
        }
        residentCount = 0
        let count = min(storage.count, file.size - start)
        let target = UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
        let n = try fileSystem.read(file.fd, into: target, at: start, path: file.path)
        if n < count { _ = target[n..<count].initializeMemory(as: UInt8.self, repeating: 0) }
        residentStart = start
        residentCount = count
    }

    // MARK: - Frames

    /// `FrameHeader.check` of the bytes at `offset` up to the file's size, reading only the frame's header and
    /// then the bytes it claims (not the rest of the file).
    func checkFrame(at offset: Int) throws(WALError) -> FrameCheck {
        guard let size = file?.size else { preconditionFailure("no segment file is open") }
        let storedBytesMax = size - offset - FrameHeader.encodedBytes
        let head = try bytes(offset..<min(size, offset + FrameHeader.encodedBytes))
        let header = FrameHeader.check(head, storedBytesMax: storedBytesMax, verifyingChecksum: false)
        guard case .intact(let f) = header else { return header }
        let frame = try bytes(offset..<(offset + FrameHeader.encodedBytes + Int(f.storedBytes)))
        return FrameHeader.check(frame, storedBytesMax: storedBytesMax)
    }

    /// The first offset at or after `from`, in steps of 8, where a frame header fits before the file's size and
    /// whose magic field holds the frame magic, looking only at positions whose magic field starts before
    /// `before` (the file's size when nil); nil when there is none.
    func nextMagic(from: Int, before: Int? = nil) throws(WALError) -> Int? {
        guard let size = file?.size else { preconditionFailure("no segment file is open") }
        let magic = FrameHeader.magic.littleEndian
        let limit = min(size - FrameHeader.encodedBytes, (before ?? size) - 5)  // the last position looked at
        var p = from
        while p <= limit {
            // A chunk of the window from p; positions whose magic field lies inside it are looked at here.
            let chunkEnd = min(size, p + max(storage.count, FrameHeader.encodedBytes))
            let chunk = try bytes(p..<chunkEnd)
            var q = 0
            while p + q <= limit && q + 8 <= chunk.count {
                if chunk.loadUnaligned(fromByteOffset: q + 4, as: UInt32.self) == magic { return p + q }
                q += 8
            }
            #if WAL_BROKEN_WINDOW_SKIPS_CHUNK_EDGE  // BROKEN ON PURPOSE (harness check builds only)
            p += q + 8
            #else
            p += q
            #endif
        }
        return nil
    }

    /// One past the last 8-byte word (at offsets that are multiples of 8, from `from` rounded down to one, to the
    /// file's size rounded down to one) that holds a non-zero byte; nil when every such word is zero.
    ///
    /// Looks from the end backwards, 64 bytes at a time while they are zero: after a crash the rest of a
    /// prepared segment is tens of megabytes of zeros, and this is where the open spends its time on them.
    func endOfLastNonZeroWord(from: Int) throws(WALError) -> Int? {
        guard let size = file?.size else { preconditionFailure("no segment file is open") }
        let low = from & ~7
        var p = size & ~7  // everything from here on was looked at
        while p > low {
            let start = max(low, p - max(storage.count & ~7, 8))
            let chunk = try bytes(start..<p)
            var q = chunk.count
            while q >= 64 && Self.zeroBlock(chunk, endingAt: q) { q -= 64 }
            while q >= 8 {
                if chunk.loadUnaligned(fromByteOffset: q - 8, as: UInt64.self) != 0 { return start + q }
                q -= 8
            }
            p = start
        }
        return nil
    }

    /// Whether the 64 bytes before `end` in `chunk` are all zero.
    @inline(__always)
    private static func zeroBlock(_ chunk: UnsafeRawBufferPointer, endingAt end: Int) -> Bool {
        var any: UInt64 = 0
        #if WAL_BROKEN_ZERO_BLOCK_SKIPS_A_WORD  // BROKEN ON PURPOSE (harness check builds only)
        let first = end - 56
        #else
        let first = end - 64
        #endif
        for k in stride(from: first, to: end, by: 8) { any |= chunk.loadUnaligned(fromByteOffset: k, as: UInt64.self) }
        return any == 0
    }
}

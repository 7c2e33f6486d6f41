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
    /// whose magic field holds the frame magic; nil when there is none.
    func nextMagic(from: Int) throws(WALError) -> Int? {
        guard let size = file?.size else { preconditionFailure("no segment file is open") }
        let magic = FrameHeader.magic.littleEndian
        var p = from
        while p + FrameHeader.encodedBytes <= size {
            // A chunk of the window from p; positions whose magic field lies inside it are looked at here.
            let chunkEnd = min(size, p + max(storage.count, FrameHeader.encodedBytes))
            let chunk = try bytes(p..<chunkEnd)
            var q = 0
            while p + q + FrameHeader.encodedBytes <= size && q + 8 <= chunk.count {
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
    func endOfLastNonZeroWord(from: Int) throws(WALError) -> Int? {
        guard let size = file?.size else { preconditionFailure("no segment file is open") }
        let end = size & ~7
        var p = from & ~7
        var last: Int?
        while p < end {
            let chunk = try bytes(p..<min(end, p + max(storage.count & ~7, 8)))
            var q = 0
            while q < chunk.count {
                if chunk.loadUnaligned(fromByteOffset: q, as: UInt64.self) != 0 { last = p + q + 8 }
                q += 8
            }
            p += chunk.count
        }
        return last
    }
}

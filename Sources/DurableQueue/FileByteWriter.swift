import DurableLog
import LogFormat

/// Fields written to a file from `start` on through a buffer of `windowBytes`, with their CRC32C (from 0) and
/// count, so that a checkpoint of any size is written with one buffer of memory, not encoded whole first. The file is synced after every `syncEveryBytes` written: no single flush of it holds
/// the device (and the log's syncs queued behind it) for long. The first write or sync that fails is kept in
/// `ioError` and later fields are dropped; `finish()` writes what is buffered and throws it.
package struct FileByteWriter: FieldWriter {
    private let fileSystem: any FileSystem
    private let fd: Int32
    private let path: String
    private let buffer: OwnedBytes
    private let syncEveryBytes: Int
    /// Where the buffered bytes go in the file, and how many are buffered.
    private var fileOffset: Int
    private var buffered = 0
    private var writtenSinceSync = 0
    /// CRC32C (from 0) of the bytes written out so far: of every byte put, once `finish()` returned.
    private(set) var crc: UInt32 = 0
    /// How many bytes were put.
    private(set) var count = 0
    /// The first write or sync that failed, if one did.
    private(set) var ioError: WALError?

    package init(fileSystem: any FileSystem, fd: Int32, path: String, from start: Int, windowBytes: Int = 1 << 20,
                 syncEveryBytes: Int = 4 << 20) {
        self.fileSystem = fileSystem
        self.fd = fd
        self.path = path
        buffer = OwnedBytes(max(windowBytes, 16))
        self.syncEveryBytes = max(1, syncEveryBytes)
        fileOffset = start
    }

    package mutating func put(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        count += raw.count
        if buffered + raw.count > buffer.bytes.count { flush() }
        if raw.count > buffer.bytes.count {
            // Longer than the buffer (a large declaration): straight to the file.
            write(raw)
            return
        }
        (buffer.bytes.baseAddress! + buffered).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
        buffered += raw.count
    }

    /// Writes what is buffered (not synced: the caller syncs the whole file once its header is in place).
    package mutating func finish() throws(WALError) {
        flush()
        if let ioError { throw ioError }
    }

    private mutating func flush() {
        guard buffered > 0 else { return }
        write(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<buffered]))
        buffered = 0
    }

    /// Checksums and writes bytes in the order they were put (a buffer at a time: one checksum call per
    /// buffer, not per field).
    private mutating func write(_ bytes: UnsafeRawBufferPointer) {
        crc = CRC32C.checksum(bytes, continuing: crc)
        guard ioError == nil else { return }
        do {
            try fileSystem.write(fd, bytes, at: fileOffset, path: path)
            fileOffset += bytes.count
            writtenSinceSync += bytes.count
            if writtenSinceSync >= syncEveryBytes {
                try fileSystem.dataSync(fd, path: path)
                writtenSinceSync = 0
            }
        } catch {
            ioError = error
        }
    }
}

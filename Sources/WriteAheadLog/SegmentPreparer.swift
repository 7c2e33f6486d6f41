import Foundation
import LogFormat

/// Prepares the next segment file off the hot path: creates it, allocates it, fills it with zeros and
/// syncs it, so that an `fdatasync` after a group written into it commits no file metadata (on this kind
/// of disk worth 1.4-1.9x; `fallocate` alone leaves unwritten extents whose conversion is metadata).
/// The file is named `prep-<segment id>.prep` until the writer renames it into place; recovery deletes
/// such leftovers.
final class SegmentPreparer: @unchecked Sendable {
    struct Prepared {
        let segmentID: SegmentID
        let path: String
        let fd: Int32
    }

    private let directory: String
    private let segmentBytes: Int
    private let fileSystem: any FileSystem
    private let monitor = Monitor()
    private let wake: Monitor.Condition
    private let done: Monitor.Condition
    // Guarded by monitor.
    private var requested: SegmentID?
    private var result: (SegmentID, Result<Prepared, WALError>)?
    private var stopping = false
    private var exited = false

    init(directory: String, segmentBytes: Int, fileSystem: any FileSystem) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.fileSystem = fileSystem
        wake = monitor.makeCondition()
        done = monitor.makeCondition()
        let thread = Thread { [self] in run() }
        thread.name = "wal-segment-preparer"
        thread.start()
    }

    static func path(directory: String, segmentID: SegmentID) -> String {
        "\(directory)/prep-\(segmentID.rawValue).prep"
    }

    /// Starts preparing the file for `segmentID` in the background, unless it is already under way.
    func prepare(_ segmentID: SegmentID) {
        monitor.withLock {
            if requested == segmentID || result?.0 == segmentID { return }
            requested = segmentID
            wake.signal()
        }
    }

    /// Waits for the file for `segmentID` (starting it if nobody asked yet) and hands it over.
    func take(_ segmentID: SegmentID) throws(WALError) -> Prepared {
        prepare(segmentID)
        let outcome: Result<Prepared, WALError> = monitor.withLock {
            while result?.0 != segmentID { done.wait() }
            let r = result!.1
            result = nil
            return r
        }
        return try outcome.get()
    }

    /// Stops the thread; a prepared file that was not taken is closed and left for recovery to delete.
    func stop() {
        monitor.withLock {
            stopping = true
            wake.signal()
            while !exited { done.wait() }
            if case .success(let p)? = result?.1 { fileSystem.close(p.fd) }
            result = nil
        }
    }

    private func run() {
        monitor.lock()
        while true {
            while requested == nil && !stopping { wake.wait() }
            if stopping { break }
            let id = requested!
            monitor.unlock()
            let outcome = Result { () throws(WALError) -> Prepared in try makeFile(id) }
            monitor.lock()
            requested = nil
            if case .success(let p)? = result?.1 { fileSystem.close(p.fd) }
            result = (id, outcome)
            done.broadcast()
        }
        exited = true
        done.broadcast()
        monitor.unlock()
    }

    private func makeFile(_ id: SegmentID) throws(WALError) -> Prepared {
        let path = Self.path(directory: directory, segmentID: id)
        try fileSystem.remove(path)
        let fd = try fileSystem.open(path, writable: true, create: true)
        do {
            try fileSystem.allocate(fd, bytes: segmentBytes, path: path)
            try Self.zeroFill(fd: fd, from: 0, to: segmentBytes, path: path, fileSystem: fileSystem)
            try fileSystem.dataSync(fd, path: path)
        } catch {
            fileSystem.close(fd)
            throw error
        }
        return Prepared(segmentID: id, path: path, fd: fd)
    }

    /// Writes zeros over `[from, to)` in 1 MiB writes.
    static func zeroFill(fd: Int32, from: Int, to: Int, path: String, fileSystem: any FileSystem) throws(WALError) {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { chunk.deallocate() }
        chunk.initializeMemory(as: UInt8.self, repeating: 0)
        var offset = from
        while offset < to {
            let n = min(chunk.count, to - offset)
            try fileSystem.write(fd, UnsafeRawBufferPointer(rebasing: chunk[0..<n]), at: offset, path: path)
            offset += n
        }
    }
}

import Foundation
import LogFormat
import Synchronization

/// Prepares the next segment file off the hot path, so that an `fdatasync` after a group written into it
/// commits no file metadata (on this kind of disk worth 1.4-1.9x; `fallocate` alone leaves unwritten
/// extents whose conversion is metadata). In steady state it recycles: a segment freed by truncation is
/// kept as a spare (`spare-<n>.prep`, at most `sparesMax`) and becomes the next segment as it is, its
/// blocks already written. Its old frames stay behind the write position; they carry an older segment id
/// and older LSNs, which recovery and readers never take for live data (DESIGN.md, "Recycled segments").
/// Only when no spare is left does it create a file, allocate it, fill it with zeros and sync it.
/// A file being prepared is named `prep-<segment id>.prep`; once filled and synced it is renamed
/// `ready-<n>.prep` until the writer renames it into place. Recovery deletes the first kind (half made) and
/// keeps the second, which the next run takes as a spare: a restart does not fill a segment again.
/// Spares stay across restarts.
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
    /// How long the last preparation took (a spare: next to nothing; a zero-fill: as long as the disk takes
    /// to write the segment). Until one was measured: a zero-fill at 100 MB/s.
    let lastPreparationNanoseconds: Atomic<UInt64>
    /// Freed segment files kept for reuse, oldest first.
    private var spares: [String] = []
    private var nextSpareNumber = 0
    /// How many freed segments are kept for reuse; the rest are deleted.
    static let sparesMax = 2

    /// Without a thread (`threadless`), nothing is prepared ahead: `take` makes the file when it is asked for.
    private let threadless: Bool

    init(directory: String, segmentBytes: Int, fileSystem: any FileSystem, threadless: Bool = false) {
        self.threadless = threadless
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.fileSystem = fileSystem
        lastPreparationNanoseconds = Atomic(UInt64(segmentBytes) * 10)
        // Spares kept by an earlier run, and the segment it prepared and did not take (recovery leaves them;
        // the spares' older frames are as harmless now).
        let names = ((try? fileSystem.list(directory)) ?? []).filter(Self.isReusable)
        spares = names.sorted().map { "\(directory)/\($0)" }
        nextSpareNumber = names.compactMap { Self.number(ofReusable: $0) }.max() ?? 0
        wake = monitor.makeCondition()
        done = monitor.makeCondition()
        if threadless {
            exited = true
            return
        }
        let thread = Thread { [self] in
            Platform.nameCurrentThread("wal-preparer")
            run()
        }
        thread.start()
    }

    /// Segment files held beside the log at this moment, each `segmentBytes` on disk: the spares, and the next
    /// segment while it is prepared or waits to be taken.
    var filesHeld: Int {
        monitor.withLock {
            var n = spares.count
            if requested != nil { n += 1 }
            if case .success? = result?.1 { n += 1 }
            return n
        }
    }

    /// Whether a file name is a spare (`spare-<n>.prep`): a segment freed by truncation, kept for reuse.
    static func isSpare(_ name: String) -> Bool { name.hasPrefix("spare-") && name.hasSuffix(".prep") }

    /// Whether a file name is a segment prepared whole and not yet taken (`ready-<n>.prep`).
    static func isReady(_ name: String) -> Bool { name.hasPrefix("ready-") && name.hasSuffix(".prep") }

    /// Whether recovery keeps the file for reuse: a spare, or a segment prepared whole.
    static func isReusable(_ name: String) -> Bool { isSpare(name) || isReady(name) }

    /// The `<n>` of `spare-<n>.prep` or `ready-<n>.prep` (one sequence for both, so names never repeat).
    private static func number(ofReusable name: String) -> Int? {
        Int(name.dropFirst(name.hasPrefix("spare-") ? "spare-".count : "ready-".count).dropLast(".prep".count))
    }

    static func path(directory: String, segmentID: SegmentID) -> String {
        "\(directory)/prep-\(segmentID.rawValue).prep"
    }

    /// Starts preparing the file for `segmentID` in the background, unless it is already under way.
    func prepare(_ segmentID: SegmentID) {
        if threadless { return }
        monitor.withLock {
            if requested == segmentID || result?.0 == segmentID { return }
            requested = segmentID
            wake.signal()
        }
    }

    /// Waits for the file for `segmentID` (starting it if nobody asked yet) and hands it over.
    func take(_ segmentID: SegmentID) throws(WALError) -> Prepared {
        if threadless { return try makeFile(segmentID) }
        prepare(segmentID)
        let outcome: Result<Prepared, WALError> = monitor.withLock {
            while true {
                if let (id, r) = result, id == segmentID {
                    result = nil
                    return r
                }
                done.wait()
            }
        }
        return try outcome.get()
    }

    /// Stops the thread; a prepared file that was not taken is closed and left for the next run to reuse.
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
            guard !stopping, let id = requested else { break }
            monitor.unlock()
            let started = Platform.monotonicNanoseconds()
            let outcome = Result { () throws(WALError) -> Prepared in try makeFile(id) }
            lastPreparationNanoseconds.store(Platform.monotonicNanoseconds() - started, ordering: .relaxed)
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

    /// Takes a segment file freed by truncation as a spare, renaming it out of the log's names; the caller
    /// syncs the directory, as for a deletion. False when enough spares are kept (delete it instead).
    func adoptSpare(_ segmentPath: String) throws(WALError) -> Bool {
        let sparePath: String? = monitor.withLock {
            guard spares.count < Self.sparesMax, !stopping else { return nil }
            nextSpareNumber += 1
            return "\(directory)/spare-\(nextSpareNumber).prep"
        }
        guard let sparePath else { return false }
        try fileSystem.rename(segmentPath, to: sparePath)
        monitor.withLock { spares.append(sparePath) }
        return true
    }

    /// Deletes the spares: for a log that starts again from its first segment, where an older frame could
    /// carry the same segment id as a live one.
    func discardSpares() throws(WALError) {
        let paths = monitor.withLock { () -> [String] in
            defer { spares.removeAll() }
            return spares
        }
        guard !paths.isEmpty else { return }
        for path in paths { try fileSystem.remove(path) }
        try fileSystem.syncDirectory(directory)
    }

    /// How many freed segments wait for reuse.
    var spareCount: Int { monitor.withLock { spares.count } }

    private func takeSpare() -> String? {
        monitor.withLock { spares.isEmpty ? nil : spares.removeFirst() }
    }

    private func makeFile(_ id: SegmentID) throws(WALError) -> Prepared {
        if let spare = takeSpare() {
            // Its blocks are written and its old contents durable: nothing to fill or sync. The writer
            // gives it its new header (synced) before any frame goes in.
            let fd = try fileSystem.open(spare, writable: true, create: false)
            if try fileSystem.size(fd, path: spare) == segmentBytes { return Prepared(segmentID: id, path: spare, fd: fd) }
            fileSystem.close(fd)  // made with another segment size: not reusable
            try fileSystem.remove(spare)
        }
        let path = Self.path(directory: directory, segmentID: id)
        try fileSystem.remove(path)
        let fd = try fileSystem.open(path, writable: true, create: true)
        do {
            try fileSystem.allocate(fd, bytes: segmentBytes, path: path)
            // Synced a few MiB at a time: one flush of a whole dirty segment holds the device for about 100 ms
            // here, and the log's own syncs would wait behind it.
            var offset = 0
            while offset < segmentBytes {
                let end = min(segmentBytes, offset + Self.zeroFillSyncBytes)
                try Self.zeroFill(fd: fd, from: offset, to: end, path: path, fileSystem: fileSystem)
                try fileSystem.dataSync(fd, path: path)
                offset = end
            }
            // Whole and synced: named so that recovery keeps it. The rename needs no directory sync: a crash
            // that loses it leaves the `prep-` name, which recovery deletes, as before.
            let ready = monitor.withLock { () -> String in
                nextSpareNumber += 1
                return "\(directory)/ready-\(nextSpareNumber).prep"
            }
            try fileSystem.rename(path, to: ready)
            return Prepared(segmentID: id, path: ready, fd: fd)
        } catch {
            fileSystem.close(fd)
            throw error
        }
    }

    /// How much of a new segment is zero-filled between two syncs.
    static let zeroFillSyncBytes = 4 << 20

    /// Writes zeros over `[from, to)`, 64 KiB at a time from one buffer of zeros that every write reuses: the
    /// kernel's copy into the page cache then reads its source from the CPU's cache instead of memory (the
    /// copy was most of a growing log's zero-fill cost; 1 MiB writes from a fresh 1 MiB buffer read it all from
    /// memory).
    static func zeroFill(fd: Int32, from: Int, to: Int, path: String, fileSystem: any FileSystem) throws(WALError) {
        let zeros = ZeroBytes.buffer
        var offset = from
        while offset < to {
            let n = min(zeros.count, to - offset)
            #if WAL_BROKEN_ZERO_FILL_STOPS_SHORT  // BROKEN ON PURPOSE (harness check builds only): skips the last piece.
            if n < zeros.count { return }
            #endif
            try fileSystem.write(fd, UnsafeRawBufferPointer(rebasing: zeros[0..<n]), at: offset, path: path)
            offset += n
        }
    }
}

/// 64 KiB of zeros, allocated once and never written: the source of every zero-fill write.
enum ZeroBytes {
    nonisolated(unsafe) static let buffer: UnsafeRawBufferPointer = {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        return UnsafeRawBufferPointer(bytes)
    }()
}

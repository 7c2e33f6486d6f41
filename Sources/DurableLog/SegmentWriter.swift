import LogFormat

/// Turns a batch of pending records into frames in the active segment: encodes (and compresses) each frame
/// into one buffer, writes them with one `pwrite`, indexes them in the catalog, asks for the next segment
/// in time, and rolls to it when the active one is full. Used by one thread at a time (the holder of the
/// group committer's write token); it never syncs the data it writes, the committer does.
final class SegmentWriter {
    struct ActiveSegment {
        var segmentID: SegmentID
        var firstLSN: LSN
        var path: String
        var fd: Int32
        var writeOffset: Int
    }

    private let directory: String
    private let options: LogOptions
    private let fileSystem: any FileSystem
    private let counters: LogCounters
    private let catalog: SegmentCatalog
    private let identity: LogIdentity
    let preparer: SegmentPreparer

    private(set) var active: ActiveSegment
    private let encodeBuffer: UnsafeMutableRawBufferPointer
    private var locations: [SegmentCatalog.FrameLocation] = []
    private var nextSegmentRequested = false
    /// When the active segment was activated (or the log opened), and the bytes written into it since: its
    /// fill rate.
    private var activatedAt = Platform.monotonicNanoseconds()
    private var bytesSinceActivated = 0

    init(directory: String, options: LogOptions, fileSystem: any FileSystem, counters: LogCounters,
         catalog: SegmentCatalog, identity: LogIdentity, preparer: SegmentPreparer, active: ActiveSegment) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.counters = counters
        self.catalog = catalog
        self.identity = identity
        self.preparer = preparer
        self.active = active
        let capacity = options.pendingBytesMax + options.frameBytesMax
        encodeBuffer = .allocate(byteCount: 2 * capacity + (1 << 20), alignment: 4096)
        locations.reserveCapacity(1024)
    }

    deinit { encodeBuffer.deallocate() }

    /// Encodes `batch` into frames and writes them with one `pwrite` (two when the segment rolls over).
    /// Before a roll, `makeDurable(rollLSN)` must make every record before `rollLSN` durable in the old
    /// segment (old and new segments are never synced in overlap, which keeps recovery simple).
    func write(_ batch: inout PendingBatch, durableAtWrite: LSN,
               makeDurable: (_ before: LSN) throws(WALError) -> Void) throws(WALError) {
        batch.closeFrames()
        var cursor = 0
        var bufferOffset = active.writeOffset
        var payloadStart = 0
        var lsn = batch.firstLSN
        locations.removeAll(keepingCapacity: true)
        var bytesIn = 0
        for cut in batch.cuts {
            let payloadBytes = cut.payloadEnd - payloadStart
            if bufferOffset + cursor + FrameEncoder.frameBytesMax(payloadBytes: payloadBytes) > options.segmentBytes {
                try flush(bytes: cursor, at: bufferOffset)
                try makeDurable(lsn)
                try roll(firstLSN: lsn)
                bufferOffset = active.writeOffset
                cursor = 0
            }
            let header = batch.payload.withUnsafeBytes { payload in
                FrameEncoder.encode(
                    payload: UnsafeRawBufferPointer(rebasing: payload[payloadStart..<cut.payloadEnd]),
                    recordCount: cut.recordCount, segmentID: active.segmentID, firstLSN: lsn,
                    durableLSN: durableAtWrite, leaderEpoch: options.leaderEpoch,
                    compression: options.compression,
                    into: UnsafeMutableRawBufferPointer(rebasing: encodeBuffer[cursor...]))
            }
            locations.append(.init(firstLSN: lsn.rawValue, offset: UInt32(bufferOffset + cursor),
                                   frameBytes: UInt32(header.frameBytes), recordCount: UInt32(cut.recordCount)))
            cursor += header.frameBytes
            lsn = lsn + UInt64(cut.recordCount)
            bytesIn += payloadBytes
            payloadStart = cut.payloadEnd
        }
        precondition(lsn == batch.endLSN, "frames must cover the group exactly")
        try flush(bytes: cursor, at: bufferOffset)
        counters.groups.add(1, ordering: .relaxed)
        counters.records.add(UInt64(batch.recordCount), ordering: .relaxed)
        counters.bytesUncompressed.add(UInt64(bytesIn), ordering: .relaxed)
    }

    /// Writes the first `bytes` of the encode buffer at `offset` of the active segment and indexes them.
    private func flush(bytes: Int, at offset: Int) throws(WALError) {
        guard bytes > 0 else { return }
        try typedWAL { try locations.withUnsafeBufferPointer { frames in
            try place(UnsafeRawBufferPointer(rebasing: encodeBuffer[0..<bytes]), at: offset, frames: frames)
        } }
        locations.removeAll(keepingCapacity: true)
    }

    /// Writes `bytes` (whole frames) at `offset` of the active segment, indexes `frames`, and asks for the
    /// next segment in time.
    private func place(_ bytes: UnsafeRawBufferPointer, at offset: Int,
                       frames: UnsafeBufferPointer<SegmentCatalog.FrameLocation>) throws(WALError) {
        try fileSystem.write(active.fd, bytes, at: offset, path: active.path)
        active.writeOffset = offset + bytes.count
        bytesSinceActivated += bytes.count
        catalog.addFrames(frames)
        counters.frames.add(UInt64(frames.count), ordering: .relaxed)
        counters.bytesWritten.add(UInt64(bytes.count), ordering: .relaxed)
        if !nextSegmentRequested && nextSegmentDue() {
            nextSegmentRequested = true
            preparer.prepare(active.segmentID.next)
        }
    }

    /// A follower's batch: writes each run of its leader's frames as they are, at the same offset of the
    /// same segment (one `pwrite` per segment), rolling to the next segment where the leader did. The
    /// committer checked that the runs continue one another and this log.
    func writeShipped(_ batch: inout PendingBatch, makeDurable: (_ before: LSN) throws(WALError) -> Void) throws(WALError) {
        var first = 0
        var payloadStart = 0, locationsStart = 0
        while first < batch.shipped.count {
            let run = batch.shipped[first]
            if run.segmentID != active.segmentID {
                precondition(run.segmentID == active.segmentID.next && run.offset == SegmentHeader.blockBytes,
                             "shipped runs continue the active segment or start the next one")
                try makeDurable(run.firstLSN)
                try roll(firstLSN: run.firstLSN)
            }
            precondition(run.offset == active.writeOffset, "shipped runs continue where the segment's frames end")
            var last = first
            while last + 1 < batch.shipped.count, batch.shipped[last + 1].segmentID == run.segmentID { last += 1 }
            let payloadEnd = batch.shipped[last].payloadEnd, locationsEnd = batch.shipped[last].locationsEnd
            try typedWAL { try batch.payload.withUnsafeBytes { payload in
                try batch.shippedLocations.withUnsafeBufferPointer { locations in
                    try place(UnsafeRawBufferPointer(rebasing: payload[payloadStart..<payloadEnd]), at: run.offset,
                              frames: UnsafeBufferPointer(rebasing: locations[locationsStart..<locationsEnd]))
                }
            } }
            payloadStart = payloadEnd
            locationsStart = locationsEnd
            first = last + 1
        }
        counters.groups.add(1, ordering: .relaxed)
        counters.records.add(UInt64(batch.recordCount), ordering: .relaxed)
    }

    /// Whether to start preparing the next segment now. A zero-fill writes as many bytes as the segment
    /// holds and slows the log's own syncs while it runs, so it should start as late as it can and still be
    /// ready at the roll: when the space left, at the rate this segment has been filling, lasts less than
    /// twice the last preparation took; at the latest when the segment is half full. (Starting at an eighth
    /// full made every run of a few seconds pay for a zero-fill it never used; at half full alone, a log
    /// writing 170 MB/s waited about 100 ms at the roll.)
    private func nextSegmentDue() -> Bool {
        if active.writeOffset > options.segmentBytes / 2 { return true }
        guard bytesSinceActivated >= options.segmentBytes / 16 else { return false }
        let elapsed = max(Platform.monotonicNanoseconds() - activatedAt, 1)
        let left = Double(options.segmentBytes - active.writeOffset)
        let secondsLeft = left / (Double(bytesSinceActivated) / Double(elapsed))
        let preparation = Double(preparer.lastPreparationNanoseconds.load(ordering: .relaxed))
        return secondsLeft < 2 * preparation
    }

    /// Moves writing to the next segment: writes the new one's header, syncs it, renames it into place and
    /// syncs the directory, all before any frame goes into it.
    private func roll(firstLSN: LSN) throws(WALError) {
        let prepared = try preparer.take(active.segmentID.next)
        let next = try Self.activate(prepared, firstLSN: firstLSN, identity: identity, directory: directory,
                                     options: options, fileSystem: fileSystem)
        fileSystem.close(active.fd)
        active = next
        nextSegmentRequested = false
        activatedAt = Platform.monotonicNanoseconds()
        bytesSinceActivated = 0
        catalog.add(.init(segmentID: next.segmentID, firstLSN: firstLSN, path: next.path, frames: []))
    }

    /// Records a clean shutdown: a frame with no records whose watermark says everything before it is
    /// durable, written and synced. Skipped when the segment has no room (recovery scans without it).
    func writeSeal(nextLSN: LSN, durable: LSN, sync: (Int32, String) throws(WALError) -> Void) throws(WALError) {
        let frameBytes = FrameEncoder.frameBytesMax(payloadBytes: 0)
        guard active.writeOffset + frameBytes <= options.segmentBytes else { return }
        let header = FrameEncoder.encode(
            payload: UnsafeRawBufferPointer(start: nil, count: 0), recordCount: 0, kind: .seal,
            segmentID: active.segmentID, firstLSN: nextLSN, durableLSN: durable,
            leaderEpoch: options.leaderEpoch, compression: .none, into: encodeBuffer)
        try fileSystem.write(active.fd, UnsafeRawBufferPointer(rebasing: encodeBuffer[0..<header.frameBytes]),
                             at: active.writeOffset, path: active.path)
        try sync(active.fd, active.path)
        active.writeOffset += header.frameBytes
    }

    func close() {
        preparer.stop()
        fileSystem.close(active.fd)
    }
}

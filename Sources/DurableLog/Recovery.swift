import LogFormat

/// Opening a log: find the segments, check their sequence, verify every frame, and decide what a bad spot
/// means. The decision table is in DESIGN.md ("Recovery"); in short: a bad or missing frame that no later
/// intact frame vouches for (no later watermark at or past its LSN) is a torn tail and is cut; one that a
/// later frame proves was durable is corruption and is reported, or cut only in salvage mode.
struct Recovery {
    struct Outcome {
        var identity: LogIdentity
        var segments: [SegmentCatalog.Segment]
        /// Where the writer continues in the last segment (nil when the log has no segment yet).
        var writeOffset: Int?
        var nextLSN: LSN
        var report: RecoveryReport
    }

    /// Where the scan met bytes that are not the next intact frame.
    struct StopPoint {
        var segmentIndex: Int
        var offset: Int
        var expectedLSN: LSN
        var cause: RecoveryReport.Cut.Cause
        var reason: String
        /// The stop segment's id, when its header was intact.
        var segmentID: SegmentID?
    }

    /// What the bytes after a stop point hold.
    struct Aftermath {
        var highestWatermark = LSN.none
        var intactFrames = 0
        var droppedLSNs: ClosedRange<UInt64>?
        /// One past the last non-zero byte in the stop point's segment (at least the stop offset).
        var dirtyEnd = 0
    }

    let directory: String
    let options: LogOptions
    let fileSystem: any FileSystem
    /// Only inspect: report what recovery would do, change nothing.
    var dryRun = false
    /// Closed segments whose records all lie before this LSN are indexed from their frame headers without
    /// reading the payloads (a layer above holds a checkpoint covering them; reads still verify every frame).
    var verifyFrom = LSN.first
    /// With `verifyFrom`: leave those segments unindexed (not even their frame headers are read); the catalog
    /// indexes one on its first read. Off for inspection tools, which report every frame.
    var indexLazily = false
    /// Told (segments scanned, segments in all) after each segment, for progress displays.
    var progress: ((Int, Int) -> Void)?

    /// Spans replaced by `.lost` frames so far in this open (salvage mode; the scan starts over after each).
    private var patchesDone: [SalvagePlan.Patch] = []
    /// The segment being read, through a window of a few MiB (see `SegmentWindow`).
    private let window: SegmentWindow
    /// The size `window`'s file was opened with, and whether that is its whole size (not only its header block).
    private var openedSize = 0
    private var openedWhole = false

    /// `windowBytes`: how much of a segment is read at a time (tests shrink it below a frame's size).
    init(directory: String, options: LogOptions, fileSystem: any FileSystem, dryRun: Bool = false,
         windowBytes: Int = SegmentWindow.defaultBytes) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.dryRun = dryRun
        window = SegmentWindow(fileSystem: fileSystem, bytes: windowBytes)
    }

    mutating func run() throws(WALError) -> Outcome {
        defer { window.close() }
        var report = RecoveryReport()
        let names = try fileSystem.list(directory)
        // A half-prepared segment is deleted; a spare (a whole segment freed by truncation) and a segment
        // prepared whole are kept for reuse.
        for name in names where name.hasSuffix(".prep") && !SegmentPreparer.isReusable(name) {
            if !dryRun { try fileSystem.remove("\(directory)/\(name)") }
            report.leftoversRemoved += 1
        }
        if report.leftoversRemoved > 0 && !dryRun { try fileSystem.syncDirectory(directory) }
        let segmentNames = names.filter { SegmentNames.firstLSN(ofName: $0) != nil }.sorted()
        guard let firstName = segmentNames.first, let firstLSN = SegmentNames.firstLSN(ofName: firstName) else {
            return Outcome(identity: .random(), segments: [], writeOffset: nil, nextLSN: .first, report: report)
        }

        var segments: [SegmentCatalog.Segment] = []
        var identity: LogIdentity?
        var expected = firstLSN
        var previousID: SegmentID?
        var stop: StopPoint?
        var writeOffset = SegmentHeader.blockBytes
        var sealed = false

        scan: for (i, name) in segmentNames.enumerated() {
            let path = "\(directory)/\(name)"
            let nextFirst = i + 1 < segmentNames.count ? SegmentNames.firstLSN(ofName: segmentNames[i + 1]) : nil
            let trusted = nextFirst.map { $0 <= verifyFrom } ?? false
            var size = trusted ? try loadHeaderBlock(path) : try load(path)
            report.bytesScanned += size
            progress?(i + 1, segmentNames.count)
            let header = SegmentHeader.decode(try window.bytes(0..<min(size, SegmentHeader.blockBytes)))
            let headerProblem: String? = {
                switch header {
                case .failure(let defect): return "segment header: \(defect)"
                case .success(let h):
                    if let identity, identity != h.logIdentity { return "segment belongs to another log" }
                    if let previousID, h.segmentID != previousID.next { return "segment id \(h.segmentID) out of sequence" }
                    if h.firstLSN != expected || SegmentNames.firstLSN(ofName: name) != expected {
                        return "segment starts at LSN \(h.firstLSN), expected \(expected)"
                    }
                    return nil
                }
            }()
            guard headerProblem == nil, case .success(let h) = header else {
                stop = StopPoint(segmentIndex: i, offset: 0, expectedLSN: expected, cause: .segmentHeader,
                                 reason: headerProblem ?? "segment header")
                break scan
            }
            identity = identity ?? h.logIdentity
            previousID = h.segmentID
            if trusted, let nextFirst, indexLazily {
                segments.append(.init(segmentID: h.segmentID, firstLSN: expected, path: path, frames: [],
                                      unindexedEnd: nextFirst))
                expected = nextFirst
                sealed = false
                continue scan
            }
            if trusted, let nextFirst {
                if case .indexed(let indexed) = try Self.indexFromHeaders(path, segmentID: h.segmentID, firstLSN: expected,
                                                                           endLSN: nextFirst, fileSystem: fileSystem) {
                    report.bytesScanned += indexed.frames.count * FrameHeader.encodedBytes
                    segments.append(indexed)
                    expected = nextFirst
                    sealed = false
                    continue scan
                }
                size = try load(path)  // the headers disagree: verify the whole segment to say where and why
                report.bytesScanned += size
            }
            var segment = SegmentCatalog.Segment(segmentID: h.segmentID, firstLSN: expected, path: path, frames: [])
            var offset = SegmentHeader.blockBytes
            sealed = false
            frames: while offset + FrameHeader.encodedBytes <= size {
                let check = try window.checkFrame(at: offset)
                let isLast = i == segmentNames.count - 1
                let position: RecoveryDecision.Position? = switch check {
                case .zeros: .zeros
                case .intact(let f) where f.segmentID < h.segmentID && f.endLSN <= expected: .olderFrame
                case .intact(let f) where f.segmentID != h.segmentID || f.firstLSN != expected: .frameOutOfPlace
                case .intact: nil  // the next frame: go on
                case .defective: .defective
                }
                if let position {
                    let successorContinues = !isLast && nextFirst == expected
                    var finding = RecoveryDecision.Finding(position: position, inLastSegment: isLast,
                                                           successorContinues: successorContinues)
                    if RecoveryDecision.needsOwnFrameSearch(position, inLastSegment: isLast,
                                                            successorContinues: successorContinues) {
                        finding.ownFrameAfter = try intactFrame(of: h.segmentID, after: offset)
                    }
                    var defect = "defective frame", outOfPlace = "intact frame out of place"
                    if case .defective(let d) = check { defect = d.description }
                    if case .intact(let f) = check {
                        outOfPlace = "intact frame of segment \(f.segmentID) at LSN \(f.firstLSN) out of place"
                    }
                    if case .stop(let cause, let reason) = RecoveryDecision.step(finding, defect: defect, outOfPlace: outOfPlace) {
                        stop = StopPoint(segmentIndex: i, offset: offset, expectedLSN: expected, cause: cause, reason: reason,
                                         segmentID: h.segmentID)
                    }
                    break frames
                }
                guard case .intact(let f) = check else { preconditionFailure("classified above") }
                if f.kind == .seal {
                    sealed = true
                } else {
                    sealed = false
                    segment.frames.append(.init(firstLSN: f.firstLSN.rawValue, offset: UInt32(offset),
                                                frameBytes: UInt32(f.frameBytes), recordCount: f.recordCount,
                                                lost: f.kind == .lost))
                }
                expected = f.endLSN
                offset += f.frameBytes
            }
            segments.append(segment)
            writeOffset = stop?.offset ?? offset
            if stop != nil { break scan }
        }

        if let stop {
            let after = try inspectAfter(stop, segmentNames: segmentNames)
            let cutIndex = stop.offset == 0 ? stop.segmentIndex : stop.segmentIndex + 1
            let cut = RecoveryReport.Cut(
                path: "\(directory)/\(segmentNames[stop.segmentIndex])", offset: stop.offset, cause: stop.cause,
                reason: stop.reason, framesDropped: after.intactFrames, segmentsRemoved: segmentNames.count - cutIndex,
                droppedLSNs: after.droppedLSNs, firstLostLSN: stop.expectedLSN.rawValue,
                laterWatermark: after.highestWatermark.rawValue)
            let bytesAfter = after.dirtyEnd > stop.offset || cut.segmentsRemoved > 0 || stop.offset == 0
            #if WAL_BROKEN_CUT_AT_FIRST_BAD_FRAME
            let decided = RecoveryDecision.outcome(expected: stop.expectedLSN, laterWatermark: .none, bytesAfter: bytesAfter)
            #else
            let decided = RecoveryDecision.outcome(expected: stop.expectedLSN, laterWatermark: after.highestWatermark,
                                                   bytesAfter: bytesAfter)
            #endif
            let isCorruption = decided == .corruption
            var quarantine: String?
            if isCorruption && options.isReplica {
                // A replica cannot tell damage to records it acknowledged from a tail it never synced (the
                // watermark is its leader's): it cuts, keeping the bytes in quarantine, and leaves the marker
                // that makes it rejoin as a new replica (`ReplicaRejoinMarker`).
                report.replicaCut = cut
                if !dryRun {
                    #if !WAL_BROKEN_REPLICA_CUT_WITHOUT_MARKER  // BROKEN ON PURPOSE when set (harness check builds only)
                    try ReplicaRejoinMarker.write(cut, directory: directory, fileSystem: fileSystem)
                    #endif
                    quarantine = try Quarantine.makeEntry(logDirectory: directory, firstLostLSN: stop.expectedLSN.rawValue,
                                                          fileSystem: fileSystem)
                }
            } else if isCorruption {
                let plan = try salvagePlan(stop, cut: cut, segmentNames: segmentNames)
                guard options.recoveryMode == .salvage else {
                    throw WALError(
                        .corruption,
                        "damaged frame (\(stop.reason)) holds records that a later frame shows were confirmed durable "
                        + "(watermark \(after.highestWatermark)); the log was not opened. Inspect it (walctl verify), "
                        + "restore the data from a replica or backup, or open it in salvage mode: \(plan.summary)",
                        path: cut.path, offset: stop.offset,
                        lsnRange: stop.expectedLSN.rawValue...max(stop.expectedLSN.rawValue, after.highestWatermark.rawValue))
                }
                report.salvagePlan = plan
                report.salvaged = cut
                // A patch always knows its segment (`salvageSpan` cuts when it does not).
                if case .patch(var patch) = plan, !dryRun, let segmentID = stop.segmentID {
                    guard patchesDone.count < Self.patchesMax else {
                        throw WALError(.corruption, "more than \(Self.patchesMax) damaged spans; salvage stopped",
                                       path: cut.path, offset: stop.offset)
                    }
                    try apply(&patch, segmentID: segmentID)
                    patchesDone.append(patch)
                    return try run()  // scan again: the patched span is an intact frame now
                }
                if !dryRun {
                    quarantine = try Quarantine.makeEntry(logDirectory: directory, firstLostLSN: stop.expectedLSN.rawValue,
                                                          fileSystem: fileSystem)
                }
            } else if decided == .tornTail {
                report.tornTail = cut
            }
            if !dryRun {
                try cutTail(at: stop, dirtyEnd: after.dirtyEnd, segmentNames: segmentNames, cutIndex: cutIndex,
                            quarantine: quarantine, cut: cut)
            }
        }
        report.patches = patchesDone
        report.lostLSNs = segments.flatMap { s in
            s.frames.filter(\.lost).map { $0.firstLSN...($0.firstLSN + UInt64($0.recordCount) - 1) }
        }
        report.cleanShutdown = sealed && report.tornTail == nil && report.salvaged == nil
        report.segments = segments.count
        report.firstLSN = segments.first?.firstLSN ?? .first
        report.nextLSN = expected
        if segments.isEmpty {
            return Outcome(identity: identity ?? .random(), segments: [], writeOffset: nil,
                           nextLSN: stop?.expectedLSN ?? expected, report: report)
        }
        // Frames that survived in the page cache after a process crash are made durable before anything
        // after them is confirmed.
        if !dryRun, let last = segments.last {
            let fd = try fileSystem.open(last.path, writable: true, create: false)
            defer { fileSystem.close(fd) }
            try fileSystem.dataSync(fd, path: last.path)
        }
        // No header left to name the log (every segment was cut): a new identity, as an empty directory gets.
        return Outcome(identity: identity ?? .random(), segments: segments, writeOffset: writeOffset, nextLSN: expected, report: report)
    }

    /// Whether the open segment holds an intact frame of segment `segmentID` from `from` on (at any 8-byte
    /// step).
    private func intactFrame(of segmentID: SegmentID, after from: Int) throws(WALError) -> Bool {
        var p = from
        while let q = try window.nextMagic(from: p) {
            if case .intact(let f) = try window.checkFrame(at: q), f.segmentID == segmentID { return true }
            p = q + 8
        }
        return false
    }

    /// Opens a segment to read its header block only; returns that block's size.
    private mutating func loadHeaderBlock(_ path: String) throws(WALError) -> Int {
        try load(path, prefix: SegmentHeader.blockBytes)
    }

    /// What walking a segment's frame headers found.
    enum HeaderIndex {
        case indexed(SegmentCatalog.Segment)
        /// The headers do not lead from the first LSN to the end: the first header that does not, at `offset`.
        case broken(offset: Int)
    }

    /// Indexes a closed, checkpoint-covered segment by walking its frame headers (one small read each) without
    /// the payloads or checksums. `.broken` when the headers do not lead from `firstLSN` to `endLSN` in order
    /// (at open, the caller then verifies the segment in full; on a lazy index, reads refuse the segment).
    static func indexFromHeaders(_ path: String, segmentID: SegmentID, firstLSN: LSN, endLSN: LSN,
                                 fileSystem: any FileSystem) throws(WALError) -> HeaderIndex {
        let fd = try fileSystem.open(path, writable: false, create: false)
        defer { fileSystem.close(fd) }
        let size = try fileSystem.size(fd, path: path)
        var segment = SegmentCatalog.Segment(segmentID: segmentID, firstLSN: firstLSN, path: path, frames: [])
        var head = [UInt8](repeating: 0, count: FrameHeader.encodedBytes)
        var offset = SegmentHeader.blockBytes
        var expected = firstLSN
        while expected < endLSN {
            guard offset + FrameHeader.encodedBytes <= size else { return .broken(offset: offset) }
            let n = try typedWAL { try head.withUnsafeMutableBytes { b in
                try fileSystem.read(fd, into: b, at: offset, path: path)
            } }
            guard n == FrameHeader.encodedBytes else { return .broken(offset: offset) }
            let check = head.withUnsafeBytes {
                FrameHeader.check($0, storedBytesMax: size - offset - FrameHeader.encodedBytes, verifyingChecksum: false)
            }
            guard case .intact(let f) = check, f.segmentID == segmentID, f.firstLSN == expected else {
                return .broken(offset: offset)
            }
            if f.kind != .seal {
                segment.frames.append(.init(firstLSN: f.firstLSN.rawValue, offset: UInt32(offset),
                                            frameBytes: UInt32(f.frameBytes), recordCount: f.recordCount,
                                            lost: f.kind == .lost))
            }
            expected = f.endLSN
            offset += f.frameBytes
        }
        return expected == endLSN ? .indexed(segment) : .broken(offset: offset)
    }

    /// Opens a whole segment (or its first `prefix` bytes) in `window`; returns the size it is read within.
    private mutating func load(_ path: String, prefix: Int? = nil) throws(WALError) -> Int {
        openedSize = try window.open(path, prefix: prefix, sizeMax: max(options.segmentBytes, 1 << 32))
        openedWhole = prefix == nil
        return openedSize
    }

    /// `load`, unless `window` has that whole file open already.
    mutating func loadUnlessLoaded(_ path: String) throws(WALError) -> Int {
        if window.path == path && openedWhole { return openedSize }
        return try load(path)
    }

    /// Looks for intact frames anywhere after a stop point (at every 8-byte boundary, since the bad frame's
    /// length cannot be trusted) and for the last non-zero byte of the stop segment.
    private mutating func inspectAfter(_ stop: StopPoint, segmentNames: [String]) throws(WALError) -> Aftermath {
        var after = Aftermath()
        after.dirtyEnd = stop.offset
        for j in stop.segmentIndex..<segmentNames.count {
            let path = "\(directory)/\(segmentNames[j])"
            _ = try loadUnlessLoaded(path)
            let start = j == stop.segmentIndex ? max(stop.offset + 8, SegmentHeader.blockBytes) : SegmentHeader.blockBytes
            var staleFrames = 0
            var newerFramesEnd = stop.offset
            if j == stop.segmentIndex {
                after.dirtyEnd = max(stop.offset, try window.endOfLastNonZeroWord(from: stop.offset) ?? stop.offset)
            }
            // In the stop segment nothing lies past its last non-zero byte (a frame's magic is not zero).
            let end = j == stop.segmentIndex ? after.dirtyEnd : nil
            var p = start
            while let q = try window.nextMagic(from: p, before: end) {
                let check = try window.checkFrame(at: q)
                guard case .intact(let f) = check, f.firstLSN >= stop.expectedLSN || f.durableLSN >= stop.expectedLSN else {
                    if j == stop.segmentIndex, case .intact(let f) = check, let own = stop.segmentID,
                       f.segmentID < own, f.endLSN <= stop.expectedLSN {
                        staleFrames += 1
                    }
                    p = q + 8
                    continue
                }
                if j == stop.segmentIndex { newerFramesEnd = q + f.frameBytes }
                after.intactFrames += 1
                after.highestWatermark = max(after.highestWatermark, f.durableLSN)
                if f.recordCount > 0 {
                    let low = min(after.droppedLSNs?.lowerBound ?? f.firstLSN.rawValue, f.firstLSN.rawValue)
                    let high = max(after.droppedLSNs?.upperBound ?? 0, f.endLSN.rawValue - 1)
                    after.droppedLSNs = low...high
                }
                p = q + f.frameBytes
            }
            // A recycled segment holds an older segment's frames after the stop: they are not this log's tail
            // (never zeroed, never reported). What matters of ours there is any intact frame for records at
            // or after the stop, which must go before the writer continues at the stop; torn bytes of ours
            // that are not an intact frame can never be read as one.
            if j == stop.segmentIndex && staleFrames > 0 { after.dirtyEnd = newerFramesEnd }
        }
        return after
    }

    /// Cuts the log at a stop point: zeros the stop segment from the stop offset to its last non-zero byte
    /// (or deletes it when its header was bad), deletes every later segment (newest first), then syncs.
    /// With `quarantine` (salvage of confirmed records), nothing is deleted: later segments are moved there
    /// and the zeroed bytes are copied there first.
    private func cutTail(at stop: StopPoint, dirtyEnd: Int, segmentNames: [String], cutIndex: Int,
                         quarantine: String?, cut: RecoveryReport.Cut) throws(WALError) {
        let stopPath = "\(directory)/\(segmentNames[stop.segmentIndex])"
        if let quarantine {
            var manifest: [(String, String)] = [
                ("action", "cut"), ("reason", stop.reason), ("log", directory),
                ("cut at", "\(stop.offset) of \(segmentNames[stop.segmentIndex])"),
                ("first lost LSN", "\(cut.firstLostLSN)"), ("later watermark", "\(cut.laterWatermark)"),
            ]
            if let dropped = cut.droppedLSNs { manifest.append(("intact LSNs taken out", "\(dropped.lowerBound)...\(dropped.upperBound)")) }
            if stop.offset > 0 && dirtyEnd > stop.offset {
                let name = "\(segmentNames[stop.segmentIndex])@\(stop.offset)"
                try Quarantine.copy(stopPath, offset: stop.offset, bytes: dirtyEnd - stop.offset, to: quarantine, as: name,
                                    fileSystem: fileSystem)
                manifest.append(("file", "\(name) = bytes \(stop.offset)..<\(dirtyEnd) of \(segmentNames[stop.segmentIndex])"))
            }
            for j in cutIndex..<segmentNames.count {
                manifest.append(("file", "\(segmentNames[j]) = the whole segment"))
            }
            // The manifest first: a crash part-way leaves files that it already explains.
            try Quarantine.writeManifest(manifest, entry: quarantine, fileSystem: fileSystem)
        }
        // Newest first, each deletion synced: a power cut during the cut leaves a prefix of the log.
        for j in stride(from: segmentNames.count - 1, through: cutIndex, by: -1) {
            #if WAL_BROKEN_SALVAGE_DELETES  // BROKEN ON PURPOSE (harness check builds only)
            let moveAside: String? = nil
            #else
            let moveAside = quarantine
            #endif
            if let quarantine = moveAside {
                try Quarantine.move("\(directory)/\(segmentNames[j])", to: quarantine, fileSystem: fileSystem)
            } else {
                try fileSystem.remove("\(directory)/\(segmentNames[j])")
                try fileSystem.syncDirectory(directory)
            }
        }
        if stop.offset > 0 && dirtyEnd > stop.offset {
            let fd = try fileSystem.open(stopPath, writable: true, create: false)
            defer { fileSystem.close(fd) }
            try SegmentPreparer.zeroFill(fd: fd, from: stop.offset, to: dirtyEnd, path: stopPath, fileSystem: fileSystem)
            try fileSystem.dataSync(fd, path: stopPath)
        }
    }
}

extension Recovery {
    static let patchesMax = 10_000

    /// What salvage does about the damage at `stop`: replace the span up to the next intact frame of the
    /// same segment (or, when none follows in it, up to the segment's end where the next segment continues)
    /// with a `.lost` frame; or, when the span cannot be bounded that way, cut the log there.
    mutating func salvagePlan(_ stop: StopPoint, cut: RecoveryReport.Cut,
                              segmentNames: [String]) throws(WALError) -> SalvagePlan {
        guard stop.offset > 0, let own = stop.segmentID else { return .cut(cut) }
        let path = "\(directory)/\(segmentNames[stop.segmentIndex])"
        let size = try loadUnlessLoaded(path)
        var nextOwnFrame: (offset: Int, firstLSN: LSN)?
        var p = stop.offset + 8
        while let q = try window.nextMagic(from: p) {
            if case .intact(let f) = try window.checkFrame(at: q), f.segmentID == own, f.firstLSN > stop.expectedLSN {
                nextOwnFrame = (q, f.firstLSN)
                break
            }
            p = q + 8
        }
        let successor = stop.segmentIndex + 1 < segmentNames.count
            ? SegmentNames.firstLSN(ofName: segmentNames[stop.segmentIndex + 1]) : nil
        guard let span = RecoveryDecision.salvageSpan(stopOffset: stop.offset, expected: stop.expectedLSN,
                                                      segmentHeaderIntact: true, nextOwnFrame: nextOwnFrame,
                                                      segmentEnd: size, successorFirstLSN: successor) else {
            return .cut(cut)
        }
        return .patch(SalvagePlan.Patch(path: path, offset: stop.offset, bytes: span.end - stop.offset,
                                        lostLSNs: stop.expectedLSN.rawValue...(span.endLSN.rawValue - 1),
                                        reason: stop.reason, quarantinedTo: nil))
    }

    /// Copies the damaged span to quarantine (with its manifest), then writes the `.lost` frame over it and
    /// syncs. A crash in between leaves the span damaged still (found again at the next open) and the
    /// original bytes in quarantine.
    func apply(_ patch: inout SalvagePlan.Patch, segmentID: SegmentID) throws(WALError) {
        let entry = try Quarantine.makeEntry(logDirectory: directory, firstLostLSN: patch.lostLSNs.lowerBound,
                                             fileSystem: fileSystem)
        let segmentName = String(patch.path.split(separator: "/").last ?? "")
        let name = "\(segmentName)@\(patch.offset)"
        try Quarantine.writeManifest([
            ("action", "patch"), ("reason", patch.reason), ("log", directory),
            ("lost LSNs", "\(patch.lostLSNs.lowerBound)...\(patch.lostLSNs.upperBound)"),
            ("file", "\(name) = bytes \(patch.offset)..<\(patch.offset + patch.bytes) of \(segmentName), "
             + "replaced in the log by a lost-records frame"),
        ], entry: entry, fileSystem: fileSystem)
        try Quarantine.copy(patch.path, offset: patch.offset, bytes: patch.bytes, to: entry, as: name, fileSystem: fileSystem)
        let frame = FrameEncoder.encodeLost(recordCount: patch.lostLSNs.count, segmentID: segmentID,
                                            firstLSN: LSN(patch.lostLSNs.lowerBound), frameBytes: patch.bytes)
        let fd = try fileSystem.open(patch.path, writable: true, create: false)
        defer { fileSystem.close(fd) }
        try typedWAL { try frame.withUnsafeBytes { try fileSystem.write(fd, $0, at: patch.offset, path: patch.path) } }
        try fileSystem.dataSync(fd, path: patch.path)
        patch.quarantinedTo = entry
    }
}

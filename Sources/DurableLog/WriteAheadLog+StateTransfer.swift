import LogFormat

/// A follower that is behind its leader's first segment cannot be sent the records it lacks: the leader
/// deleted them once its layer's checkpoint covered them. It takes that checkpoint instead, and a log that
/// starts where the leader's does (DESIGN.md, "Catching up from a snapshot"). These are the log's two parts of
/// that: where a log starts, and a log that starts there with nothing in it.
extension WriteAheadLog {
    /// The log's first segment: its id and the LSN of its first record. A follower whose log ends before that
    /// LSN can no longer be sent frames.
    package var start: (segmentID: SegmentID, firstLSN: LSN) {
        let first = catalog.snapshot[0]
        return (first.segmentID, first.firstLSN)
    }

    /// Deletes every file of the (closed) log in `directory`: its segments, the files its preparer holds and
    /// its epoch history; then syncs the directory. Other files (a lock, a replica's incarnation) stay.
    /// Blocking file I/O.
    package static func removeLogFiles(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        var removed = false
        for name in try fileSystem.list(directory) where Self.isLogFile(name) {
            try fileSystem.remove("\(directory)/\(name)")
            removed = true
        }
        if removed { try fileSystem.syncDirectory(directory) }
    }

    private static func isLogFile(_ name: String) -> Bool {
        SegmentNames.firstLSN(ofName: name) != nil || name.hasSuffix(".prep") || name == EpochHistory.fileName
            || name.hasPrefix(EpochHistory.fileName + ".")
    }

    /// Starts an empty log in `directory`, which must hold no segment: its first segment is `segmentID`
    /// (zero-filled to `options.segmentBytes`, its header written and synced, the directory synced), and its
    /// first record will be `firstLSN`. A follower that took its leader's state for every record before
    /// `firstLSN` continues there: the leader's frames of that segment then go where the leader wrote them.
    /// Durable when it returns. Blocking file I/O.
    ///
    /// - Throws: `.invalidArgument` when the directory holds a segment, or `options` names no log identity;
    ///   I/O errors.
    package static func createEmpty(directory: String, segmentID: SegmentID, firstLSN: LSN, options: LogOptions,
                                    fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) {
        guard let identity = options.identity else {
            throw WALError(.invalidArgument, "an empty log to follow a leader needs the leader's log identity")
        }
        guard firstLSN.rawValue >= 1, segmentID.rawValue >= 1 else {
            throw WALError(.invalidArgument, "a log starts at LSN 1 and segment 1 at the earliest")
        }
        try fileSystem.createDirectoryDurably(directory)
        if let segment = try fileSystem.list(directory).first(where: { SegmentNames.firstLSN(ofName: $0) != nil }) {
            throw WALError(.invalidArgument, "the directory holds a segment already (\(segment))", path: directory)
        }
        let preparer = SegmentPreparer(directory: directory, segmentBytes: options.segmentBytes, fileSystem: fileSystem,
                                   threadless: options.threadless)
        defer { preparer.stop() }
        let prepared = try preparer.take(segmentID)
        let active = try SegmentWriter.activate(prepared, firstLSN: firstLSN, identity: identity, directory: directory,
                                                options: options, fileSystem: fileSystem)
        fileSystem.close(active.fd)
    }
}

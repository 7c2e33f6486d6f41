import DurableLog
import LogFormat

/// A follower taking its leader's snapshot in place of the records the leader no longer holds: its log is
/// replaced by an empty one that starts at the leader's first segment, its epoch history by the leader's
/// before that segment, and its layer's state by the snapshot. The three change in separate files, so the
/// install runs under a marker (`replica-installing`, durable before the first change, removed after the
/// last): a replica that finds the marker at start crashed inside an install, and its log may not match its
/// state. It then deletes its log (and starts empty: its leader sends the snapshot again) and takes a new
/// incarnation, as after any loss of records it may have acknowledged. DESIGN.md, "Catching up from a
/// snapshot", has the argument. Blocking file I/O throughout.
package enum SnapshotInstall {
    package static let markerName = "replica-installing"
    /// The file a snapshot's parts are written to as they come, in the replica's log directory.
    package static let incomingName = "snapshot.incoming"

    /// Writes a part of a snapshot at its offset in the incoming file (the first part, at offset 0, starts the
    /// file again: what an earlier, unfinished transfer left is deleted). Not synced: `install` syncs the whole.
    package static func write(_ part: ReplicationMessage.SnapshotPart, directory: String,
                              fileSystem: any FileSystem) throws(WALError) {
        let path = "\(directory)/\(incomingName)"
        #if !REPLICATION_BROKEN_SNAPSHOT_FILE_NOT_RESTARTED  // skipped only in harness check builds
        if part.offset == 0 { try removeIncoming(directory: directory, fileSystem: fileSystem) }
        #endif
        let fd = try fileSystem.open(path, writable: true, create: true)
        defer { fileSystem.close(fd) }
        try typedWAL { try part.bytes.withUnsafeBytes { try fileSystem.write(fd, $0, at: Int(part.offset), path: path) } }
    }

    /// Installs the snapshot `part` describes, whose bytes are all in the incoming file, into the replica in
    /// `directory` (its log closed). `options` are the follower's log options (identity set). Durable when it
    /// returns; the incoming file is gone (taken by the layer, or deleted when the install failed).
    package static func install(_ part: ReplicationMessage.SnapshotPart, directory: String,
                                options: LogOptions, fileSystem: any FileSystem,
                                snapshots: any StateSnapshots) throws(WALError) {
        do throws(WALError) {
            try installIncoming(part, directory: directory, options: options, fileSystem: fileSystem,
                                snapshots: snapshots)
        } catch {
            try? removeIncoming(directory: directory, fileSystem: fileSystem)
            throw error
        }
    }

    private static func installIncoming(_ part: ReplicationMessage.SnapshotPart, directory: String,
                                        options: LogOptions, fileSystem: any FileSystem,
                                        snapshots: any StateSnapshots) throws(WALError) {
        let incoming = "\(directory)/\(incomingName)"
        do {
            let fd = try fileSystem.open(incoming, writable: true, create: false)
            defer { fileSystem.close(fd) }
            try fileSystem.dataSync(fd, path: incoming)
        }
        var history = EpochHistory()
        for entry in part.epochs {
            guard entry.firstLSN < part.firstLSN else {
                throw WALError(.invalidArgument, "the snapshot's epoch history reaches past its first LSN \(part.firstLSN)")
            }
            try history.begin(epoch: entry.epoch, at: entry.firstLSN)
        }
        let reason = "installing a snapshot through LSN \(part.covers), the log to start at \(part.firstLSN) in segment \(part.segmentID)"
        try SmallFile.replace(Array((reason + "\n").utf8), name: markerName, directory: directory, fileSystem: fileSystem)
        #if REPLICATION_BROKEN_INSTALL_WITHOUT_MARKER  // BROKEN ON PURPOSE (harness check builds only)
        try removeMarker(directory: directory, fileSystem: fileSystem)
        #endif
        try WriteAheadLog.removeLogFiles(directory: directory, fileSystem: fileSystem)
        try WriteAheadLog.createEmpty(directory: directory, segmentID: part.segmentID, firstLSN: part.firstLSN,
                                      options: options, fileSystem: fileSystem)
        try history.save(directory: directory, fileSystem: fileSystem)
        try snapshots.install(file: incoming, covers: part.covers)
        try removeMarker(directory: directory, fileSystem: fileSystem)
    }

    /// At start, before the replica opens its log: undoes an install a crash interrupted (the log deleted, a new
    /// incarnation to be taken at `Incarnation.loadOrCreate`). Returns whether there was one.
    @discardableResult
    package static func finishInterrupted(directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws(WALError) -> Bool {
        try fileSystem.createDirectoryDurably(directory)
        try removeIncoming(directory: directory, fileSystem: fileSystem)  // a transfer a stop cut short
        guard try fileSystem.list(directory).contains(markerName) else { return false }
        try WriteAheadLog.removeLogFiles(directory: directory, fileSystem: fileSystem)
        try ReplicaRejoinMarker.write(reason: "a snapshot install was interrupted; the log was deleted",
                                      directory: directory, fileSystem: fileSystem)
        try removeMarker(directory: directory, fileSystem: fileSystem)
        return true
    }

    private static func removeIncoming(directory: String, fileSystem: any FileSystem) throws(WALError) {
        guard try fileSystem.list(directory).contains(incomingName) else { return }
        try fileSystem.remove("\(directory)/\(incomingName)")
    }

    private static func removeMarker(directory: String, fileSystem: any FileSystem) throws(WALError) {
        guard try fileSystem.list(directory).contains(markerName) else { return }
        try fileSystem.remove("\(directory)/\(markerName)")
        try fileSystem.syncDirectory(directory)
    }
}

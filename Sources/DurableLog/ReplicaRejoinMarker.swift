/// A follower's log whose recovery cut records the replica may have acknowledged leaves this file behind
/// (`replica-rejoin`, written and made durable before the cut). The replication layer answers it by giving the
/// directory a new incarnation before the replica speaks to anyone, then removes it.
///
/// Why: a replica's frames carry its leader's committed watermark, which vouches for records this replica
/// made durable only if it was in the in-sync set when the leader wrote the frame. After a power loss, a damaged
/// frame that a later frame vouches for is either a tail it took while catching up and never synced, or
/// damage to records it acknowledged; the replica cannot tell which. Either way its leader holds the records,
/// so the follower cuts them and fetches them again; but until it holds them again it must not count as a
/// member of the in-sync set (it could be elected without confirmed records), and a new incarnation is how the
/// group forgets its membership (KIP-903's lesson). The file outlives a crash between the cut and the new
/// incarnation, when the cut's own evidence is gone.
package enum ReplicaRejoinMarker {
    package static let fileName = "replica-rejoin"

    /// Whether the directory holds the marker.
    package static func isPresent(directory: String, fileSystem: any FileSystem) throws(WALError) -> Bool {
        try fileSystem.list(directory).contains(fileName)
    }

    /// Writes the marker durably (its text says what was cut, for people).
    static func write(_ cut: RecoveryReport.Cut, directory: String, fileSystem: any FileSystem) throws(WALError) {
        try write(reason: "cut LSN \(cut.firstLostLSN) on, vouched for through \(cut.laterWatermark), at byte \(cut.offset) of \(cut.path)",
                  directory: directory, fileSystem: fileSystem)
    }

    /// Writes the marker durably for another loss of records the replica may have acknowledged (`reason`
    /// says which, for people).
    package static func write(reason: String, directory: String, fileSystem: any FileSystem) throws(WALError) {
        try SmallFile.replace(Array((reason + "\n").utf8), name: fileName, directory: directory, fileSystem: fileSystem)
    }

    /// Removes the marker durably (once the replica has its new incarnation).
    package static func remove(directory: String, fileSystem: any FileSystem) throws(WALError) {
        guard try isPresent(directory: directory, fileSystem: fileSystem) else { return }
        try fileSystem.remove("\(directory)/\(fileName)")
        try fileSystem.syncDirectory(directory)
    }
}

import DurableLog
import LogFormat

/// The state of the layer above a replicated log (a store's checkpoint), as replication moves it: how a replica
/// that is behind its leader's first segment catches up. A leader deletes segments once its layer's checkpoint
/// covers them, so a new or wiped replica, or one that was away long, is sent the checkpoint in their place and
/// then the frames from the leader's first segment on (Raft's InstallSnapshot).
///
/// Both calls block on files: replication calls them from threads of its own. Neither holds a snapshot whole in
/// memory: the leader reads its file a part at a time as the connection takes them, and the follower writes the
/// parts to a file in its directory (`SnapshotInstall.incomingName`) and installs from that file.
package protocol StateSnapshots: Sendable {
    /// Leader: the layer's latest durable snapshot, open for reading, and the LSN through which it holds the
    /// effect of every record; nil when there is none. It must cover every record the log deleted: a log deletes
    /// segments only below a snapshot the layer already made durable.
    func latest() throws(WALError) -> (file: ReadOnlyFile, covers: LSN)?

    /// Follower: replaces the layer's state with the file at `path` (a leader's snapshot through `covers`,
    /// written whole and synced), durably, taking the file (it is moved into place or deleted); what the layer
    /// held before is dropped. Checks the file before anything is replaced.
    ///
    /// - Throws: `.corruption` when the file is not a snapshot through `covers`; I/O errors.
    func install(file path: String, covers: LSN) throws(WALError)
}

import DurableLog
import DurableQueue
import LogFormat
import Replication

/// The store's checkpoint, as replication moves it to a replica that is behind its leader's first segment: the
/// leader sends the checkpoint in its directory; a follower installs it through its applier, which then applies
/// from it.
struct StoreSnapshots: StateSnapshots {
    let directory: String
    let applier: FollowerApplier

    func latest() throws(WALError) -> (file: ReadOnlyFile, covers: LSN)? {
        try StoreFollower.latestCheckpoint(directory: directory)
    }

    func install(file path: String, covers: LSN) throws(WALError) {
        try applier.install(checkpointFile: path, covers: covers)
    }
}

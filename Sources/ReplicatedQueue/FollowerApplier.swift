import DurableLog
import DurableQueue
import LogFormat
import Logging
import Replication
import Synchronization

/// Keeps this replica's copy of the store state while it follows: every tick, the records its leader committed
/// are applied from its own log, and a checkpoint is written (and old segments deleted) as on a leader. The
/// copy is handed to the store when this node comes to lead, so that it takes over warm.
final class FollowerApplier: Sendable {
    let follower: StoreFollower
    private let logger: Logger
    /// True while this node leads: the copy belongs to the leader's store then. Held through each catch-up
    /// (on a thread of its own), so that `pause` waits for one in progress.
    private let leading = Mutex(false)
    private let lastFailure = Mutex<String?>(nil)

    init(directory: String, options: StoreOptions, logger: Logger) {
        follower = StoreFollower(directory: directory, options: options)
        self.logger = logger
    }

    /// Runs until cancelled, catching up every `tick` while `node` follows.
    func run(node: ReplicaNode, tick: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard let (log, committed) = node.following, committed > follower.appliedLSN || follower.appliedLSN == .none
            else { continue }
            await onOwnThread { [self] in
                leading.withLock { leads in
                    guard !leads else { return }
                    do throws(QueueError) {
                        try follower.catchUp(log: log, committed: committed)
                        try follower.checkpointIfDue(log: log)
                        lastFailure.withLock { $0 = nil }
                    } catch {
                        // A log closed under it (a cut, a change of role) is tried again at the next tick;
                        // anything else is said once.
                        guard error.code != .closed else { return }
                        let text = "\(error)"
                        if lastFailure.withLock({ f in defer { f = text }; return f != text }) {
                            logger.error("a follower could not apply what its leader committed: \(text)")
                        }
                    }
                }
            }
        }
    }

    /// Replaces the copy with a leader's checkpoint (`StoreFollower.install`), once no catch-up runs: one in
    /// progress would put back the copy it started from.
    func install(checkpointFile path: String, covers: LSN) throws(WALError) {
        try leading.withLock { _ throws(WALError) in try follower.install(checkpointFile: path, covers: covers) }
    }

    /// This node now leads: returns once no catch-up runs, and none starts until `resume`.
    func pause() async {
        await onOwnThread { [self] in leading.withLock { $0 = true } }
    }

    /// This node no longer leads: catch-ups start again, from the checkpoint.
    func resume() { leading.withLock { $0 = false } }
}

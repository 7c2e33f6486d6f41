import Foundation
import Replication

/// Connections between leader and follower sessions inside one process: every message is encoded, queued and
/// decoded again (so the codec is on the path), and delivered in order per connection by one thread of the
/// network's own (sessions block for cuts and syncs, which a cooperative thread must not). A connection can
/// be cut: its queued and later messages are dropped, as a broken TCP connection drops them.
final class InMemoryNetwork: @unchecked Sendable {
    struct Endpoints {
        var leader: LeaderSession?
        var follower: FollowerSession?
        var cut = false
    }

    private let condition = NSCondition()
    private var queue: [(connection: Int, toLeader: Bool, bytes: [UInt8])] = []
    private var connections: [Int: Endpoints] = [:]
    private var stopping = false
    private var running = 0
    private var delivered = 0
    private var thread: Thread?

    init() {
        let thread = Thread { [self] in deliver() }
        thread.name = "in-memory-network"
        self.thread = thread
        thread.start()
    }

    /// What a session of `connection` sends through: to the leader's side or to the follower's.
    func sender(_ connection: Int, toLeader: Bool) -> @Sendable (ReplicationMessage) -> Void {
        { [self] message in
            condition.lock()
            if connections[connection]?.cut != true {
                queue.append((connection, toLeader, message.encoded))
                // Every waiter: a test thread in `wait` or `settle` waits on this condition too, and a signal
                // that woke only it would leave the message queued with the delivering thread asleep.
                condition.broadcast()
            }
            condition.unlock()
        }
    }

    func attach(_ connection: Int, leader: LeaderSession? = nil, follower: FollowerSession? = nil) {
        condition.lock()
        var endpoints = connections[connection] ?? Endpoints()
        if let leader { endpoints.leader = leader }
        if let follower { endpoints.follower = follower }
        connections[connection] = endpoints
        condition.unlock()
    }

    /// Breaks `connection`: what is queued for it and whatever it sends later is lost.
    func cut(_ connection: Int) {
        condition.lock()
        connections[connection, default: Endpoints()].cut = true
        queue.removeAll { $0.connection == connection }
        condition.unlock()
    }

    /// Waits until no message is queued or being delivered (or `seconds` passed); false on timeout.
    func settle(seconds: Double = 20) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || running > 0 {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }

    /// Waits until `done` holds, checking it after each message delivered (or `seconds` passed); false on timeout.
    /// `done` runs without the network's lock (it may read sessions, which send while holding theirs).
    func wait(seconds: Double = 20, until done: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while true {
            condition.lock()
            let seen = delivered
            condition.unlock()
            if done() { return true }
            condition.lock()
            while delivered == seen {
                if !condition.wait(until: deadline) {
                    condition.unlock()
                    return done()
                }
            }
            condition.unlock()
        }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func deliver() {
        condition.lock()
        while true {
            while queue.isEmpty && !stopping { condition.wait() }
            if stopping { break }
            let (connection, toLeader, bytes) = queue.removeFirst()
            let endpoints = connections[connection]
            running += 1
            condition.unlock()
            let message = try! bytes.withUnsafeBytes { try ReplicationMessage.decode($0) }!.0
            if toLeader { endpoints?.leader?.receive(message) } else { endpoints?.follower?.receive(message) }
            condition.lock()
            running -= 1
            delivered += 1
            condition.broadcast()
        }
        condition.unlock()
    }
}

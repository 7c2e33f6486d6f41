import Foundation
import Replication
import WALSimulation

/// The connections of a simulated cluster: each message is encoded and queued on its connection, in order,
/// and the trial delivers them one at a time, choosing the connection with its seeded generator (connections
/// interleave in any order; one connection's messages never overtake each other, as on TCP). A cut connection
/// drops what is queued on it and everything sent on it later; a one-way cut does so in one direction only,
/// while the other still delivers (a route lost one way, a peer that reads but whose answers are dropped).
final class SimulatedNetwork: @unchecked Sendable {
    private struct Connection {
        var toLeader: [[UInt8]] = []
        var toFollower: [[UInt8]] = []
        var leader: LeaderSession?
        var follower: FollowerSession?
        var cut = false
        var toLeaderCut = false
        var toFollowerCut = false
        var queued: Int { toLeader.count + toFollower.count }
    }

    private let condition = NSCondition()
    private var connections: [Int: Connection] = [:]
    private var nextID = 0

    /// A new connection's id; attach its sessions before starting them.
    func open() -> Int {
        condition.lock()
        defer { condition.unlock() }
        nextID += 1
        connections[nextID] = Connection()
        return nextID
    }

    func attach(_ id: Int, leader: LeaderSession, follower: FollowerSession) {
        condition.lock()
        connections[id]?.leader = leader
        connections[id]?.follower = follower
        condition.unlock()
    }

    func sender(_ id: Int, toLeader: Bool) -> @Sendable (ReplicationMessage) -> Void {
        { [self] message in
            let bytes = message.encoded
            condition.lock()
            if var connection = connections[id], !connection.cut {
                if toLeader {
                    if !connection.toLeaderCut { connection.toLeader.append(bytes) }
                } else if !connection.toFollowerCut {
                    connection.toFollower.append(bytes)
                }
                connections[id] = connection
                condition.broadcast()
            }
            condition.unlock()
        }
    }

    func cut(_ id: Int) {
        condition.lock()
        connections[id] = Connection(cut: true)
        condition.unlock()
    }

    /// Drops what is queued toward the leader (or the follower) on `id` and everything sent that way later; the
    /// other direction still delivers.
    func cutOneWay(_ id: Int, toLeader: Bool) {
        condition.lock()
        if toLeader {
            connections[id]?.toLeaderCut = true
            connections[id]?.toLeader.removeAll()
        } else {
            connections[id]?.toFollowerCut = true
            connections[id]?.toFollower.removeAll()
        }
        condition.unlock()
    }

    var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return connections.values.reduce(0) { $0 + $1.queued }
    }

    /// Delivers one queued message, on a connection chosen by `rng`; false when none is queued.
    func deliverOne(_ rng: inout SplitMix64) -> Bool {
        condition.lock()
        let ready = connections.filter { $0.value.queued > 0 }.keys.sorted()
        guard !ready.isEmpty else {
            condition.unlock()
            return false
        }
        let id = ready[Int(rng.next() % UInt64(ready.count))]
        var connection = connections[id]!
        let toLeader: Bool
        if connection.toLeader.isEmpty { toLeader = false } else if connection.toFollower.isEmpty { toLeader = true } else {
            toLeader = rng.next() % 2 == 0
        }
        let bytes = toLeader ? connection.toLeader.removeFirst() : connection.toFollower.removeFirst()
        connections[id] = connection
        condition.unlock()
        guard let (message, _) = try? bytes.withUnsafeBytes({ try ReplicationMessage.decode($0) }) else {
            preconditionFailure("the network corrupted a message")
        }
        if toLeader { connection.leader?.receive(message) } else { connection.follower?.receive(message) }
        return true
    }
}

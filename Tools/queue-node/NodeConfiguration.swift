import Foundation
import ReplicatedQueue

/// A `queue-node`'s configuration file (JSON):
///
/// ```json
/// {"member": "a", "directory": "/var/lib/queue/a",
///  "replication": "127.0.0.1:7101", "client": "127.0.0.1:7201",
///  "peers": {"b": "127.0.0.1:7102", "c": "127.0.0.1:7103"},
///  "etcd": ["http://127.0.0.1:2379"], "group": "/durable-queue/orders/",
///  "leaseTTLMilliseconds": 1000, "minInsyncReplicas": 2}
/// ```
struct NodeConfiguration: Codable {
    /// This member's name in the group.
    var member: String
    /// The store's directory (its log in `wal/`).
    var directory: String
    /// Where this member's replication endpoint listens, `host:port`.
    var replication: String
    /// Where this node serves test clients (`NodeRequest`s), `host:port`.
    var client: String
    /// Every other member's replication endpoint by name (what each one's peers connect to: a fault proxy's
    /// address when links are to be cut).
    var peers: [String: String]
    /// etcd's client URLs.
    var etcd: [String]
    /// The group's key prefix in etcd, ending with "/".
    var group: String
    var leaseTTLMilliseconds: Int?
    var minInsyncReplicas: Int?
    var inSyncLagMilliseconds: Int?

    static func load(_ path: String) throws -> NodeConfiguration {
        try JSONDecoder().decode(NodeConfiguration.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    var replicationOptions: ReplicationOptions {
        get throws {
            var peerEndpoints: [String: Endpoint] = [:]
            // The store refuses a group its options cannot make (`ReplicationOptions.validate`).
            for (name, address) in peers { peerEndpoints[name] = try Self.endpoint(address) }
            var options = ReplicationOptions(member: member, listen: try Self.endpoint(replication), peers: peerEndpoints)
            if let ms = leaseTTLMilliseconds { options.leaseTTL = .milliseconds(ms) }
            if let ms = inSyncLagMilliseconds { options.inSyncLagTime = .milliseconds(ms) }
            if let count = minInsyncReplicas { options.minInsyncReplicas = count }
            return options
        }
    }

    static func endpoint(_ address: String) throws -> Endpoint {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw Invalid(description: "not a host:port address: \(address)")
        }
        return Endpoint(host: String(address[..<colon]), port: port)
    }
}

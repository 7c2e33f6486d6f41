/// One replica of a group: a member name from the configuration plus the incarnation of its data directory.
///
/// The incarnation is a random number chosen when the data directory is created and kept in it. A node that
/// lost its disk comes back under the same name with a new incarnation, so it is a different replica: it is not
/// in the in-sync set, whatever the old one's standing was, until it has caught up again (Kafka's KIP-903).
public struct ReplicaIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The member's configured name (unique in the group's configuration).
    public var member: String
    /// The data directory's incarnation id.
    public var incarnation: UInt64

    /// A replica: `member`'s data directory with incarnation `incarnation`.
    public init(member: String, incarnation: UInt64) {
        self.member = member
        self.incarnation = incarnation
    }

    /// A new random incarnation id, for a data directory being created.
    public static func newIncarnation() -> UInt64 { UInt64.random(in: 1...UInt64.max) }

    /// `member#incarnation`, as logs print it.
    public var description: String { "\(member)#\(incarnation)" }

    private enum CodingKeys: String, CodingKey { case member, incarnation }

    /// Decodes `{"member":"a","incarnation":"123"}`; the incarnation is a decimal string, as etcd writes its
    /// own 64-bit numbers, so that a reader with only doubles (jq, JavaScript) does not round it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        member = try container.decode(String.self, forKey: .member)
        let text = try container.decode(String.self, forKey: .incarnation)
        guard let value = UInt64(text) else {
            throw DecodingError.dataCorruptedError(forKey: .incarnation, in: container,
                                                   debugDescription: "not a decimal UInt64: \(text)")
        }
        incarnation = value
    }

    /// Encodes `{"member":"a","incarnation":"123"}` (see `init(from:)`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(member, forKey: .member)
        try container.encode(String(incarnation), forKey: .incarnation)
    }
}

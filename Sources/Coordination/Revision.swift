/// A position in the coordination store's history: etcd's revision, one store-wide counter that every write
/// raises by one. A key's `mod_revision` is the revision of the write that last changed it, which is what the
/// fenced transactions compare.
public struct Revision: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The revision as etcd reports it (an int64 on the wire, never negative).
    public let rawValue: Int64
    /// Wraps a revision etcd reported.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// Orders revisions by history: a later write has a larger revision.
    public static func < (a: Revision, b: Revision) -> Bool { a.rawValue < b.rawValue }
    /// The revision as a decimal number.
    public var description: String { String(rawValue) }
}

/// A lease's id, chosen by the coordination store when it grants the lease. etcd's ids are near 2^61: they
/// travel as decimal strings, never through a `Double`.
public struct LeaseID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The id as etcd reports it (an int64 on the wire; 0 means "no lease" there, so a granted id is never 0).
    public let rawValue: Int64
    /// Wraps an id the store granted.
    public init(rawValue: Int64) { self.rawValue = rawValue }
    /// The id as a decimal number.
    public var description: String { String(rawValue) }
}

/// A granted lease: a key bound to it is deleted by the store when the lease is not renewed within its TTL.
/// Leadership is a key bound to the leader's lease.
public struct Lease: Hashable, Sendable, Codable {
    /// The lease's id, which `renew`, `revoke` and the fenced transactions take.
    public var id: LeaseID
    /// The TTL the store granted: whole seconds, never below its minimum (2 s for etcd), so it may exceed the
    /// TTL asked for.
    public var ttl: Duration
    /// A lease as the store granted it.
    public init(id: LeaseID, ttl: Duration) {
        self.id = id
        self.ttl = ttl
    }
}

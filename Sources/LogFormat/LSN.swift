/// A log sequence number: the position of one record in the log. LSNs are dense: the first record of a
/// new log is 1 and each record is one more than the record before it. 0 means "no record".
public struct LSN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The LSN of this raw value.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// No record: 0 (the `durableLSN` of a log that holds none).
    public static let none = LSN(0)
    /// The LSN of a new log's first record: 1.
    public static let first = LSN(1)

    public static func < (a: LSN, b: LSN) -> Bool { a.rawValue < b.rawValue }
    /// The LSN `count` records after `a`.
    public static func + (a: LSN, count: UInt64) -> LSN { LSN(a.rawValue + count) }
    /// The LSN after this one.
    public var next: LSN { LSN(rawValue + 1) }
    /// The LSN before this one; traps on `LSN.none`.
    public var previous: LSN { LSN(rawValue - 1) }
    public var description: String { String(rawValue) }

    /// The LSN range with these raw bounds.
    public static func range(_ raw: ClosedRange<UInt64>) -> ClosedRange<LSN> { LSN(raw.lowerBound)...LSN(raw.upperBound) }
}

/// The sequence number of a segment file in one log: 1 for the first, one more for each that follows.
/// Every frame header repeats it, so bytes left by an earlier use of a file can never pass for live frames.
public struct SegmentID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// The segment id of this raw value.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (a: SegmentID, b: SegmentID) -> Bool { a.rawValue < b.rawValue }
    /// The id of the segment that follows this one.
    public var next: SegmentID { SegmentID(rawValue + 1) }
    public var description: String { String(rawValue) }
}

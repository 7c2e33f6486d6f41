import LogFormat

/// Segment file names: the first LSN, zero-padded to 20 digits so that a listing sorts them, then `.wal`.
/// A segment being prepared is named `prep-<segment id>.prep` (`SegmentPreparer.path`), then `ready-<n>.prep`
/// once whole, until the writer renames it into place.
enum SegmentNames {
    static let suffix = ".wal"

    static func name(firstLSN: LSN) -> String {
        let digits = String(firstLSN.rawValue)
        return String(repeating: "0", count: 20 - digits.count) + digits + suffix
    }

    /// The first LSN a segment name announces, or nil for any other file.
    static func firstLSN(ofName name: String) -> LSN? {
        guard name.count == 20 + suffix.count, name.hasSuffix(suffix) else { return nil }
        guard let value = UInt64(name.prefix(20)), name.prefix(20).allSatisfy(\.isNumber) else { return nil }
        return LSN(value)
    }
}

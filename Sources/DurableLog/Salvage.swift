import LogFormat

/// What salvage does (or, in a dry run, would do) about damage to confirmed records. Salvage never deletes
/// a byte: whatever it takes out of the log is first copied or moved into the log's `quarantine/`
/// directory, with a `MANIFEST` that says where it came from.
public enum SalvagePlan: Sendable, Equatable {
    /// The damaged span lies between intact frames: it is replaced in place by a `.lost` frame for exactly
    /// the records it held, and everything after it stays in the log. The layer above learns which LSNs
    /// are lost (`RecoveryReport.lostLSNs`) and decides what that means for its state.
    case patch(Patch)
    /// The damage cannot be bounded (a segment header, a frame out of place): the log is cut before it and
    /// the rest is moved to quarantine, as for a torn tail.
    case cut(RecoveryReport.Cut)

    /// One damaged span replaced by a `.lost` frame.
    public struct Patch: Sendable, Equatable {
        /// The segment file that holds the damaged span.
        public var path: String
        /// Byte offset of the span in `path`: where the next intact frame was expected.
        public var offset: Int
        /// Length of the span in bytes, up to the next intact frame of the segment (or the file's end when
        /// the next segment continues the log): exactly what the `.lost` frame fills.
        public var bytes: Int
        /// The records the span held (the LSNs between the intact frames around it).
        public var lostLSNs: ClosedRange<UInt64>
        /// Why the bytes at `offset` were not the next intact frame, in words (as `RecoveryReport.Cut.reason`).
        public var reason: String
        /// Where the damaged bytes were copied (nil in a dry run).
        public var quarantinedTo: String?
    }

    /// One line for an error message or a CLI: what salvage would drop and what it keeps.
    public var summary: String {
        switch self {
        case .patch(let p):
            return "salvage would mark LSNs \(p.lostLSNs.lowerBound)...\(p.lostLSNs.upperBound) "
                + "(\(p.lostLSNs.count) record(s), the damaged \(p.bytes)-byte span at byte \(p.offset) of "
                + "\(p.path)) as lost and keep every record after them; the damaged bytes are copied to "
                + "quarantine/ first"
        case .cut(let c):
            var text = "salvage would cut the log before LSN \(c.firstLostLSN)"
            if let dropped = c.droppedLSNs {
                text += ", taking out \(c.framesDropped) intact frame(s) with LSNs \(dropped.lowerBound)..."
                    + "\(dropped.upperBound)"
            }
            return text + "; what it takes out is moved to quarantine/, not deleted"
        }
    }
}

/// The directory salvage moves damaged and cut-off bytes into, inside the log directory. Recovery never
/// reads it (its names are not segment names); `walctl quarantine` lists it.
enum Quarantine {
    static let directoryName = "quarantine"
    static let manifestName = "MANIFEST"

    /// Creates a fresh entry directory (durably) and returns its path.
    static func makeEntry(logDirectory: String, firstLostLSN: UInt64, fileSystem: any FileSystem) throws(WALError) -> String {
        let root = "\(logDirectory)/\(directoryName)"
        try fileSystem.createDirectoryDurably(root)
        let seconds = Platform.wallClock().seconds
        let existing = (try? fileSystem.list(root)) ?? []
        var name = "\(seconds)-lsn\(firstLostLSN)"
        var n = 1
        while existing.contains(name) {
            n += 1
            name = "\(seconds)-lsn\(firstLostLSN)-\(n)"
        }
        try fileSystem.createDirectoryDurably("\(root)/\(name)")
        return "\(root)/\(name)"
    }

    /// Copies `bytes` bytes at `offset` of `path` into `entry/name`, synced.
    static func copy(_ path: String, offset: Int, bytes: Int, to entry: String, as name: String,
                     fileSystem: any FileSystem) throws(WALError) {
        let source = try fileSystem.open(path, writable: false, create: false)
        defer { fileSystem.close(source) }
        var buffer = [UInt8](repeating: 0, count: bytes)
        let n = try typedWAL { try buffer.withUnsafeMutableBytes { try fileSystem.read(source, into: $0, at: offset, path: path) } }
        try write(Array(buffer[0..<n]), to: "\(entry)/\(name)", fileSystem: fileSystem)
    }

    /// Moves a whole file into the entry (a rename: both directories synced).
    static func move(_ path: String, to entry: String, fileSystem: any FileSystem) throws(WALError) {
        let name = String(path.split(separator: "/").last ?? "")
        try fileSystem.rename(path, to: "\(entry)/\(name)")
        try fileSystem.syncDirectory(entry)
        try fileSystem.syncDirectory(String(path.dropLast(name.count + 1)))
    }

    /// Writes the entry's manifest: plain `key: value` lines, for people and for `walctl quarantine`.
    static func writeManifest(_ lines: [(String, String)], entry: String, fileSystem: any FileSystem) throws(WALError) {
        let text = lines.map { "\($0.0): \($0.1)" }.joined(separator: "\n") + "\n"
        try write(Array(text.utf8), to: "\(entry)/\(manifestName)", fileSystem: fileSystem)
    }

    private static func write(_ bytes: [UInt8], to path: String, fileSystem: any FileSystem) throws(WALError) {
        let fd = try fileSystem.open(path, writable: true, create: true)
        defer { fileSystem.close(fd) }
        try typedWAL { try bytes.withUnsafeBytes { try fileSystem.write(fd, $0, at: 0, path: path) } }
        try fileSystem.dataSync(fd, path: path)
        try fileSystem.syncDirectory(String(path.dropLast(path.split(separator: "/").last!.count + 1)))
    }
}

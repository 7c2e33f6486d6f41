import Foundation
import LogFormat

/// Compares a follower's segment files with its leader's, as replication promises them: the same files, and
/// in each the same bytes from the start through the end of the leader's last frame of records (past it a
/// follower's file may differ: the seal a leader's close wrote after the last shipment, preallocated zeros, or
/// a recycled spare's old bytes). Nil when they match; else the first difference, in words.
public func replicaSegmentsDiffer(leader: String, follower: String) -> String? {
    func segments(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".wal") }.sorted()
    }
    let leaderFiles = segments(leader), followerFiles = segments(follower)
    guard leaderFiles == followerFiles else { return "segment files \(leaderFiles) and \(followerFiles)" }
    for name in leaderFiles {
        guard let l = FileManager.default.contents(atPath: "\(leader)/\(name)"),
              let f = FileManager.default.contents(atPath: "\(follower)/\(name)") else { return "\(name) unreadable" }
        let end = lastRecordFrameEnd([UInt8](l))
        if l.prefix(end) != f.prefix(end) { return "\(name) differs in its first \(end) bytes" }
    }
    return nil
}

/// One past the last intact frame of records in a segment file's bytes (the header block's end when none).
private func lastRecordFrameEnd(_ bytes: [UInt8]) -> Int {
    var offset = SegmentHeader.blockBytes, end = offset
    while offset + FrameHeader.encodedBytes <= bytes.count {
        let check = bytes.withUnsafeBytes {
            FrameHeader.check(UnsafeRawBufferPointer(rebasing: $0[offset...]),
                              storedBytesMax: bytes.count - offset - FrameHeader.encodedBytes)
        }
        guard case .intact(let header) = check else { break }
        offset += header.frameBytes
        if header.kind != .seal { end = offset }
    }
    return end
}

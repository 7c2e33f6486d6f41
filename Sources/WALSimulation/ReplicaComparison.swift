import DurableLog
import LogFormat

/// Compares a follower's segment files with its leader's, as replication promises them: the same files, and
/// in each the same bytes from the start through the end of the leader's last frame of records (past it a
/// follower's file may differ: the seal a leader's close wrote after the last shipment, preallocated zeros, or
/// a recycled spare's old bytes). Nil when they match; else the first difference, in words. Each directory is
/// read through its own file system (a replica's simulated disk, or the real one).
public func replicaSegmentsDiffer(leader: String, follower: String,
                                  leaderFileSystem: any FileSystem = PosixFileSystem(),
                                  followerFileSystem: any FileSystem = PosixFileSystem()) -> String? {
    func segments(_ directory: String, _ fileSystem: any FileSystem) -> [String] {
        ((try? fileSystem.list(directory)) ?? []).filter { $0.hasSuffix(".wal") }.sorted()
    }
    // A last segment without a frame of records (activated, then nothing durable in it) holds nothing to
    // replicate; a follower rolls only when its leader's frames start the next segment.
    func withRecords(_ directory: String, _ fileSystem: any FileSystem) -> [(name: String, bytes: [UInt8]?)] {
        var files = segments(directory, fileSystem).map { (name: $0, bytes: contents("\(directory)/\($0)", fileSystem)) }
        while let last = files.last, files.count > 1, let bytes = last.bytes, lastRecordFrameEnd(bytes) == SegmentHeader.blockBytes {
            files.removeLast()
        }
        return files
    }
    let leaderFiles = withRecords(leader, leaderFileSystem), followerFiles = withRecords(follower, followerFileSystem)
    guard leaderFiles.map(\.name) == followerFiles.map(\.name) else {
        return "segment files \(leaderFiles.map(\.name)) and \(followerFiles.map(\.name))"
    }
    for (l, f) in zip(leaderFiles, followerFiles) {
        guard let lb = l.bytes, let fb = f.bytes else { return "\(l.name) unreadable" }
        let end = lastRecordFrameEnd(lb)
        if lb.prefix(end) != fb.prefix(end) { return "\(l.name) differs in its first \(end) bytes" }
    }
    return nil
}

private func contents(_ path: String, _ fileSystem: any FileSystem) -> [UInt8]? {
    guard let fd = try? fileSystem.open(path, writable: false, create: false) else { return nil }
    defer { fileSystem.close(fd) }
    guard let size = try? fileSystem.size(fd, path: path) else { return nil }
    var bytes = [UInt8](repeating: 0, count: size)
    let n = bytes.withUnsafeMutableBytes { (try? fileSystem.read(fd, into: $0, at: 0, path: path)) ?? -1 }
    return n == size ? bytes : nil
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

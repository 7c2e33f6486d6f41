import LogFormat

extension WriteAheadLog {
    /// The identity of the log in `directory` as its first segment's header names it, without opening the log:
    /// nil when the directory does not exist, holds no segment, or the first header cannot be read (the open
    /// decides about such a log). A replica checks it against its group's log before it joins, so that a
    /// directory of another log is refused at start with its reason, not later in the background.
    package static func identity(inDirectory directory: String,
                                 fileSystem: any FileSystem = PosixFileSystem()) -> LogIdentity? {
        guard let names = try? fileSystem.list(directory),
              let first = names.filter({ SegmentNames.firstLSN(ofName: $0) != nil }).min() else { return nil }
        let path = "\(directory)/\(first)"
        guard let fd = try? fileSystem.open(path, writable: false, create: false) else { return nil }
        defer { fileSystem.close(fd) }
        var block = [UInt8](repeating: 0, count: SegmentHeader.blockBytes)
        let read = block.withUnsafeMutableBytes { buffer in try? fileSystem.read(fd, into: buffer, at: 0, path: path) }
        guard let read, read > 0,
              case .success(let header) = block.withUnsafeBytes({ SegmentHeader.decode(UnsafeRawBufferPointer(rebasing: $0[0..<read])) })
        else { return nil }
        return header.logIdentity
    }
}

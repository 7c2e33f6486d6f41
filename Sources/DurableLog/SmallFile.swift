/// A file replaced whole and crash-safely (the store's checkpoint, a replica's epoch history): written
/// to a temporary name, synced, renamed over the old one, and the directory synced, so that after a crash
/// the file is either the old one or the new one, complete.
package enum SmallFile {
    /// Replaces `directory/name` with `bytes`. `syncDirectory: false` exists only for a deliberately broken
    /// harness build; every caller passes true. `syncEveryBytes`: a large file is written and synced that many
    /// bytes at a time, so that no single flush of it holds the device (and a log's syncs behind it) for long.
    package static func replace(_ bytes: [UInt8], name: String, directory: String, fileSystem: any FileSystem,
                                syncDirectory: Bool = true, syncEveryBytes: Int = .max) throws(WALError) {
        try replace(name: name, directory: directory, fileSystem: fileSystem, syncDirectory: syncDirectory) {
            fd, temporary throws(WALError) in
            var offset = 0
            repeat {
                let end = min(bytes.count, offset + max(1, syncEveryBytes))
                try typedWAL { try bytes.withUnsafeBytes {
                    try fileSystem.write(fd, UnsafeRawBufferPointer(rebasing: $0[offset..<end]), at: offset, path: temporary)
                } }
                try fileSystem.dataSync(fd, path: temporary)
                offset = end
            } while offset < bytes.count
        }
    }

    /// Replaces `directory/name` with what `write` writes into the temporary file (given its descriptor and
    /// path), which must leave it synced: for a file too large to hold in memory whole.
    package static func replace(name: String, directory: String, fileSystem: any FileSystem, syncDirectory: Bool = true,
                                write: (Int32, String) throws(WALError) -> Void) throws(WALError) {
        let temporary = "\(directory)/\(name).tmp"
        // A leftover from a write that never reached its rename may be longer than this one; files are opened
        // without truncation, so start from a new file rather than leave its tail behind ours.
        if try fileSystem.list(directory).contains("\(name).tmp") { try fileSystem.remove(temporary) }
        let fd = try fileSystem.open(temporary, writable: true, create: true)
        do {
            try write(fd, temporary)
        } catch {
            fileSystem.close(fd)
            throw error
        }
        fileSystem.close(fd)
        try fileSystem.rename(temporary, to: "\(directory)/\(name)")
        if syncDirectory { try fileSystem.syncDirectory(directory) }
    }

    /// The bytes of `directory/name`, or nil when there is no such file.
    package static func read(name: String, directory: String, fileSystem: any FileSystem) throws(WALError) -> [UInt8]? {
        guard try fileSystem.list(directory).contains(name) else { return nil }
        return try contents(of: "\(directory)/\(name)", fileSystem: fileSystem)
    }

    /// Every byte of the file at `path` (one read call after another until its size, or until a read returns
    /// nothing).
    package static func contents(of path: String, fileSystem: any FileSystem) throws(WALError) -> [UInt8] {
        let fd = try fileSystem.open(path, writable: false, create: false)
        defer { fileSystem.close(fd) }
        let size = try fileSystem.size(fd, path: path)
        // Not zero-filled first: the reads overwrite it, and only what they filled is returned.
        var bytes = [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
        var done = 0
        while done < size {
            let n = try typedWAL {
                try bytes.withUnsafeMutableBytes {
                    try fileSystem.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]), at: done, path: path)
                }
            }
            if n == 0 { break }
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }
}

/// A file open for reading, closed when the last reference goes: what is read is the file as it was opened,
/// even after another file is renamed over its name (a newer checkpoint over the one a leader is sending).
package final class ReadOnlyFile: Sendable {
    package let path: String
    /// Its size when opened.
    package let size: Int
    private let fd: Int32
    private let fileSystem: any FileSystem

    /// Opens `path`; nil when there is no such file.
    package static func open(_ path: String, fileSystem: any FileSystem) throws(WALError) -> ReadOnlyFile? {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let name = String(path[(path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex)...])
        guard try fileSystem.list(directory.isEmpty ? "." : directory).contains(name) else { return nil }
        let fd = try fileSystem.open(path, writable: false, create: false)
        do throws(WALError) {
            return ReadOnlyFile(path: path, fd: fd, size: try fileSystem.size(fd, path: path), fileSystem: fileSystem)
        } catch {
            fileSystem.close(fd)
            throw error
        }
    }

    private init(path: String, fd: Int32, size: Int, fileSystem: any FileSystem) {
        self.path = path
        self.fd = fd
        self.size = size
        self.fileSystem = fileSystem
    }

    deinit { fileSystem.close(fd) }

    /// The `count` bytes at `offset` (fewer only where the file ends).
    package func read(at offset: Int, count: Int) throws(WALError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try typedWAL { try bytes.withUnsafeMutableBytes { try fileSystem.read(fd, into: $0, at: offset, path: path) } }
        bytes.removeLast(count - n)
        return bytes
    }
}

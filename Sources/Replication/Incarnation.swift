import Coordination
import DurableLog

/// A data directory's incarnation: a random number written once, when the directory first joins a group
/// (`replica-incarnation`, replaced crash-safely through `SmallFile`), so that a replica that comes back with
/// an empty disk is a new replica (KIP-903): it is not in the in-sync set until it has caught up again.
package enum Incarnation {
    package static let fileName = "replica-incarnation"

    /// The directory's incarnation, created (and made durable) when it has none, and replaced by a new one when
    /// its follower log cut records the replica may have acknowledged (`ReplicaRejoinMarker`: the new
    /// incarnation is durable before the marker goes). Call it again after each open of a follower's log, before
    /// the replica speaks for the directory. Blocks on the files.
    /// `fresh`: the incarnation taken when a new one is needed (a simulation passes one its seed chose).
    package static func loadOrCreate(directory: String, fileSystem: any FileSystem = PosixFileSystem(),
                                     fresh: UInt64 = ReplicaIdentity.newIncarnation()) throws(WALError) -> UInt64 {
        try fileSystem.createDirectoryDurably(directory)
        let path = "\(directory)/\(fileName)"
        if try ReplicaRejoinMarker.isPresent(directory: directory, fileSystem: fileSystem) {
            let incarnation = fresh
            #if REPLICATION_BROKEN_INCARNATION_AFTER_MARKER  // BROKEN ON PURPOSE (harness check builds only)
            try ReplicaRejoinMarker.remove(directory: directory, fileSystem: fileSystem)
            #endif
            try SmallFile.replace(withUnsafeBytes(of: incarnation.littleEndian) { Array($0) }, name: fileName,
                                  directory: directory, fileSystem: fileSystem)
            try ReplicaRejoinMarker.remove(directory: directory, fileSystem: fileSystem)
            return incarnation
        }
        if let bytes = try SmallFile.read(name: fileName, directory: directory, fileSystem: fileSystem) {
            guard bytes.count == 8 else {
                throw WALError(.corruption, "the replica incarnation file holds \(bytes.count) bytes, not 8", path: path)
            }
            return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        }
        let incarnation = fresh
        try SmallFile.replace(withUnsafeBytes(of: incarnation.littleEndian) { Array($0) }, name: fileName,
                              directory: directory, fileSystem: fileSystem)
        return incarnation
    }
}

import LogFormat

extension SegmentWriter {
    /// Turns a prepared, zero-filled file into the live segment `firstLSN...`: writes its header, syncs it,
    /// renames it to its final name and syncs the directory. Only then may frames go into it, so that a
    /// frame never depends on a create or rename that a power loss could undo.
    static func activate(
        _ prepared: SegmentPreparer.Prepared, firstLSN: LSN, identity: LogIdentity, directory: String,
        options: LogOptions, fileSystem: any FileSystem
    ) throws(WALError) -> ActiveSegment {
        let header = SegmentHeader(segmentID: prepared.segmentID, firstLSN: firstLSN, logIdentity: identity,
                                   segmentBytes: UInt64(options.segmentBytes))
        let finalPath = "\(directory)/\(SegmentNames.name(firstLSN: firstLSN))"
        do {
            try typedWAL { try header.encoded().withUnsafeBytes { bytes in
                try fileSystem.write(prepared.fd, bytes, at: 0, path: prepared.path)
            } }
            if options.durability == .fdatasync { try fileSystem.dataSync(prepared.fd, path: prepared.path) }
            try fileSystem.rename(prepared.path, to: finalPath)
            #if !WAL_BROKEN_NO_DIRECTORY_SYNC  // skipped only in harness check builds
            try fileSystem.syncDirectory(directory)
            #endif
        } catch {
            fileSystem.close(prepared.fd)
            throw error
        }
        return ActiveSegment(segmentID: prepared.segmentID, firstLSN: firstLSN, path: finalPath, fd: prepared.fd,
                             writeOffset: SegmentHeader.blockBytes)
    }
}

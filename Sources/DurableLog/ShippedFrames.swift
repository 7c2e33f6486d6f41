import LogFormat

/// Frames as a leader wrote them, shipped byte for byte to a follower: a run of consecutive frames of one
/// segment, starting at `offset` (headers, payloads and padding exactly as in the leader's file).
package struct ShippedFrames: Sendable, Equatable {
    /// The segment the frames were written into (each frame header repeats it).
    package var segmentID: SegmentID
    /// Byte offset of the first frame in that segment.
    package var offset: Int
    /// The frames.
    package var bytes: [UInt8]

    package init(segmentID: SegmentID, offset: Int, bytes: [UInt8]) {
        self.segmentID = segmentID
        self.offset = offset
        self.bytes = bytes
    }

    /// The position right after the run: where the next run of its segment starts.
    package var end: ShipPosition { ShipPosition(segmentID: segmentID, offset: offset + bytes.count) }

    /// What `verify` found: the frames, in order, ready to index.
    package struct Verified: Sendable {
        var locations: [SegmentCatalog.FrameLocation]
        /// The LSN of the run's first record (of its first frame, for a run of a seal alone).
        package var firstLSN: LSN
        /// The LSN after the run's last record.
        package var endLSN: LSN
        package var firstEpoch: UInt64
        package var lastEpoch: UInt64
        /// Where each epoch of the run starts: `(epoch, first LSN)` for the first frame and every frame whose
        /// epoch is above the one before it. A follower records an epoch new to it before acknowledging it.
        package var epochStarts: [(epoch: UInt64, firstLSN: LSN)]
        var recordCount: Int { Int(endLSN.rawValue - firstLSN.rawValue) }
    }

    /// Checks everything that can be checked without the follower's log: every frame intact (its CRC32C
    /// verified), of this segment, placed one after the other from `offset` (8-byte aligned, zero padding),
    /// LSNs consecutive, epochs never decreasing, the run within `segmentBytes`, and nothing after the last
    /// frame. A follower writes nothing of a run that fails here.
    ///
    /// - Throws: `.invalidArgument` naming the offset of the first frame that fails.
    package func verify(segmentBytes: Int) throws(WALError) -> Verified {
        // In this order, so that an absurd offset from a peer is refused before any sum could overflow.
        guard offset >= SegmentHeader.blockBytes, offset % 8 == 0, offset <= segmentBytes,
              bytes.count <= segmentBytes - offset else {
            throw refusal("a run of \(bytes.count) bytes at offset \(offset) does not fit a segment of \(segmentBytes) bytes")
        }
        guard !bytes.isEmpty else { throw refusal("an empty run of frames") }
        var locations: [SegmentCatalog.FrameLocation] = []
        var cursor = 0
        var firstLSN: LSN?
        var expected = LSN.none
        var firstEpoch: UInt64 = 0, lastEpoch: UInt64 = 0
        var epochStarts: [(epoch: UInt64, firstLSN: LSN)] = []
        try typedWAL { try bytes.withUnsafeBytes { (all: UnsafeRawBufferPointer) in
            while cursor < all.count {
                let here = offset + cursor
                let rest = UnsafeRawBufferPointer(rebasing: all[cursor...])
                let check = FrameHeader.check(rest, storedBytesMax: max(rest.count - FrameHeader.encodedBytes, 0))
                guard case .intact(let header) = check else {
                    let what = if case .defective(let defect) = check { defect.description } else { "zeros" }
                    throw refusal("\(what) at offset \(here)")
                }
                guard header.segmentID == segmentID else {
                    throw refusal("a frame of segment \(header.segmentID) at offset \(here) of segment \(segmentID)")
                }
                guard header.frameBytes <= rest.count,
                      rest[(FrameHeader.encodedBytes + Int(header.storedBytes))..<header.frameBytes].allSatisfy({ $0 == 0 })
                else { throw refusal("the frame at offset \(here) is cut short or its padding is not zero") }
                if firstLSN != nil {
                    guard header.firstLSN == expected else {
                        throw refusal("the frame at offset \(here) starts at LSN \(header.firstLSN), not \(expected)")
                    }
                    guard header.leaderEpoch >= lastEpoch else {
                        throw refusal("the frame at offset \(here) has epoch \(header.leaderEpoch) after \(lastEpoch)")
                    }
                } else {
                    firstLSN = header.firstLSN
                    firstEpoch = header.leaderEpoch
                }
                if epochStarts.last.map({ header.leaderEpoch > $0.epoch }) ?? true {
                    epochStarts.append((header.leaderEpoch, header.firstLSN))
                }
                lastEpoch = header.leaderEpoch
                expected = header.endLSN
                if header.recordCount > 0 {
                    locations.append(.init(firstLSN: header.firstLSN.rawValue, offset: UInt32(here),
                                           frameBytes: UInt32(header.frameBytes), recordCount: header.recordCount,
                                           lost: header.kind == .lost))
                }
                cursor += header.frameBytes
            }
        } }
        return Verified(locations: locations, firstLSN: firstLSN ?? .none, endLSN: expected,
                        firstEpoch: firstEpoch, lastEpoch: lastEpoch, epochStarts: epochStarts)
    }

    private func refusal(_ what: String) -> WALError {
        WALError(.invalidArgument, "shipped frames refused: \(what) (segment \(segmentID))")
    }
}

/// A place in a log's segments where a frame starts (or the segment's written frames end): what a leader
/// ships from next.
package struct ShipPosition: Sendable, Equatable {
    package var segmentID: SegmentID
    package var offset: Int

    package init(segmentID: SegmentID, offset: Int) {
        self.segmentID = segmentID
        self.offset = offset
    }
}

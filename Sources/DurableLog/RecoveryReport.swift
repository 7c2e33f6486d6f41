import LogFormat

/// What opening a log found and did. Recovery changes nothing but a torn tail (and, in salvage mode only,
/// the damaged end it was told to cut).
public struct RecoveryReport: Sendable, Equatable {
    /// One cut of the log's end.
    public struct Cut: Sendable, Equatable {
        /// The segment file in which the log was cut (in a dry run: would be).
        public var path: String
        /// Byte offset in `path` where the next intact frame was expected and the log now ends; 0 when the
        /// segment's header was at fault and the whole file was cut.
        public var offset: Int
        /// Why the bytes there were not the next intact frame, as a closed set for code that decides by it.
        public var cause: Cause
        /// The same in words, with the details (which check failed, which segment id or LSN was found).
        public var reason: String
        /// Intact frames found after the cut point (written but never confirmed, or in salvage mode lost).
        public var framesDropped: Int
        /// Segment files after the cut that were deleted.
        public var segmentsRemoved: Int
        /// LSNs that were in dropped intact frames, if any.
        public var droppedLSNs: ClosedRange<UInt64>?
        /// The first LSN the damaged spot held (the LSN the log continues with after the cut).
        public var firstLostLSN: UInt64
        /// The highest durable watermark found in intact frames after the cut: LSNs from `firstLostLSN`
        /// through it were confirmed (corruption) when it is at least `firstLostLSN`.
        public var laterWatermark: UInt64
        /// Whether a later frame proves that the damaged spot held confirmed records.
        public var isCorruption: Bool { laterWatermark >= firstLostLSN }

        /// Why the scan of the log stopped where it did.
        public enum Cause: String, Sendable, Equatable, CaseIterable {
            /// The written part of the log ended there (zeros, or the older contents of a recycled segment),
            /// yet intact frames follow: the end of a write that never completed.
            case endOfData
            /// The bytes where the next frame was expected are not an intact frame (magic, version, lengths,
            /// checksum or payload).
            case defectiveFrame
            /// An intact frame of this log that does not continue it: another segment id, or other LSNs.
            case frameOutOfPlace
            /// A closed segment's data ended, yet frames of that same segment follow: frames were lost between.
            case framesAfterEndOfData
            /// A segment's header is damaged, or the segment does not continue the log (another log's, or its
            /// segment id or first LSN out of sequence).
            case segmentHeader
        }
    }

    /// Segment files the log holds after recovery (files after a cut are not counted).
    public var segments = 0
    /// The LSN of the oldest record the log holds; `LSN.first` when it holds no segment.
    public var firstLSN = LSN.first
    /// The LSN the next append gets.
    public var nextLSN = LSN.first
    /// The log was closed cleanly (a seal frame ends it): no tail needed checking.
    public var cleanShutdown = false
    /// A torn tail: the unconfirmed end of the log left by a crash, cut off.
    public var tornTail: Cut?
    /// Salvage mode only: the first damage to confirmed data found (what `salvagePlan` acted on, or in a dry
    /// run would act on).
    public var salvaged: Cut?
    /// A follower replica's log only: damage that a later frame's watermark vouched for, cut anyway. The
    /// watermark is the leader's, so the replica cannot tell damage to records it acknowledged from a tail it
    /// took outside the in-sync set and never synced; its leader holds them. The bytes are in quarantine and
    /// the replica rejoins as a new replica (`ReplicaRejoinMarker`).
    public var replicaCut: Cut?
    /// Salvage mode only: what salvage did (or in a dry run would do) about `salvaged`.
    public var salvagePlan: SalvagePlan?
    /// Damaged spans that salvage replaced by `.lost` frames during this open (their bytes are in quarantine).
    public var patches: [SalvagePlan.Patch] = []
    /// Every LSN range of the log held by a `.lost` frame (from this or an earlier salvage): records whose
    /// bytes are gone. Reads of them throw `.recordsLost`.
    public var lostLSNs: [ClosedRange<UInt64>] = []
    /// Files of unfinished segment preparations that were deleted.
    public var leftoversRemoved = 0
    /// Bytes recovery read from segment files: whole files, or for segments indexed from their frame headers
    /// alone (`verifyingFrom`), the header block and the frame headers.
    public var bytesScanned = 0
}

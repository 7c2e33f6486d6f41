import LogFormat
import Synchronization
import DurableLog

/// One simulated power cut: producers append on a `SimulatedDisk` that loses power before a chosen
/// mutating operation; the image a power cut leaves (chosen by the seed) is reopened and every append
/// that was confirmed before the cut is read back and compared. Deterministic in what it checks for a
/// seed and crash point (thread timing may still move the cut a little within a concurrent workload).
public struct PowerLossTrial: Sendable {
    public var seed: UInt64
    /// The mutating operation before which the power fails (nil: never, the run ends and then fails).
    public var crashBefore: Int?
    public var streams = 4
    public var perStream = 40
    /// Records each stream appends per call (`append(contentsOf:)`): with more than 1, and `pendingBytesMax`
    /// above the segment size, one group can span several segments and roll more than once.
    public var batch = 1
    public var options: LogOptions
    /// Fail the power a second time part-way through the first recovery.
    public var crashDuringRecovery = false
    /// When set, the first appender truncates the log below its durable end after every this many appends
    /// (deleting whole segments), so crash points also fall inside reclamation.
    public var truncateEvery: Int?
    public var directory = "/sim/log"

    public init(seed: UInt64, crashBefore: Int?, options: LogOptions = PowerLossTrial.defaultOptions) {
        self.seed = seed
        self.crashBefore = crashBefore
        self.options = options
    }

    /// Small segments and frames, so that short runs roll segments and split groups.
    public static var defaultOptions: LogOptions {
        var o = LogOptions()
        o.logger = quietLogger
        o.segmentBytes = 64 << 10
        o.frameBytesMax = 8 << 10
        o.recordBytesMax = (8 << 10) - 4
        o.pendingBytesMax = 32 << 10
        return o
    }

    public struct Outcome: Sendable {
        public var confirmed = 0
        public var lost: [LSN] = []
        public var differing: [LSN] = []
        /// LSNs served with a record that was confirmed at another LSN (an older one, e.g. a stale frame of a
        /// recycled segment taken for live data).
        public var resurrected: [LSN] = []
        public var openError: WALError?
        public var tornTailCut = false
        /// Nil when every confirm survived; otherwise what went wrong.
        public var failure: String? {
            if let openError { return "reopen failed: \(openError)" }
            if !lost.isEmpty { return "confirmed LSNs lost: \(lost.prefix(5).map(\.rawValue))" }
            if !differing.isEmpty { return "confirmed LSNs changed: \(differing.prefix(5).map(\.rawValue))" }
            if !resurrected.isEmpty { return "records served at LSNs they were not confirmed at: \(resurrected.prefix(5).map(\.rawValue))" }
            return nil
        }
    }

    /// A record that depends only on (seed, stream, index), 200 to 1,700 bytes, partly compressible.
    public static func record(seed: UInt64, stream: Int, index: Int) -> [UInt8] {
        var rng = SplitMix64(seed: seed &+ UInt64(stream) &* 0x1_0000_0001 &+ UInt64(index))
        let size = 200 + Int(rng.next() % 1500)
        var bytes = Array("s\(stream)-i\(index):".utf8)
        let words = ["queue ", "message ", "durable ", "confirm ", "segment ", "frame ", "ack ", "offset "]
        while bytes.count < size { bytes += Array(words[Int(rng.next() % 8)].utf8) }
        return Array(bytes.prefix(size))
    }

    /// Runs the trial. `wrap` can put a deliberately broken layer between the log and the disk.
    public func run(wrap: @Sendable (SimulatedDisk) -> any FileSystem = { $0 }) async -> Outcome {
        let disk = SimulatedDisk()
        if let crashBefore { disk.crash(beforeOperation: crashBefore) }
        let confirms = ConfirmedRecords()
        if let log = try? WriteAheadLog.open(directory: directory, options: options, fileSystem: wrap(disk)) {
            await withTaskGroup(of: Void.self) { group in
                for s in 0..<streams {
                    group.addTask { [seed, perStream, truncateEvery, batch] in
                        for i in stride(from: 0, to: perStream, by: max(1, batch)) {
                            let records = (i..<min(perStream, i + max(1, batch))).map { Self.record(seed: seed, stream: s, index: $0) }
                            guard let first = await Self.append(records, to: log) else { return }
                            confirms.map.withLock { map in
                                for (k, record) in records.enumerated() { map[LSN(first.rawValue + UInt64(k))] = record }
                            }
                            if s == 0, let every = truncateEvery, (i + records.count) / every > i / every {
                                // Records below the durable end may go; the oracle then checks only those kept.
                                // Noted before the call: a crash inside it may already have removed some.
                                let keepFrom = log.durableLSN
                                confirms.truncated.withLock { $0 = max($0, keepFrom) }
                                guard (try? log.truncate(before: keepFrom)) != nil else { return }
                            }
                        }
                    }
                }
            }
            try? log.close()
        }
        disk.crash()
        var image = disk.crashImage(seed: seed)
        if crashDuringRecovery {
            var rng = SplitMix64(seed: seed ^ 0xABCD)
            image.crash(beforeOperation: Int(rng.next() % 12))
            if let log = try? WriteAheadLog.open(directory: directory, options: options, fileSystem: image) {
                try? log.close()
            }
            image.crash()
            image = image.crashImage(seed: seed &+ 1)
        }
        var outcome = Outcome()
        let truncatedBelow = confirms.truncated.withLock { $0 }
        let confirmed = confirms.map.withLock { $0 }.filter { $0.key >= truncatedBelow }
        outcome.confirmed = confirmed.count
        do {
            let log = try WriteAheadLog.open(directory: directory, options: options, fileSystem: image)
            defer { try? log.close() }
            outcome.tornTailCut = log.recoveryReport.tornTail != nil
            for (lsn, record) in confirmed.sorted(by: { $0.key < $1.key }) {
                do {
                    if try log.read(lsn) != record { outcome.differing.append(lsn) }
                } catch {
                    outcome.lost.append(lsn)
                }
            }
            // Every record the log serves is either unconfirmed or confirmed at that very LSN.
            var confirmedAt: [[UInt8]: LSN] = [:]
            for (lsn, record) in confirms.map.withLock({ $0 }) { confirmedAt[record] = lsn }
            try? log.forEachRecord(from: max(log.firstLSN, .first)) { lsn, bytes in
                if let at = confirmedAt[Array(bytes)], at != lsn { outcome.resurrected.append(lsn) }
                return true
            }
        } catch {
            outcome.openError = error
        }
        return outcome
    }

    /// Appends one record alone, or several as one submission; the first one's LSN, nil when refused.
    private static func append(_ records: [[UInt8]], to log: WriteAheadLog) async -> LSN? {
        if records.count == 1 { return try? await log.append(records[0]) }
        return try? await log.append(contentsOf: records)
    }

    /// The mutating operations of the same workload run to the end without a crash (to place crash points).
    public func operationsOfAnUninterruptedRun() async -> Int {
        var trial = self
        trial.crashBefore = nil
        let disk = SimulatedDisk()
        guard let log = try? WriteAheadLog.open(directory: directory, options: options, fileSystem: disk) else { return 0 }
        for s in 0..<streams {
            for i in stride(from: 0, to: perStream, by: max(1, batch)) {
                let records = (i..<min(perStream, i + max(1, batch))).map { Self.record(seed: seed, stream: s, index: $0) }
                _ = await Self.append(records, to: log)
                if s == 0, let every = truncateEvery, (i + records.count) / every > i / every {
                    try? log.truncate(before: log.durableLSN)
                }
            }
        }
        try? log.close()
        _ = trial
        return disk.operations
    }
}

/// The confirms a trial's producers saw, by LSN.
final class ConfirmedRecords: Sendable {
    let map = Mutex<[LSN: [UInt8]]>([:])
    /// The log was truncated below this LSN by the workload (records below it may be gone).
    let truncated = Mutex<LSN>(.none)
}

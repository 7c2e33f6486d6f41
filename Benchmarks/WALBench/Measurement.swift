import Foundation
import Histogram

/// One measured run of one scenario.
struct Measurement: Codable {
    var scenario: String
    var concurrency: Int
    var codec: String
    var syncsInFlight: Int
    var messages: Int
    var seconds: Double
    var messagesPerSecond: Double
    var megabytesPerSecond: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var p999Microseconds: Double
    /// Latency (us) at `Measurement.percentiles`, for the percentile plot.
    var latencyPercentiles: [Double]
    var recordsPerSync: Double
    var bytesWrittenPerRecord: Double
    var cpuSecondsPerMillion: Double
    /// Mean `fdatasync` time inside the engine (the ceiling's is its p50 write+sync latency).
    var syncMicrosecondsMean: Double = 0
    var messageBytes: Int
    /// The process's peak resident set during the run (VmHWM, reset before it), and how far it rose above
    /// the resident set at the start (the suite itself holds its message buffers throughout).
    var peakRSSBytes = 0
    var rssGrowthBytes = 0
    /// Set by the suite: the ceiling measured in the same run at this row's records per sync, and SQLite at
    /// this row's concurrency (msgs/s), for the ratio columns.
    var ceilingAtGroupPerSecond: Double?
    var sqlitePerSecond: Double?

    init(scenario: String, concurrency: Int, codec: String, syncsInFlight: Int, messages: Int, seconds: Double,
         latencies: Histogram<UInt64>, recordsPerSync: Double, bytesWrittenPerRecord: Double, cpuSeconds: Double,
         messageBytes: Int = 1024) {
        self.scenario = scenario
        self.concurrency = concurrency
        self.codec = codec
        self.syncsInFlight = syncsInFlight
        self.messages = messages
        self.seconds = seconds
        messagesPerSecond = Double(messages) / seconds
        self.messageBytes = messageBytes
        megabytesPerSecond = messagesPerSecond * Double(messageBytes) / 1e6
        p50Microseconds = Double(latencies.valueAtPercentile(50)) / 1000
        p99Microseconds = Double(latencies.valueAtPercentile(99)) / 1000
        p999Microseconds = Double(latencies.valueAtPercentile(99.9)) / 1000
        latencyPercentiles = Self.percentiles.map { Double(latencies.valueAtPercentile($0)) / 1000 }
        self.recordsPerSync = recordsPerSync
        self.bytesWrittenPerRecord = bytesWrittenPerRecord
        cpuSecondsPerMillion = messages == 0 ? 0 : cpuSeconds / Double(messages) * 1e6
    }
}

extension Measurement {
    static let percentiles: [Double] = [50, 90, 99, 99.9, 99.99]
}

/// The median run of several (by messages per second), with the spread, as WORKLOAD.md asks.
struct Summary: Codable {
    var median: Measurement
    var minimumPerSecond: Double
    var maximumPerSecond: Double
    var runs: [Measurement]

    init(_ runs: [Measurement]) {
        let sorted = runs.sorted { $0.messagesPerSecond < $1.messagesPerSecond }
        var median = sorted[sorted.count / 2]
        // Latency columns are the median of the per-run percentiles.
        func mid(_ key: KeyPath<Measurement, Double>) -> Double { runs.map { $0[keyPath: key] }.sorted()[runs.count / 2] }
        median.p50Microseconds = mid(\.p50Microseconds)
        median.p99Microseconds = mid(\.p99Microseconds)
        median.p999Microseconds = mid(\.p999Microseconds)
        self.median = median
        minimumPerSecond = sorted.first!.messagesPerSecond
        maximumPerSecond = sorted.last!.messagesPerSecond
        self.runs = runs
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// User plus system CPU seconds of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Resets the process's peak resident set (Linux: writing 5 to /proc/self/clear_refs), so that `peakRSS()`
/// after a scenario is that scenario's peak.
func resetPeakRSS() {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    guard fd >= 0 else { return }
    _ = write(fd, "5", 1)
    close(fd)
}

/// The process's peak resident set since the last reset, in bytes (VmHWM of /proc/self/status).
func peakRSS() -> Int { statusBytes("VmHWM:") }

/// The process's resident set now, in bytes.
func currentRSS() -> Int { statusBytes("VmRSS:") }

private func statusBytes(_ field: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(field) {
        return (Int(line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0) * 1024
    }
    return 0
}

func newHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

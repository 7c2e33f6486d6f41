import Foundation
import Testing
@testable import DurableLog

/// An operator looking at `top -H` or a profile sees the log's threads by name, not under the name of the
/// worker that happened to start them.
@Suite(.timeLimit(.minutes(1)))
struct ThreadNameTests {
    @Test func theLogsThreadsCarryTheirNamesInTheKernel() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path)
        defer { try? log.close() }
        _ = try await log.append(Array("named".utf8))  // an I/O thread ran it
        let wanted: Set = ["wal-io-0", "wal-io-1", "wal-preparer"]
        // Each thread names itself as it starts: wait (bounded) until all three have.
        let deadline = ContinuousClock.now + .seconds(10)
        var names = Self.threadNames()
        while !wanted.isSubset(of: names), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            names = Self.threadNames()
        }
        #expect(wanted.isSubset(of: names), "this process's threads: \(names.sorted())")
    }

    /// The names of this process's threads, as the kernel has them.
    private static func threadNames() -> Set<String> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return Set(tasks.compactMap { id in
            (try? String(contentsOfFile: "/proc/self/task/\(id)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        })
    }
}

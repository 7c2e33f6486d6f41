import Foundation
import LogFormat
import Testing
@testable import DurableLog

/// `LogFollower` (behind `walctl tail --follow`) reads a log beside its live writer and hands out only records
/// known to be durable, in order, across segment rolls and up to a clean close.
@Suite(.serialized, .timeLimit(.minutes(1))) struct LogFollowerTests {
    private func drain(_ follower: LogFollower) throws -> [UInt64] {
        var seen: [UInt64] = []
        try follower.poll { lsn, _ in seen.append(lsn.rawValue) }
        return seen
    }

    @Test func recordsAppearOnceDurableAndInOrder() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        for i in 0..<5 { _ = try await log.append(testRecord(2, i)) }
        let follower = try LogFollower(directory: dir.path, from: .first)
        // Each append was its own group: frame k's watermark covers LSN k-1; the last frame is not vouched for.
        #expect(try drain(follower) == [1, 2, 3, 4])
        _ = try await log.append(testRecord(2, 5))
        #expect(try drain(follower) == [5])
        try log.close()  // the seal makes the rest durable
        #expect(try drain(follower) == [6])
        #expect(try drain(follower) == [])
    }

    @Test func followingAcrossSegmentRollsGivesEveryRecordOnce() async throws {
        let dir = TemporaryDirectory()
        let options = smallOptions(segmentBytes: 64 << 10)
        let log = try WriteAheadLog.open(directory: dir.path, options: options)
        var expected: [UInt64: [UInt8]] = [:]
        let follower = try LogFollower(directory: dir.path, from: .first)
        var seen: [UInt64: [UInt8]] = [:]
        var order: [UInt64] = []
        for i in 0..<600 {
            let r = testRecord(3, i)
            let lsn = try await log.append(r)
            expected[lsn.rawValue] = r
            if i % 50 == 0 {
                try follower.poll { lsn, bytes in seen[lsn.rawValue] = Array(bytes); order.append(lsn.rawValue) }
            }
        }
        #expect(segmentPaths(dir.path).count >= 3)
        try log.close()
        try follower.poll { lsn, bytes in seen[lsn.rawValue] = Array(bytes); order.append(lsn.rawValue) }
        #expect(order == Array(1...600) && seen == expected)
    }

    @Test func startingAtTheEndShowsOnlyNewRecords() async throws {
        let dir = TemporaryDirectory()
        let log = try WriteAheadLog.open(directory: dir.path, options: smallOptions())
        for i in 0..<3 { _ = try await log.append(testRecord(4, i)) }
        let follower = try LogFollower(directory: dir.path)
        for i in 3..<5 { _ = try await log.append(testRecord(4, i)) }
        try log.close()
        #expect(try drain(follower) == [4, 5])
    }
}

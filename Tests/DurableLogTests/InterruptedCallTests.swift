import Foundation
import Glibc
import Testing
@testable import DurableLog

/// Calls that are interrupted (EINTR) or transfer only part of what was asked must be retried or
/// continued, never turned into an error or a gap.
@Suite(.timeLimit(.minutes(10))) struct InterruptedCallTests {
    /// Every other call fails with EINTR; the others move at most 100 bytes.
    static func stutteringSyscalls() -> PosixFileSystem.Syscalls {
        let calls = LockedBox(0)
        @Sendable func interrupted() -> Bool {
            var n = 0
            calls.mutate { $0 += 1; n = $0 }
            if n % 2 == 0 { errno = EINTR; return true }
            return false
        }
        var s = PosixFileSystem.Syscalls()
        s.pwrite = { fd, p, n, o in interrupted() ? -1 : Glibc.pwrite(fd, p, min(n, 100), o) }
        s.pread = { fd, p, n, o in interrupted() ? -1 : Glibc.pread(fd, p, min(n, 100), o) }
        s.fdatasync = { fd in interrupted() ? -1 : Glibc.fdatasync(fd) }
        return s
    }

    @Test func shortAndInterruptedCallsAreContinued() async throws {
        let tmp = TemporaryDirectory()
        let fs = PosixFileSystem(syscalls: Self.stutteringSyscalls())
        let log = try WriteAheadLog.open(directory: tmp.sub("log"), options: smallOptions(segmentBytes: 64 << 10), fileSystem: fs)
        var written: [[UInt8]] = []
        for i in 0..<150 {
            let r = testRecord(5, i, size: 700)
            _ = try await log.append(r)
            written.append(r)
        }
        #expect(try readAll(log) == written)
        try log.close()
        let reopened = try WriteAheadLog.open(directory: tmp.sub("log"), options: smallOptions(segmentBytes: 64 << 10), fileSystem: fs)
        #expect(reopened.recoveryReport.cleanShutdown)
        #expect(try readAll(reopened) == written)
        try reopened.close()
    }

    @Test func aWriteThatMovesNothingIsAnErrorNotALoop() throws {
        var s = PosixFileSystem.Syscalls()
        s.pwrite = { _, _, _, _ in 0 }
        let fs = PosixFileSystem(syscalls: s)
        let tmp = TemporaryDirectory()
        let fd = try fs.open(tmp.sub("f"), writable: true, create: true)
        defer { fs.close(fd) }
        #expect { try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try fs.write(fd, $0, at: 0, path: "f") } } throws: {
            ($0 as? WALError)?.code == .ioFailure
        }
    }
}

import Dispatch
import Foundation
import Glibc
import Testing
import WALSimulation
@testable import DurableLog

/// Async appends must never hold their thread while an `fdatasync` runs: an embedding server shares
/// those threads. The sync is held open by the file system; another task on the same single lane must
/// still run.
@Suite(.timeLimit(.minutes(1)))
struct CooperativePoolTests {
    @Test(arguments: [false, true])
    func anAsyncAppendLeavesItsThreadFreeWhileTheSyncRuns(logIsBusy: Bool) async throws {
        let dir = TemporaryDirectory()
        let fileSystem = FaultInjectingFileSystem()
        let log = try WriteAheadLog.open(directory: dir.path, fileSystem: fileSystem)
        defer { try? log.close() }
        let lane = OneLaneExecutor()
        if logIsBusy {
            // A first append on another thread, so the one under test joins a busy log.
            fileSystem.holdSyncs(pathSuffix: ".wal")
            Thread.detachNewThread { _ = try? log.appendAndWait(UnsafeRawBufferPointer(start: nil, count: 0)) }
            #expect(fileSystem.waitForHeldSync(seconds: 10))
        } else {
            fileSystem.holdSyncs(pathSuffix: ".wal")
        }
        let append = Task(executorPreference: lane) { try await log.append(Array("held".utf8)) }
        if !logIsBusy { #expect(fileSystem.waitForHeldSync(seconds: 10), "the append's sync never started") }

        let ran = DispatchSemaphore(value: 0)
        let other = Task(executorPreference: lane) { ran.signal() }
        let otherRan = ran.wait(timeout: .now() + 10) == .success
        fileSystem.releaseSyncs()
        #expect(otherRan, "a task on the append's lane could not run while the sync was held")
        let lsn = try await append.value
        _ = await other.value
        #expect(try log.read(lsn) == Array("held".utf8))
    }

    @Test func theCallbackFormCommitsOnTheCallerOnlyWhenAskedAndAllowed() throws {
        let dir = TemporaryDirectory()
        let fileSystem = FaultInjectingFileSystem()
        var options = LogOptions()
        #expect(options.commitOnCallerWhenIdle == false, "blocking the caller must be opt-in")
        options.commitOnCallerWhenIdle = true
        let log = try WriteAheadLog.open(directory: dir.path, options: options, fileSystem: fileSystem)
        defer { try? log.close() }
        let caller = pthread_self()
        let completedOnCaller = LockedBox(false)
        let accepted = try log.tryAppend(count: 1, totalBytes: 8, callbackOnCaller: true, records: { add in
            Array("four".utf8).withUnsafeBytes { add($0) }
        }, completion: { _ in completedOnCaller.set(pthread_equal(pthread_self(), caller) != 0) })
        #expect(accepted)
        #expect(completedOnCaller.get(), "an idle log with the option on commits on the caller's thread")
    }
}

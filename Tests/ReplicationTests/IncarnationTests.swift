import DurableLog
import Testing
import WALSimulation
@testable import Replication

/// A data directory's incarnation, and the new one a replica takes after its log cut records it may have
/// acknowledged: once the marker is there, no power cut brings the old incarnation back.
@Suite struct IncarnationTests {
    let directory = "/sim/replica"

    @Test func aDirectoryKeepsItsIncarnationAcrossLoads() throws {
        let disk = SimulatedDisk()
        let first = try Incarnation.loadOrCreate(directory: directory, fileSystem: disk)
        #expect(try Incarnation.loadOrCreate(directory: directory, fileSystem: disk) == first)
        #expect(try Incarnation.loadOrCreate(directory: directory, fileSystem: disk.crashImage(seed: 1)) == first,
                "durable when returned")
    }

    @Test(arguments: 0..<12)
    func theRejoinMarkerGivesANewIncarnationThatNoPowerCutUndoes(crashBefore: Int) throws {
        let disk = SimulatedDisk()
        let old = try Incarnation.loadOrCreate(directory: directory, fileSystem: disk)
        try SmallFile.replace(Array("cut\n".utf8), name: ReplicaRejoinMarker.fileName, directory: directory, fileSystem: disk)
        disk.crash(beforeOperation: disk.operations + crashBefore)
        let taken = try? Incarnation.loadOrCreate(directory: directory, fileSystem: disk)
        #expect(taken != old)
        for seed in UInt64(0)..<8 {
            let image = disk.crashImage(seed: seed)
            let markerSurvived = try ReplicaRejoinMarker.isPresent(directory: directory, fileSystem: image)
            let after = try Incarnation.loadOrCreate(directory: directory, fileSystem: image)
            #expect(after != old, "crash before operation \(crashBefore), image \(seed): the old incarnation is back")
            if let taken, !markerSurvived {
                #expect(after == taken, "the marker went only after the new incarnation was durable")
            }
            #expect(try !ReplicaRejoinMarker.isPresent(directory: directory, fileSystem: image))
        }
    }
}

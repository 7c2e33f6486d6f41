import ArgumentParser
import Foundation
import NodeWire
import Synchronization
import WALSimulation

/// The process-level chaos campaign: a private etcd and three `queue-node` processes, producers publishing
/// with idempotent producers, and faults injected one after another until enough failovers have happened.
/// Then every member is brought back, the queue drained on the leader, and the history checked: nothing
/// confirmed lost, nothing stored twice, nothing unexpected; each replica's log verifies, and the replicas'
/// logs agree up to the committed LSN (`walctl verify`, `walctl compare`).
@main
struct QueueChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue-chaos",
        abstract: "Kill, stop and wipe the replicas of a three-node replicated store under load; check nothing confirmed is lost.",
        discussion: """
            Exit 0 when every check passes, 1 when one fails (the JSON and the output say which, with the seed), \
            2 when the group got stuck (no leader or no confirm within 60 s of a fault, or the queue could not \
            be drained). The work directory, with each member's store and node.log, is kept unless the run passed.

            Example: swift run -c release queue-chaos --failovers 1000 --json chaos.json
            """)

    @Option(help: "Inject faults until this many failovers (new leader epochs) have happened.") var failovers = 50
    @Option(help: "The seed of the fault schedule (default: a fresh one, printed).") var seed: UInt64?
    @Option(help: "Concurrent idempotent producers.") var producers = 4
    @Option(help: "Consumers acking deliveries while the faults go on (the rest is drained at the end).")
    var consumers = 2
    @Option(help: "The leaders' lease in milliseconds (etcd grants whole seconds, and at least about 2 s by default).")
    var leaseMilliseconds = 2000
    @Option(help: "Where the members' directories and logs go (default: a new temporary directory).") var work: String?
    @Option(help: "Write the figures and the verdict here as JSON.") var json: String?
    @Option(help: "Only these faults, comma-separated (default: all of \(Fault.allCases.map(\.rawValue).joined(separator: ", "))).")
    var faults: String?
    @Flag(help: "Keep the work directory even when every check passes.") var keep = false

    func run() async throws {
        let seed = seed ?? UInt64.random(in: 1...UInt64.max)
        let chosen = try faults.map { list in
            try list.split(separator: ",").map { name in
                guard let fault = Fault(rawValue: String(name)) else { throw ValidationError("no fault is named \(name)") }
                return fault
            }
        } ?? Fault.allCases
        let work = work ?? FileManager.default.temporaryDirectory.appendingPathComponent("queue-chaos-\(seed)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let leaseTTL = Duration.milliseconds(leaseMilliseconds)
        say("queue-chaos: seed \(seed), \(failovers) failovers, \(producers) producers, work directory \(work)")

        let cluster = try await Cluster(work: work, nodeBinary: binaries.appendingPathComponent("queue-node").path,
                                        leaseTTL: leaseTTL, group: "/queue-chaos/\(seed)/")
        try await cluster.startAll()
        let history = History()
        var nemesis = Nemesis(cluster: cluster, history: history, leaseTTL: leaseTTL, random: SplitMix64(seed: seed))
        var report = Report(seed: seed, failoversAsked: failovers, producers: producers, leaseMilliseconds: leaseMilliseconds)
        let queue = "chaos"
        var stuck: String?
        do {
            guard await nemesis.waitForAgreement(within: .seconds(60)) != nil else {
                throw Nemesis.Stuck(description: "the group did not elect a leader at start")
            }
            try await declare(queue, ports: await cluster.clientPorts)
        } catch {
            stuck = "\(error)"
        }

        let stop = StopSignal()
        let ports = await cluster.clientPorts
        let deliveries = Deliveries()
        let clients = Task { [producers, consumers] in
            await withDiscardingTaskGroup { group in
                for index in 0..<producers {
                    let producer = Producer(name: "p\(index)", queue: queue, ports: ports, history: history,
                                            stop: stop)
                    group.addTask {
                        await producer.run()
                        stop.finished.add(1, ordering: .relaxed)
                    }
                }
                for _ in 0..<consumers {
                    let consumer = ChaosConsumer(queue: queue, ports: ports, deliveries: deliveries, stop: stop)
                    group.addTask { await consumer.run() }
                }
            }
        }

        let startEpoch = await cluster.highestEpochSeen
        var faultChoice = SplitMix64(seed: seed ^ 0x5EED)
        while stuck == nil, await cluster.highestEpochSeen - startEpoch < UInt64(failovers),
              report.faults.count < failovers * 4 {
            // Faults that take the leader away two times in three: the failovers are what is counted.
            let leaderFaults = chosen.filter(\.hitsLeader), otherFaults = chosen.filter { !$0.hitsLeader }
            let pool = otherFaults.isEmpty || (!leaderFaults.isEmpty && Int.random(in: 0..<3, using: &faultChoice) < 2)
                ? leaderFaults : otherFaults
            let fault = pool[Int.random(in: 0..<pool.count, using: &faultChoice)]
            do {
                let record = try await nemesis.inject(fault)
                report.faults.append(record)
                let count = report.faults.count, epoch = await cluster.highestEpochSeen
                say("  \(count): \(fault) of \(record.leaderBefore) (epoch \(record.epochBefore)) -> leader "
                      + "\(record.leaderAfter ?? record.leaderBefore), longest without a confirm "
                      + "\(record.unavailableMilliseconds.map { String(format: "%.0f ms", $0) } ?? "-"), "
                      + "\(history.confirmedCount) confirmed, epoch \(epoch)")
            } catch {
                stuck = "\(error)"
            }
        }
        report.failovers = Int(await cluster.highestEpochSeen - startEpoch)

        // Heal, let each producer settle its last sequence, then drain.
        await cluster.healLinks()
        try? await cluster.startAll()
        stop.finishing.store(true, ordering: .relaxed)
        let settleBy = ContinuousClock.now + .seconds(60)
        while stop.finished.load(ordering: .relaxed) < producers, ContinuousClock.now < settleBy {
            try? await Task.sleep(for: .milliseconds(50))
        }
        stop.abandoned.store(true, ordering: .relaxed)
        await clients.value

        var drained: [DrainedMessage]?
        do {
            drained = try await drain(queue, nemesis: nemesis, cluster: cluster)
        } catch {
            stuck = stuck ?? "\(error)"
        }
        await cluster.stopAll()
        await cluster.closeProxies()
        report.verdict = Verdict(history: history, consumed: deliveries.all, drained: drained, epochRegressions: await cluster.epochRegressions)
        report.logChecks = LogChecks(walctl: binaries.appendingPathComponent("walctl").path,
                                     stores: await cluster.storeDirectories())
        report.stuck = stuck
        await cluster.etcd.stop()

        report.print()
        if let json { try report.write(to: json) }
        if report.verdict.violated || !report.logChecks.passed { throw ExitCode(1) }
        if stuck != nil || !report.verdict.deliveriesChecked { throw ExitCode(2) }
        if !keep { try? FileManager.default.removeItem(atPath: work) }
    }

    /// Declares the queue on whichever member leads.
    private func declare(_ queue: String, ports: [Int]) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            for port in ports {
                if case .reply(.done) = await NodeClient.call(.declareQueue(name: queue), port: port, timeout: .seconds(5)) {
                    return
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Nemesis.Stuck(description: "the queue could not be declared within 60 s")
    }

    /// Drains the queue on the leader, a bounded batch per call, until a call finds it empty. Gives up after
    /// 60 s without progress (no leader, or calls that fail), however long the backlog.
    private func drain(_ queue: String, nemesis: Nemesis, cluster: Cluster) async throws -> [DrainedMessage] {
        var drained: [DrainedMessage] = []
        var deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard let leader = await nemesis.waitForAgreement(within: .seconds(60)) else { break }
            let port = await cluster.members[leader.name]!.clientPort
            let request = NodeRequest.drain(queue: queue, idleMilliseconds: 1000, limit: 1000)
            switch await NodeClient.call(request, port: port, timeout: .seconds(60)) {
            case .reply(.messages(let messages)):
                drained += messages
                if messages.isEmpty { return drained }
                deadline = ContinuousClock.now + .seconds(60)
            default:
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw Nemesis.Stuck(description: "the queue could not be drained: no progress for 60 s "
                            + "(\(drained.count) messages drained before)")
    }
}

/// Writes a line to stdout at once (unbuffered), so that a campaign's progress shows in a file or a pipe as it
/// happens.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

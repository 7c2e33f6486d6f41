import EtcdTestSupport
import Foundation
import Glibc
import NodeWire

/// The cluster under test: a private etcd and three `queue-node` processes on loopback, each with its own
/// directory, configuration file and log (`<work>/<member>/`). Faults are done to it through here: kill -9,
/// SIGSTOP and SIGCONT, a wiped directory, etcd crashed and restarted.
actor Cluster {
    struct Member {
        let name: String
        let directory: String
        let configuration: String
        let log: String
        let clientPort: Int
        var process: Process?
        var paused = false
    }

    let etcd: PrivateEtcd
    let work: String
    private(set) var members: [String: Member]
    /// In front of each member's replication endpoint: its peers dial this (cut: the member is cut off from
    /// the others, both ways, since followers dial their leader).
    private let replicationProxies: [String: FaultProxy]
    /// In front of etcd, one per member: the member's coordinator dials its own (cut: that member alone
    /// loses etcd).
    private let etcdProxies: [String: FaultProxy]
    private let nodeBinary: String
    /// The highest epoch each member reported, to check that none goes back.
    private var epochsSeen: [String: UInt64] = [:]
    private(set) var epochRegressions: [String] = []

    var names: [String] { members.keys.sorted() }

    init(work: String, nodeBinary: String, leaseTTL: Duration, group: String) async throws {
        self.work = work
        self.nodeBinary = nodeBinary
        etcd = try await PrivateEtcd.start()
        let names = ["a", "b", "c"]
        var replicationPorts: [String: Int] = [:], clientPorts: [String: Int] = [:]
        for name in names {
            replicationPorts[name] = try await PrivateEtcd.freeLoopbackPort()
            clientPorts[name] = try await PrivateEtcd.freeLoopbackPort()
        }
        guard let etcdPort = Int(etcd.endpoint.split(separator: ":").last ?? "") else {
            throw Nemesis.Stuck(description: "an etcd endpoint without a port: \(etcd.endpoint)")
        }
        var replicationProxies: [String: FaultProxy] = [:], etcdProxies: [String: FaultProxy] = [:]
        for name in names {
            replicationProxies[name] = try await FaultProxy.start(forwardingTo: replicationPorts[name]!)
            etcdProxies[name] = try await FaultProxy.start(forwardingTo: etcdPort)
        }
        self.replicationProxies = replicationProxies
        self.etcdProxies = etcdProxies
        var members: [String: Member] = [:]
        for name in names {
            let home = "\(work)/\(name)"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            let configuration: [String: Any] = [
                "member": name, "directory": "\(home)/store",
                "replication": "127.0.0.1:\(replicationPorts[name]!)", "client": "127.0.0.1:\(clientPorts[name]!)",
                "peers": Dictionary(uniqueKeysWithValues: names.filter { $0 != name }.map {
                    ($0, "127.0.0.1:\(replicationProxies[$0]!.port)")
                }),
                "etcd": ["http://127.0.0.1:\(etcdProxies[name]!.port)"], "group": group,
                "leaseTTLMilliseconds": Int(Nemesis.milliseconds(leaseTTL)),
                "inSyncLagMilliseconds": Int(Nemesis.milliseconds(leaseTTL)),
                "minInsyncReplicas": 2,
            ]
            let path = "\(home)/node.json"
            try JSONSerialization.data(withJSONObject: configuration, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: path))
            members[name] = Member(name: name, directory: "\(home)/store", configuration: path, log: "\(home)/node.log",
                                   clientPort: clientPorts[name]!)
        }
        self.members = members
    }

    var clientPorts: [Int] { names.map { members[$0]!.clientPort } }

    func storeDirectories() -> [String] { names.map { members[$0]!.directory } }

    // MARK: - Processes

    /// Starts the member's process unless it runs (its log is appended to, across restarts).
    func start(_ name: String) throws {
        guard var member = members[name], !(member.process?.isRunning ?? false) else { return }
        if !FileManager.default.fileExists(atPath: member.log) {
            _ = FileManager.default.createFile(atPath: member.log, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: member.log))
        defer { try? log.close() }
        _ = try? log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nodeBinary)
        process.arguments = ["--config", member.configuration]
        process.standardOutput = log
        process.standardError = log
        try process.run()
        member.process = process
        member.paused = false
        members[name] = member
    }

    /// Starts every member that does not run, and resumes every paused one.
    func startAll() throws {
        for name in names {
            if members[name]!.paused { resume(name) }
            try start(name)
        }
    }

    /// kill -9, and waits for the exit.
    func kill(_ name: String) async {
        guard let process = members[name]?.process else { return }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        await Self.waitForExit(process)
        members[name]?.process = nil
        members[name]?.paused = false
    }

    /// SIGSTOP: the process keeps its sockets and its lease's memory, and does nothing.
    func pause(_ name: String) {
        guard let process = members[name]?.process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGSTOP)
        members[name]?.paused = true
    }

    /// SIGCONT after `pause`.
    func resume(_ name: String) {
        guard let process = members[name]?.process, members[name]!.paused else { return }
        Glibc.kill(process.processIdentifier, SIGCONT)
        members[name]?.paused = false
    }

    /// Removes the member's store directory (its disk lost); call after `kill`.
    func wipe(_ name: String) throws {
        guard let directory = members[name]?.directory else { return }
        if FileManager.default.fileExists(atPath: directory) { try FileManager.default.removeItem(atPath: directory) }
    }

    /// SIGTERM to every member (a clean leave), then kill -9 whatever has not exited within 10 s.
    func stopAll() async {
        for name in names { resume(name) }
        for name in names { if let p = members[name]?.process, p.isRunning { Glibc.kill(p.processIdentifier, SIGTERM) } }
        for name in names {
            guard let process = members[name]?.process else { continue }
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { await kill(name) }
            members[name]?.process = nil
        }
    }

    private static func waitForExit(_ process: Process) async {
        // Polled: Process offers no async wait, and the exit follows a SIGKILL within milliseconds.
        while process.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    }

    // MARK: - Links

    /// Cuts the member off from its peers (every replication connection to or from it), not from etcd.
    func cutFromPeers(_ name: String) { replicationProxies[name]?.cut() }

    /// Cuts the member off from etcd, not from its peers.
    func cutFromEtcd(_ name: String) { etcdProxies[name]?.cut() }

    /// Restores every link.
    func healLinks() {
        for proxy in replicationProxies.values { proxy.heal() }
        for proxy in etcdProxies.values { proxy.heal() }
    }

    func closeProxies() async {
        for proxy in Array(replicationProxies.values) + Array(etcdProxies.values) { await proxy.close() }
    }

    // MARK: - Roles

    /// Each running, unpaused member's answer to `status` (nil: no answer), noting epochs that go back.
    func statuses() async -> [String: NodeReply] {
        var replies: [String: NodeReply] = [:]
        for name in names where members[name]!.process?.isRunning == true && !members[name]!.paused {
            guard case .reply(let reply) = await NodeClient.call(.status, port: members[name]!.clientPort,
                                                                 timeout: .seconds(1)) else { continue }
            replies[name] = reply
            if case .status(_, let epoch?, _, _, _) = reply {
                if let seen = epochsSeen[name], epoch < seen {
                    epochRegressions.append("\(name) reported epoch \(epoch) after \(seen)")
                }
                epochsSeen[name] = max(epoch, epochsSeen[name] ?? 0)
            }
        }
        return replies
    }

    /// The member that leads, with its epoch, when every member answers, every other one follows it under
    /// that epoch, and the group's in-sync set is every member's replica as it is now (nil while one is down
    /// or silent, the group disagrees or has no leader, or a replica is not yet in sync, or the set still
    /// names a wiped member's old incarnation).
    ///
    /// In sync too, because a leader counts a follower that has caught up before the coordinator's set
    /// names it: a confirm then shows the group writable while the set from which the next leader is
    /// elected may still be the leader alone, and a fault of the leader at that moment leaves no member
    /// that may take over (correctly: none is known to hold everything committed).
    func agreedLeader() async -> (name: String, epoch: UInt64)? {
        let replies = await statuses()
        guard replies.count == names.count else { return nil }
        var leader: (name: String, epoch: UInt64, inSync: [String])?
        var replicas: [String] = []
        for (name, reply) in replies {
            guard case .status(let role, let epoch, _, let replica?, let inSync) = reply else { return nil }
            replicas.append(replica)
            if role == "leader", let epoch, let inSync {
                if leader != nil { return nil }
                leader = (name, epoch, inSync)
            }
        }
        guard let leader, leader.inSync.sorted() == replicas.sorted() else { return nil }
        for (name, reply) in replies where name != leader.name {
            guard case .status("follower", leader.epoch, leader.name, _, _) = reply else { return nil }
        }
        return (leader.name, leader.epoch)
    }

    /// Waits (at most `limit`) for a member to lead under an epoch above `epoch`.
    func waitForLeader(above epoch: UInt64, within limit: Duration) async -> (name: String, epoch: UInt64)? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            for (name, reply) in await statuses() {
                if case .status("leader", let e?, _, _, _) = reply, e > epoch { return (name, e) }
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Each member's status in a few words, for a report of a group that did not settle.
    func describeStatuses() async -> String {
        let replies = await statuses()
        return names.map { name in
            switch replies[name] {
            case .status(let role, let epoch, let leader, _, let inSync)?:
                "\(name) \(role)" + (epoch.map { " epoch \($0)" } ?? "") + (leader.map { " of \($0)" } ?? "")
                    + (inSync.map { ", in sync \($0.sorted().joined(separator: " "))" } ?? "")
            case let other?: "\(name) answered \(other)"
            case nil: "\(name) silent" + (members[name]!.paused ? " (paused)" : "")
            }
        }.joined(separator: ", ")
    }

    var highestEpochSeen: UInt64 { epochsSeen.values.max() ?? 0 }
}

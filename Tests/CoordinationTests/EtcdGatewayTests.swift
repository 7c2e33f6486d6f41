@testable import Coordination
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The gateway's traps, on the JSON etcd 3.4.23 actually sent (DESIGN.md, "Coordination on etcd"), and a server
/// that never answers. No etcd needed.
struct EtcdGatewayTests {
    @Test func errorBodiesMapToTheirCodes() {
        let cases: [(UInt, String, CoordinationError.Code)] = [
            (404, #"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#, .leaseNotFound),
            (400, #"{"error":"etcdserver: mvcc: required revision has been compacted","message":"etcdserver: mvcc: required revision has been compacted","code":11}"#, .revisionCompacted),
            (400, #"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#, .rejected),
            (400, #"{"error":"illegal base64 data at input byte 4","message":"illegal base64 data at input byte 4","code":3}"#, .rejected),
            (503, #"{"error":"etcdserver: leader changed","message":"etcdserver: leader changed","code":14}"#, .unavailable),
            (404, "Not Found", .rejected),
        ]
        for (status, body, code) in cases {
            #expect(EtcdTransport.errorFromBody(status: status, Data(body.utf8)).code == code, "\(body)")
        }
    }

    @Test func aWatchFoldsAClaimIntoOneSnapshotAndADeleteIntoAnother() throws {
        let folder = EtcdWatchFolder(base: GroupSnapshot(state: nil, stateRevision: nil, holder: nil, revision: Revision(rawValue: 8)),
                                     leaderKey: Data("/g/leader".utf8), stateKey: Data("/g/state".utf8))
        let identity = try JSONEncoder().encode(alpha).base64EncodedString()
        let state = try JSONEncoder().encode(bootstrap(alpha)).base64EncodedString()
        let leaderKey = Data("/g/leader".utf8).base64EncodedString(), stateKey = Data("/g/state".utf8).base64EncodedString()
        var snapshot = folder.base
        #expect(try folder.fold(Data(#"{"result":{"header":{"revision":"8"},"created":true}}"#.utf8), onto: &snapshot).isEmpty)
        let claim = """
            {"result":{"header":{"revision":"9"},"events":[\
            {"kv":{"key":"\(leaderKey)","create_revision":"9","mod_revision":"9","version":"1","value":"\(identity)","lease":"2324035722331057182"}},\
            {"kv":{"key":"\(stateKey)","create_revision":"9","mod_revision":"9","version":"1","value":"\(state)"}}]}}
            """
        let claimed = try folder.fold(Data(claim.utf8), onto: &snapshot)
        #expect(claimed.count == 1)
        #expect(claimed.first?.holder == LeaderHolder(identity: alpha, lease: LeaseID(rawValue: 2324035722331057182),
                                                      since: Revision(rawValue: 9)))
        #expect(claimed.first?.state == bootstrap(alpha) && claimed.first?.stateRevision == Revision(rawValue: 9))
        let expiry = #"{"result":{"header":{"revision":"10"},"events":[{"type":"DELETE","kv":{"key":"\#(leaderKey)","mod_revision":"10"}}]}}"#
        let expired = try folder.fold(Data(expiry.utf8), onto: &snapshot)
        #expect(expired.map(\.revision) == [Revision(rawValue: 10)])
        #expect(expired.first?.holder == nil && expired.first?.state == bootstrap(alpha))
    }

    @Test func aWatchEndsOnTheServersGoingAwayLineAndOnACompactedCancel() {
        let folder = EtcdWatchFolder(base: GroupSnapshot(state: nil, stateRevision: nil, holder: nil, revision: Revision(rawValue: 1)),
                                     leaderKey: Data("/g/leader".utf8), stateKey: Data("/g/state".utf8))
        var snapshot = folder.base
        let goingAway = #"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}"#
        let compacted = #"{"result":{"header":{"cluster_id":"324952591200643719","raft_term":"2"},"canceled":true,"compact_revision":"8"}}"#
        for (line, code) in [(goingAway, CoordinationError.Code.unavailable), (compacted, .revisionCompacted),
                             ("{\"result\":", .malformedResponse)] {
            do {
                _ = try folder.fold(Data(line.utf8), onto: &snapshot)
                Issue.record("\(line) did not end the watch")
            } catch {
                #expect(error.code == code, "\(line)")
            }
        }
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        // Accepts connections and never writes a byte.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(silent.localAddress?.port)
        let coordinator = try EtcdCoordinator(endpoints: ["http://127.0.0.1:\(port)"], groupPrefix: "/silent/",
                                              requestTimeout: .milliseconds(300))
        let code = await errorCode { () async throws(CoordinationError) in _ = try await coordinator.read() }
        #expect(code == .timedOut)
        try await coordinator.shutdown()
        try await silent.close()
    }

    @Test func badConfigurationIsRefused() {
        for (endpoints, prefix) in [([String](), "/g/"), (["127.0.0.1:2379"], "/g/"), (["http://127.0.0.1:2379"], "/g")] {
            let error = #expect(throws: CoordinationError.self) {
                let coordinator = try EtcdCoordinator(endpoints: endpoints, groupPrefix: prefix)
                Issue.record("accepted \(endpoints) \(prefix)")
                _ = coordinator
            }
            #expect(error?.code == .invalidArgument, "\(endpoints) \(prefix)")
        }
    }
}

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// Reads an etcd watch stream (newline-delimited JSON) and folds its events onto a snapshot, yielding one
/// snapshot per changed revision. It survives nothing: the end of the stream, an error line, a cancel or a line it
/// cannot read ends the watch with a `CoordinationError`, and the caller reads and watches again.
struct EtcdWatchFolder: Sendable {
    var base: GroupSnapshot
    let leaderKey: Data
    let stateKey: Data
    /// A line longer than this is not a watch response of two small keys.
    let lineBytesMax = 4 << 20

    init(base: GroupSnapshot, leaderKey: Data, stateKey: Data) {
        self.base = base
        self.leaderKey = leaderKey
        self.stateKey = stateKey
    }

    func run(_ body: HTTPClientResponse.Body,
             into continuation: AsyncThrowingStream<GroupSnapshot, any Error>.Continuation) async {
        var current = base
        var pending = Data()
        do {
            for try await chunk in body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = pending[pending.startIndex..<newline]
                    pending = Data(pending[pending.index(after: newline)...])
                    for snapshot in try fold(line, onto: &current) { continuation.deliver(snapshot) }
                }
                guard pending.count <= lineBytesMax else {
                    throw CoordinationError(.malformedResponse, "a watch line longer than \(lineBytesMax) bytes")
                }
            }
            // The stream ended. Its last line may be an error with no newline (etcd going away); either way the
            // watch is over.
            if !pending.isEmpty { _ = try fold(pending, onto: &current) }
            continuation.finish(throwing: CoordinationError(.unavailable, "etcd ended the watch stream"))
        } catch let error as CoordinationError {
            continuation.finish(throwing: error)
        } catch {
            if Task.isCancelled {
                continuation.finish()
            } else {
                continuation.finish(throwing: CoordinationError(.unavailable, "the watch stream broke", cause: error))
            }
        }
    }

    /// Applies one line's events to `snapshot`; returns a snapshot per revision that changed a group key.
    func fold(_ line: Data, onto snapshot: inout GroupSnapshot) throws(CoordinationError) -> [GroupSnapshot] {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { return [] }
        let parsed = try EtcdJSON.decode(EtcdWatchLine.self, from: line, what: "watch line")
        if let error = parsed.error {
            throw CoordinationError(.unavailable, "the watch stream failed: \(error.message ?? "gRPC code \(error.grpc_code ?? -1)")")
        }
        guard let result = parsed.result else {
            throw CoordinationError(.malformedResponse, "a watch line with neither result nor error")
        }
        if result.canceled ?? false {
            if let compacted = result.compact_revision?.value, compacted > 0 {
                throw CoordinationError(.revisionCompacted, "watch cancelled: history compacted up to \(compacted)")
            }
            throw CoordinationError(.unavailable, "etcd cancelled the watch: \(result.cancel_reason ?? "no reason given")")
        }
        var out: [GroupSnapshot] = []
        var changed: Revision?
        for event in result.events ?? [] {
            guard let kv = event.kv, let key = kv.key, let modified = kv.mod_revision?.value else {
                throw CoordinationError(.malformedResponse, "a watch event without a key or mod revision")
            }
            let revision = Revision(rawValue: modified)
            if let previous = changed, previous != revision { out.append(snapshot) }
            let deleted = event.type == "DELETE"
            if key == leaderKey {
                snapshot.holder = deleted ? nil : try EtcdCoordinator.holder(from: kv)
            } else if key == stateKey {
                if deleted {
                    (snapshot.state, snapshot.stateRevision) = (nil, nil)
                } else {
                    let (state, stateRevision) = try EtcdCoordinator.state(from: kv)
                    (snapshot.state, snapshot.stateRevision) = (state, stateRevision)
                }
            } else {
                continue  // another key under the group's prefix: not ours to report
            }
            snapshot.revision = revision
            changed = revision
        }
        if changed != nil { out.append(snapshot) }
        return out
    }
}

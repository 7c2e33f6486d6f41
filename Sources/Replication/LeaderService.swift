import DurableLog

/// What a replica runs while it leads its group (a replicated store): the node starts it with each term's log
/// and stops it before closing that log.
package protocol LeaderService: Sendable {
    /// This node now leads `epoch`. `log` confirms only what every in-sync replica holds; `writeRefusal` says,
    /// at each call, why a write must be refused before it is appended (nil: append it); `stepDown` ends the
    /// term (the service cannot serve it: another member should lead). Returns at once: long work (loading
    /// state) belongs in a task of the service's own.
    func startLeading(log: WriteAheadLog, epoch: UInt64, writeRefusal: @escaping @Sendable () -> WALError?,
                      stepDown: @escaping @Sendable () -> Void)
    /// This node no longer leads: stop serving and return once stopped. The node closes the log afterwards (the
    /// service may close it first).
    func stopLeading() async

    /// Carries out a request a follower's layer made (`ReplicaNode.request`) and returns the reply it waits
    /// for; both are the service's own encoding.
    func handle(request: [UInt8]) async -> [UInt8]
}

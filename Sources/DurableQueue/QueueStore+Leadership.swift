import DurableLog

/// A store that serves its replication group while its node leads (see `ReplicatedQueueStore`).
extension QueueStore {
    /// Stops serving because this node no longer leads: consumers end, and every later call fails, with
    /// `reason`; then the store closes. Closing its log settles what was appended but not yet confirmed: a
    /// leader's log reports those as `.indeterminate`, never as failed, since a new leader may hold them.
    package func relinquish(_ reason: QueueError) async {
        var actions = Actions()
        core.withLock { $0.stop(with: reason, &actions) }
        run(actions)
        try? await shutdown()
    }
}

extension QueueStore {
    /// The log options a store with `options` opens its log with (its logger and metrics included): what a
    /// replica opens the store's log with.
    package static func logOptions(_ options: StoreOptions) -> LogOptions { StoreTelemetry.logOptions(options) }
}

import DurableQueue
import ServiceLifecycle

/// A store as a swift-service-lifecycle `Service`: run it in the application's `ServiceGroup` beside the
/// server that uses it. `run()` keeps the store open until the group shuts down gracefully (or the task is
/// cancelled), then closes it cleanly: consumers end, what is in flight is confirmed, the final checkpoint
/// is written, all off Swift's cooperative pool.
///
/// ```swift
/// let store = try await QueueStore.open(directory: "/var/lib/app/store")
/// let group = ServiceGroup(services: [store, httpServer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
extension QueueStore: Service {
    public func run() async throws {
        // Returns on a graceful shutdown, throws CancellationError on cancellation: either way, close.
        try? await gracefulShutdown()
        try await shutdown()
    }
}

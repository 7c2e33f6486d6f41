import DurableQueue
import Foundation
import Logging
import Metrics
import Prometheus

// The application bootstraps its own logging and metrics; the store reports to whatever it chose.
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

let directory = NSTemporaryDirectory() + "prometheus-sample-" + UUID().uuidString
defer { try? FileManager.default.removeItem(atPath: directory) }

var options = StoreOptions()
options.log.segmentBytes = 4 << 20
options.maintenanceInterval = .milliseconds(50)
let store = try await QueueStore.open(directory: directory, options: options)
try await store.declareQueue("orders")
let publisher = store.publisher()
for i in 0..<200 { try await publisher.publish(to: "orders", Message(body: Array("order-\(i)".utf8))) }
_ = try await publisher.waitForConfirms()
let consumer = try store.consume(queue: "orders", prefetch: 50)
var acked = 0
for try await delivery in consumer.deliveries {
    try await consumer.ack(delivery.tag)
    acked += 1
    if acked == 150 { break }
}
// The per-queue gauges are refreshed by the store's maintenance pass (every 50 ms here): wait for one, up to 10 s.
let wanted = ["wal_sync_duration", "wal_records_per_sync", "store_open_duration", "queue_ready", "queue_unacked",
              "store_log_bytes"]
let deadline = ContinuousClock.now + .seconds(10)
while wanted.contains(where: { !registry.emitToString().contains($0) }), ContinuousClock.now < deadline {
    try await Task.sleep(for: .milliseconds(20))
}
try await store.shutdown()

let exposition = registry.emitToString()
print(exposition)
let missing = wanted.filter { !exposition.contains($0) }
if !missing.isEmpty {
    FileHandle.standardError.write(Data("prometheus sample: missing metrics \(missing)\n".utf8))
    exit(1)
}
FileHandle.standardError.write(Data("prometheus sample: every expected metric exported\n".utf8))

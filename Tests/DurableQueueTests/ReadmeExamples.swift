// The README's Swift examples, verbatim, inside functions: compiled with the tests and never run.
// `ReadmeTests` checks that every example block of README.md appears here as it is written, so an example that
// stops compiling fails the build, and one edited in the README alone fails the test.
import Coordination
import DurableQueue
import Foundation
import DurableLog
import ReplicatedQueue

/// Stand-ins for the application code the examples call.
private struct PaymentsDatabase { func isCommitted(_ message: Message) async -> Bool { true } }
private let paymentsDatabase = PaymentsDatabase()
private func chargeCard() async throws -> Bool { true }

func readmeQueueLayerExample() async throws {
    let store = try await QueueStore.open(directory: "/var/lib/myapp/queues")  // recovery + checkpoint + replay
    try await store.declareQueue("orders", options: QueueOptions(deliveryLimit: 5, deadLetterQueue: "orders.dead",
                                                                 ackTimeout: .seconds(30)))
    try await store.declareQueue("orders.dead")

    // Returns once the message is durable (after the fdatasync that covers it).
    let id = try await store.publish(to: "orders", Message(headers: ["type": "created"], body: Array("order-42".utf8)))
    print("stored as message \(id)")  // the id survives restarts and redeliveries

    // Confirm mode: many publishes in flight, one cumulative ack per group commit.
    let publisher = store.publisher()
    for i in 0..<1000 { try await publisher.publish(to: "orders", Message(body: Array("order-\(i)".utf8))) }
    for await confirm in publisher.confirms {
        if case .ack(let sequence, _) = confirm, sequence == 1000 { break }  // .nack(sequence, reason) when refused
    }

    // Manual acks: durable when the call returns, so an acked message never comes back, even after a crash.
    // A consumer waits for new messages when the queue is empty: run it in a task and cancel that task to stop
    // (the loop then ends, and unacked deliveries go back to the queue, marked redelivered).
    let consumer = try store.consume(queue: "orders", prefetch: 100)
    let worker = Task {
        for try await delivery in consumer.deliveries {
            // delivery.redelivered, delivery.deliveryCount, delivery.message.headers, delivery.message.body
            try await consumer.ack(delivery.tag)      // or nack(tag, requeue:), reject(tag), ack(tag, multiple: true)
        }
    }

    // Streams: offsets, explicit durable offset commits, retention by size and age.
    try await store.declareStream("events", options: StreamOptions(maxBytes: 1 << 30, maxAge: .seconds(86_400)))
    let offset = try await store.append(to: "events", Message(body: Array("clicked".utf8)))
    let page = try store.read(stream: "events", from: 0, limit: 100)
    try await store.commitOffset(stream: "events", group: "billing", offset: offset.next)

    print(store.queues(), store.diskUsage)   // ready/unacked/dead-lettered counts; log bytes vs live bytes
    worker.cancel()
    try await store.shutdown()               // close() off the cooperative pool: a checkpoint; the next open replays nothing
}

func readmeExactlyOnceExample(store: QueueStore, consumer: Consumer, delivery: Delivery, invoice: [UInt8],
                              order: [UInt8], payment: [UInt8]) async throws {
    // Consume-transform-produce in one transaction: the input's ack and the outputs become durable together
    // (one group commit), so after a crash the input is either still queued with no output or gone with its output.
    let tx = store.transaction()
    try tx.ack(delivery.tag, on: consumer)
    try tx.publish(to: "invoices", Message(body: invoice))
    try tx.append(to: "events", Message(body: Array("invoiced".utf8)))
    try await tx.commit()        // or tx.rollback(); throws .transactionAborted when it could not apply whole

    // Idempotent producer: retry until confirmed; a sequence already stored comes back as .duplicate.
    let producer = try await store.registerProducer(name: "checkout-service")   // same id, next epoch on restart
    var sequence = try producer.lastSequence(queue: "orders")?.next ?? 1   // 1, 2, 3, ... per queue
    switch try await producer.publish(to: "orders", Message(body: order), sequence: sequence) {
    case .stored(let messageID): print("stored", messageID)
    case .duplicate: print("stored before")   // .outOfSequence / .fenced / .unknownProducer are thrown
    }
    sequence = sequence.next

    // Half message: durable but invisible until the local transaction's outcome is known.
    store.setHalfMessageChecker { check in      // asked about half messages left unresolved (after a crash, ...)
        await paymentsDatabase.isCommitted(check.message) ? .commit : .rollback   // or .unknown: ask again later
    }
    let half = try await store.prepare(to: "payments", Message(body: payment))
    if try await chargeCard() { try await store.commitHalfMessage(half) } else { try await store.rollbackHalfMessage(half) }
}

func readmeLogExample() async throws {
    let log = try WriteAheadLog.open(directory: "/var/lib/myapp/wal")   // runs recovery
    print(log.recoveryReport)                                           // torn tail cut? clean shutdown?

    // Returns once an fdatasync covering the record has returned. Many concurrent appends share one sync.
    let lsn = try await log.append(Array("order-42 created".utf8))

    // Records are verified (CRC32C, framing) before they are served.
    let bytes = try log.read(lsn)
    try log.forEachRecord(from: lsn) { lsn, record in
        print(lsn, record.count)
        return true                       // false stops
    }

    // Event-loop embedders: a callback instead of await (throws .pendingFull instead of waiting).
    let payload: [UInt8] = Array("order-43 created".utf8)
    try payload.withUnsafeBytes { try log.append($0) { result in /* .success(lsn) or .failure(error) */ } }

    // Threads you own: block until durable. On an idle log this writes and syncs on the calling thread
    // (the lowest latency at concurrency 1).
    let other = try payload.withUnsafeBytes { try log.appendAndWait($0) }

    try log.truncate(before: lsn)         // drop whole segments below an LSN (crash-safe)
    print(log.counters.recordsPerSync)    // appends, frames, syncs, sync time, bytes before/after LZ4
    try log.close()                       // syncs what is pending, records a clean shutdown
}

func readmeReplicatedExample() async throws {
    // Each node runs this with its own name, directory and address; the group meets in etcd.
    let replication = ReplicationOptions(
        member: "node-a", listen: Endpoint(host: "10.0.0.1", port: 7100),
        peers: ["node-b": Endpoint(host: "10.0.0.2", port: 7100), "node-c": Endpoint(host: "10.0.0.3", port: 7100)])
    let etcd = try EtcdCoordinator(endpoints: ["http://10.0.0.9:2379"], groupPrefix: "/myapp/orders/")
    let node = try await ReplicatedQueueStore.start(directory: "/var/lib/myapp/orders", replication: replication,
                                                    coordinator: etcd)

    // On any node: confirmed once every in-sync replica holds it (forwarded to the leader from a follower).
    let messageID = try await node.publish(to: "orders", Message(body: Array("order-43".utf8)))
    print("stored as message \(messageID)")

    // Consumers, declarations and the rest of the store are the leader's: `.notLeader` elsewhere, with
    // `leaderHint` naming the leader.
    for await role in node.roleUpdates() {
        guard case .leader = role else { continue }
        let leaderStore = try await node.leaderStore()    // a QueueStore; it ends with `.notLeader` when the term does
        let orders = try leaderStore.consume(queue: "orders")
        for try await delivery in orders.deliveries { try await orders.ack(delivery.tag) }
    }
    await node.shutdown()
    try await etcd.shutdown()
}

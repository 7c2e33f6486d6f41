// The exactly-once workload: consume-transform-produce in transactions (some rolled back first), an
// idempotent producer that resumes where the test tells it (resending what may already be stored), and
// half messages resolved by commit, rollback, or left to the check-back. One line per completed step:
//   P <id> <body>          input published to "in"
//   X <input id>           transaction committed: input acked, "o-<id>" in "out" and "p-<id>" in "out2"
//   I <sequence>           idempotent publish stored in "iq" (body "seq-<sequence>")
//   i <sequence>           idempotent publish confirmed as a duplicate
//   H <id> <flag>          half message prepared in "hq"; flag c / u: its check-back commits (u after one
//                          "unknown"), r: its check-back rolls back
//   HC <id> / HR <id>      commit / rollback returned
import DurableQueue
import Glibc

/// How the checker (here and in the test's verification) resolves a half message: by the flag that ends
/// its body.
func decideHalfMessage(_ check: HalfMessageCheck) -> HalfMessageDecision {
    switch check.message.body.last {
    case UInt8(ascii: "c"): .commit
    case UInt8(ascii: "u"): check.checks >= 1 ? .commit : .unknown
    default: .rollback
    }
}

func runExactlyOnceWorkload(directory: String, run: String, firstSequence: UInt64) async {
    var options = crashChildOptions()
    options.halfMessages = HalfMessageOptions(firstCheckAfter: .milliseconds(50), checkInterval: .milliseconds(20),
                                              maxChecks: 100)
    let store: QueueStore
    let producer: IdempotentProducer
    do {
        store = try await QueueStore.open(directory: directory, options: options)
        for q in ["in", "out", "out2", "iq", "hq"] { try await store.declareQueue(q) }
        producer = try await store.registerProducer(name: "idem")
    } catch {
        emit("E open: \(error)")
        exit(1)
    }
    store.setHalfMessageChecker { decideHalfMessage($0) }
    emit("O")
    do {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var i = 0
                while true {
                    while (store.queueInfo("in")?.ready ?? 0) > 100 { try await Task.sleep(for: .milliseconds(1)) }
                    let body = "in-\(run)-\(i)"
                    let id = try await store.publish(to: "in", Message(body: Array(body.utf8)))
                    emit("P \(id) \(body)")
                    i += 1
                }
            }
            group.addTask {
                let consumer = try store.consume(queue: "in", prefetch: 16)
                var n = 0
                for try await d in consumer.deliveries {
                    n += 1
                    if n % 11 == 0 {
                        try await consumer.nack(d.tag, requeue: true)
                        continue
                    }
                    if n % 7 == 0 {
                        let abandoned = store.transaction()
                        try abandoned.ack(d.tag, on: consumer)
                        try abandoned.publish(to: "out", Message(body: Array("o-\(d.messageID)".utf8)))
                        abandoned.rollback()
                    }
                    let tx = store.transaction()
                    try tx.ack(d.tag, on: consumer)
                    try tx.publish(to: "out", Message(body: Array("o-\(d.messageID)".utf8)))
                    try tx.publish(to: "out2", Message(body: Array("p-\(d.messageID)".utf8)))
                    try await tx.commit()
                    emit("X \(d.messageID)")
                }
            }
            group.addTask {
                var sequence = firstSequence
                while true {
                    let body = Message(body: Array("seq-\(sequence)".utf8))
                    switch try await producer.publish(to: "iq", body, sequence: ProducerSequence(rawValue: sequence)) {
                    case .stored: emit("I \(sequence)")
                    case .duplicate: emit("i \(sequence)")
                    }
                    // Now and then the same sequence again, as a retry after a lost confirm would.
                    if sequence % 10 == 0, case .duplicate = try await producer.publish(to: "iq", body, sequence: ProducerSequence(rawValue: sequence)) {
                        emit("i \(sequence)")
                    }
                    sequence += 1
                }
            }
            group.addTask {
                var i = 0
                while true {
                    // Committed by a call (i % 8 = 0, 4) or its check-back (2: commit, 6: unknown then commit);
                    // rolled back by a call (1, 5) or its check-back (3, 7).
                    let flag = switch i % 8 { case 0, 2, 4: "c"; case 6: "u"; default: "r" }
                    let id = try await store.prepare(to: "hq", Message(body: Array("h-\(run)-\(i)-\(flag)".utf8)))
                    emit("H \(id) \(flag)")
                    switch i % 4 {
                    // A check-back may have come first (under load): the outcome is the same.
                    case 0:
                        do { try await store.commitHalfMessage(id) } catch let error as QueueError where error.code == .notFound {}
                        emit("HC \(id)")
                    case 1:
                        do { try await store.rollbackHalfMessage(id) } catch let error as QueueError where error.code == .notFound {}
                        emit("HR \(id)")
                    default:
                        break  // the resolution is "lost": the check-back decides
                    }
                    i += 1
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            try await group.next()
        }
    } catch {
        emit("E \(error)")
        exit(1)
    }
}

import BrookCore
import Foundation
import Testing
@testable import BrookMQTT

/// QoS 2 messages written through a session's idempotent producer: sequences per partition in
/// the client's order, a new producer after a failed write, and a restored record held against
/// the partitions' last sequences (written slots await their PUBREL, unwritten ones are
/// forgotten, and sequences written after the record are claimed by the client's resends).
@Suite struct ExactlyOnceTests {
    static let a = ExactlyOnceWrites.Target(topic: "mqtt-messages", partition: 0)
    static let b = ExactlyOnceWrites.Target(topic: "mqtt-messages", partition: 1)

    static func session() -> MQTTSession {
        MQTTSession(clientID: "c", receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10)
    }

    /// A session saved and restored as a restart or a move would.
    static func restored(_ session: MQTTSession) throws -> MQTTSession {
        let json = try JSONEncoder().encode(session.snapshot(expirySeconds: 60, nowMs: 1))
        let snapshot = try JSONDecoder().decode(MQTTSession.Snapshot.self, from: json)
        return try #require(MQTTSession(restoring: snapshot, receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10))
    }

    @Test func sequencesPerPartitionInOrderAndNoneWithoutAProducer() {
        var writes = ExactlyOnceWrites()
        #expect(writes.assign(1, to: Self.a) == nil)
        writes.start(producer: ProducerID(7), epoch: ProducerEpoch(0))
        let s1 = writes.assign(1, to: Self.a), s2 = writes.assign(2, to: Self.b), s3 = writes.assign(3, to: Self.a)
        #expect([s1, s2, s3] == [0, 0, 1])
        // An id still being written (an earlier connection's) gets no second sequence.
        let again = writes.assign(1, to: Self.a)
        #expect(again == nil)
        #expect(writes.writing.count == 3)
        writes.finished(1, written: true)
        #expect(writes.producer?.id == ProducerID(7))
        // A failed write: the sequences are unknown, the next message takes a new producer.
        writes.finished(2, written: false)
        #expect(writes.producer == nil)
        #expect(writes.assign(4, to: Self.a) == nil)
        // The write still under way keeps its producer in its slot.
        #expect(writes.saved?.writing.map(\.producerID) == [7])
        writes.start(producer: ProducerID(8), epoch: ProducerEpoch(0))
        let s4 = writes.assign(4, to: Self.a)
        #expect(s4 == 0)
    }

    @Test func aRestoredRecordIsHeldAgainstThePartitions() throws {
        var session = Self.session()
        session.exactlyOnce.start(producer: ProducerID(7), epoch: ProducerEpoch(0))
        // Three messages to partition a (sequences 0, 1, 2) and one to b (0); 0 is done and
        // released, 1 and 2 and b's are under way when the record is saved.
        for (id, target) in [(1, Self.a), (2, Self.a), (3, Self.a), (4, Self.b)] as [(UInt16, ExactlyOnceWrites.Target)] {
            _ = session.exactlyOnce.assign(id, to: target)
        }
        session.exactlyOnce.finished(1, written: true)
        var restored = try Self.restored(session)
        #expect(restored.exactlyOnce.unreconciled != nil)
        #expect(restored.exactlyOnce.toReconcile.targets == [Self.a, Self.b])
        #expect(restored.exactlyOnce.toReconcile.producers == [7])
        // Saved again before it is reconciled: the record stays as it was.
        let again = try Self.restored(restored)
        #expect(again.exactlyOnce.unreconciled == restored.exactlyOnce.unreconciled)

        // Partition a wrote up to sequence 4 (1 and 2 were written, then two more after the
        // record); partition b knows nothing of the producer (its message was not written).
        restored.reconcile(lastSequences: [7: [Self.a: 4]])
        #expect(restored.awaitingRelease == [2, 3])
        #expect(restored.exactlyOnce.unreconciled == nil)
        #expect(restored.exactlyOnce.producer == nil)
        #expect(restored.exactlyOnce.unclaimed == [Self.a: 3...4])
        // The client's resends (duplicates with ids the session does not know) take them in order.
        let claims = [Self.a, Self.b, Self.a, Self.a].map { restored.exactlyOnce.claim($0) }
        #expect(claims == [true, false, true, false])
    }

    @Test func unclaimedSequencesAreForgottenAtTheFirstNewMessage() throws {
        var session = Self.session()
        session.exactlyOnce.start(producer: ProducerID(9), epoch: ProducerEpoch(0))
        var restored = try Self.restored(session)
        restored.reconcile(lastSequences: [9: [Self.b: 1]])
        #expect(restored.exactlyOnce.unclaimed == [Self.b: 0...1])
        restored.exactlyOnce.forgetUnclaimed()
        let claimed = restored.exactlyOnce.claim(Self.b)
        #expect(!claimed)
    }

    @Test func nothingWrittenNothingAwaitsAndOlderRecordsHaveNoProducer() throws {
        var session = Self.session()
        #expect(session.exactlyOnce.saved == nil)
        session.exactlyOnce.start(producer: ProducerID(3), epoch: ProducerEpoch(1))
        _ = session.exactlyOnce.assign(5, to: Self.a)
        var restored = try Self.restored(session)
        restored.reconcile(lastSequences: [:])
        #expect(restored.awaitingRelease.isEmpty)
        #expect(restored.exactlyOnce.unclaimed.isEmpty)
        let older = #"{"clientID":"c","expirySeconds":60,"subscriptions":[],"awaitingRelease":[4],"savedAtMs":1}"#
        let snapshot = try JSONDecoder().decode(MQTTSession.Snapshot.self, from: Data(older.utf8))
        let old = try #require(MQTTSession(restoring: snapshot, receiveMaximum: 10, queuedMessagesMax: 10, subscriptionsMax: 10))
        #expect(old.exactlyOnce.unreconciled == nil)
        #expect(old.awaitingRelease == [4])
    }
}

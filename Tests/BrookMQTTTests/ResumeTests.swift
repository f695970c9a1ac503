import Foundation
import NIOCore
import Testing
@testable import BrookMQTT

/// Where a restored session is read again from: the lowest Kafka offset of each partition among
/// the messages it has not acknowledged (queued, or in flight awaiting PUBACK / PUBREC).
@Suite struct ResumeTests {
    static func publish(_ topic: String, _ qos: QoS = .atLeastOnce) -> MQTTPublish {
        MQTTPublish(topic: topic, qos: qos, payload: ByteBuffer(string: topic))
    }

    static func source(_ partition: Int32, _ offset: Int64) -> MQTTSession.Source {
        .init(topic: "mqtt-messages", partition: partition, offset: offset)
    }

    @Test func theLowestUnacknowledgedOffsetOfEachPartition() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 2, queuedMessagesMax: 100, subscriptionsMax: 10)
        for (partition, offset) in [(0, 10), (1, 7), (0, 11), (0, 12), (1, 8)] as [(Int32, Int64)] {
            let taken = session.enqueue(Self.publish("t"), source: Self.source(partition, offset))
            #expect(taken)
        }
        // A retained message has no source.
        let retained = session.enqueue(Self.publish("r"))
        #expect(retained)
        #expect(session.unacknowledgedFrom == ["mqtt-messages": [0: 10, 1: 7]])
        // Two in flight (window 2): 0@10 and 1@7; acknowledging them moves the marks on.
        let first = session.nextToSend(), second = session.nextToSend()
        #expect(session.unacknowledgedFrom == ["mqtt-messages": [0: 10, 1: 7]])
        let acked = first.flatMap { $0.packetID }.map { session.receivedPuback($0) }
        #expect(acked == true)
        #expect(session.unacknowledgedFrom == ["mqtt-messages": [0: 11, 1: 7]])
        let ackedToo = second.flatMap { $0.packetID }.map { session.receivedPuback($0) }
        #expect(ackedToo == true)
        #expect(session.unacknowledgedFrom == ["mqtt-messages": [0: 11, 1: 8]])
    }

    @Test func aQoS2MessageReceivedIsNoLongerToBeSentAgain() {
        var session = MQTTSession(clientID: "c", receiveMaximum: 5, queuedMessagesMax: 100, subscriptionsMax: 10)
        let taken = session.enqueue(Self.publish("t", .exactlyOnce), source: Self.source(3, 40))
        #expect(taken)
        let sent = session.nextToSend()
        #expect(session.unacknowledgedFrom == ["mqtt-messages": [3: 40]])
        // PUBREC: the client has it; only the release is left.
        let release = sent.flatMap { $0.packetID }.flatMap { session.receivedPubrec($0, reason: .success) }
        #expect(release != nil)
        #expect(session.unacknowledgedFrom.isEmpty)
    }

    @Test func aSnapshotKeepsWhereToResumeAndOlderRecordsHaveNone() throws {
        var snapshot = MQTTSession(clientID: "c", receiveMaximum: 5, queuedMessagesMax: 10, subscriptionsMax: 10).snapshot(expirySeconds: 60, nowMs: 1)
        snapshot.resume = [.init(topic: "mqtt-messages", partition: 2, offset: 99)]
        let decoded = try JSONDecoder().decode(MQTTSession.Snapshot.self, from: JSONEncoder().encode(snapshot))
        #expect(decoded == snapshot)
        let older = #"{"clientID":"c","expirySeconds":60,"subscriptions":[],"awaitingRelease":[],"savedAtMs":1}"#
        #expect(try JSONDecoder().decode(MQTTSession.Snapshot.self, from: Data(older.utf8)).resume == nil)
    }

    static func restored(_ session: MQTTSession) throws -> MQTTSession {
        let json = try JSONEncoder().encode(session.snapshot(expirySeconds: 60, nowMs: 1))
        let snapshot = try JSONDecoder().decode(MQTTSession.Snapshot.self, from: json)
        return try #require(MQTTSession(restoring: snapshot, receiveMaximum: 5, queuedMessagesMax: 100, subscriptionsMax: 10))
    }

    @Test func packetIDsInFlightGoWithTheMessagesReadAgain() throws {
        var session = MQTTSession(clientID: "c", receiveMaximum: 5, queuedMessagesMax: 100, subscriptionsMax: 10)
        for offset in [10, 11, 12] as [Int64] {
            let taken = session.enqueue(Self.publish("t", .exactlyOnce), source: Self.source(0, offset))
            #expect(taken)
        }
        let sent = (0..<3).compactMap { _ in session.nextToSend() }
        #expect(sent.map(\.packetID) == [1, 2, 3])
        // The client has the first (PUBREC came): only its PUBREL is sent again after a restore.
        let pubrel = session.receivedPubrec(1, reason: .success)
        #expect(pubrel == .pubrel(MQTTAck(packetID: 1)))
        var restored = try Self.restored(session)
        #expect(restored.resend() == [.pubrel(MQTTAck(packetID: 1))])
        // Read again from offset 11: the two in flight keep their ids (marked duplicate); the
        // next message takes a free id.
        for offset in [11, 12, 13] as [Int64] {
            let taken = restored.enqueue(Self.publish("t", .exactlyOnce), source: Self.source(0, offset))
            #expect(taken)
        }
        // The reading again ends before the client is back: the queued messages keep their ids.
        restored.replayEnded()
        let again = (0..<3).compactMap { _ in restored.nextToSend() }
        #expect(again.map(\.packetID) == [2, 3, 4])
        #expect(again.map(\.duplicate) == [true, true, false])
        let completed = restored.receivedPubcomp(1)
        #expect(completed)
        // Saved again: what is in flight now.
        let record = restored.snapshot(expirySeconds: 60, nowMs: 2)
        #expect(record.inflight?.map(\.packetID) == [2, 3, 4])
    }

    @Test func idsKeptForMessagesNotReadAgainAreFreedWhenTheReadingEnds() throws {
        var session = MQTTSession(clientID: "c", receiveMaximum: 5, queuedMessagesMax: 100, subscriptionsMax: 10)
        let taken = session.enqueue(Self.publish("t", .exactlyOnce), source: Self.source(0, 10))
        #expect(taken)
        let first = session.nextToSend()
        #expect(first?.packetID == 1)
        var restored = try Self.restored(session)
        // Kept while reading again (a save keeps it too); a message from elsewhere takes another id.
        #expect(restored.snapshot(expirySeconds: 60, nowMs: 2).inflight?.map(\.packetID) == [1])
        _ = restored.enqueue(Self.publish("u", .exactlyOnce), source: Self.source(1, 5))
        let other = restored.nextToSend()
        #expect(other?.packetID == 2)
        // The message at offset 10 is gone (retention): its id is free once the reading ends.
        restored.replayEnded()
        #expect(restored.snapshot(expirySeconds: 60, nowMs: 3).inflight?.map(\.packetID) == [2])
    }
}

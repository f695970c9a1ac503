import BrookProtocol
import BrookCore
import BrookGroups

/// The group coordinator's formats: the consumer protocol's subscription and assignment (inside
/// JoinGroup and SyncGroup), and the `__consumer_offsets` records it replays on load.
enum GroupFuzzing {
    static let consumerProtocolTarget = FuzzTarget(
        name: "consumer-protocol",
        input: "kind (1 byte, bits 0-1: 0 subscription topics, 1 assignment, 2 whole subscription, 3 sticky user data), then its bytes"
    ) { bytes in
        var input = FuzzInput(bytes)
        let kind = input.byte() & 3
        let body = Array(input.rest())
        switch kind {
        case 1:
            guard let partitions = ConsumerProtocol.assignedPartitions(body) else { return }
            let again = ConsumerProtocol.assignedPartitions(ConsumerProtocol.encodeAssignment(partitions))
            precondition(again == partitions, "a consumer assignment does not round-trip")
        case 2:
            guard let subscription = ConsumerProtocol.subscription(body) else { return }
            precondition(ConsumerProtocol.subscribedTopics(body) == subscription.topics, "the two subscription readers disagree")
            let again = ConsumerProtocol.subscription(ConsumerProtocol.encode(subscription))
            precondition(again == subscription, "a consumer subscription does not round-trip")
        case 3:
            guard let (previous, generation) = ConsumerProtocol.stickyUserData(body) else { return }
            let again = ConsumerProtocol.stickyUserData(ConsumerProtocol.encodeStickyUserData(previous: previous, generation: generation))
            precondition(again?.previous == previous && again?.generation == generation, "sticky user data does not round-trip")
        default:
            guard let topics = ConsumerProtocol.subscribedTopics(body) else { return }
            let again = ConsumerProtocol.subscribedTopics(ConsumerProtocol.encodeSubscription(topics))
            precondition(again == topics, "a consumer subscription does not round-trip")
        }
    }

    static let groupRecordsTarget = FuzzTarget(
        name: "group-record",
        input: "a 16-bit word (top bit: the value is null; the rest: the key's length), the key, then the value of a __consumer_offsets record"
    ) { bytes in
        var input = FuzzInput(bytes)
        let (key, value) = input.keyAndValue()
        guard let record = try? GroupRecord.decode(key: key, value: value) else { return }
        let again: GroupRecord?
        do {
            again = try GroupRecord.decode(key: record.key, value: record.value)
        } catch {
            preconditionFailure("a group record's own bytes do not decode: \(error)")
        }
        precondition(again == record, "a group record does not round-trip")
    }
}

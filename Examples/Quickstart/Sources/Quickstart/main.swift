import BrookClient

// The broker to use and the group protocol (KIP-848 `consumer`, or `classic` for brokers
// before Kafka 4.0), from the command line.
let arguments = CommandLine.arguments.dropFirst()
let bootstrap = arguments.first ?? "127.0.0.1:9092"
let groupProtocol = arguments.dropFirst().first ?? "consumer"
let topic = "quickstart"

// A topic of three partitions (already there from an earlier run is fine).
let admin = KafkaAdmin(try AdminConfig(properties: ["bootstrap.servers": bootstrap]))
do {
    try await admin.createTopics([NewTopic(topic, partitions: 3, configs: ["retention.ms": "3600000"])])
    print("created \(topic)")
} catch let error as KafkaError where error.code == .topicAlreadyExists {
    print("\(topic) is there already")
}
for partition in try await admin.describeTopics([topic])[0].partitions {
    print("  partition \(partition.partition): leader \(partition.leader), replicas \(partition.replicas)")
}
await admin.close()

// Ten records, keyed: the same key always goes to the same partition (the Java client's murmur2).
let producer = KafkaProducer(try ProducerConfig(properties: ["bootstrap.servers": bootstrap, "linger.ms": "5"]))
var deliveries: [Delivery] = []
for i in 0..<10 {
    deliveries.append(try await producer.send(ProducerRecord(topic: topic, key: Array("sensor-\(i % 4)".utf8),
                                                             value: Array("reading \(i)".utf8))))
}
for delivery in deliveries {
    let written = try await delivery.metadata
    print("sent to partition \(written.partition) at offset \(written.offset)")
}
await producer.close()

// A group member reading from the start; it commits what it read when it closes.
let consumer = KafkaConsumer(try ConsumerConfig(properties: [
    "bootstrap.servers": bootstrap, "group.id": "quickstart-readers-\(groupProtocol)", "group.protocol": groupProtocol,
    "auto.offset.reset": "earliest",
]))
try await consumer.subscribe([topic])
var read = 0
while read < 10 {
    for record in try await consumer.poll(timeoutMs: 1000) {
        read += 1
        print("read \(record.topicPartition) offset \(record.offset): \(String(decoding: record.key ?? [], as: UTF8.self)) = \(String(decoding: record.value ?? [], as: UTF8.self))")
    }
}
await consumer.close()

"""Client quotas with real clients: AlterClientQuotas / DescribeClientQuotas through
kafka-python's protocol layer (its admin client has no quota methods; librdkafka and kcat have
none), and `producer_byte_rate` / `consumer_byte_rate` enforced on confluent-kafka clients: the
throttled client id gets throttle times (librdkafka's throttle_cb) and is slowed to its quota,
another client id on the same broker is not."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest, DescribeClientQuotasRequest

from brook_interop import ck_create_topic, unique_topic

TIMEOUT = 60


def send(admin: KafkaAdminClient, request):
    async def go():
        return await admin._manager.send(request)
    return admin._manager.run(go)


def alter(admin: KafkaAdminClient, entity: dict, ops: dict, validate_only: bool = False) -> list:
    E = AlterClientQuotasRequest.EntryData
    entry = E(entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity.items()],
              ops=[E.OpData(key=k, value=float(v or 0), remove=v is None) for k, v in ops.items()])
    response = send(admin, AlterClientQuotasRequest(entries=[entry], validate_only=validate_only))
    return [(e.error_code, e.error_message) for e in response.entries]


def describe(admin: KafkaAdminClient, components: list, strict: bool = False) -> dict:
    C = DescribeClientQuotasRequest.ComponentData
    response = send(admin, DescribeClientQuotasRequest(
        components=[C(entity_type=t, match_type=m, match=n) for t, m, n in components], strict=strict))
    assert response.error_code == 0, response.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
            for entry in response.entries}


def test_quotas_are_set_described_and_removed(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        assert alter(admin, {"user": "alice", "client-id": "app"}, {"producer_byte_rate": 1024, "consumer_byte_rate": 2048}) == [(0, None)]
        assert alter(admin, {"client-id": None}, {"request_percentage": 50}) == [(0, None)]
        assert alter(admin, {"user": "bob"}, {"producer_byte_rate": 1}, validate_only=True) == [(0, None)]
        assert alter(admin, {"ip": "1.2.3.4"}, {"producer_byte_rate": 1})[0][0] == 42  # INVALID_REQUEST
        assert alter(admin, {"user": "alice"}, {"no_such_quota": 1})[0][0] == 42
        assert alter(admin, {"user": "alice"}, {"producer_byte_rate": -5})[0][0] == 42
        everything = describe(admin, [])
        assert everything == {
            (("user", "alice"), ("client-id", "app")): {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1024.0},
            (("client-id", None),): {"request_percentage": 50.0},
        }, everything
        assert list(describe(admin, [("user", 0, "alice")])) == [(("user", "alice"), ("client-id", "app"))]
        assert describe(admin, [("user", 0, "alice")], strict=True) == {}
        assert list(describe(admin, [("client-id", 1, None)])) == [(("client-id", None),)]
        assert alter(admin, {"user": "alice", "client-id": "app"}, {"producer_byte_rate": None, "consumer_byte_rate": None}) == [(0, None)]
        assert alter(admin, {"client-id": None}, {"request_percentage": None}) == [(0, None)]
        assert describe(admin, []) == {}
    finally:
        admin.close()


def produce_timed(broker, topic: str, client_id: str, total: int, size: int = 1000) -> tuple:
    throttles = []
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5, "acks": 1,
                  "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    started = time.monotonic()
    # In rounds of 100 kB, each flushed: a throttle holds up the rounds after it.
    for _ in range(total // 100_000):
        for _ in range(100_000 // size):
            p.produce(topic, b"x" * size, on_delivery=lambda err, msg: err and errors.append(err))
        p.flush(TIMEOUT)
    elapsed = time.monotonic() - started
    p.poll(0.5)  # throttle events that came with the last responses
    assert errors == []
    return elapsed, throttles


def test_producer_and_consumer_byte_rates_throttle_their_client_id_only(broker):
    """50 kB/s for client id `slow`: Kafka's rate window (11 one-second samples, at least 10 s
    long) lets about 500 kB through at once, the rest at the quota: 800 kB take 5 s or more,
    with throttle times given; client id `fast` sends the same at once, never throttled."""
    topic = unique_topic("quota")
    ck_create_topic(broker.bootstrap, topic)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        assert alter(admin, {"client-id": "slow"}, {"producer_byte_rate": 50_000, "consumer_byte_rate": 50_000}) == [(0, None)]
        time.sleep(0.5)  # the broker's image follows the controller's
        fast_elapsed, fast_throttles = produce_timed(broker, topic, "fast", 800_000)
        assert fast_throttles == [] or max(fast_throttles) == 0, fast_throttles
        slow_elapsed, slow_throttles = produce_timed(broker, topic, "slow", 800_000)
        assert slow_throttles and max(slow_throttles) > 0, "no throttle time was given"
        assert slow_elapsed >= 4.0, f"800 kB at 50 kB/s after a 500 kB burst took only {slow_elapsed:.1f} s"
        assert slow_elapsed > 3 * fast_elapsed, (slow_elapsed, fast_elapsed)
        # The consumer side: `slow` reads its 1.6 MB no faster than its quota lets it.
        throttled = []
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "quota-readers", "client.id": "slow",
                      "throttle_cb": lambda event: throttled.append(event.throttle_time),
                      "max.partition.fetch.bytes": 262144})
        c.assign([TopicPartition(topic, 0, 0)])
        got = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and got < 1600:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got += 1
        c.close()
        assert throttled and max(throttled) > 0, "the consumer was never throttled"
        assert got < 1600, "1.6 MB were read within 8 s at 50 kB/s"
    finally:
        alter(admin, {"client-id": "slow"}, {"producer_byte_rate": None, "consumer_byte_rate": None})
        admin.close()


def test_request_percentage_throttles_the_time_a_client_id_takes(broker):
    """`request_percentage` 0.01 for client id `busy` (a hundredth of a percent of one thread:
    0.1 ms of handling a second): a confluent-kafka producer sending one record per request is
    given throttle times within seconds and slowed; client id `free` on the same broker never."""
    topic = unique_topic("request-quota")
    ck_create_topic(broker.bootstrap, topic)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)

    def produce_one_by_one(client_id: str, seconds: float) -> tuple:
        throttles, sent = [], 0
        p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 0, "acks": 1,
                      "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (client_id == "busy" and throttles and max(throttles) > 0):
            p.produce(topic, b"r")
            p.flush(TIMEOUT)
            sent += 1
        p.poll(0.5)
        p.flush(TIMEOUT)
        return sent, throttles

    try:
        assert alter(admin, {"client-id": "busy"}, {"request_percentage": 0.01}) == [(0, None)]
        time.sleep(0.5)  # the broker's image follows the controller's
        free_sent, free_throttles = produce_one_by_one("free", 2)
        assert free_sent > 20 and (free_throttles == [] or max(free_throttles) == 0), (free_sent, free_throttles)
        busy_sent, busy_throttles = produce_one_by_one("busy", 15)
        assert busy_throttles and max(busy_throttles) > 0, f"{busy_sent} requests of `busy` and no throttle time"
    finally:
        alter(admin, {"client-id": "busy"}, {"request_percentage": None})
        admin.close()


def test_controller_mutation_rate_refuses_topic_creations_past_it(broker):
    """KIP-599: `controller_mutation_rate` 1 for client id `mutator` (kafka-python's protocol
    layer, CreateTopics v7): a topic of 20 partitions is taken (it takes the rate past the
    quota), the next is refused with THROTTLING_QUOTA_EXCEEDED and a throttle time; another
    client id is not held back."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="mutator", request_timeout_ms=TIMEOUT * 1000)
    other = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="other", request_timeout_ms=TIMEOUT * 1000)
    T = CreateTopicsRequest.CreatableTopic

    def create(client, partitions: int) -> tuple:
        response = send(client, CreateTopicsRequest(
            topics=[T(name=unique_topic("mutation"), num_partitions=partitions, replication_factor=1, assignments=[], configs=[])],
            timeout_ms=10_000, validate_only=False))
        return response.topics[0].error_code, response.throttle_time_ms

    try:
        assert alter(admin, {"client-id": "mutator"}, {"controller_mutation_rate": 1}) == [(0, None)]
        time.sleep(0.5)  # the broker's image follows the controller's
        assert create(admin, 20) == (0, 0)
        code, throttle = create(admin, 1)
        assert code == 89 and throttle > 0, (code, throttle)  # THROTTLING_QUOTA_EXCEEDED
        assert create(other, 1)[0] == 0
    finally:
        # Through `other`: kafka-python holds `mutator`'s connection for the throttle time.
        alter(other, {"client-id": "mutator"}, {"controller_mutation_rate": None})
        admin.close()
        other.close()

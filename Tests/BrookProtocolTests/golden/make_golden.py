#!/usr/bin/env python3
"""Golden bytes for BrookProtocol's codec, made by an independent encoder: kafka-python.

    python3 Tests/BrookProtocolTests/golden/make_golden.py          rewrite GoldenFixtures.swift
    python3 Tests/BrookProtocolTests/golden/make_golden.py --check  exit 1 if it is out of date

kafka-python (3.x) encodes from Apache Kafka's own JSON message schemas (shipped inside the
package, kafka/protocol/schemas/resources), with its own codec; Brook's codec is generated from
Brook's `.def` files by scripts/protogen.py. Neither is derived from the other, so a message that
kafka-python encodes and Brook decodes to the expected value, and re-encodes to the same bytes, is
evidence that both agree with the protocol.

For every API Brook defines and every version of it that kafka-python also knows, the script
builds sample requests and responses from the schema, in two variants:

  full    every field set to a value that differs from its default (numbers wide enough to show
          byte order, UTF-8 strings with non-ASCII characters), nullable fields set, tagged fields
          set, arrays of two elements at the top level;
  sparse  nullable fields null (nullable structs too), tagged fields at their defaults (so not
          written), empty strings and primitive arrays, arrays of structs with one element.

kafka-python 3.0.12 ships no schema for ConsumerGroupHeartbeat, ConsumerGroupDescribe and
UnregisterBroker: Kafka 4.0.0's schemas of those are read from KAFKA_MESSAGE_DIR and handed to
kafka-python's codec.
Some schemas it ships are newer than Kafka 4.0.0 (InitProducerId v6, ListTransactions v2, OffsetFetch
v10): only the versions Brook defines (Kafka 4.0.0's) are sampled, and those are unchanged.

It writes Tests/BrookProtocolTests/GoldenFixtures.swift: for each sample the bytes kafka-python
wrote (the message body only: `encode()` leaves the request/response header out unless asked),
and the value Brook must decode them to, as a Swift expression. The values, not Brook's
definitions, decide the bytes.

Brook's `.def` files are read (with scripts/protogen.py's parser) to spell that expression: the
Swift property names, and which integers Swift wraps in a typed number (`Offset(5)` rather than
`5`). Neither changes the wire bytes. On the way the script checks that, in every version, Kafka's
schema and Brook's definition have the same fields in the same order under the same names, and
stops with an error where they differ.

Extra fixtures:
  - tagged structs written at their default value: kafka-python writes a tagged struct field
    whenever it is not None, even when every field in it has its default (Kafka's Java code and
    Brook skip it). That is valid: a reader must accept it. Brook decodes it to the default and
    re-encodes without it, so these fixtures carry the shorter bytes Brook writes as well.
  - request and response headers (`encode(header=True)`), for the header tests.

Deterministic: rerunning writes the same file.
"""
import importlib.util
import json
import os
import sys
import types
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
OUT = os.environ.get("GOLDEN_OUT") or os.path.join(HERE, "..", "GoldenFixtures.swift")

import kafka  # noqa: E402
import kafka.protocol.api_data  # noqa: E402
from kafka.protocol.admin import (  # noqa: E402
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    ElectLeadersRequest, ElectLeadersResponse, AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListGroupsRequest, ListGroupsResponse,
    ListTransactionsRequest, ListTransactionsResponse,
)
from kafka.protocol.admin.cluster import (  # noqa: E402
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
)
from kafka.protocol.admin.acl import (  # noqa: E402
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
)
from kafka.protocol.admin.client_quotas import (  # noqa: E402
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
)
from kafka.protocol.admin.users import (  # noqa: E402
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
)
from kafka.protocol.sasl import (  # noqa: E402
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
)
from kafka.protocol.api_message import ApiMessage  # noqa: E402
from kafka.protocol.consumer import (  # noqa: E402
    FetchRequest, FetchResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, SyncGroupRequest, SyncGroupResponse,
)
from kafka.protocol.metadata import (  # noqa: E402
    ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse,
)
from kafka.protocol.admin.topics import (  # noqa: E402
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
)
from kafka.protocol.admin.cluster import UpdateFeaturesRequest, UpdateFeaturesResponse  # noqa: E402
from kafka.protocol.admin.configs import ListConfigResourcesRequest, ListConfigResourcesResponse  # noqa: E402
from kafka.protocol.producer import (  # noqa: E402
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
)
from kafka.protocol.schemas.load_json import _resolve_common_structs  # noqa: E402

# The APIs kafka-python 3.0.12 ships no schema for. Their schemas are read from a Kafka 4.0.0
# checkout's clients/src/main/resources/common/message/ directory, named by KAFKA_MESSAGE_DIR (not
# kept in this repository). kafka-python's own codec encodes them, as it does the schemas it
# ships: only the schema comes from Kafka, not the encoding. Without the directory these APIs
# get no fixtures.
KAFKA_MESSAGE_DIR = os.environ.get("KAFKA_MESSAGE_DIR")


def _kafka_schema(name):
    with open(os.path.join(KAFKA_MESSAGE_DIR, name + ".json")) as f:
        text = "\n".join(line for line in f if not line.lstrip().startswith("//"))
    return json.loads(text)


def kafka_message(name):
    """A kafka-python message class built from a schema in KAFKA_MESSAGE_DIR (kafka-python reads a
    class's schema from its package by the class's name; here it is handed that one instead)."""
    schema = _kafka_schema(name)
    commons = {c["name"]: c["fields"] for c in schema.get("commonStructs", [])}
    if commons:
        _resolve_common_structs(schema["fields"], commons)
    shipped = kafka.protocol.api_data.load_json
    kafka.protocol.api_data.load_json = lambda n, package=None: schema if n == name else shipped(n, package)
    try:
        return types.new_class(name, (ApiMessage,))
    finally:
        kafka.protocol.api_data.load_json = shipped


KIP848_APIS = {}
if KAFKA_MESSAGE_DIR:
    for _api in ("ConsumerGroupHeartbeat", "ConsumerGroupDescribe", "UnregisterBroker"):
        if not os.path.exists(os.path.join(KAFKA_MESSAGE_DIR, _api + "Request.json")):
            print(f"KAFKA_MESSAGE_DIR has no schema of {_api}: no fixtures for it", file=sys.stderr)
            continue
        KIP848_APIS[_api] = (kafka_message(_api + "Request"), kafka_message(_api + "Response"))
else:
    print("KAFKA_MESSAGE_DIR not set: no fixtures for ConsumerGroupHeartbeat, ConsumerGroupDescribe and UnregisterBroker", file=sys.stderr)

spec = importlib.util.spec_from_file_location("protogen", os.path.join(ROOT, "scripts", "protogen.py"))
protogen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protogen)

CLASSES = {
    "ApiVersions": (ApiVersionsRequest, ApiVersionsResponse),
    "Metadata": (MetadataRequest, MetadataResponse),
    "Produce": (ProduceRequest, ProduceResponse),
    "Fetch": (FetchRequest, FetchResponse),
    "ListOffsets": (ListOffsetsRequest, ListOffsetsResponse),
    "CreateTopics": (CreateTopicsRequest, CreateTopicsResponse),
    "DeleteTopics": (DeleteTopicsRequest, DeleteTopicsResponse),
    "CreatePartitions": (CreatePartitionsRequest, CreatePartitionsResponse),
    "DescribeConfigs": (DescribeConfigsRequest, DescribeConfigsResponse),
    "AlterConfigs": (AlterConfigsRequest, AlterConfigsResponse),
    "IncrementalAlterConfigs": (IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse),
    "DescribeCluster": (DescribeClusterRequest, DescribeClusterResponse),
    "DescribeTopicPartitions": (DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse),
    "UpdateFeatures": (UpdateFeaturesRequest, UpdateFeaturesResponse),
    "ListConfigResources": (ListConfigResourcesRequest, ListConfigResourcesResponse),
    "DescribeQuorum": (DescribeQuorumRequest, DescribeQuorumResponse),
    "DeleteRecords": (DeleteRecordsRequest, DeleteRecordsResponse),
    "OffsetForLeaderEpoch": (OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse),
    "DescribeLogDirs": (DescribeLogDirsRequest, DescribeLogDirsResponse),
    "AlterReplicaLogDirs": (AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse),
    "ElectLeaders": (ElectLeadersRequest, ElectLeadersResponse),
    "AlterPartitionReassignments": (AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse),
    "ListPartitionReassignments": (ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse),
    "FindCoordinator": (FindCoordinatorRequest, FindCoordinatorResponse),
    "JoinGroup": (JoinGroupRequest, JoinGroupResponse),
    "Heartbeat": (HeartbeatRequest, HeartbeatResponse),
    "LeaveGroup": (LeaveGroupRequest, LeaveGroupResponse),
    "SyncGroup": (SyncGroupRequest, SyncGroupResponse),
    "DescribeGroups": (DescribeGroupsRequest, DescribeGroupsResponse),
    "ListGroups": (ListGroupsRequest, ListGroupsResponse),
    "DeleteGroups": (DeleteGroupsRequest, DeleteGroupsResponse),
    "OffsetCommit": (OffsetCommitRequest, OffsetCommitResponse),
    "OffsetFetch": (OffsetFetchRequest, OffsetFetchResponse),
    "OffsetDelete": (OffsetDeleteRequest, OffsetDeleteResponse),
    "InitProducerId": (InitProducerIdRequest, InitProducerIdResponse),
    "AddPartitionsToTxn": (AddPartitionsToTxnRequest, AddPartitionsToTxnResponse),
    "AddOffsetsToTxn": (AddOffsetsToTxnRequest, AddOffsetsToTxnResponse),
    "EndTxn": (EndTxnRequest, EndTxnResponse),
    "TxnOffsetCommit": (TxnOffsetCommitRequest, TxnOffsetCommitResponse),
    "DescribeProducers": (DescribeProducersRequest, DescribeProducersResponse),
    "DescribeTransactions": (DescribeTransactionsRequest, DescribeTransactionsResponse),
    "ListTransactions": (ListTransactionsRequest, ListTransactionsResponse),
    # kafka-python ships this schema without a class for it: one is made from the schema.
    "WriteTxnMarkers": (types.new_class("WriteTxnMarkersRequest", (ApiMessage,)),
                        types.new_class("WriteTxnMarkersResponse", (ApiMessage,))),
    "SaslHandshake": (SaslHandshakeRequest, SaslHandshakeResponse),
    "SaslAuthenticate": (SaslAuthenticateRequest, SaslAuthenticateResponse),
    "DescribeUserScramCredentials": (DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse),
    "AlterUserScramCredentials": (AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse),
    "CreateAcls": (CreateAclsRequest, CreateAclsResponse),
    "DescribeAcls": (DescribeAclsRequest, DescribeAclsResponse),
    "DeleteAcls": (DeleteAclsRequest, DeleteAclsResponse),
    "DescribeClientQuotas": (DescribeClientQuotasRequest, DescribeClientQuotasResponse),
    "AlterClientQuotas": (AlterClientQuotasRequest, AlterClientQuotasResponse),
    **KIP848_APIS,
}

# kafka-python renames a few fields of Kafka's schemas (json_patch) and reads them as bit sets
# (DescribeGroups' AuthorizedOperations keeps its name: only its type is patched).
RENAMED = {"authorized_operations": ("ClusterAuthorizedOperations", "TopicAuthorizedOperations")}

SWIFT_INT = {"int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64", "uint16": "UInt16"}


class Sampler:
    """Deterministic sample values: a counter that every value draws from."""

    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        return self.n

    def scalar(self, kind, default, name):
        n = self.next()
        if kind == "int8":
            v = n % 100 + 2
        elif kind == "int16":
            v = 0x1234 + n
        elif kind == "int32":
            v = 0x12345678 + n
        elif kind == "int64":
            v = 0x0102030405060708 + n
        elif kind == "uint16":
            v = 0xF000 + n  # above Int16.max: must stay unsigned
        elif kind == "bool":
            return not bool(default)
        elif kind == "string":
            return f"{name}-{n}" + ("-\u00e9\u65e5" if n % 3 == 0 else "")
        elif kind == "uuid":
            return uuid.UUID(int=(0x0123456789ABCDEF << 64) | (0xFEDCBA9800000000 + n))
        elif kind in ("records", "bytes"):
            return bytes((n * 7 + i) % 256 for i in range(n % 5 + 3))
        elif kind == "float64":
            return 1048576.25 * n  # exact in binary, so its decimal form round-trips
        else:
            raise ValueError(kind)
        if v == default:
            v += 1
        return v


def camel(name):
    return name[0].lower() + name[1:]


def swift_string(s):
    out = []
    for ch in s:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def swift_uuid(u):
    return f"KafkaUUID(high: 0x{u.int >> 64:016X}, low: 0x{u.int & ((1 << 64) - 1):016X})"


def bitfield_value(bits):
    if bits is None:
        bits = {31}
    value = 0
    for b in bits:
        value |= 1 << b
    return value - (1 << 32) if value >= 1 << 31 else value


class Builder:
    """Builds a kafka-python value and the Swift expression of the same value, walking Kafka's
    schema (kafka-python's fields) and Brook's definition side by side."""

    def __init__(self, api, version, variant, tagged_structs="sample"):
        self.api = api
        self.version = version
        self.variant = variant
        # "sample": tagged structs get sample values; "default": written with every field at its
        # default (kafka-python only); "omit": left out (what Brook decodes "default" to).
        self.tagged_structs = tagged_structs
        self.defaulted = []  # paths of the tagged structs written at their default
        self.sampler = Sampler()

    def def_field(self, defs, kp_field, where):
        """Brook's definition of a kafka-python field, checked to be the same field."""
        wanted = kp_field._json["name"]
        names = (wanted,) + RENAMED.get(kp_field.name, ())
        for f in defs:
            if f.name in names and f.versions.low <= self.version <= f.versions.high:
                return f
        raise SystemExit(f"{where}.{wanted} v{self.version}: Kafka's schema has it, Brook's definition does not")

    def fields_in_version(self, kp_fields):
        return [f for f in kp_fields.values() if f.for_version_q(self.version)]

    def struct(self, data_class, kp_fields, defs, commons, depth, where):
        """(kafka-python instance, Swift argument list) of one struct."""
        kwargs = {}
        args = []
        present = self.fields_in_version(kp_fields)
        ours = [f for f in defs if f.versions.low <= self.version <= f.versions.high]
        if len(present) != len(ours):
            raise SystemExit(f"{where} v{self.version}: Kafka has {[f._json['name'] for f in present]}, "
                             f"Brook has {[f.name for f in ours]}")
        for kp in present:
            ours_f = self.def_field(defs, kp, where)
            value, expr = self.value(kp, ours_f, commons, depth, f"{where}.{ours_f.name}")
            if value is not _OMIT:
                kwargs[kp.name] = value
            if expr is not None:
                args.append(f"{ours_f.swift_name.strip('`')}: {expr}")
        return data_class(**kwargs), args

    def value(self, kp, ours, commons, depth, where):
        v = self.version
        nullable = kp.nullable_for_version_q(v)
        tagged = kp.tagged_field_q(v)
        sparse = self.variant == "sparse"
        if kp._type_str == "bitfield":
            bits = None if sparse else {0, 3, 5}
            return bits, str(bitfield_value(bits))
        if tagged and sparse:
            return _OMIT, None  # left at its default: not written
        if kp.is_struct_array() or kp.is_struct():
            children = ours.children or commons[ours.type.base].fields
            cls = kp.data_class if kp.is_struct() else kp.array_of.data_class
            kp_fields = kp.fields
            if kp.is_struct():
                if tagged and self.tagged_structs == "default":
                    # every field at its default: kafka-python still writes it
                    inst = cls(**{f.name: f.default for f in self.fields_in_version(kp_fields)})
                    self.defaulted.append(where)
                    return inst, None
                if tagged and self.tagged_structs == "omit":
                    return _OMIT, None
                if nullable and sparse:
                    return None, "nil"
                inst, args = self.struct(cls, kp_fields, children, commons, depth + 1, where)
                if nullable:
                    return inst, f".some(.init({', '.join(args)}))"
                return inst, f".init({', '.join(args)})"
            if nullable and sparse:
                return None, "nil"
            count = (2 if depth == 0 else 1) if not sparse else 1
            items, exprs = [], []
            for _ in range(count):
                inst, args = self.struct(cls, kp_fields, children, commons, depth + 1, where)
                items.append(inst)
                exprs.append(f".init({', '.join(args)})")
            return items, "[" + ", ".join(exprs) + "]"
        if kp.is_array():
            if nullable and sparse:
                return None, "nil"
            kind = kp.array_of._type_str
            count = 0 if sparse else 3
            vals = [self.sampler.scalar(kind, None, camel(kp._json["name"])) for _ in range(count)]
            return vals, "[" + ", ".join(self.swift_scalar(kind, x, ours) for x in vals) + "]"
        kind = kp._type_str
        if nullable and sparse:
            return None, "nil"
        if sparse and kind in ("string", "bytes"):
            return "", swift_string("") if kind == "string" else "ByteBuffer()"
        if sparse and kind == "records":
            return b"", ".bytes(ByteBuffer())"
        x = self.sampler.scalar(kind, kp.default, camel(kp._json["name"]))
        return x, self.swift_scalar(kind, x, ours)

    def swift_scalar(self, kind, x, ours):
        if kind in SWIFT_INT:
            text = str(x)
            return f"{ours.type.typed}({text})" if ours.type.typed else text
        if kind == "bool":
            return "true" if x else "false"
        if kind == "string":
            return swift_string(x)
        if kind == "uuid":
            return swift_uuid(x)
        if kind == "records":
            return ".bytes(ByteBuffer(bytes: [" + ", ".join(f"0x{b:02X}" for b in x) + "]))"
        if kind == "bytes":
            return "ByteBuffer(bytes: [" + ", ".join(f"0x{b:02X}" for b in x) + "])"
        if kind == "float64":
            return repr(float(x))
        raise ValueError(kind)


class _Omit:
    pass


_OMIT = _Omit()


def sample(api, kind, cls, version, variant, tagged_structs="sample"):
    """(bytes kafka-python writes, Swift expression of the value, tagged structs at default)."""
    message = api.messages[kind]
    commons = {c.name: c for c in message.commons}
    builder = Builder(api, version, variant, tagged_structs)
    swift_type = f"{api.name}{kind.capitalize()}"
    data_class = cls[version]
    inst, args = builder.struct(data_class, cls._struct.fields, message.fields, commons, 0, swift_type)
    body = inst.encode(version=version)
    return body, f"{swift_type}({', '.join(args)})", builder.defaulted


def main(argv):
    apis = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "protocol", "messages"))):
        if name.endswith(".def"):
            api = protogen.parse(os.path.join(ROOT, "protocol", "messages", name), "api")
            apis[api.name] = api
    # --only NAME: print just that API's fixture blocks (to add one API's fixtures when the
    # schemas of the others from KAFKA_MESSAGE_DIR are not at hand).
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    if only:
        apis = {only: apis[only]}
    missing = sorted(set(apis) - set(CLASSES))
    if missing:
        raise SystemExit(f"no kafka-python classes listed for {missing}: add them to CLASSES (or hand-written fixtures)")

    lines = [
        "// Generated by Tests/BrookProtocolTests/golden/make_golden.py from kafka-python "
        f"{kafka.__version__}: do not edit.",
        "// Message bodies encoded by kafka-python (from Kafka's JSON schemas), with the value Brook must",
        "// decode each to. Rerun the script to regenerate.",
        "import BrookCore",
        "import BrookProtocol",
        "import NIOCore",
        "",
        "enum GoldenFixtures {",
    ]
    per_api = []
    summary = []
    for name in sorted(apis, key=lambda n: apis[n].key):
        api = apis[name]
        req_cls, resp_cls = CLASSES[name]
        ident = camel(name)
        for kind, cls in (("request", req_cls), ("response", resp_cls)):
            low, high = cls.valid_versions  # from Kafka's JSON
            versions = [v for v in range(api.versions.low, api.versions.high + 1) if low <= v <= high]
            skipped = [v for v in range(api.versions.low, api.versions.high + 1) if not low <= v <= high]
            if skipped:
                raise SystemExit(f"{name} {kind}: kafka-python lacks versions {skipped}: write those by hand")
            var = f"{ident}{kind.capitalize()}s"
            per_api.append(var)
            lines.append(f"    static var {var}: [GoldenFixture] {{")
            lines.append("        [")
            for v in versions:
                for variant in ("full", "sparse"):
                    body, expr, _ = sample(api, kind, cls, v, variant)
                    lines.append(f"            GoldenFixture({name}{kind.capitalize()}.self, version: {v}, "
                                 f"variant: \"{variant}\",")
                    lines.append(f"                          hex: \"{body.hex()}\",")
                    lines.append(f"                          expected: {expr}),")
                    summary.append((name, kind, v, variant))
                # A tagged struct written at its default (kafka-python only).
                body_with, _, defaults = sample(api, kind, cls, v, "full", tagged_structs="default")
                if defaults:
                    # Brook decodes them to the defaults and writes the message without them.
                    body_without, expr, _ = sample(api, kind, cls, v, "full", tagged_structs="omit")
                    assert len(body_without) < len(body_with)
                    lines.append(f"            GoldenFixture({name}{kind.capitalize()}.self, version: {v}, "
                                 f"variant: \"tagged struct at default: {', '.join(dict.fromkeys(defaults))}\",")
                    lines.append(f"                          hex: \"{body_with.hex()}\",")
                    lines.append(f"                          reencodedHex: \"{body_without.hex()}\",")
                    lines.append(f"                          expected: {expr}),")
                    summary.append((name, kind, v, "tagged-default"))
            lines.append("        ]")
            lines.append("    }")
            lines.append("")

    if only:
        print("\n".join(lines[lines.index("enum GoldenFixtures {") + 1:]))
        return 0
    lines.append("    static var all: [GoldenFixture] {")
    lines.append("        " + " + ".join(per_api))
    lines.append("    }")
    lines.append("")
    lines += header_fixtures()
    lines.append("}")
    text = "\n".join(lines) + "\n"

    if "--check" in argv:
        current = open(OUT).read() if os.path.exists(OUT) else ""
        if current != text:
            print("make_golden: GoldenFixtures.swift is out of date: rerun the script", file=sys.stderr)
            return 1
        print(f"make_golden: {len(summary)} fixtures up to date")
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    print(f"make_golden: wrote {len(summary)} body fixtures to {os.path.relpath(OUT, ROOT)}")
    return 0


def header_fixtures():
    """Whole messages (header + body) as kafka-python frames them, for the header tests."""
    cases = [
        # (class, version, correlation id, client id)
        (ApiVersionsRequest, 0, 1, "kafka-python"),
        (ApiVersionsRequest, 3, 2, "kafka-python"),
        (ApiVersionsRequest, 4, 3, None),
        (MetadataRequest, 8, 4, "c\u00e9"),
        (MetadataRequest, 9, 5, "client"),
        (MetadataRequest, 12, 6, None),
        (ProduceRequest, 8, 7, "p"),
        (ProduceRequest, 9, 0x7FFFFFFF, ""),
        (FetchRequest, 12, -5, "fetcher"),
        (DescribeClusterRequest, 0, 9, "admin"),
    ]
    out = ["    /// Requests with their header (v1 or v2) as kafka-python writes them: "
           "(api key, version, correlation id, client id, bytes).",
           "    static let requestHeaders: [HeaderFixture] = ["]
    for cls, version, correlation, client in cases:
        message = cls[version]()
        message.with_header(correlation_id=correlation, client_id=client)
        data = message.encode(header=True)
        body = message.encode()
        client_expr = "nil" if client is None else swift_string(client)
        out.append(f"        HeaderFixture(apiKey: {cls.API_KEY}, version: {version}, correlationID: {correlation}, "
                   f"clientID: {client_expr}, hex: \"{data.hex()}\", bodyBytes: {len(body)}),")
    out.append("    ]")
    out.append("")
    responses = [
        (ApiVersionsResponse, 0, 11),
        (ApiVersionsResponse, 3, 12),  # flexible body, but always the v0 header
        (ApiVersionsResponse, 4, 13),
        (MetadataResponse, 8, 14),
        (MetadataResponse, 9, 15),
        (FetchResponse, 11, 16),
        (FetchResponse, 12, 17),
        (DescribeClusterResponse, 0, 18),
    ]
    out.append("    /// Responses with their header (v0 or v1) as kafka-python writes them.")
    out.append("    static let responseHeaders: [HeaderFixture] = [")
    for cls, version, correlation in responses:
        message = cls[version]()
        message.with_header(correlation_id=correlation)
        data = message.encode(header=True)
        body = message.encode()
        out.append(f"        HeaderFixture(apiKey: {cls.API_KEY}, version: {version}, correlationID: {correlation}, "
                   f"clientID: nil, hex: \"{data.hex()}\", bodyBytes: {len(body)}),")
    out.append("    ]")
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Generates BrookProtocol's message types from protocol/messages/*.def (APIs: a request and a
response each) and protocol/metadata/*.def (KRaft metadata records: one data message each).

    scripts/protogen.py            write Sources/BrookProtocol/Generated/**/*.swift
    scripts/protogen.py --check    exit 1 if the committed files differ from what would be written

The format is described in protocol/README.md. The generated code leans on WireReader and
WireWriter (Sources/BrookProtocol/Wire*.swift) for every primitive; this script only decides
which primitive, in which versions, in which order.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Sources", "BrookProtocol", "Generated")
# (folder of protocol/, the top-level kind its files hold, folder of OUT its Swift goes to)
SOURCES = [("messages", "api", ""), ("metadata", "record", "Metadata")]

PRIMITIVES = {
    # wire type: (Swift type, reader method, writer method, default literal)
    "bool": ("Bool", "readBool", "writeBool", "false"),
    "int8": ("Int8", "readInt8", "writeInt8", "0"),
    "int16": ("Int16", "readInt16", "writeInt16", "0"),
    "int32": ("Int32", "readInt32", "writeInt32", "0"),
    "int64": ("Int64", "readInt64", "writeInt64", "0"),
    "uint16": ("UInt16", "readUInt16", "writeUInt16", "0"),
    "float64": ("Double", "readFloat64", "writeFloat64", "0"),
    "uuid": ("KafkaUUID", "readUUID", "writeUUID", ".zero"),
}
TYPED = {"Offset": "int64", "LeaderEpoch": "int32", "NodeID": "int32",
         "ProducerID": "int64", "ProducerEpoch": "int16"}
MAX_VERSION = 0x7FFF


class DefError(Exception):
    pass


class Versions:
    def __init__(self, text, where):
        m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text)
        if not m:
            raise DefError(f"{where}: bad versions '{text}'")
        self.low = int(m.group(1))
        if m.group(2) == "+":
            self.high = MAX_VERSION
        else:
            self.high = int(m.group(3)) if m.group(3) is not None else self.low
        if self.high < self.low:
            raise DefError(f"{where}: versions '{text}' run backwards")

    def condition(self, within):
        """A Swift condition on `version`, or None when the field is in every version of `within`."""
        parts = []
        if self.low > within.low:
            parts.append(f"version >= {self.low}")
        if self.high < within.high:
            parts.append(f"version <= {self.high}")
        return " && ".join(parts) or None

    def overlaps(self, other):
        return self.low <= other.high and other.low <= self.high


class FieldType:
    def __init__(self, text, where):
        self.nullable = text.endswith("?")
        text = text.rstrip("?")
        self.array = text.startswith("[")
        if self.array:
            if not text.endswith("]"):
                raise DefError(f"{where}: bad array type '{text}'")
            text = text[1:-1]
        self.typed = None
        if "@" in text:
            text, self.typed = text.split("@", 1)
            if TYPED.get(self.typed) != text:
                raise DefError(f"{where}: {self.typed} is not carried as {text}")
        self.base = text
        self.is_struct = text not in PRIMITIVES and text not in ("string", "bytes", "records")
        if self.is_struct and not re.fullmatch(r"[A-Z][A-Za-z0-9]*", text):
            raise DefError(f"{where}: unknown type '{text}'")

    def element_swift(self):
        if self.typed:
            return self.typed
        if self.base in PRIMITIVES:
            return PRIMITIVES[self.base][0]
        return {"string": "String", "bytes": "ByteBuffer", "records": "Records"}.get(self.base, self.base)

    def swift(self):
        t = self.element_swift()
        if self.array:
            t = f"[{t}]"
        if self.nullable or self.base == "records":
            t += "?"
        return t


class Field:
    def __init__(self, name, ftype, versions, options, where):
        self.name = name
        self.swift_name = name[0].lower() + name[1:]
        if self.swift_name in ("protocol", "default", "internal", "operator", "repeat", "extension"):
            self.swift_name = f"`{self.swift_name}`"
        self.type = ftype
        self.versions = versions
        self.tag = None
        self.default = None
        self.nullable_from = None
        self.children = []
        self.where = where
        for opt in options:
            key, _, value = opt.partition("=")
            if key == "tag":
                self.tag = int(value)
            elif key == "default":
                self.default = value
            elif key == "nullable":
                self.nullable_from = Versions(value, where)
                self.type.nullable = True
            else:
                raise DefError(f"{where}: unknown option '{opt}'")

    def default_literal(self):
        t = self.type
        if self.default is not None:
            d = self.default
            if d == "null":
                if not t.nullable:
                    raise DefError(f"{self.where}: default null on a non-nullable field")
                return "nil"
            if t.array or t.is_struct:
                raise DefError(f"{self.where}: defaults are for scalars")
            if t.typed:
                return f"{t.typed}({d})"
            return d
        if t.nullable or t.base == "records":
            return "nil"
        if t.array:
            return "[]"
        if t.is_struct:
            return f"{t.base}()"
        if t.typed:
            return f"{t.typed}(0)"
        if t.base == "string":
            return '""'
        if t.base == "bytes":
            return "ByteBuffer()"
        return PRIMITIVES[t.base][3]


class Struct:
    def __init__(self, name, fields, common=False):
        self.name = name
        self.fields = fields
        self.common = common


class Message:
    def __init__(self, kind, fields):
        self.kind = kind
        self.fields = fields
        self.commons = []


class Api:
    """An API (kind "api": a request and a response) or a data message (kind "record": one
    message, e.g. a KRaft metadata record, whose key is its record type)."""

    def __init__(self, kind, name, key, versions, flexible, source):
        self.kind = kind
        self.name = name
        self.key = key
        self.versions = versions
        self.flexible = flexible
        self.source = source  # the .def file, relative to ROOT
        self.out = ""  # the folder of OUT its Swift goes to
        self.messages = {}

    def message_kinds(self):
        return ("request", "response") if self.kind == "api" else ("record",)


def parse_header(words, where, source):
    """`api NAME key=N versions=A-B flexible=C+` or `record NAME ...` (same options)."""
    try:
        opts = dict(w.split("=", 1) for w in words[2:])
        key, versions, flexible = int(opts["key"]), opts["versions"], opts["flexible"]
    except (ValueError, KeyError):
        raise DefError(f"{where}: expected '{words[0]} NAME key=N versions=A-B flexible=C+|none'")
    flexible = None if flexible == "none" else Versions(flexible, where)
    return Api(words[0], words[1], key, Versions(versions, where), flexible, source)


def parse(path, kind):
    where_file = os.path.relpath(path, ROOT)
    api = None
    current = None  # Message or Struct being filled
    stack = []  # (indent, list of fields)
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            where = f"{where_file}:{number}"
            if "\t" in raw:
                raise DefError(f"{where}: tabs are not allowed")
            line = raw.rstrip()
            if not line.strip() or line.strip().startswith("#"):
                continue
            indent = len(line) - len(line.lstrip(" "))
            words = line.split()
            if indent == 0:
                if words[0] == kind and api is None and len(words) >= 2:
                    api = parse_header(words, where, where_file)
                    if kind == "record":  # the record's fields follow its header line
                        current = Message("record", [])
                        api.messages["record"] = current
                        stack = [(0, current.fields)]
                elif api is None:
                    raise DefError(f"{where}: a file here starts with '{kind} NAME key=N ...'")
                elif kind == "api" and words[0] in ("request", "response"):
                    current = Message(words[0], [])
                    api.messages[words[0]] = current
                    stack = [(0, current.fields)]
                elif words[0] == "struct" and len(words) == 4 and words[2] == "in":
                    current = Struct(words[1], [], common=True)
                    if words[3] not in api.messages:
                        raise DefError(f"{where}: struct in {words[3]} before the {words[3]} itself")
                    api.messages[words[3]].commons.append(current)
                    stack = [(0, current.fields)]
                elif kind == "api":
                    raise DefError(f"{where}: expected request, response or struct")
                else:
                    raise DefError(f"{where}: expected a field (indented) or struct NAME in record")
                continue
            if indent % 2:
                raise DefError(f"{where}: indent by two spaces per level")
            level = indent // 2
            while len(stack) > level:
                stack.pop()
            if len(stack) != level:
                raise DefError(f"{where}: indented too far")
            if len(words) < 3:
                raise DefError(f"{where}: a field needs a name, a type and versions")
            field = Field(words[0], FieldType(words[1], where), Versions(words[2], where), words[3:], where)
            stack[-1][1].append(field)
            stack.append((indent, field.children))
    if api is None or set(api.messages) != set(api.message_kinds()):
        needs = "an api line, a request and a response" if kind == "api" else "a record line"
        raise DefError(f"{where_file}: needs {needs}")
    if os.path.basename(path) != f"{api.name}.def":
        raise DefError(f"{where_file}: the file is named after its {kind}: {api.name}.def")
    return api


# ---------------------------------------------------------------------------------------------
# Swift emission


class Emitter:
    def __init__(self, api, message):
        self.api = api
        self.message = message
        self.commons = {s.name: s for s in message.commons}
        self.lines = []

    def out(self, level, text=""):
        self.lines.append(("    " * level + text) if text else "")

    def flexible_expr(self):
        f = self.api.flexible
        if f is None:
            return "false"
        return "true" if f.low <= self.api.versions.low else f"version >= {f.low}"

    def check_struct(self, field):
        t = field.type
        if t.is_struct and not field.children and t.base not in self.commons:
            raise DefError(f"{field.where}: struct {t.base} has no fields and no struct block")
        if not t.is_struct and field.children:
            raise DefError(f"{field.where}: only struct types take nested fields")

    # -- reading
    def read_scalar(self, t, r, nullable_from):
        if t.base in PRIMITIVES:
            expr = f"try {r}.{PRIMITIVES[t.base][1]}()"
            return f"{t.typed}({expr})" if t.typed else expr
        if t.base in ("string", "bytes"):
            kind = "String" if t.base == "string" else "Bytes"
            nullable = f"try {r}.readNullable{kind}(compact: flexible)"
            plain = f"try {r}.read{kind}(compact: flexible)"
            if not t.nullable or t.array:
                return plain
            if nullable_from is not None:
                return f"(version >= {nullable_from.low} ? {nullable} : {plain})"
            return nullable
        if t.base == "records":
            return f"try {r}.readRecords(compact: flexible)"
        return f"try {t.base}(from: &{r}, version: version)"

    def emit_read(self, level, field, r, target):
        t = field.type
        if t.array:
            count = f"try {r}.readNullableArrayCount(compact: flexible)" if t.nullable \
                else f"try {r}.readArrayCount(compact: flexible)"
            if t.nullable and field.nullable_from is not None:
                count = (f"(version >= {field.nullable_from.low} ? {count} : "
                         f"try {r}.readArrayCount(compact: flexible))")
            element = self.read_scalar(t, r, None) if not t.is_struct \
                else f"try {t.base}(from: &{r}, version: version)"
            if t.nullable:
                self.out(level, f"if let count = {count} {{")
                self.out(level + 1, f"var elements = {t.swift()[:-1]}()")
            else:
                self.out(level, f"do {{")
                self.out(level + 1, f"let count = {count}")
                self.out(level + 1, f"var elements = {t.swift()}()")
            # Reserve little up front: a count is bounded by the frame's bytes, not by memory.
            self.out(level + 1, "elements.reserveCapacity(min(count, 1024))")
            self.out(level + 1, f"for _ in 0..<count {{ elements.append({element}) }}")
            self.out(level + 1, f"{target} = elements")
            if t.nullable:
                self.out(level, "} else {")
                self.out(level + 1, f"{target} = nil")
            self.out(level, "}")
        elif t.is_struct and t.nullable:
            self.out(level, f"{target} = try {r}.readInt8() < 0 ? nil : {self.read_scalar(t, r, None)}")
        else:
            self.out(level, f"{target} = {self.read_scalar(t, r, field.nullable_from)}")

    # -- writing
    def write_scalar(self, t, w, value, nullable_expr):
        if t.base in PRIMITIVES:
            v = f"{value}.value" if t.typed else value
            return f"{w}.{PRIMITIVES[t.base][2]}({v})"
        if t.base == "string":
            if t.nullable and not t.array:
                return f"{w}.writeNullableString({value}, compact: flexible, nullable: {nullable_expr})"
            return f"{w}.writeString({value}, compact: flexible)"
        if t.base == "bytes":
            if t.nullable and not t.array:
                return f"{w}.writeNullableBytes({value}, compact: flexible, nullable: {nullable_expr})"
            return f"{w}.writeBytes({value}, compact: flexible)"
        if t.base == "records":
            return f"{w}.writeRecords({value}, compact: flexible)"
        return f"{value}.encode(to: &{w}, version: version)"

    def emit_write(self, level, field, w, value):
        t = field.type
        nullable_expr = "true"
        if field.nullable_from is not None:
            nullable_expr = f"version >= {field.nullable_from.low}"
        if t.array:
            if t.nullable:
                self.out(level, f"if let elements = {value} {{")
                self.out(level + 1, f"{w}.writeArrayCount(elements.count, compact: flexible)")
                self.out(level + 1, f"for element in elements {{ {self.write_scalar(t, w, 'element', None)} }}")
                self.out(level, "} else {")
                self.out(level + 1, f"{w}.writeNullArrayCount(compact: flexible, nullable: {nullable_expr})")
                self.out(level, "}")
            else:
                self.out(level, f"{w}.writeArrayCount({value}.count, compact: flexible)")
                self.out(level, f"for element in {value} {{ {self.write_scalar(t, w, 'element', None)} }}")
        elif t.is_struct and t.nullable:
            self.out(level, f"if let present = {value} {{")
            self.out(level + 1, f"{w}.writeInt8(1)")
            self.out(level + 1, self.write_scalar(t, w, "present", None))
            self.out(level, f"}} else {{ {w}.writeInt8(-1) }}")
        else:
            self.out(level, self.write_scalar(t, w, value, nullable_expr))

    # -- structs
    def emit_struct(self, level, name, fields, within, top=False):
        for f in fields:
            self.check_struct(f)
        record = self.api.kind == "record"
        conformance = ("KafkaDataMessage" if record else "KafkaMessage") if top else "Sendable, Equatable"
        if top and not record and any(f.swift_name == "throttleTimeMs" and f.type.swift() == "Int32" for f in fields):
            conformance += ", ThrottledResponse"
        self.out(level, f"public struct {name}: {conformance} {{")
        body = level + 1
        if top:
            self.out(body, f"public static let apiKey: Int16 = {self.api.key}")
            if record:
                self.out(body, f'public static let messageName = "{self.api.name}"')
            else:
                self.out(body, f'public static let apiName = "{self.api.name}"')
            self.out(body, f"public static let versions: ClosedRange<Int16> = "
                           f"{self.api.versions.low}...{self.api.versions.high}")
            flex = self.api.flexible.low if self.api.flexible else "nil"
            self.out(body, f"public static let flexibleFrom: Int16? = {flex}")
            self.out(body)
        for f in fields:
            self.out(body, f"public var {f.swift_name}: {f.type.swift()} = {f.default_literal()}")
        if fields or not top:
            self.out(body)
        self.out(body, "public init() {}")
        self.out(body)
        if fields:
            # Memberwise, with Kafka's defaults.
            params = ", ".join(f"{f.swift_name.strip('`')}: {f.type.swift()} = {f.default_literal()}" for f in fields)
            self.out(body, f"public init({params}) {{")
            for f in fields:
                self.out(body + 1, f"self.{f.swift_name} = {f.swift_name}")
            self.out(body, "}")
            self.out(body)
        self.emit_decoder(body, fields, within)
        self.out(body)
        self.emit_encoder(body, fields, within)
        if self.message.kind == "response" and self.carries_errors(fields):
            self.out(body)
            self.emit_error_visitor(body, fields)
        for f in fields:
            if f.type.is_struct and f.children:
                self.out(body)
                self.emit_struct(body, f.type.base, f.children, within)
        if top:
            for common in self.message.commons:
                self.out(body)
                self.emit_struct(body, common.name, common.fields, within)
        self.out(level, "}")

    # -- error codes (the broker's per-API error counts)
    def struct_fields(self, field):
        return field.children or (self.commons[field.type.base].fields if field.type.base in self.commons else [])

    def carries_errors(self, fields):
        """Whether an `ErrorCode` int16 is among `fields` or the structs under them."""
        for f in fields:
            if f.swift_name == "errorCode" and f.type.base == "int16" and not f.type.array:
                return True
            if f.type.is_struct and self.carries_errors(self.struct_fields(f)):
                return True
        return False

    def emit_error_visitor(self, level, fields):
        self.out(level, "public func visitErrorCodes(_ visit: (Int16) -> Void) {")
        body = level + 1
        for f in fields:
            name = f"self.{f.swift_name}"
            if f.swift_name == "errorCode" and f.type.base == "int16" and not f.type.array:
                self.out(body, f"visit({name}{'' if not f.type.nullable else ' ?? 0'})")
            elif f.type.is_struct and self.carries_errors(self.struct_fields(f)):
                if f.type.array and f.type.nullable:
                    self.out(body, f"for element in {name} ?? [] {{ element.visitErrorCodes(visit) }}")
                elif f.type.array:
                    self.out(body, f"for element in {name} {{ element.visitErrorCodes(visit) }}")
                elif f.type.nullable:
                    self.out(body, f"{name}?.visitErrorCodes(visit)")
                else:
                    self.out(body, f"{name}.visitErrorCodes(visit)")
        self.out(level, "}")

    def emit_decoder(self, level, fields, within):
        self.out(level, "public init(from reader: inout WireReader, version: Int16) throws(ProtocolError) {")
        body = level + 1
        self.out(body, "self.init()")
        untagged = [f for f in fields if f.tag is None]
        tagged = [f for f in fields if f.tag is not None]
        uses_flexible = bool(tagged) or any(
            f.type.array or f.type.base in ("string", "bytes", "records") for f in untagged)
        if uses_flexible or self.api.flexible:
            self.out(body, f"let flexible = {self.flexible_expr()}")
        for f in untagged:
            cond = f.versions.condition(within)
            if cond:
                self.out(body, f"if {cond} {{")
                self.emit_read(body + 1, f, "reader", f"self.{f.swift_name}")
                self.out(body, "}")
            else:
                self.emit_read(body, f, "reader", f"self.{f.swift_name}")
        if self.api.flexible:
            self.out(body, "if flexible {")
            self.out(body + 1, "for _ in 0..<(try reader.readTaggedFieldCount()) {")
            if tagged:
                self.out(body + 2, "var (tag, field) = try reader.readTaggedField()")
                self.out(body + 2, "switch tag {")
                for f in tagged:
                    cond = f.versions.condition(within)
                    self.out(body + 2, f"case {f.tag}{' where ' + cond if cond else ''}:")
                    self.emit_read(body + 3, f, "field", f"self.{f.swift_name}")
                self.out(body + 2, "default: break  // unknown tags are skipped")
                self.out(body + 2, "}")
            else:
                self.out(body + 2, "_ = try reader.readTaggedField()  // none known here: skipped")
            self.out(body + 1, "}")
            self.out(body, "}")
        self.out(level, "}")

    def emit_encoder(self, level, fields, within):
        self.out(level, "public func encode(to writer: inout WireWriter, version: Int16) {")
        body = level + 1
        untagged = [f for f in fields if f.tag is None]
        tagged = sorted((f for f in fields if f.tag is not None), key=lambda f: f.tag)
        if self.api.flexible:
            self.out(body, f"let flexible = {self.flexible_expr()}")
        elif any(f.type.array or f.type.base in ("string", "bytes", "records") for f in untagged):
            self.out(body, "let flexible = false")
        for f in untagged:
            cond = f.versions.condition(within)
            if cond:
                self.out(body, f"if {cond} {{")
                self.emit_write(body + 1, f, "writer", f"self.{f.swift_name}")
                self.out(body, "}")
            else:
                self.emit_write(body, f, "writer", f"self.{f.swift_name}")
        if self.api.flexible:
            self.out(body, "if flexible {")
            if not tagged:
                self.out(body + 1, "writer.writeTaggedFieldCount(0)")
            else:
                # A tagged field at its default is never written (librdkafka < 2.2 mis-skips them).
                conds = []
                for f in tagged:
                    c = f.versions.condition(within)
                    present = f"self.{f.swift_name} != {f.default_literal()}"
                    conds.append(f"({c}) && {present}" if c else present)
                self.out(body + 1, "var count = 0")
                for c in conds:
                    self.out(body + 1, f"if {c} {{ count += 1 }}")
                self.out(body + 1, "writer.writeTaggedFieldCount(count)")
                for f, c in zip(tagged, conds):
                    self.out(body + 1, f"if {c} {{")
                    self.out(body + 2, "var field = writer.nested()")
                    self.emit_write(body + 2, f, "field", f"self.{f.swift_name}")
                    self.out(body + 2, f"writer.writeTaggedField(tag: {f.tag}, field)")
                    self.out(body + 1, "}")
            self.out(body, "}")
        self.out(level, "}")


def generate(api):
    lines = [
        f"// Generated by scripts/protogen.py from {api.source}: do not edit.",
        "import BrookCore",
        "import NIOCore",
        "",
    ]
    for kind in api.message_kinds():
        message = api.messages[kind]
        emitter = Emitter(api, message)
        name = api.name if kind == "record" else f"{api.name}{kind.capitalize()}"
        emitter.emit_struct(0, name, message.fields, api.versions, top=True)
        lines.extend(emitter.lines)
        lines.append("")
    if api.kind == "api":
        lines.append(f"extension {api.name}Request: KafkaRequest {{")
        lines.append(f"    public typealias Response = {api.name}Response")
        lines.append("}")
    else:
        lines.pop()
    return "\n".join(lines) + "\n"


def generate_catalog(apis):
    lines = [
        "// Generated by scripts/protogen.py from protocol/messages/*.def: do not edit.",
        "",
        "/// Every API Brook has a definition for: key, name, the versions Kafka 4.0 defines, and",
        "/// the first flexible version (request header v2, response header v1 from there on).",
        "public enum ApiCatalog {",
        "    public struct Entry: Sendable {",
        "        public let key: Int16",
        "        public let name: String",
        "        public let versions: ClosedRange<Int16>",
        "        public let flexibleFrom: Int16?",
        "    }",
        "",
        "    public static let entries: [Entry] = [",
    ]
    for api in sorted(apis, key=lambda a: a.key):
        flex = api.flexible.low if api.flexible else "nil"
        lines.append(f'        Entry(key: {api.key}, name: "{api.name}", '
                     f"versions: {api.versions.low}...{api.versions.high}, flexibleFrom: {flex}),")
    lines += [
        "    ]",
        "",
        "    public static func entry(forKey key: Int16) -> Entry? {",
        "        entries.first { $0.key == key }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def parse_all():
    """Every definition, by kind; keys are unique within a kind (records have their own keys)."""
    parsed = {"api": [], "record": []}
    for folder, kind, out in SOURCES:
        directory = os.path.join(ROOT, "protocol", folder)
        for name in sorted(os.listdir(directory) if os.path.isdir(directory) else []):
            if name.endswith(".def"):
                api = parse(os.path.join(directory, name), kind)
                api.out = out
                parsed[kind].append(api)
    for kind, apis in parsed.items():
        seen = {}
        for api in apis:
            if api.key in seen:
                raise DefError(f"{api.source}: key {api.key} is also {seen[api.key]}'s")
            seen[api.key] = api.name
    return parsed


def outputs(parsed):
    """The generated files: path relative to OUT -> text. File names are unique across
    folders, as the Swift compiler wants within one module."""
    files = {}
    for api in parsed["api"] + parsed["record"]:
        files[os.path.join(api.out, f"{api.name}.swift")] = generate(api)
    files["ApiCatalog.swift"] = generate_catalog(parsed["api"])  # APIs only: records are not served
    names = [os.path.basename(n) for n in files]
    if len(set(names)) != len(names):
        raise DefError("two definitions generate the same Swift file name")
    return files


def existing_outputs():
    found = set()
    for directory, _, names in os.walk(OUT):
        found.update(os.path.relpath(os.path.join(directory, n), OUT) for n in names if n.endswith(".swift"))
    return found


def main(argv):
    check = "--check" in argv
    parsed = parse_all()
    files = outputs(parsed)
    summary = f"{len(parsed['api'])} APIs and {len(parsed['record'])} records"
    if check:
        stale = sorted(n for n in files if not os.path.exists(os.path.join(OUT, n))
                       or open(os.path.join(OUT, n)).read() != files[n])
        stale += sorted(existing_outputs() - set(files))
        if stale:
            print("protogen: generated Swift is out of date: " + ", ".join(stale), file=sys.stderr)
            print("run scripts/protogen.py and commit the result", file=sys.stderr)
            return 1
        print(f"protogen: {summary} up to date")
        return 0
    for n in existing_outputs() - set(files):
        os.remove(os.path.join(OUT, n))
    for n, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(OUT, n)), exist_ok=True)
        with open(os.path.join(OUT, n), "w") as f:
            f.write(text)
    print(f"protogen: wrote {len(files)} files for {summary}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except DefError as error:
        print(f"protogen: {error}", file=sys.stderr)
        sys.exit(2)

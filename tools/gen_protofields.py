#!/usr/bin/env python3
# -*- test-case-name: tests.test_kube_protobuf -*-
"""
Generate C{scaleagent/kube/_protofields.py}, the field tables that let
L{scaleagent.kube.protobuf} decode Kubernetes protobuf bodies.

The tables come from two sources in the C{k8s.io/api} and
C{k8s.io/apimachinery} modules pinned by the stand-in's C{go.mod}:

  - each package's C{generated.proto}: field numbers, proto types, repeated
    and map fields, message references;
  - the package's Go sources: the struct tags that decide the JSON form
    (C{json:"name,omitempty,omitzero"}, C{",inline"} embedding, C{"-"}),
    whether a field is a pointer, which messages stand for Go slices, which
    types have their own C{MarshalJSON}, and the kinds C{register.go} adds
    to the scheme.

Proto field names are almost always the JSON names; this tool takes the JSON
name from the Go tag whenever the two differ, and refuses to guess: a Go
construct it does not understand (an unknown custom marshaller, an
C{omitzero} on a type it cannot test for zero, an embedded pointer) is an
error, so a version bump cannot silently produce wrong tables.

Usage::

    tools/gen_protofields.py            # print the module to stdout
    tools/gen_protofields.py --write    # rewrite the committed module
    tools/gen_protofields.py --check    # exit 1 if the committed module is stale

The modules are located with C{go mod download -json} run in
C{tests/standin}, so Go must be installed; it reads the module cache and
needs the network only when the cache is cold.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "standin"
OUTPUT = ROOT / "scaleagent" / "kube" / "_protofields.py"

API_MODULE = "k8s.io/api"
APIMACHINERY_MODULE = "k8s.io/apimachinery"
APIEXTENSIONS_MODULE = "k8s.io/apiextensions-apiserver"

#: The k8s.io/api packages whose kinds we decode: every GA group a cluster
#: serves that a client might write to.  Alpha/beta versions are left out:
#: client-go's typed clients for them are not used by Rancher.
API_PACKAGES = (
    "admissionregistration/v1",
    "apps/v1",
    "authentication/v1",
    "authorization/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "certificates/v1",
    "coordination/v1",
    "core/v1",
    "discovery/v1",
    "events/v1",
    "flowcontrol/v1",
    "networking/v1",
    "node/v1",
    "policy/v1",
    "rbac/v1",
    "resource/v1",
    "scheduling/v1",
    "storage/v1",
)

#: The apimachinery packages the API types refer to.
APIMACHINERY_PACKAGES = (
    "pkg/api/resource",
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
)

#: Messages whose Go type has its own MarshalJSON, and the JSON form the
#: decoder gives them.  Every MarshalJSON found on a message type must be
#: listed here.
SPECIAL_FORMS = {
    "meta/v1.Time": "time",
    "meta/v1.MicroTime": "microtime",
    "meta/v1.Duration": "duration",
    "meta/v1.FieldsV1": "fieldsv1",
    # No API field refers to it, but it is a message, so it gets a form.
    "meta/v1.GroupVersion": "groupversion",
    "api/resource.Quantity": "quantity",
    # Embeds Quantity, whose MarshalJSON it promotes; a flag helper that no
    # API type uses.
    "api/resource.QuantityValue": "quantity",
    "util/intstr.IntOrString": "intorstring",
    "runtime.RawExtension": "rawextension",
    # Only ever the envelope, which the decoder reads by hand.
    "runtime.Unknown": "unknown",
}

#: The forms for which C{omitzero} can be evaluated by the decoder.
OMITZERO_FORMS = {"time", "microtime"}

_SCALARS = {
    "bool",
    "bytes",
    "double",
    "fixed32",
    "fixed64",
    "float",
    "int32",
    "int64",
    "sfixed32",
    "sfixed64",
    "sint32",
    "sint64",
    "string",
    "uint32",
    "uint64",
}


class GenerationError(Exception):
    """
    The sources contain something this tool cannot translate faithfully.
    """


# --- locating the modules -------------------------------------------------


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    directory: Path


def _go(arguments: list[str]) -> bytes:
    environment = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
    try:
        completed = subprocess.run(
            ["go", *arguments],
            cwd=STANDIN,
            env=environment,
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise GenerationError("the go command is not installed") from None
    except subprocess.CalledProcessError as error:
        raise GenerationError(
            f"go {' '.join(arguments)} failed: {error.stderr.decode(errors='replace')}"
        ) from None
    return completed.stdout


def _json_stream(output: bytes) -> list[dict]:
    """
    Split the concatenated JSON objects that C{go ... -json} prints.
    """
    decoder = json.JSONDecoder()
    text = output.decode()
    values = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return values
        value, position = decoder.raw_decode(text, position)
        values.append(value)


def locate_modules() -> dict[str, Module]:
    """
    Find the pinned API modules in the module cache, downloading if needed.

    @return: the modules by path.
    @raise GenerationError: if apiextensions-apiserver has entered the
        stand-in's module graph, which this tool does not handle yet.
    """
    wanted = [API_MODULE, APIMACHINERY_MODULE, APIEXTENSIONS_MODULE]
    listed = {
        entry["Path"]: entry
        for entry in _json_stream(_go(["list", "-m", "-e", "-json", *wanted]))
    }
    has_apiextensions = (
        APIEXTENSIONS_MODULE in listed
        and "Error" not in listed[APIEXTENSIONS_MODULE]
        and bool(listed[APIEXTENSIONS_MODULE].get("Version"))
    )
    if has_apiextensions:
        # Its JSONSchemaProps family has custom JSON marshallers this tool
        # does not model yet; fail rather than emit tables that decode CRDs
        # wrongly.
        raise GenerationError(
            f"{APIEXTENSIONS_MODULE} is now in the module graph; teach this "
            "tool its custom JSON types before including it"
        )
    modules = {}
    for path in (API_MODULE, APIMACHINERY_MODULE):
        entry = listed.get(path)
        if entry is None or "Error" in entry or not entry.get("Version"):
            raise GenerationError(f"{path} is not required by {STANDIN}/go.mod")
        version = entry["Version"]
        (download,) = _json_stream(_go(["mod", "download", "-json", f"{path}@{version}"]))
        if "Error" in download:
            raise GenerationError(f"cannot download {path}@{version}: {download['Error']}")
        modules[path] = Module(path, version, Path(download["Dir"]))
    return modules


# --- short names ------------------------------------------------------------


def short_package(go_package: str) -> str:
    """
    The name the tables use for a Go package: its import path without the
    module prefix, so C{k8s.io/api/core/v1} is C{core/v1} and
    C{k8s.io/apimachinery/pkg/apis/meta/v1} is C{meta/v1}.
    """
    for prefix in (
        "k8s.io/api/",
        "k8s.io/apimachinery/pkg/apis/",
        "k8s.io/apimachinery/pkg/",
    ):
        if go_package.startswith(prefix):
            return go_package[len(prefix) :]
    raise GenerationError(f"unexpected Go package {go_package}")


# --- .proto parsing ---------------------------------------------------------


@dataclass
class ProtoField:
    label: str  # "optional", "repeated", "required" or "map"
    type: str  # a scalar, or a message name as written in the file
    key_type: Optional[str]
    name: str
    number: int


@dataclass
class ProtoFile:
    package: str = ""
    go_package: str = ""
    messages: dict[str, list[ProtoField]] = field(default_factory=dict)


_PROTO_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"[^"]*"|[\w.]+|[{}<>;=,\[\]()]', re.S)


def _proto_tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        match = _PROTO_TOKEN.match(text, position)
        if match is None:
            raise GenerationError(f"unexpected proto text {text[position:position + 20]!r}")
        token = match.group()
        position = match.end()
        if not (token.isspace() or token.startswith("//") or token.startswith("/*")):
            tokens.append(token)
    return tokens


def parse_proto(text: str) -> ProtoFile:
    """
    Parse the subset of proto2 that go-to-protobuf writes: package, imports,
    file options and flat messages of optional/repeated/map fields.
    """
    tokens = _proto_tokens(text)
    result = ProtoFile()
    position = 0

    def take(expected: Optional[str] = None) -> str:
        nonlocal position
        if position >= len(tokens):
            raise GenerationError("unexpected end of proto file")
        token = tokens[position]
        if expected is not None and token != expected:
            raise GenerationError(f"expected {expected!r}, found {token!r}")
        position += 1
        return token

    while position < len(tokens):
        keyword = take()
        if keyword == "syntax":
            take("=")
            if take() != '"proto2"':
                raise GenerationError("only proto2 files are expected")
            take(";")
        elif keyword == "package":
            result.package = take()
            take(";")
        elif keyword == "import":
            take()
            take(";")
        elif keyword == "option":
            name = take()
            take("=")
            value = take()
            take(";")
            if name == "go_package":
                result.go_package = value.strip('"')
        elif keyword == "message":
            name = take()
            take("{")
            fields = []
            while tokens[position] != "}":
                label = take()
                key_type = None
                if label == "map":
                    take("<")
                    key_type = take()
                    take(",")
                    type_name = take()
                    take(">")
                elif label in ("optional", "repeated", "required"):
                    type_name = take()
                else:
                    raise GenerationError(f"unsupported construct {label!r} in message {name}")
                field_name = take()
                take("=")
                number = int(take())
                if tokens[position] == "[":
                    # Field options: only [packed = ...] would matter, and the
                    # decoder accepts both encodings of repeated scalars.
                    while take() != "]":
                        pass
                take(";")
                fields.append(ProtoField(label, type_name, key_type, field_name, number))
            take("}")
            result.messages[name] = fields
        else:
            raise GenerationError(f"unsupported top-level construct {keyword!r}")
    if not result.package or not result.go_package:
        raise GenerationError("proto file without package or go_package")
    return result


# --- Go source parsing ------------------------------------------------------


@dataclass
class GoField:
    name: str  # the Go field name; the type name for an embedded field
    type: str
    embedded: bool
    json_name: str  # "" when the tag gives none
    json_options: frozenset[str]
    json_skip: bool  # json:"-"
    proto_number: Optional[int]  # None when there is no protobuf tag


@dataclass
class GoPackage:
    #: The field lines of each struct: parsed only for structs that are
    #: messages, since helper structs may use forms we do not parse.
    structs: dict[str, list[str]] = field(default_factory=dict)
    named_types: dict[str, str] = field(default_factory=dict)
    json_marshalers: set[str] = field(default_factory=set)


_TYPE_STRUCT = re.compile(r"^type (\w+) struct ?\{(\})?$")
_TYPE_OTHER = re.compile(r"^type (\w+) (?:= )?(\S.*)$")
_MARSHAL_JSON = re.compile(r"^func \(\w+ \*?(\w+)\) MarshalJSON\(\)")
_FIELD_LINE = re.compile(
    r"^(?:(?P<name>[A-Za-z_]\w*)\s+)?(?P<type>[^\s`]+)\s*(?:`(?P<tag>[^`]*)`)?\s*(?://.*)?$"
)
_TAG_ITEM = re.compile(r'(\w+):"((?:[^"\\]|\\.)*)"')
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _parse_field(line: str, struct: str) -> GoField:
    match = _FIELD_LINE.match(line)
    if match is None or match.group("type") in ("struct", "interface"):
        raise GenerationError(f"cannot parse field {line!r} of struct {struct}")
    go_type = match.group("type")
    name = match.group("name")
    embedded = name is None
    if embedded:
        name = go_type.lstrip("*").rsplit(".", 1)[-1]
    tags = dict(_TAG_ITEM.findall(match.group("tag") or ""))
    json_name = ""
    json_options: frozenset[str] = frozenset()
    json_skip = False
    if "json" in tags:
        json_name, *options = tags["json"].split(",")
        json_options = frozenset(option for option in options if option)
        # encoding/json: a bare "-" drops the field; "-," names it "-".
        json_skip = tags["json"] == "-"
    proto_number = None
    if "protobuf" in tags and tags["protobuf"] != "-":
        proto_number = int(tags["protobuf"].split(",")[1])
    return GoField(name, go_type, embedded, json_name, json_options, json_skip, proto_number)


def parse_go_package(directory: Path) -> GoPackage:
    """
    Read the struct declarations, other named types and MarshalJSON methods
    of one Go package; the sources are gofmt'ed, which keeps this simple.
    """
    package = GoPackage()
    for path in sorted(directory.glob("*.go")):
        name = path.name
        if name.endswith("_test.go") or name.endswith(".pb.go") or name.startswith("zz_generated"):
            continue
        text = _BLOCK_COMMENT.sub("", path.read_text())
        lines = text.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            index += 1
            marshal = _MARSHAL_JSON.match(line)
            if marshal:
                package.json_marshalers.add(marshal.group(1))
                continue
            struct = _TYPE_STRUCT.match(line)
            if struct and struct.group(2):
                package.structs[struct.group(1)] = []
                continue
            if struct:
                body_lines = []
                while lines[index] != "}":
                    body = lines[index].strip()
                    index += 1
                    if body and not body.startswith("//"):
                        body_lines.append(body)
                index += 1
                package.structs[struct.group(1)] = body_lines
                continue
            other = _TYPE_OTHER.match(line)
            if other:
                package.named_types[other.group(1)] = other.group(2).split("//")[0].strip()
    return package


_REGISTER_GROUP = re.compile(r'^const GroupName = "([^"]*)"', re.M)
_REGISTER_VERSION = re.compile(
    r"^var SchemeGroupVersion = schema\.GroupVersion\{Group: GroupName, Version: \"(\w+)\"\}",
    re.M,
)
_ADD_KNOWN_TYPES = re.compile(r"AddKnownTypes\(SchemeGroupVersion,(.*?)\)\n", re.S)
_KNOWN_TYPE = re.compile(r"&(?:(\w+)\.)?(\w+)\{\}")


@dataclass(frozen=True)
class Registration:
    group: str
    version: str
    kinds: tuple[tuple[str, str], ...]  # (Go package alias or "", type name)
    with_meta: bool  # calls metav1.AddToGroupVersion


def parse_register(directory: Path) -> Registration:
    text = (directory / "register.go").read_text()
    group = _REGISTER_GROUP.search(text)
    version = _REGISTER_VERSION.search(text)
    if group is None or version is None:
        raise GenerationError(f"cannot find the group version in {directory}/register.go")
    kinds = []
    for call in _ADD_KNOWN_TYPES.finditer(text):
        kinds.extend(_KNOWN_TYPE.findall(call.group(1)))
    if not kinds:
        raise GenerationError(f"no AddKnownTypes in {directory}/register.go")
    return Registration(
        group.group(1),
        version.group(1),
        tuple(kinds),
        "metav1.AddToGroupVersion(scheme, SchemeGroupVersion)" in text,
    )


_META_OPTIONS = re.compile(r"^var optionsTypes = \[\]runtime\.Object\{(.*?)^\}", re.M | re.S)
_META_UNVERSIONED = re.compile(r"scheme\.AddUnversionedTypes\(Unversioned,(.*?)\)\n", re.S)
_META_WATCH_EVENT = re.compile(r'^const WatchEventKind = "(\w+)"', re.M)


def parse_meta_register(directory: Path) -> tuple[list[str], list[str], str]:
    """
    What C{metav1.AddToGroupVersion} adds to every group version.

    @return: the option kinds, the unversioned kinds, the watch event kind.
    """
    text = (directory / "register.go").read_text()
    options = _META_OPTIONS.search(text)
    unversioned = _META_UNVERSIONED.search(text)
    watch_event = _META_WATCH_EVENT.search(text)
    if options is None or unversioned is None or watch_event is None:
        raise GenerationError(f"cannot read {directory}/register.go")
    return (
        [name for _, name in _KNOWN_TYPE.findall(options.group(1))],
        [name for _, name in _KNOWN_TYPE.findall(unversioned.group(1))],
        watch_event.group(1),
    )


# --- building the tables ----------------------------------------------------


@dataclass
class Package:
    module: str
    short: str
    proto: ProtoFile
    go: GoPackage
    directory: Path


class TableBuilder:
    """
    Join proto messages with their Go structs into the emitted tables.
    """

    def __init__(self, packages: list[Package]) -> None:
        self.packages = {package.short: package for package in packages}
        self.by_proto_package = {package.proto.package: package for package in packages}
        self.messages: dict[str, tuple[str, list[tuple]]] = {}
        #: Where proto and JSON names disagree: printed with --verbose.
        self.renames: list[str] = []

    def resolve(self, package: Package, type_name: str) -> str:
        """
        Turn a proto type reference into a table name such as C{core/v1.Pod}.
        """
        if type_name in _SCALARS:
            return type_name
        if type_name.startswith("."):
            proto_package, _, message = type_name[1:].rpartition(".")
            target = self.by_proto_package.get(proto_package)
            if target is None:
                raise GenerationError(f"{type_name} is in a package that is not included")
        else:
            target, message = package, type_name
        if message not in target.proto.messages:
            raise GenerationError(f"unknown message {type_name} in {package.short}")
        return f"{target.short}.{message}"

    def build(self) -> None:
        for package in self.packages.values():
            for name in package.proto.messages:
                full = f"{package.short}.{name}"
                if name in package.go.json_marshalers and full not in SPECIAL_FORMS:
                    raise GenerationError(f"{full} has an unknown custom JSON marshaller")
                self.messages[full] = self._message(package, name)
        for name, (form, _) in self.messages.items():
            if form == "object":
                self._json_members(name)

    def _json_members(self, name: str) -> list[str]:
        """
        The JSON member names of an object message, promoted ones included.

        encoding/json silently drops promoted members whose names collide;
        the decoder does not model that, so a collision is an error.
        """
        members = []
        for number, json_name, type_name, flags in self.messages[name][1]:
            if "i" in flags:
                members.extend(self._json_members(type_name))
            else:
                members.append(json_name)
        duplicates = sorted({member for member in members if members.count(member) > 1})
        if duplicates:
            raise GenerationError(f"{name}: JSON members {duplicates} collide")
        return members

    def _message(self, package: Package, name: str) -> tuple[str, list[tuple]]:
        full = f"{package.short}.{name}"
        proto_fields = package.proto.messages[name]
        if full in SPECIAL_FORMS:
            # The decoder turns these into JSON with its own code; the table
            # only says how their proto fields are numbered.
            return SPECIAL_FORMS[full], [
                (proto.number, proto.name, self._type(package, proto), self._proto_flags(proto))
                for proto in proto_fields
            ]
        struct_package, struct_lines = self.struct_of(package, name)
        if struct_lines is None:
            underlying = package.go.named_types.get(name, "")
            if (
                underlying.startswith("[]")
                and len(proto_fields) == 1
                and proto_fields[0].name == "items"
                and proto_fields[0].number == 1
                and proto_fields[0].label == "repeated"
            ):
                # go-to-protobuf wraps a named slice (metav1.Verbs,
                # ExtraValue) in a message; JSON shows the bare array.
                proto = proto_fields[0]
                return "array", [(1, "items", self._type(package, proto), "r")]
            raise GenerationError(f"no Go struct for {full} (underlying {underlying!r})")
        by_number = {proto.number: proto for proto in proto_fields}
        fields = []
        seen = set()
        for line in struct_lines:
            go_field = _parse_field(line, full)
            if go_field.proto_number is None:
                fields.extend(self._json_only_field(struct_package, full, go_field))
                continue
            proto = by_number.get(go_field.proto_number)
            if proto is None:
                raise GenerationError(
                    f"{full}.{go_field.name} has protobuf number {go_field.proto_number} "
                    "which the .proto file does not define"
                )
            seen.add(proto.number)
            fields.append(self._field(package, full, go_field, proto))
        missing = set(by_number) - seen
        if missing:
            raise GenerationError(f"{full}: proto fields {sorted(missing)} have no Go field")
        return "object", fields

    def _json_only_field(self, package: Package, full: str, go_field: GoField) -> list[tuple]:
        """
        A Go field that protobuf never carries still shows in the JSON of the
        decoded object unless it is omitted there too.
        """
        if go_field.json_skip:
            return []
        if go_field.embedded and go_field.type in ("metav1.TypeMeta", "TypeMeta"):
            # Filled from the envelope for the top-level object; absent (and
            # omitted) in nested ones.
            return [(0, "", self.resolve_go_type(package, go_field.type), "i")]
        raise GenerationError(f"{full}.{go_field.name} has JSON but no protobuf tag")

    def struct_of(self, package: Package, name: str) -> tuple[Package, Optional[list[str]]]:
        """
        The Go struct behind a message, following a definition such as
        core/v1's C{type List metav1.List}.

        @return: the package the struct is declared in (its field types are
            relative to it), and its field lines or C{None} if the type is
            not a struct.
        """
        if name in package.go.structs:
            return package, package.go.structs[name]
        underlying = package.go.named_types.get(name, "")
        if underlying.startswith("metav1."):
            meta = self.packages["meta/v1"]
            return self.struct_of(meta, underlying[len("metav1.") :])
        return package, None

    def resolve_go_type(self, package: Package, go_type: str) -> str:
        alias, _, name = go_type.lstrip("*").rpartition(".")
        if not alias:
            return f"{package.short}.{name}"
        if alias == "metav1":
            return f"meta/v1.{name}"
        raise GenerationError(f"cannot resolve Go type {go_type} in {package.short}")

    def _type(self, package: Package, proto: ProtoField) -> str:
        value = self.resolve(package, proto.type)
        if proto.label == "map":
            if proto.key_type not in _SCALARS:
                raise GenerationError(f"map key {proto.key_type} is not a scalar")
            return f"map<{proto.key_type},{value}>"
        return value

    @staticmethod
    def _proto_flags(proto: ProtoField) -> str:
        return "r" if proto.label == "repeated" else ""

    def _field(self, package: Package, full: str, go_field: GoField, proto: ProtoField) -> tuple:
        proto_type = self._type(package, proto)
        flags = self._proto_flags(proto)
        if go_field.json_skip:
            raise GenerationError(f"{full}.{go_field.name} is json:\"-\" in a plain struct")
        if go_field.embedded and not go_field.json_name:
            # encoding/json promotes the fields of an untagged embedded
            # struct into the parent object.
            if go_field.type.startswith("*"):
                raise GenerationError(f"{full}: embedded pointer {go_field.type} is not supported")
            if proto.label != "optional" and proto.label != "required":
                raise GenerationError(f"{full}: embedded {go_field.type} is not a single message")
            form = self.form_of(proto_type)
            if form != "object":
                raise GenerationError(f"{full}: embedded {go_field.type} has JSON form {form}")
            return (proto.number, "", proto_type, "i")
        json_name = go_field.json_name or go_field.name
        if json_name != proto.name:
            self.renames.append(f"{full}: proto {proto.name!r} is JSON {json_name!r}")
        if go_field.type.startswith("*"):
            flags += "p"
        elif proto.label == "optional" and self.form_of(proto_type) == "array":
            # A named slice (metav1.Verbs) wrapped in a message is nil when
            # absent, like a pointer.
            flags += "p"
        if "omitempty" in go_field.json_options:
            flags += "o"
        if "omitzero" in go_field.json_options:
            if proto.label != "optional" or self.form_of(proto_type) not in OMITZERO_FORMS:
                raise GenerationError(
                    f"{full}.{go_field.name}: omitzero on {proto_type} is not supported"
                )
            flags += "z"
        unknown = go_field.json_options - {"omitempty", "omitzero", "inline"}
        if unknown:
            # ",string" and friends change the JSON form.
            raise GenerationError(f"{full}.{go_field.name}: json options {sorted(unknown)}")
        return (proto.number, json_name, proto_type, flags)

    def form_of(self, table_type: str) -> str:
        if table_type in _SCALARS or table_type.startswith("map<"):
            return "scalar"
        if table_type in SPECIAL_FORMS:
            return SPECIAL_FORMS[table_type]
        short, _, name = table_type.rpartition(".")
        _, struct_lines = self.struct_of(self.packages[short], name)
        return "object" if struct_lines is not None else "array"


def build_kinds(
    packages: list[Package],
) -> tuple[dict[tuple[str, str, str], str], dict[str, str]]:
    """
    Map every (group, version, kind) the scheme knows to its message.

    @return: the versioned kinds, and the unversioned ones (which
        C{runtime.Scheme.New} finds by kind alone, in any group version).
    """
    by_short = {package.short: package for package in packages}
    meta = by_short["meta/v1"]
    options, unversioned, watch_event = parse_meta_register(meta.directory)
    kinds: dict[tuple[str, str, str], str] = {}

    def add(group: str, version: str, package: Package, name: str) -> None:
        if name in package.proto.messages:
            kinds[(group, version, name)] = f"{package.short}.{name}"

    for package in packages:
        if package.module != API_MODULE:
            continue
        registration = parse_register(package.directory)
        for alias, name in registration.kinds:
            source = meta if alias == "metav1" else package
            add(registration.group, registration.version, source, name)
        if registration.with_meta:
            for name in [watch_event, *options]:
                add(registration.group, registration.version, meta, name)
    # metav1 registers its options in meta.k8s.io/v1 too.
    for name in options:
        add("meta.k8s.io", "v1", meta, name)
    unversioned_kinds = {
        name: f"meta/v1.{name}" for name in unversioned if name in meta.proto.messages
    }
    return kinds, unversioned_kinds


def load_packages(modules: dict[str, Module]) -> list[Package]:
    directories = [(API_MODULE, name) for name in API_PACKAGES]
    directories += [(APIMACHINERY_MODULE, name) for name in APIMACHINERY_PACKAGES]
    packages = []
    for module, name in directories:
        directory = modules[module].directory / name
        proto = parse_proto((directory / "generated.proto").read_text())
        short = short_package(proto.go_package)
        packages.append(Package(module, short, proto, parse_go_package(directory), directory))
    if len({package.short for package in packages}) != len(packages):
        raise GenerationError("two packages share a short name")
    return packages


# --- rendering --------------------------------------------------------------

HEADER = '''\
# -*- test-case-name: tests.test_kube_protobuf -*-
"""
Field tables for decoding Kubernetes protobuf: generated by
tools/gen_protofields.py from the generated.proto files and Go sources of
{modules}.

DO NOT EDIT.  Regenerate with C{{tools/gen_protofields.py --write}}.

C{{MESSAGES[name] = (form, fields)}}.  Names are shortened Go import paths and
type names (C{{core/v1.Pod}}, C{{meta/v1.ObjectMeta}}, C{{util/intstr.IntOrString}}).  C{{form}} is
C{{"object"}} for plain structs, C{{"array"}} for a message wrapping a named Go
slice, or the custom JSON form of a type with its own C{{MarshalJSON}}
({special}).

Each field is C{{(number, json_name, type, flags)}}, in Go declaration order
(the order encoding/json writes them).  C{{type}} is a proto scalar, a
message name or C{{map<key,value>}}.  Number 0 marks a Go field protobuf never
carries.  Flags: C{{r}} repeated, C{{p}} Go pointer (or nilable named slice),
C{{o}} omitempty, C{{z}} omitzero, C{{i}} embedded struct whose fields JSON
promotes into the parent.

C{{KINDS[(group, version, kind)]}} is the message the scheme decodes for a
kind; C{{UNVERSIONED_KINDS}} are decoded in every group version.

k8s.io/apiextensions-apiserver is not in the stand-in's module graph, so
CustomResourceDefinition is not included (clients write CRDs as JSON).
"""
'''


def render(
    modules: dict[str, Module],
    builder: TableBuilder,
    kinds: dict[tuple[str, str, str], str],
    unversioned: dict[str, str],
) -> str:
    ordered = sorted(modules.values(), key=lambda module: module.path)
    module_names = " and ".join(f"{module.path} {module.version}" for module in ordered)
    special = ", ".join(sorted(set(SPECIAL_FORMS.values())))
    lines = [HEADER.format(modules=module_names, special=special)]
    lines.append("MODULES = {")
    for module in ordered:
        lines.append(f"    {module.path!r}: {module.version!r},")
    lines.append("}")
    lines.append("")
    lines.append("MESSAGES = {")
    for name in sorted(builder.messages):
        form, fields = builder.messages[name]
        lines.append(f"    {name!r}: ({form!r}, (")
        for entry in fields:
            lines.append(f"        {entry!r},")
        lines.append("    )),")
    lines.append("}")
    lines.append("")
    lines.append("KINDS = {")
    for key in sorted(kinds):
        lines.append(f"    {key!r}: {kinds[key]!r},")
    lines.append("}")
    lines.append("")
    lines.append("UNVERSIONED_KINDS = {")
    for kind in sorted(unversioned):
        lines.append(f"    {kind!r}: {unversioned[kind]!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(verbose: bool = False) -> str:
    modules = locate_modules()
    packages = load_packages(modules)
    builder = TableBuilder(packages)
    builder.build()
    kinds, unversioned = build_kinds(packages)
    if verbose:
        for rename in builder.renames:
            print(rename, file=sys.stderr)
    return render(modules, builder, kinds, unversioned)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"rewrite {OUTPUT.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    parser.add_argument("--verbose", action="store_true", help="list proto/JSON name differences")
    options = parser.parse_args(argv)
    try:
        text = generate(options.verbose)
    except GenerationError as error:
        print(f"gen_protofields: {error}", file=sys.stderr)
        return 2
    if options.write:
        OUTPUT.write_text(text)
        return 0
    if options.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            str(OUTPUT.relative_to(ROOT)),
            "generated",
            n=1,
        )
        sys.stderr.writelines(list(diff)[:60])
        print(
            f"gen_protofields: {OUTPUT.relative_to(ROOT)} is stale; run with --write",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

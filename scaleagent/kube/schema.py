# -*- test-case-name: tests.test_kube_openapi -*-
"""
Kubernetes' own API schemas: loaded once per process from the definitions
the C{kubernetes-validate} package ships, and looked up by name or kind, for
OpenAPI documents, strategic-merge patch metadata and strict field checks.

Where the schemas come from
===========================

C{kubernetes-validate} publishes, for every Kubernetes minor it supports, the
apiserver's own OpenAPI definitions converted to JSON Schema
(C{kubernetes-json-schema/v1.NN.0-local/_definitions.json}).  That
conversion is lossless for what we need (properties, C{required}, formats,
every C{x-kubernetes-*} extension including the patch strategies and merge
keys) except for three artefacts, which L{SchemaIndex.load} undoes:

  - every non-required field's C{type} gained C{"null"} (C{["string",
    "null"]}).  No built-in Kubernetes schema is nullable, so the C{"null"}
    is dropped; documents with C{nullable} would be visibly unlike a real
    apiserver's.
  - every kind's C{apiVersion} and C{kind} properties gained an C{enum}
    naming the kind's versions; the apiserver publishes no such enum.
  - C{IntOrString} and C{Quantity} lost their C{format}; they are recognised
    by their C{oneOf} member types and given the apiserver's shape back.

What is lost and not restored: C{default} values (the apiserver publishes
C{"default": {}} on non-pointer struct fields and a few scalar defaults).
Nothing that reads the documents for validation or patching uses them.

The canonical form kept in memory is the apiserver's Swagger 2.0 definition
form (C{"$ref": "#/definitions/<name>"}, one C{type} string); OpenAPI v3
documents get a converted copy (L{SchemaIndex.openapi_v3_schema}).  Every
dict returned by this module is shared between all clusters of the process:
callers must treat them as read-only.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

#: Where Swagger 2.0 documents (and our canonical form) point references.
V2_REFERENCE_PREFIX = "#/definitions/"

#: Where OpenAPI v3 documents point references.
V3_REFERENCE_PREFIX = "#/components/schemas/"

#: The extension naming the kinds a definition is the schema of.
GROUP_VERSION_KIND_EXTENSION = "x-kubernetes-group-version-kind"

PATCH_STRATEGY_EXTENSION = "x-kubernetes-patch-strategy"
PATCH_MERGE_KEY_EXTENSION = "x-kubernetes-patch-merge-key"
PRESERVE_UNKNOWN_FIELDS_EXTENSION = "x-kubernetes-preserve-unknown-fields"
EMBEDDED_RESOURCE_EXTENSION = "x-kubernetes-embedded-resource"
INT_OR_STRING_EXTENSION = "x-kubernetes-int-or-string"

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"

_PACKAGE = "kubernetes_validate"
_SCHEMA_DIRECTORY = "kubernetes-json-schema"
_VERSION_DIRECTORY = re.compile(r"^v1\.(\d+)\.0-local$")
_DEFINITIONS_FILE = "_definitions.json"
_JSON_SCHEMA_REFERENCE = re.compile(r"^.*#/\$defs/")

# Go types whose JSON form is decoded by their own UnmarshalJSON: any content
# is accepted, so strict field validation does not look inside them, and a
# strategic merge patch cannot descend into them (their Go struct has no JSON
# fields).
_OPAQUE_DEFINITIONS = frozenset(
    {
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "JSONSchemaPropsOrArray",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "JSONSchemaPropsOrBool",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "JSONSchemaPropsOrStringArray",
    }
)

# Keys of a CRD's openAPIV3Schema that a structural schema does not carry and
# that the apiserver therefore never publishes.
_NON_STRUCTURAL_KEYS = frozenset(
    {"$schema", "id", "example", "externalDocs", "definitions", "dependencies"}
)

# Value validations that Swagger 2.0 (and kubectl's v2 parser) cannot hold.
_V2_DROPPED_JUNCTORS = ("allOf", "oneOf", "anyOf", "not")


class SchemaError(Exception):
    """
    The shipped schemas cannot be found or read.
    """


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def shipped_minors() -> tuple[int, ...]:
    """
    The Kubernetes 1.x minors whose schemas the installed
    C{kubernetes-validate} ships, ascending.
    """
    return tuple(sorted(_version_directories()))


def _schema_root() -> Path:
    # find_spec locates the package without importing it: its __init__ pulls
    # in jsonschema and friends, which we have no use for.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SchemaError(f"the {_PACKAGE} package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / _SCHEMA_DIRECTORY


@functools.lru_cache(maxsize=1)
def _version_directories() -> Mapping[int, Path]:
    # What is installed does not change while the process runs.
    root = _schema_root()
    found = {}
    try:
        entries = list(root.iterdir())
    except OSError as error:
        raise SchemaError(f"cannot list {root}: {error}") from error
    for entry in entries:
        match = _VERSION_DIRECTORY.match(entry.name)
        if match and (entry / _DEFINITIONS_FILE).is_file():
            found[int(match.group(1))] = entry
    if not found:
        raise SchemaError(f"no schema versions under {root}")
    return found


def _nearest(minor: int, available: Iterable[int]) -> int:
    # On a tie the older minor wins: a client of an older server is more
    # likely to cope with fewer fields than with more.
    return min(available, key=lambda shipped: (abs(shipped - minor), shipped))


_loaded: dict[int, "SchemaIndex"] = {}
_loading = threading.Lock()


# ---------------------------------------------------------------------------
# Canonicalisation of kubernetes-validate's JSON Schema


def _canonical_reference(reference: str) -> str:
    return V2_REFERENCE_PREFIX + _JSON_SCHEMA_REFERENCE.sub("", reference)


def _canonical_type(value: Any) -> Optional[str]:
    if isinstance(value, list):
        types = [each for each in value if each != "null"]
        return types[0] if types else None
    return value


def _canonical(node: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            result[key] = _canonical_reference(value)
        elif key == "type":
            canonical_type = _canonical_type(value)
            if canonical_type is not None:
                result[key] = canonical_type
        elif key == "properties":
            properties = {}
            for name, child in value.items():
                child = _canonical(child)
                if name in ("apiVersion", "kind"):
                    # The enum is the converter's, not the apiserver's.
                    child.pop("enum", None)
                properties[name] = child
            result[key] = properties
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = _canonical(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            result[key] = [_canonical(each) for each in value]
        else:
            result[key] = value
    return result


def _canonical_definition(node: Mapping[str, Any]) -> dict[str, Any]:
    definition = _canonical(node)
    alternatives = definition.get("oneOf")
    if alternatives and "type" not in definition:
        types = {each.get("type") for each in alternatives}
        if types == {"integer", "string"}:
            # IntOrString, as kube-openapi publishes it in v3.
            definition["format"] = "int-or-string"
            definition["oneOf"] = [{"type": "integer"}, {"type": "string"}]
        elif types == {"number", "string"}:
            # Quantity.
            definition["oneOf"] = [{"type": "string"}, {"type": "number"}]
    return definition


def _definition_name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def _references(node: Any) -> Iterator[str]:
    """
    Every definition a schema node refers to, directly.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield _definition_name(value)
            elif isinstance(value, (dict, list)):
                yield from _references(value)
    elif isinstance(node, list):
        for each in node:
            yield from _references(each)


# ---------------------------------------------------------------------------
# Conversion to the published forms


def openapi_v3_form(node: Any) -> Any:
    """
    A schema node in the canonical (Swagger 2.0) form as OpenAPI v3
    documents carry it.
    """
    if isinstance(node, list):
        return [openapi_v3_form(each) for each in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "properties":
            converted[key] = {name: openapi_v3_form(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            converted[key] = openapi_v3_form(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [openapi_v3_form(each) for each in value]
        else:
            converted[key] = value
    reference = node.get("$ref")
    if reference is not None:
        target = V3_REFERENCE_PREFIX + _definition_name(reference)
        if not converted:
            return {"$ref": target}
        # OpenAPI 3.0 ignores siblings of $ref; kube-openapi keeps the
        # description (and extensions) by wrapping the reference in allOf.
        return {"allOf": [{"$ref": target}], **converted}
    return converted


def _builtin_to_v2(node: Mapping[str, Any]) -> dict[str, Any]:
    alternatives = node.get("oneOf")
    if alternatives and "type" not in node and all(
        set(each) == {"type"} for each in alternatives
    ):
        # IntOrString and Quantity: Swagger 2.0 has no oneOf; kube-openapi
        # publishes them as strings.
        converted = {key: value for key, value in node.items() if key != "oneOf"}
        converted["type"] = "string"
        return converted
    return dict(node)


def _custom_to_v2(node: Any) -> Any:
    """
    A CRD schema as the apiserver publishes it in Swagger 2.0: what
    apiextensions' ToStructuralOpenAPIV2 removes because kubectl's v2 parser
    cannot cope with it.
    """
    if isinstance(node, list):
        return [_custom_to_v2(each) for each in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: value
        for key, value in node.items()
        if key not in _V2_DROPPED_JUNCTORS
    }
    if converted.pop("nullable", False):
        converted.pop("type", None)
        converted.pop("items", None)
        converted.pop("properties", None)
    if converted.get(PRESERVE_UNKNOWN_FIELDS_EXTENSION):
        converted.pop("items", None)
        converted.pop("properties", None)
        if converted.get("type") == "object":
            converted.pop("type")
    if converted.get("type") == "array" and "items" not in converted:
        converted.pop("type")
    properties = converted.get("properties")
    if properties is not None:
        nullable = {name for name, child in properties.items() if child.get("nullable")}
        if nullable and "required" in converted:
            required = [name for name in converted["required"] if name not in nullable]
            if required:
                converted["required"] = required
            else:
                del converted["required"]
        converted["properties"] = {
            name: _custom_to_v2(child) for name, child in properties.items()
        }
    for key in ("items", "additionalProperties"):
        if isinstance(converted.get(key), dict):
            if key == "additionalProperties" and converted[key].get("nullable"):
                converted.pop("required", None)
            converted[key] = _custom_to_v2(converted[key])
    return converted


# ---------------------------------------------------------------------------
# The index


class SchemaIndex:
    """
    The definitions of one Kubernetes minor (plus, for an index made with
    L{extended}, a cluster's CustomResourceDefinitions), by name and by kind.

    Indexes are immutable once built; L{load} returns the one shared index
    for a minor.

    @ivar minor: the Kubernetes 1.x minor the built-in schemas are from.
    """

    def __init__(
        self,
        minor: int,
        definitions: Mapping[str, Mapping[str, Any]],
        base: Optional["SchemaIndex"] = None,
    ) -> None:
        self.minor = minor
        self._definitions = definitions
        self._base = base
        self._by_kind: dict[GroupVersionKind, str] = {}
        for name, definition in definitions.items():
            for kind in _kinds_of(definition):
                self._by_kind.setdefault(kind, name)
        self._v3: dict[str, dict[str, Any]] = {}
        self._v2: dict[str, dict[str, Any]] = {}
        self._referenced: dict[str, tuple[str, ...]] = {}

    @classmethod
    def load(cls, minor: int) -> "SchemaIndex":
        """
        The built-in schemas of Kubernetes 1.C{minor}, or of the nearest minor
        shipped if that one is not.  Read on first use and shared by every
        caller for the rest of the process.

        @raise SchemaError: if C{kubernetes-validate} is missing or broken.
        """
        directories = _version_directories()
        shipped = minor if minor in directories else _nearest(minor, directories)
        index = _loaded.get(shipped)
        if index is not None:
            return index
        with _loading:
            index = _loaded.get(shipped)
            if index is None:
                index = cls._read(shipped, directories[shipped] / _DEFINITIONS_FILE)
                _loaded[shipped] = index
        return index

    @classmethod
    def _read(cls, minor: int, path: Path) -> "SchemaIndex":
        try:
            with path.open("rb") as source:
                document = json.load(source)
            raw = document["$defs"]
        except (OSError, ValueError, KeyError) as error:
            raise SchemaError(f"cannot read {path}: {error}") from error
        definitions = {
            name: _canonical_definition(definition)
            for name, definition in raw.items()
        }
        return cls(minor, definitions)

    def extended(self, definitions: Mapping[str, Mapping[str, Any]]) -> "SchemaIndex":
        """
        An index that also knows C{definitions} (from L{crd_schemas}), which
        are published the way the apiserver publishes CustomResource schemas.
        The built-in definitions, and everything derived from them, stay
        shared with this index.
        """
        if not definitions:
            return self
        base = self._base or self
        merged = dict(self.custom_definitions)
        merged.update(definitions)
        return SchemaIndex(self.minor, merged, base=base)

    @property
    def custom_definitions(self) -> Mapping[str, Mapping[str, Any]]:
        """
        The definitions added by L{extended}; empty for a loaded index.
        """
        return self._definitions if self._base is not None else {}

    def is_custom(self, name: str) -> bool:
        """
        Whether C{name} is a CustomResource definition added by L{extended}.
        """
        return self._base is not None and name in self._definitions

    def __contains__(self, name: object) -> bool:
        return self.schema(name) is not None  # type: ignore[arg-type]

    def names(self) -> Iterator[str]:
        """
        Every definition name, built-in ones first.
        """
        if self._base is not None:
            yield from self._base.names()
        yield from self._definitions

    def schema(self, name: str) -> Optional[Mapping[str, Any]]:
        """
        The canonical (Swagger 2.0 form) schema of definition C{name}.
        """
        found = self._definitions.get(name)
        if found is None and self._base is not None:
            return self._base.schema(name)
        return found

    def definition(self, name: str) -> Optional["Definition"]:
        """
        Definition C{name}, or L{None}.
        """
        if self.schema(name) is None:
            return None
        return Definition(self, name)

    def name_for_kind(self, group: str, version: str, kind: str) -> Optional[str]:
        """
        The name of the definition of C{group/version, Kind=kind}.
        """
        key = GroupVersionKind(group, version, kind)
        found = self._by_kind.get(key)
        if found is None and self._base is not None:
            return self._base.name_for_kind(group, version, kind)
        return found

    def definition_for_kind(
        self, group: str, version: str, kind: str
    ) -> Optional["Definition"]:
        """
        The definition of C{group/version, Kind=kind}, or L{None} if neither
        Kubernetes nor a CRD added with L{extended} defines it.
        """
        name = self.name_for_kind(group, version, kind)
        return None if name is None else Definition(self, name)

    def references(self, name: str) -> tuple[str, ...]:
        """
        The definitions that definition C{name} refers to directly.
        """
        if self._base is not None and name not in self._definitions:
            return self._base.references(name)
        found = self._referenced.get(name)
        if found is None:
            schema = self.schema(name)
            found = tuple(sorted(set(_references(schema)))) if schema else ()
            self._referenced[name] = found
        return found

    def closure(self, names: Iterable[str]) -> list[str]:
        """
        C{names} and every definition reachable from them, sorted.
        """
        seen: set[str] = set()
        pending = [name for name in names if name in self]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            pending.extend(
                each for each in self.references(name) if each not in seen and each in self
            )
        return sorted(seen)

    def openapi_v3_schema(self, name: str) -> Mapping[str, Any]:
        """
        Definition C{name} as an apiserver publishes it under
        C{components.schemas} of an OpenAPI v3 document.

        @raise KeyError: for an unknown name.
        """
        if self._base is not None and name not in self._definitions:
            return self._base.openapi_v3_schema(name)
        converted = self._v3.get(name)
        if converted is None:
            schema = self.schema(name)
            if schema is None:
                raise KeyError(name)
            converted = openapi_v3_form(schema)
            self._v3[name] = converted
        return converted

    def swagger_v2_schema(self, name: str) -> Mapping[str, Any]:
        """
        Definition C{name} as an apiserver publishes it under C{definitions}
        of its Swagger 2.0 document.

        @raise KeyError: for an unknown name.
        """
        if self._base is not None and name not in self._definitions:
            return self._base.swagger_v2_schema(name)
        converted = self._v2.get(name)
        if converted is None:
            schema = self.schema(name)
            if schema is None:
                raise KeyError(name)
            if self.is_custom(name):
                converted = _custom_to_v2(schema)
            else:
                converted = _builtin_to_v2(schema)
            self._v2[name] = converted
        return converted

    def kinds(self, name: str) -> tuple[GroupVersionKind, ...]:
        """
        The kinds definition C{name} is the schema of.
        """
        schema = self.schema(name)
        return tuple(_kinds_of(schema)) if schema else ()

    def resolve(self, node: Mapping[str, Any]) -> tuple[Optional[str], Mapping[str, Any]]:
        """
        Follow C{node}'s reference, if it has one.

        @return: the definition name (or L{None} for an inline schema) and the
            schema to use.
        """
        seen = 0
        name = None
        while "$ref" in node and seen < 32:
            name = _definition_name(node["$ref"])
            target = self.schema(name)
            if target is None:
                return name, {}
            node = target
            seen += 1
        return name, node


def _kinds_of(definition: Mapping[str, Any]) -> Iterator[GroupVersionKind]:
    for entry in definition.get(GROUP_VERSION_KIND_EXTENSION, ()):
        yield GroupVersionKind(
            entry.get("group", ""), entry.get("version", ""), entry.get("kind", "")
        )


@dataclass(frozen=True)
class Definition:
    """
    One named definition of a L{SchemaIndex}.

    @ivar index: where its references are resolved.
    @ivar name: e.g. C{io.k8s.api.apps.v1.Deployment}.
    """

    index: SchemaIndex
    name: str

    @property
    def schema(self) -> Mapping[str, Any]:
        return self.index.schema(self.name) or {}

    @property
    def custom(self) -> bool:
        """
        Whether this is a CustomResource's schema, which the apiserver
        serves without strategic-merge patch support.
        """
        return self.index.is_custom(self.name)

    @property
    def kinds(self) -> tuple[GroupVersionKind, ...]:
        return self.index.kinds(self.name)

    def patch_schema(self) -> "PatchSchema":
        """
        The strategic-merge patch metadata of objects of this definition.
        """
        return PatchSchema(self.index, self.schema, self.name)

    def field_patch_meta(self, path: Sequence[str]) -> "FieldPatchMeta":
        """
        The patch metadata of the field at C{path}, e.g. C{("spec",
        "template", "spec", "containers", "env")}; list fields on the way
        are crossed into their elements.

        @raise PatchLookupError: if there is no such field.
        """
        schema = self.patch_schema()
        meta = FieldPatchMeta()
        for key in path:
            child, meta = schema.lookup_struct(key)
            if child.name == "slice":
                child, meta = schema.lookup_slice(key)
            schema = child
        return meta


# ---------------------------------------------------------------------------
# Strategic-merge patch metadata


class PatchLookupError(Exception):
    """
    Patch metadata asked for a field the schema does not allow there; the
    message is the one apimachinery's struct lookup gives.
    """


@dataclass(frozen=True)
class FieldPatchMeta:
    """
    How a strategic merge patch treats one field.

    @ivar strategies: from C{x-kubernetes-patch-strategy}, e.g.
        C{("merge", "retainKeys")}; empty when the field has none.
    @ivar merge_key: C{x-kubernetes-patch-merge-key}, or C{""}.
    """

    strategies: tuple[str, ...] = ()
    merge_key: str = ""


_NO_PATCH_META = FieldPatchMeta()


def _field_patch_meta(node: Mapping[str, Any]) -> FieldPatchMeta:
    strategy = node.get(PATCH_STRATEGY_EXTENSION)
    merge_key = node.get(PATCH_MERGE_KEY_EXTENSION, "")
    if not strategy and not merge_key:
        return _NO_PATCH_META
    strategies = tuple(strategy.split(",")) if strategy else ()
    return FieldPatchMeta(strategies, merge_key)


def _go_type_name(name: Optional[str]) -> str:
    return name.rsplit(".", 1)[-1] if name else ""


def _go_kind(name: Optional[str], node: Mapping[str, Any]) -> str:
    """
    The Go reflect kind of the value a schema describes, as apimachinery's
    errors name it.
    """
    if "properties" in node or name is not None:
        if node.get("type") == "array":
            return "slice"
        if isinstance(node.get("additionalProperties"), dict):
            return "map"
        return "struct"
    schema_type = node.get("type")
    if schema_type == "array":
        return "slice"
    if schema_type == "object":
        return "map" if isinstance(node.get("additionalProperties"), dict) else "struct"
    if schema_type == "integer":
        return "int32" if node.get("format") == "int32" else "int64"
    if schema_type == "number":
        return "float64"
    if schema_type == "boolean":
        return "bool"
    return "string"


@dataclass(frozen=True)
class PatchSchema:
    """
    Strategic-merge patch metadata at one place in an object: what
    apimachinery's C{LookupPatchMeta} answers, computed from the OpenAPI
    extensions that are generated from the very struct tags the apiserver's
    C{PatchMetaFromStruct} reads.

    @ivar index: resolves references.
    @ivar node: the schema of the value at this place.
    @ivar definition_name: the definition C{node} is, if it is a named one.
    """

    index: SchemaIndex
    node: Mapping[str, Any] = field(repr=False)
    definition_name: Optional[str] = None

    @property
    def name(self) -> str:
        """
        The Go kind of the value here (C{struct}, C{map}, ...), as
        apimachinery puts it into its error messages.
        """
        return _go_kind(self.definition_name, self.node)

    def _field(self, key: str) -> tuple[Mapping[str, Any], FieldPatchMeta]:
        kind = self.name
        if kind != "struct":
            raise PatchLookupError(
                "merging an object in json but data type is not struct, "
                f"instead is: {kind}"
            )
        properties = self.node.get("properties") or {}
        child = properties.get(key)
        if child is None:
            # encoding/json falls back to a case-insensitive match, and so
            # does apimachinery's copy of its field lookup.
            folded = key.casefold()
            for candidate, schema in properties.items():
                if candidate.casefold() == folded:
                    child = schema
                    break
        if child is None:
            raise PatchLookupError(
                "unable to find api field in struct "
                f"{_go_type_name(self.definition_name)} for the json field "
                f"{json.dumps(key)}"
            )
        return child, _field_patch_meta(child)

    def _at(self, node: Mapping[str, Any]) -> "PatchSchema":
        name, resolved = self.index.resolve(node)
        return PatchSchema(self.index, resolved, name)

    def lookup_struct(self, key: str) -> tuple["PatchSchema", FieldPatchMeta]:
        """
        The metadata of field C{key} of the object here, and where its value
        is.

        @raise PatchLookupError: if there is no such field.
        """
        child, meta = self._field(key)
        return self._at(child), meta

    def lookup_slice(self, key: str) -> tuple["PatchSchema", FieldPatchMeta]:
        """
        The metadata of list field C{key} of the object here, and where the
        list's elements are.

        @raise PatchLookupError: if there is no such field or it is no list.
        """
        child, meta = self._field(key)
        _, resolved = self.index.resolve(child)
        if resolved.get("type") != "array":
            raise PatchLookupError(
                f"expected slice or array type, but got: {self.name}"
            )
        items = resolved.get("items") or {}
        _, element = self.index.resolve(items)
        if element.get("type") == "array":
            raise PatchLookupError("unexpected slice of slice")
        return self._at(items), meta

    def lookup_map_value(self) -> "PatchSchema":
        """
        Where the values of the map here are (for C{additionalProperties}).
        """
        values = self.node.get("additionalProperties")
        return self._at(values if isinstance(values, dict) else {})


# ---------------------------------------------------------------------------
# CustomResourceDefinitions


def custom_definition_name(group: str, version: str, kind: str) -> str:
    """
    The name the apiserver gives a CustomResource's definition:
    C{example.com}/C{v1}/C{Foo} is C{com.example.v1.Foo}.
    """
    reversed_group = ".".join(reversed(group.split(".")))
    return f"{reversed_group}.{version}.{kind}"


def _structural(node: Any) -> Any:
    """
    A CRD schema node as a structural schema publishes it: unknown keys
    dropped, x-kubernetes-int-or-string unfolded.
    """
    if isinstance(node, list):
        return [_structural(each) for each in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key in _NON_STRUCTURAL_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            result[key] = {name: _structural(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            result[key] = _structural(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            result[key] = [_structural(each) for each in value]
        else:
            result[key] = value
    if result.get(INT_OR_STRING_EXTENSION) and not _is_int_or_string_pattern(result):
        integer_or_string = [{"type": "integer"}, {"type": "string"}]
        if "anyOf" not in result:
            result["anyOf"] = integer_or_string
        else:
            result["allOf"] = [{"anyOf": integer_or_string}, *result.get("allOf", [])]
    return result


def _is_int_or_string_pattern(node: Mapping[str, Any]) -> bool:
    def plain(alternatives: Any) -> bool:
        return (
            isinstance(alternatives, list)
            and len(alternatives) == 2
            and alternatives[0] == {"type": "integer"}
            and alternatives[1] == {"type": "string"}
        )

    if plain(node.get("anyOf")):
        return True
    all_of = node.get("allOf")
    return bool(all_of) and isinstance(all_of[0], dict) and plain(all_of[0].get("anyOf"))


def _type_meta_property(index: SchemaIndex, name: str) -> dict[str, Any]:
    # The descriptions of apiVersion/kind (and of metadata below) are
    # taken from a built-in kind, which carries the apiserver's TypeMeta
    # wording.
    pod = index.schema("io.k8s.api.core.v1.Pod") or {}
    found = (pod.get("properties") or {}).get(name) or {"type": "string"}
    return dict(found)


def _metadata_property(index: SchemaIndex, list_kind: bool) -> dict[str, Any]:
    source = "io.k8s.api.core.v1.PodList" if list_kind else "io.k8s.api.core.v1.Pod"
    schema = index.schema(source) or {}
    found = dict((schema.get("properties") or {}).get("metadata") or {})
    found["$ref"] = V2_REFERENCE_PREFIX + (LIST_META if list_kind else OBJECT_META)
    return found


def crd_schemas(
    crd: Mapping[str, Any], index: Optional[SchemaIndex] = None
) -> dict[str, dict[str, Any]]:
    """
    The definitions the apiserver publishes for the kinds a
    CustomResourceDefinition serves: for each served version, the kind (its
    C{openAPIV3Schema} as a structural schema, with C{apiVersion}, C{kind}
    and C{metadata} added) and its list kind, each with
    C{x-kubernetes-group-version-kind}.

    A version without a schema gets C{{"type": "object"}}, which is what
    the apiserver publishes then (and what keeps kubectl from rejecting
    every field).

    @param crd: an C{apiextensions.k8s.io/v1} CustomResourceDefinition.
    @param index: where the wording of the added properties comes from;
        the latest shipped minor if not given.
    @return: canonical definitions by name, for L{SchemaIndex.extended}.
    """
    if index is None:
        index = SchemaIndex.load(max(shipped_minors()))
    spec = crd.get("spec") or {}
    group = spec.get("group", "")
    names = spec.get("names") or {}
    kind = names.get("kind", "")
    list_kind = names.get("listKind") or f"{kind}List"
    plural = names.get("plural", "")
    shared_schema = (spec.get("validation") or {}).get("openAPIV3Schema")
    definitions: dict[str, dict[str, Any]] = {}
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        version_name = version.get("name", "")
        source = (version.get("schema") or {}).get("openAPIV3Schema") or shared_schema
        name = custom_definition_name(group, version_name, kind)
        if source:
            schema = _structural(source)
            properties = dict(schema.get("properties") or {})
            properties["apiVersion"] = _type_meta_property(index, "apiVersion")
            properties["kind"] = _type_meta_property(index, "kind")
            properties["metadata"] = _metadata_property(index, list_kind=False)
            schema["properties"] = properties
            schema = _with_embedded_resources(schema, index)
        else:
            schema = {"type": "object"}
        schema[GROUP_VERSION_KIND_EXTENSION] = [
            {"group": group, "kind": kind, "version": version_name}
        ]
        definitions[name] = schema
        definitions[custom_definition_name(group, version_name, list_kind)] = {
            "description": f"{list_kind} is a list of {kind}",
            "properties": {
                "apiVersion": _type_meta_property(index, "apiVersion"),
                "items": {
                    "description": (
                        f"List of {plural}. More info: https://git.k8s.io/"
                        "community/contributors/devel/sig-architecture/"
                        "api-conventions.md"
                    ),
                    "items": {"$ref": V2_REFERENCE_PREFIX + name},
                    "type": "array",
                },
                "kind": _type_meta_property(index, "kind"),
                "metadata": _metadata_property(index, list_kind=True),
            },
            "required": ["items"],
            "type": "object",
            GROUP_VERSION_KIND_EXTENSION: [
                {"group": group, "kind": list_kind, "version": version_name}
            ],
        }
    return definitions


def _with_embedded_resources(node: Any, index: SchemaIndex) -> Any:
    """
    Give every C{x-kubernetes-embedded-resource} object the C{apiVersion},
    C{kind} and C{metadata} properties the apiserver adds to it.
    """
    if isinstance(node, list):
        return [_with_embedded_resources(each, index) for each in node]
    if not isinstance(node, dict):
        return node
    result = dict(node)
    if isinstance(result.get("properties"), dict):
        result["properties"] = {
            name: _with_embedded_resources(child, index)
            for name, child in result["properties"].items()
        }
    for key in ("items", "additionalProperties"):
        if isinstance(result.get(key), dict):
            result[key] = _with_embedded_resources(result[key], index)
    if result.get(EMBEDDED_RESOURCE_EXTENSION):
        properties = dict(result.get("properties") or {})
        properties["apiVersion"] = _type_meta_property(index, "apiVersion")
        properties["kind"] = _type_meta_property(index, "kind")
        properties["metadata"] = _metadata_property(index, list_kind=False)
        result["properties"] = properties
        required = list(result.get("required") or ())
        for name in ("kind", "apiVersion"):
            if name not in required:
                required.append(name)
        result["required"] = required
    return result


# ---------------------------------------------------------------------------
# Strict field validation


def unknown_fields(definition: Definition, obj: Any) -> list[str]:
    """
    The fields of C{obj} that definition C{definition} does not have, as
    the apiserver names them when C{fieldValidation=Strict} rejects them
    (C{spec.template.spec.containers[0].foo}), in document order.

    Values the apiserver decodes opaquely (C{RawExtension}, C{FieldsV1},
    apiextensions' C{JSON}...), subtrees marked
    C{x-kubernetes-preserve-unknown-fields} and the values of maps are not
    second-guessed; C{x-kubernetes-embedded-resource} objects are checked
    as objects with C{apiVersion}, C{kind} and C{metadata}.  Values of the
    wrong type are not unknown fields (decoding them fails differently) and
    are skipped.

    Duplicate keys cannot be detected here: they are gone once the body is
    parsed, so the HTTP layer must find them while parsing.
    """
    found = _unknown(definition.index, definition.schema, definition.name, obj, "")
    return [path for path, _, _ in found]


def prune_unknown_fields(definition: Definition, obj: Any) -> Any:
    """
    A copy of C{obj} without the fields L{unknown_fields} reports: what the
    apiserver stores when C{fieldValidation} is C{Ignore} or C{Warn}, since
    decoding into the typed object (or pruning a CustomResource by its
    structural schema) drops them.
    """
    pruned = copy.deepcopy(obj)
    found = list(_unknown(definition.index, definition.schema, definition.name, pruned, ""))
    for _, container, key in found:
        container.pop(key, None)
    return pruned


def strict_decoding_message(paths: Iterable[str]) -> str:
    """
    The apiserver's text for a strict decoding failure, e.g.
    C{strict decoding error: unknown field "spec.foo"}.
    """
    return "strict decoding error: " + ", ".join(
        f"unknown field {json.dumps(path)}" for path in paths
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown(
    index: SchemaIndex,
    node: Mapping[str, Any],
    name: Optional[str],
    value: Any,
    path: str,
) -> Iterator[tuple[str, dict, str]]:
    """
    Every unknown field under C{value}: its path, the object holding it and
    its key.
    """
    if "$ref" in node:
        name, node = index.resolve(node)
    if name in _OPAQUE_DEFINITIONS:
        return
    if isinstance(value, dict):
        if node.get("type") not in (None, "object") or "oneOf" in node:
            return
        properties = node.get("properties")
        preserve = bool(node.get(PRESERVE_UNKNOWN_FIELDS_EXTENSION))
        values = node.get("additionalProperties")
        if properties is None and isinstance(values, dict):
            for key, child in value.items():
                yield from _unknown(index, values, None, child, _join(path, key))
            return
        if properties is None and (preserve or node.get("type") is None or values is True):
            return
        properties = properties or {}
        for key, child in value.items():
            schema = properties.get(key)
            if schema is not None:
                yield from _unknown(index, schema, None, child, _join(path, key))
            elif isinstance(values, dict):
                yield from _unknown(index, values, None, child, _join(path, key))
            elif not preserve and values is not True:
                yield _join(path, key), value, key
    elif isinstance(value, list):
        items = node.get("items")
        if node.get("type") not in (None, "array") or not isinstance(items, dict):
            return
        for position, child in enumerate(value):
            yield from _unknown(index, items, None, child, f"{path}[{position}]")

# -*- test-case-name: tests.test_kube_template -*-
"""
Load the cluster template (C{cluster.yaml}) and turn it into each simulated
cluster's seed objects.

A template is a YAML mapping with a C{version:} block (what C{/version}
answers) and an C{objects:} list of ordinary Kubernetes manifests.  Strings
in the manifests may hold placeholders::

    {{ cluster }}             the cluster's name
    {{ created }}             the cluster's creation time (RFC 3339)
    {{ created + 90s }}       ... shifted (units ms, s, m, h, d; combined
    {{ created - 2d3h }}          like 1h30m)
    {{ uid }}                 as the value of C{uid:} in a reference
                              (C{kind}, C{name}, optional C{namespace} and
                              C{apiVersion}): the referenced object's uid
    {{ uid Job kube-system/x }}   anywhere: the uid of the named object
                              (C{{{ uid Node name }}} for cluster-scoped
                              kinds; C{Kind.group} to name the group)

The earlier Go tool's format (top-level C{nodes:}, C{pods:}, C{services:},
C{secrets:}, C{configmaps:}, C{deployments:} summaries, with
C{{{cluster-name}}}) is accepted and converted to full objects.

A L{ClusterTemplate} is parsed once and shared by every cluster.  For one
cluster, L{ClusterTemplate.seed_for} returns a L{Seed}: the store's seed
entries and a C{render} function that builds an object on every read.  The
seed objects are the template's own, shared by every cluster; what is
per-cluster is only the key strings that hold placeholders.  Rendering
copies just the containers on the path to a placeholder; everything else in
a rendered object (labels, spec, status, ...) is shared with the template
and must be treated as read-only by whoever reads it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Union

import yaml
from twisted.logger import Logger

from scaleagent.kube.discovery import DEFAULT_SERVER_ADDRESS, api_service_objects
from scaleagent.kube.resources import (
    BUILTIN_REGISTRY,
    InvalidCustomResourceDefinition,
    Registry,
    ResourceType,
    UnsupportedAPIService,
)
from scaleagent.yamlerrors import yaml_problem


class TemplateError(Exception):
    """
    The template cannot be used.  Names the file and, when known, the line
    and the key; the daemon shows it and stops.

    @ivar filename: the template's file name.
    @ivar line: 1-based line number, or C{None}.
    @ivar key: dotted path of the offending key (C{objects[3].metadata.name}),
        or C{None}.
    @ivar message: what is wrong and how to fix it.
    """

    def __init__(
        self,
        message: str,
        filename: str,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.filename if self.line is None else f"{self.filename}:{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"


# YAML loading that remembers where every key and item came from


class _Marks:
    """
    Line numbers of the loaded document, keyed by the id of each mapping and
    list (which all stay alive while the template is being parsed).
    """

    def __init__(self) -> None:
        self.lines: dict[int, tuple[int | None, dict[Any, int]]] = {}
        # The line of the key that holds each container, to point at
        # "metadata:" when metadata lacks a name.
        self.owners: dict[int, int] = {}

    def node(self, container: Any) -> int | None:
        entry = self.lines.get(id(container))
        return entry[0] if entry else None

    def adopt(self, copy: Any, original: Any) -> None:
        """Let errors found in C{copy} point at C{original}'s lines."""
        self.lines[id(copy)] = self.lines.get(id(original), (None, {}))
        if id(original) in self.owners:
            self.owners[id(copy)] = self.owners[id(original)]

    def child(self, container: Any, key: Any) -> int | None:
        entry = self.lines.get(id(container))
        if entry is None:
            return None
        if key in entry[1]:
            return entry[1][key]
        return self.owners.get(id(container), entry[0])


# libyaml's parser when available: it is several times faster, and its
# nodes carry the same marks.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _loader(marks: _Marks, filename: str) -> type[yaml.SafeLoader]:
    class Loader(_BaseLoader):  # type: ignore[valid-type, misc]
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterable[dict]:
        data: dict[Any, Any] = {}
        yield data
        loader.flatten_mapping(node)
        key_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise TemplateError(
                    "mapping keys must be plain values", filename, key_node.start_mark.line + 1
                )
            if key in key_lines:
                raise TemplateError(
                    f"duplicate key {key!r} (first on line {key_lines[key]})",
                    filename,
                    key_node.start_mark.line + 1,
                )
            key_lines[key] = key_node.start_mark.line + 1
            value = data[key] = loader.construct_object(value_node, deep=True)
            if isinstance(value, (dict, list)):
                marks.owners[id(value)] = key_lines[key]
        marks.lines[id(data)] = (node.start_mark.line + 1, key_lines)

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Iterable[list]:
        data: list[Any] = []
        yield data
        item_lines = {}
        for index, child in enumerate(node.value):
            data.append(loader.construct_object(child, deep=True))
            item_lines[index] = child.start_mark.line + 1
        marks.lines[id(data)] = (node.start_mark.line + 1, item_lines)

    Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", construct_sequence)
    return Loader


def _load_yaml(text: str, filename: str) -> tuple[Any, _Marks]:
    marks = _Marks()
    try:
        # A SafeLoader subclass: it builds plain data only.
        document = yaml.load(text, Loader=_loader(marks, filename))  # noqa: S506
    except yaml.YAMLError as error:
        problem, mark = yaml_problem(error)
        line = mark.line + 1 if mark is not None else None
        raise TemplateError(f"not valid YAML: {problem}", filename, line) from None
    return document, marks


# Placeholders


_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_CREATED = re.compile(r"^created(?:\s*([+-])\s*(.+))?$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Leases and events carry MicroTime fields; everything else is whole seconds.
_MICRO_TIME_KEYS = frozenset({"renewTime", "acquireTime", "eventTime", "lastObservedTime"})


def _parse_duration(text: str) -> float | None:
    text = text.replace(" ", "")
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        return None
    return total


class _Cluster:
    """Placeholder part: the cluster's name."""

    __slots__ = ()


class _Created:
    """Placeholder part: the creation time, shifted, as RFC 3339 text."""

    __slots__ = ("offset", "delta", "micro")

    def __init__(self, offset: float, micro: bool) -> None:
        self.offset = offset
        self.delta = timedelta(seconds=offset)
        self.micro = micro


class _Uid:
    """Placeholder: the uid of the object a reference names."""

    __slots__ = ("group", "kind", "namespace", "name")

    def __init__(self, group: str, kind: str, namespace: "_Text", name: "_Text") -> None:
        self.group = group
        self.kind = kind
        self.namespace = namespace
        self.name = name


_CLUSTER = _Cluster()
_Part = Union[str, _Cluster, _Created, _Uid]


class _Text:
    """
    A template string: literal text and placeholders.  Static texts render
    to the same (interned) string object for every cluster.
    """

    __slots__ = ("parts", "static")

    def __init__(self, parts: tuple[_Part, ...]) -> None:
        self.parts = parts
        self.static: str | None = None
        if all(isinstance(part, str) for part in parts):
            self.static = "".join(parts)  # type: ignore[arg-type]

    def render(self, context: "ClusterContext") -> str:
        if self.static is not None:
            return self.static
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
            elif part is _CLUSTER:
                pieces.append(context.name)
            elif isinstance(part, _Uid):
                pieces.append(
                    context.uid(
                        part.group,
                        part.kind,
                        part.namespace.render(context),
                        part.name.render(context),
                    )
                )
            else:
                pieces.append(context.shifted(part.delta, part.micro))  # type: ignore[union-attr]
        return "".join(pieces)

    @property
    def source(self) -> str:
        # For comparing templates before rendering (namespace checks).
        pieces = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
            elif part is _CLUSTER:
                pieces.append("{{ cluster }}")
            elif isinstance(part, _Uid):
                pieces.append(
                    f"{{{{ uid {part.kind} {part.namespace.source}/{part.name.source} }}}}",
                )
            else:
                pieces.append(f"{{{{ created {part.offset:+g}s }}}}")  # type: ignore[union-attr]
        return "".join(pieces)


# Rendering trees: the paths of an object that hold placeholders


_Leaf = Union[_Text, _Uid]
# A tree is a tuple of (key, leaf-or-subtree); keys are str or int.
_Tree = tuple[tuple[Union[str, int], Any], ...]


def _render_leaf(leaf: _Leaf, context: "ClusterContext") -> str:
    if isinstance(leaf, _Uid):
        return context.uid(
            leaf.group,
            leaf.kind,
            leaf.namespace.render(context),
            leaf.name.render(context),
        )
    return leaf.render(context)


def _apply(container: Any, tree: _Tree, context: "ClusterContext") -> Any:
    # Copy only the containers on the way to a placeholder.
    copy: Any = dict(container) if isinstance(container, dict) else list(container)
    for key, node in tree:
        if isinstance(node, tuple):
            copy[key] = _apply(container[key], node, context)
        else:
            copy[key] = _render_leaf(node, context)
    return copy


# The version block


VERSION_KEYS = (
    "major",
    "minor",
    "gitVersion",
    "gitCommit",
    "gitTreeState",
    "buildDate",
    "goVersion",
    "compiler",
    "platform",
)
_SEMVER = re.compile(
    r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$"
)
# Markers that make Rancher treat the cluster as a k3s, RKE2, EKS or GKE
# cluster (rancher/kubernetes-provider-detector and Rancher's provisioner).
PROVIDER_MARKERS = {"+k3s": "k3s", "+rke2": "rke2", "-eks-": "EKS", "-gke.": "GKE"}
_VERSION_DEFAULTS = {
    "gitTreeState": "clean",
    "compiler": "gc",
    "platform": "linux/amd64",
}


# Per-cluster context and seed


_UID_NAMESPACE = uuid.UUID("8f6a7c0e-2f1d-5b7a-9c3e-4d2b1a0f6e5c")
"""Namespace of every uid scaleagent derives (an arbitrary, fixed UUID)."""


def _format_time(moment: datetime, micro: bool) -> str:
    """
    RFC 3339 in UTC, as Kubernetes writes Time (whole seconds) and
    MicroTime (microseconds).
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    # isoformat is several times faster than strftime, and timestamps are
    # formatted on every read.
    return moment.isoformat(timespec="microseconds" if micro else "seconds") + "Z"


@dataclass(frozen=True, slots=True)
class ClusterContext:
    """
    What makes one cluster's objects its own: small, one per cluster.

    @ivar name: the cluster's name (what C{{{ cluster }}} becomes).
    @ivar uid_seed: a stable string (the cluster's persistent id); uids are
        derived from it, so they survive daemon restarts.
    @ivar created_at: when the cluster was created (what C{{{ created }}}
        becomes, and every object's default creationTimestamp).
    """

    name: str
    uid_seed: str
    created_at: datetime
    _uid_prefix: bytes = field(init=False, repr=False, compare=False)
    _created_utc: datetime = field(init=False, repr=False, compare=False)
    _created_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        created = self.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        created = created.astimezone(timezone.utc)
        object.__setattr__(self, "created_at", created)
        namespace = uuid.uuid5(_UID_NAMESPACE, self.uid_seed)
        object.__setattr__(self, "_uid_prefix", namespace.bytes)
        # Naive UTC for cheap arithmetic and formatting.
        object.__setattr__(self, "_created_utc", created.replace(tzinfo=None))
        object.__setattr__(self, "_created_text", _format_time(self._created_utc, False))

    def uid(self, group: str, kind: str, namespace: str, name: str) -> str:
        """
        The deterministic uid of an object of this cluster: a version-5 UUID
        of the cluster's uid seed and the object's group, kind, namespace and
        name.
        """
        # uuid.uuid5, inlined: it is called on every read of every object.
        identity = f"{group}/{kind}/{namespace}/{name}".encode()
        digest = bytearray(
            hashlib.sha1(self._uid_prefix + identity, usedforsecurity=False).digest()[:16],
        )
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        text = digest.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def timestamp(self, offset: float = 0.0, micro: bool = False) -> str:
        """The creation time shifted by C{offset} seconds, as RFC 3339."""
        return self.shifted(timedelta(seconds=offset), micro)

    def shifted(self, delta: timedelta, micro: bool = False) -> str:
        """The creation time shifted by C{delta}, as RFC 3339."""
        if not delta and not micro:
            return self._created_text
        return _format_time(self._created_utc + delta, micro)


SeedEntry = tuple[ResourceType, str, str, "TemplateObject"]


@dataclass(frozen=True, slots=True)
class Seed:
    """
    One cluster's initial objects, for C{ObjectStore(seed=..., render=...)}.

    @ivar entries: (resource type, namespace or C{""}, name, seed object)
        in template order.  Seed objects are opaque to the store and shared
        by every cluster.
    @ivar render: builds the full object (a fresh top-level mapping and
        metadata; nested values shared, read-only) from a seed object.
    @ivar initial_resource_version: the highest resourceVersion among the
        seed objects; the store's first write must use a larger one.
    @ivar version_info: the C{/version} answer (shared; do not modify).
    @ivar registry: the resources the cluster serves (built-ins plus the
        template's CRDs and aggregated APIs).
    """

    entries: tuple[SeedEntry, ...]
    render: Callable[["TemplateObject"], dict[str, Any]]
    initial_resource_version: int
    version_info: Mapping[str, str]
    registry: Registry


class _Renderer:
    """The C{render} function of one cluster's seed: a context and a call."""

    __slots__ = ("context",)

    def __init__(self, context: ClusterContext) -> None:
        self.context = context

    def __call__(self, seed_object: "TemplateObject") -> dict[str, Any]:
        return seed_object.render(self.context)


class TemplateObject:
    """
    One object of the template, compiled: shared by every cluster, never
    modified after loading.

    @ivar resource_type: what it is.
    @ivar namespace: the namespace text (C{""} for cluster-scoped objects).
    @ivar name: the name text.
    @ivar resource_version: its resourceVersion (template order).
    @ivar line: where it is defined in the template file.
    """

    __slots__ = (
        "resource_type",
        "namespace",
        "name",
        "resource_version",
        "line",
        "_head",
        "_metadata",
        "_metadata_tree",
        "_body_tree",
        "_created",
        "_generate_name",
        "_generation",
        "static_entry",
    )

    def __init__(
        self,
        resource_type: ResourceType,
        namespace: _Text,
        name: _Text,
        resource_version: str,
        line: int | None,
        head: dict[str, Any],
        metadata: dict[str, Any],
        metadata_tree: _Tree,
        body_tree: _Tree,
        created: _Text | None,
        generate_name: str | None,
        generation: int | None,
    ) -> None:
        self.resource_type = resource_type
        self.namespace = namespace
        self.name = name
        self.resource_version = resource_version
        self.line = line
        self._head = head
        self._metadata = metadata
        self._metadata_tree = metadata_tree
        self._body_tree = body_tree
        self._created = created
        self._generate_name = generate_name
        self._generation = generation
        # Objects whose key needs no placeholder share one entry tuple.
        self.static_entry: SeedEntry | None = None
        if namespace.static is not None and name.static is not None:
            self.static_entry = (resource_type, namespace.static, name.static, self)

    def entry(self, context: ClusterContext) -> SeedEntry:
        """This object's seed entry for one cluster."""
        if self.static_entry is not None:
            return self.static_entry
        return (self.resource_type, self.namespace.render(context), self.name.render(context), self)

    def render(self, context: ClusterContext) -> dict[str, Any]:
        """
        The object as the cluster serves it.  The top-level mapping and
        C{metadata} are new; nested values are shared with the template.
        """
        resource_type = self.resource_type
        name = self.name.render(context)
        namespace = self.namespace.render(context)
        # metav1.ObjectMeta's field order.
        metadata: dict[str, Any] = {"name": name}
        if self._generate_name is not None:
            metadata["generateName"] = self._generate_name
        if resource_type.namespaced:
            metadata["namespace"] = namespace
        metadata["uid"] = context.uid(resource_type.group, resource_type.kind, namespace, name)
        metadata["resourceVersion"] = self.resource_version
        if self._generation is not None:
            metadata["generation"] = self._generation
        metadata["creationTimestamp"] = (
            context.timestamp() if self._created is None else self._created.render(context)
        )
        metadata.update(self._metadata)
        for key, node in self._metadata_tree:
            if isinstance(node, tuple):
                metadata[key] = _apply(self._metadata[key], node, context)
            else:
                metadata[key] = _render_leaf(node, context)
        obj = dict(self._head)
        obj["metadata"] = metadata
        for key, node in self._body_tree:
            if isinstance(node, tuple):
                obj[key] = _apply(self._head[key], node, context)
            else:
                obj[key] = _render_leaf(node, context)
        return obj

    def __repr__(self) -> str:
        key = f"{self.namespace.source}/{self.name.source}"
        return f"<TemplateObject {self.resource_type.resource} {key}>"


# Compiling objects


_GENERATED_METADATA = ("uid", "resourceVersion", "selfLink", "managedFields")
_METADATA_ORDER_FIRST = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
)


@dataclass
class _Source:
    """Where a value came from, for error messages."""

    filename: str
    marks: _Marks

    def line(self, container: Any, key: Any = None) -> int | None:
        if key is None:
            return self.marks.node(container)
        return self.marks.child(container, key)


class _Compiler:
    """Turns one loaded manifest into a L{TemplateObject}."""

    def __init__(self, source: _Source, registry: Registry, warnings: list[str]) -> None:
        self.source = source
        self.registry = registry
        self.warnings = warnings
        # Copies made while compiling stay alive until the template is
        # built, so their ids (the keys of their line marks) stay unique.
        self.keep_alive: list[Any] = []

    def error(self, message: str, container: Any, key: Any, path: str) -> TemplateError:
        return TemplateError(message, self.source.filename, self.source.line(container, key), path)

    def warn(self, message: str, container: Any, key: Any, path: str) -> None:
        line = self.source.line(container, key)
        where = self.source.filename if line is None else f"{self.source.filename}:{line}"
        self.warnings.append(f"{where}: {path}: {message}")

    # Strings

    def text(self, value: str, container: Any, key: Any, path: str, micro: bool = False) -> _Text:
        parts: list[_Part] = []
        position = 0
        for match in _PLACEHOLDER.finditer(value):
            if match.start() > position:
                parts.append(value[position : match.start()])
            expression = match.group(1)
            if expression in ("cluster", "cluster-name"):
                parts.append(_CLUSTER)
            elif expression.startswith("uid "):
                parts.append(self.named_uid(expression, container, key, path))
            else:
                created = _CREATED.match(expression)
                if created is None:
                    if expression == "uid":
                        raise self.error(
                            "{{ uid }} must be the whole value of the uid of a reference "
                            "(a mapping with kind and name)",
                            container,
                            key,
                            path,
                        )
                    raise self.error(
                        f"unknown placeholder {{{{ {expression} }}}}; use {{{{ cluster }}}}, "
                        f"{{{{ created }}}}, {{{{ created + 5m }}}} or {{{{ uid }}}}",
                        container,
                        key,
                        path,
                    )
                offset = 0.0
                if created.group(1):
                    parsed = _parse_duration(created.group(2))
                    if parsed is None:
                        raise self.error(
                            f"bad duration {created.group(2)!r} in {{{{ {expression} }}}}; "
                            "write e.g. 90s, 5m, 1h30m or 2d",
                            container,
                            key,
                            path,
                        )
                    offset = parsed if created.group(1) == "+" else -parsed
                parts.append(_Created(offset, micro))
            position = match.end()
        if position < len(value):
            parts.append(value[position:])
        if not parts:
            parts.append("")
        if len(parts) == 1 and isinstance(parts[0], str):
            # Keep one shared string object for repeated literals.
            return _Text((_intern(parts[0]),))
        return _Text(tuple(parts))

    def named_uid(self, expression: str, container: Any, key: Any, path: str) -> _Uid:
        """
        C{uid Kind name}, C{uid Kind namespace/name}, or with the group
        spelled out, C{uid Job.batch kube-system/helm-install-traefik}.
        """
        words = expression.split()
        if len(words) != 3:
            raise self.error(
                f"write {{{{ uid Kind namespace/name }}}} (or {{{{ uid Kind name }}}} for "
                f"cluster-scoped kinds), not {{{{ {expression} }}}}",
                container,
                key,
                path,
            )
        kind, _, group = words[1].partition(".")
        group = group if group else self.group_for(kind, None)
        resource_type = self.registry.by_kind(group, kind)
        if resource_type is None:
            raise self.error(
                f"unknown kind {words[1]!r} in {{{{ {expression} }}}}",
                container,
                key,
                path,
            )
        namespace_text, _, name_text = words[2].rpartition("/")
        if resource_type.namespaced != bool(namespace_text):
            if resource_type.namespaced:
                scope = "namespaced, write namespace/name"
            else:
                scope = "cluster-scoped, write the name only"
            raise self.error(f"{kind} is {scope} in {{{{ {expression} }}}}", container, key, path)
        return _Uid(group, kind, _Text((_intern(namespace_text),)), _Text((_intern(name_text),)))

    # Values

    def value(self, value: Any, path: str, reference_namespace: _Text) -> tuple[Any, Any]:
        """
        Compile a value: return the plain (shared) value and its rendering
        tree (C{None} if it has no placeholders).
        """
        if isinstance(value, dict):
            result: dict[Any, Any] = {}
            tree = []
            for key, child in value.items():
                if not isinstance(key, str):
                    raise self.error(f"keys must be strings, not {key!r}", value, key, path)
                child_path = f"{path}.{key}"
                if key == "uid" and _is_uid_placeholder(child):
                    leaf = self.reference_uid(value, child_path, reference_namespace)
                    result[key] = child
                    tree.append((key, leaf))
                    continue
                if isinstance(child, str):
                    compiled = self.text(
                        child,
                        value,
                        key,
                        child_path,
                        micro=key in _MICRO_TIME_KEYS,
                    )
                    if compiled.static is not None:
                        result[key] = compiled.static
                    else:
                        result[key] = child
                        tree.append((key, compiled))
                    continue
                plain, subtree = self.value(child, child_path, reference_namespace)
                result[key] = plain
                if subtree is not None:
                    tree.append((key, subtree))
            return result, (tuple(tree) if tree else None)
        if isinstance(value, list):
            items = []
            tree = []
            for index, child in enumerate(value):
                child_path = f"{path}[{index}]"
                if isinstance(child, str):
                    compiled = self.text(child, value, index, child_path)
                    if compiled.static is not None:
                        items.append(compiled.static)
                    else:
                        items.append(child)
                        tree.append((index, compiled))
                    continue
                plain, subtree = self.value(child, child_path, reference_namespace)
                items.append(plain)
                if subtree is not None:
                    tree.append((index, subtree))
            return items, (tuple(tree) if tree else None)
        if isinstance(value, (bool, int, float)) or value is None:
            return value, None
        if isinstance(value, str):
            return _intern(value), None
        if isinstance(value, datetime):
            # YAML reads unquoted timestamps as dates; keep them as the
            # RFC 3339 text Kubernetes uses.
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            return _format_time(moment.astimezone(timezone.utc), False), None
        raise self.error(
            f"{type(value).__name__} values are not allowed here; quote the value",
            None,
            None,
            path,
        )

    def reference_uid(self, reference: dict, path: str, default_namespace: _Text) -> _Uid:
        kind = reference.get("kind")
        name = reference.get("name")
        if not isinstance(kind, str) or not isinstance(name, str):
            raise self.error(
                "{{ uid }} needs kind and name in the same mapping", reference, "uid", path
            )
        group = self.group_for(kind, reference.get("apiVersion"))
        resource_type = self.registry.by_kind(group, kind)
        namespace_value = reference.get("namespace")
        if resource_type is not None and not resource_type.namespaced:
            namespace = _Text(("",))
        elif isinstance(namespace_value, str):
            namespace = self.text(namespace_value, reference, "namespace", path)
        else:
            namespace = default_namespace
        return _Uid(group, kind, namespace, self.text(name, reference, "name", path))

    def group_for(self, kind: str, api_version: Any) -> str:
        if isinstance(api_version, str) and api_version:
            return api_version.rpartition("/")[0]
        # Without apiVersion, the core group wins, as in the API's own
        # references (involvedObject, targetRef).
        for group in ("", *self.registry.groups()):
            if self.registry.by_kind(group, kind) is not None:
                return group
        return ""

    # Objects

    def compile(
        self,
        manifest: Any,
        index: int,
        resource_version: str,
        line: int | None,
    ) -> TemplateObject:
        path = f"objects[{index}]"
        if not isinstance(manifest, dict):
            raise TemplateError("each object must be a mapping", self.source.filename, line, path)
        for required in ("apiVersion", "kind"):
            if not isinstance(manifest.get(required), str) or not manifest[required]:
                raise self.error(
                    f"{required} is required (a string)",
                    manifest,
                    required,
                    f"{path}.{required}",
                )
        api_version = manifest["apiVersion"]
        kind = manifest["kind"]
        resource_type = self.registry.by_api_version(api_version, kind)
        if resource_type is None:
            raise self.error(
                f"{api_version} {kind} is not served by this cluster (for a custom "
                "resource, define its CustomResourceDefinition in the template)",
                manifest,
                "kind",
                f"{path}.kind",
            )
        if not resource_type.persisted:
            raise self.error(
                f"{kind} objects are not stored by the API server, so they cannot be seeded",
                manifest,
                "kind",
                f"{path}.kind",
            )
        metadata = manifest.get("metadata")
        if not isinstance(metadata, dict):
            raise self.error(
                "metadata is required (a mapping)",
                manifest,
                "metadata",
                f"{path}.metadata",
            )
        name_value = metadata.get("name")
        if not isinstance(name_value, str) or not name_value:
            raise self.error(
                "metadata.name is required (a string)",
                metadata,
                "name",
                f"{path}.metadata.name",
            )
        name = self.text(name_value, metadata, "name", f"{path}.metadata.name")
        namespace_value = metadata.get("namespace")
        if resource_type.namespaced:
            if namespace_value is None:
                # As kubectl does for manifests without a namespace.
                namespace_value = "default"
            if not isinstance(namespace_value, str) or not namespace_value:
                raise self.error(
                    "metadata.namespace must be a string",
                    metadata,
                    "namespace",
                    f"{path}.metadata.namespace",
                )
            namespace = self.text(
                namespace_value,
                metadata,
                "namespace",
                f"{path}.metadata.namespace",
            )
        else:
            if namespace_value:
                raise self.error(
                    f"{kind} is cluster-scoped; remove metadata.namespace",
                    metadata,
                    "namespace",
                    f"{path}.metadata.namespace",
                )
            namespace = _Text(("",))
        for key in ("labels", "annotations"):
            values = metadata.get(key)
            if values is None:
                continue
            if not isinstance(values, dict):
                raise self.error(
                    f"metadata.{key} must be a mapping",
                    metadata,
                    key,
                    f"{path}.metadata.{key}",
                )
            for label, label_value in values.items():
                if not isinstance(label_value, str):
                    raise self.error(
                        f"{key} values must be strings; quote the value (YAML reads "
                        f"{label_value!r} as a {type(label_value).__name__})",
                        values,
                        label,
                        f"{path}.metadata.{key}.{label}",
                    )
        for key in _GENERATED_METADATA:
            if key in metadata:
                self.warn(
                    f"metadata.{key} is generated for every cluster; the template's "
                    "value is ignored",
                    metadata,
                    key,
                    f"{path}.metadata.{key}",
                )
        created = None
        created_value = metadata.get("creationTimestamp")
        if created_value is not None:
            if not isinstance(created_value, str):
                raise self.error(
                    "creationTimestamp must be a quoted string",
                    metadata,
                    "creationTimestamp",
                    f"{path}.metadata.creationTimestamp",
                )
            created = self.text(
                created_value,
                metadata,
                "creationTimestamp",
                f"{path}.metadata.creationTimestamp",
            )
        generation = metadata.get("generation")
        if generation is not None and (
            not isinstance(generation, int) or isinstance(generation, bool)
        ):
            raise self.error(
                "generation must be an integer",
                metadata,
                "generation",
                f"{path}.metadata.generation",
            )
        generate_name = metadata.get("generateName")
        if generate_name is not None and not isinstance(generate_name, str):
            raise self.error(
                "generateName must be a string",
                metadata,
                "generateName",
                f"{path}.metadata.generateName",
            )

        # The rest of the metadata (labels, annotations, ownerReferences,
        # finalizers, ...) is the same for every cluster but for its
        # placeholders; render() adds the generated fields in front.
        rest = {
            key: value
            for key, value in metadata.items()
            if key not in _METADATA_ORDER_FIRST and key not in _GENERATED_METADATA
        }
        if "ownerReferences" in rest:
            rest["ownerReferences"] = self.owner_references(
                rest["ownerReferences"], metadata, f"{path}.metadata.ownerReferences"
            )
        shared_metadata, metadata_tree = self.value(rest, f"{path}.metadata", namespace)

        body = {
            key: value
            for key, value in manifest.items()
            if key not in ("apiVersion", "kind", "metadata")
        }
        shared_body, body_tree = self.value(body, path, namespace)
        # metadata keeps its place after kind; render() fills it in.
        head: dict[str, Any] = {
            "apiVersion": _intern(api_version),
            "kind": _intern(kind),
            "metadata": None,
        }
        head.update(shared_body)
        return TemplateObject(
            resource_type=resource_type,
            namespace=namespace,
            name=name,
            resource_version=resource_version,
            line=line,
            head=head,
            metadata=shared_metadata,
            metadata_tree=metadata_tree or (),
            body_tree=body_tree or (),
            created=created,
            generate_name=generate_name,
            generation=generation,
        )

    def owner_references(self, references: Any, metadata: dict, path: str) -> list[Any]:
        """
        Owner references with a C{{{ uid }}} placeholder where the template
        gives no uid, so ownership chains hold in every cluster.
        """
        if not isinstance(references, list):
            raise self.error(
                "metadata.ownerReferences must be a list",
                metadata,
                "ownerReferences",
                path,
            )
        completed = []
        for index, reference in enumerate(references):
            if not isinstance(reference, dict):
                raise self.error(
                    "owner references must be mappings",
                    references,
                    index,
                    f"{path}[{index}]",
                )
            for required in ("apiVersion", "kind", "name"):
                if not isinstance(reference.get(required), str):
                    raise self.error(
                        f"{required} is required",
                        reference,
                        required,
                        f"{path}[{index}].{required}",
                    )
            if "uid" not in reference:
                # metav1.OwnerReference's field order puts uid after name.
                with_uid = {
                    "apiVersion": reference["apiVersion"],
                    "kind": reference["kind"],
                    "name": reference["name"],
                    "uid": UID_PLACEHOLDER,
                    **reference,
                }
                # Errors found in the copy point at the original lines.
                self.source.marks.adopt(with_uid, reference)
                self.keep_alive.append(with_uid)
                reference = with_uid
            completed.append(reference)
        self.source.marks.adopt(completed, references)
        self.keep_alive.append(completed)
        return completed


UID_PLACEHOLDER = "{{ uid }}"


def _is_uid_placeholder(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    match = _PLACEHOLDER.fullmatch(value.strip())
    return match is not None and match.group(1) == "uid"


_INTERNED: dict[str, str] = {}


def _intern(text: str) -> str:
    # Literals repeat across objects (label values, images, names); one
    # object per distinct text keeps the template small.
    return _INTERNED.setdefault(text, text)


# The template


DEFAULT_VERSION_INFO: Mapping[str, str] = {
    "major": "1",
    "minor": "28",
    "gitVersion": "v1.28.15",
    "gitCommit": "841856557ef0f6a399096c42635d114d6f2cf7f4",
    "gitTreeState": "clean",
    "buildDate": "2024-10-22T20:33:16Z",
    "goVersion": "go1.22.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}
"""What upstream Kubernetes v1.28.15 answers on C{/version}."""

TOP_LEVEL_KEYS = ("version", "objects", "serverAddress")
LEGACY_KEYS = ("nodes", "pods", "services", "secrets", "configmaps", "deployments")
# Informational fields of the earlier tool's format, ignored.
LEGACY_IGNORED_KEYS = ("name", "clusterID", "status")
SCHEMA_VALIDATION_VERSIONS = (25, 37)


class ClusterTemplate:
    """
    A parsed, validated cluster template, shared by every simulated cluster.

    Use L{ClusterTemplate.load} or L{ClusterTemplate.from_yaml}.

    @ivar filename: where it was read from.
    @ivar version_info: the C{/version} answer.
    @ivar registry: built-in resources plus the template's CRDs and
        aggregated APIs.
    @ivar objects: the compiled objects in template order (the generated
        APIServices first).
    @ivar server_address: C{host:port} for discovery's
        C{serverAddressByClientCIDRs}.
    @ivar warnings: problems that do not stop the template from being used.
    @ivar legacy: whether the file used the earlier tool's format.
    """

    log = Logger()

    def __init__(
        self,
        filename: str,
        version_info: Mapping[str, str],
        registry: Registry,
        objects: Sequence[TemplateObject],
        server_address: str,
        warnings: Sequence[str],
        legacy: bool,
    ) -> None:
        self.filename = filename
        self.version_info = version_info
        self.version_json = json.dumps(dict(version_info), indent=2).encode() + b"\n"
        self.registry = registry
        self.objects = tuple(objects)
        self.server_address = server_address
        self.warnings = tuple(warnings)
        self.legacy = legacy
        self.initial_resource_version = (
            int(self.objects[-1].resource_version) if self.objects else 0
        )

    @classmethod
    def load(cls, path: str | Path, *, validate_schema: bool = True) -> "ClusterTemplate":
        """
        Read and check a template file.

        @param path: the template's path.
        @param validate_schema: also check built-in objects against the
            Kubernetes OpenAPI schema of the template's version (strict: no
            unknown fields).
        @raise TemplateError: if the file cannot be read or used.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise TemplateError(f"cannot read the template: {error.strerror}", str(path)) from None
        except UnicodeDecodeError:
            raise TemplateError("the template is not UTF-8 text", str(path)) from None
        return cls.from_yaml(text, str(path), validate_schema=validate_schema)

    @classmethod
    def from_yaml(
        cls,
        text: str,
        filename: str,
        *,
        validate_schema: bool = True,
    ) -> "ClusterTemplate":
        """
        Parse and check a template.

        @param text: the YAML text.
        @param filename: named in errors.
        @param validate_schema: see L{load}.
        @raise TemplateError: if the template cannot be used.
        """
        document, marks = _load_yaml(text, filename)
        source = _Source(filename, marks)
        if document is None:
            raise TemplateError("the template is empty", filename, 1)
        if not isinstance(document, dict):
            raise TemplateError(
                "the template must be a mapping with version: and objects:",
                filename,
                source.line(document),
            )
        warnings: list[str] = []
        legacy_keys = [key for key in LEGACY_KEYS if key in document]
        if legacy_keys and "objects" in document:
            raise TemplateError(
                f"mixes objects: with the older format's {legacy_keys[0]}:; use one format",
                filename,
                source.line(document, legacy_keys[0]),
                legacy_keys[0],
            )
        legacy = bool(legacy_keys)
        if legacy:
            for key in document:
                if key not in LEGACY_KEYS and key not in LEGACY_IGNORED_KEYS:
                    raise TemplateError(
                        f"unknown key; the older format has {', '.join(LEGACY_KEYS)}",
                        filename,
                        source.line(document, key),
                        str(key),
                    )
            manifests, version_info = _convert_legacy(document, source, warnings)
            manifest_lines = [source.line(manifest) for manifest in manifests]
            server_address_value = None
        else:
            for key in document:
                if key not in TOP_LEVEL_KEYS:
                    raise TemplateError(
                        f"unknown key; expected {', '.join(TOP_LEVEL_KEYS)}",
                        filename,
                        source.line(document, key),
                        str(key),
                    )
            if "version" not in document:
                raise TemplateError(
                    "version: is required (what /version answers; at least gitVersion)",
                    filename,
                    source.line(document),
                )
            version_info = _version_info(document["version"], document, source, warnings)
            manifests = document.get("objects")
            if manifests is None:
                manifests = []
            if not isinstance(manifests, list):
                raise TemplateError(
                    "objects: must be a list of manifests",
                    filename,
                    source.line(document, "objects"),
                    "objects",
                )
            manifest_lines = [source.line(manifests, index) for index in range(len(manifests))]
            server_address_value = document.get("serverAddress")
            if server_address_value is not None and (
                not isinstance(server_address_value, str) or ":" not in server_address_value
            ):
                raise TemplateError(
                    "serverAddress must be host:port",
                    filename,
                    source.line(document, "serverAddress"),
                    "serverAddress",
                )

        registry = _extend_registry(manifests, manifest_lines, source)
        compiler = _Compiler(source, registry, warnings)
        generated = [
            manifest
            for manifest in api_service_objects(registry, "{{ created }}")
            if not _defines(manifests, "APIService", manifest["metadata"]["name"])
        ]
        everything = [(manifest, None, None) for manifest in generated] + [
            (manifest, index, manifest_lines[index]) for index, manifest in enumerate(manifests)
        ]
        objects = []
        for position, (manifest, index, line) in enumerate(everything, start=1):
            objects.append(
                compiler.compile(
                    manifest,
                    index if index is not None else -1,
                    _intern(str(position)),
                    line,
                )
            )
        _check_keys(objects, manifests, source)
        if validate_schema:
            _validate_schemas(objects, manifests, version_info, source)
        server_address = server_address_value or _server_address(objects)
        template = cls(filename, version_info, registry, objects, server_address, warnings, legacy)
        for warning in warnings:
            cls.log.warn("cluster template: {problem}", problem=warning)
        return template

    def seed_for(self, context: ClusterContext) -> Seed:
        """
        One cluster's seed: its entries (sharing the template's objects and,
        where names have no placeholders, the template's entry tuples) and a
        render function bound to the cluster.
        """
        return Seed(
            entries=tuple(obj.entry(context) for obj in self.objects),
            render=_Renderer(context),
            initial_resource_version=self.initial_resource_version,
            version_info=self.version_info,
            registry=self.registry,
        )

    def __repr__(self) -> str:
        version = self.version_info["gitVersion"]
        return f"<ClusterTemplate {self.filename} {version} {len(self.objects)} objects>"


def _defines(manifests: Sequence[Any], kind: str, name: str) -> bool:
    for manifest in manifests:
        if (
            isinstance(manifest, dict)
            and manifest.get("kind") == kind
            and isinstance(manifest.get("metadata"), dict)
            and manifest["metadata"].get("name") == name
        ):
            return True
    return False


def _version_info(
    value: Any,
    document: dict,
    source: _Source,
    warnings: list[str],
) -> dict[str, str]:
    filename = source.filename
    if not isinstance(value, dict):
        raise TemplateError(
            "version: must be a mapping",
            filename,
            source.line(document, "version"),
            "version",
        )
    for key in value:
        if key not in VERSION_KEYS:
            raise TemplateError(
                f"unknown key; /version has {', '.join(VERSION_KEYS)}",
                filename,
                source.line(value, key),
                f"version.{key}",
            )
        if not isinstance(value[key], str):
            raise TemplateError(
                f"must be a string; quote {value[key]!r}",
                filename,
                source.line(value, key),
                f"version.{key}",
            )
    git_version = value.get("gitVersion")
    if not git_version:
        raise TemplateError(
            "gitVersion is required (e.g. v1.28.15)",
            filename,
            source.line(value),
            "version.gitVersion",
        )
    match = _SEMVER.match(git_version)
    if match is None:
        raise TemplateError(
            f"{git_version!r} is not a semantic version like v1.28.15; Rancher must parse it",
            filename,
            source.line(value, "gitVersion"),
            "version.gitVersion",
        )
    major, minor = match.group(1), match.group(2)
    info = {
        "major": value.get("major", major),
        "minor": value.get("minor", minor),
        "gitVersion": git_version,
        # Without a commit, a stable made-up one.
        "gitCommit": value.get("gitCommit")
        or hashlib.sha1(git_version.encode(), usedforsecurity=False).hexdigest(),
        "gitTreeState": value.get("gitTreeState", _VERSION_DEFAULTS["gitTreeState"]),
        "buildDate": value.get("buildDate", "1970-01-01T00:00:00Z"),
        "goVersion": value.get("goVersion", "go1.22.8"),
        "compiler": value.get("compiler", _VERSION_DEFAULTS["compiler"]),
        "platform": value.get("platform", _VERSION_DEFAULTS["platform"]),
    }
    if info["major"] != major:
        raise TemplateError(
            f"major {info['major']!r} does not match gitVersion {git_version}",
            filename,
            source.line(value, "major"),
            "version.major",
        )
    # Rancher strips non-digits from minor ("28+" on GKE) before parsing it.
    minor_digits = re.sub(r"[^0-9]", "", info["minor"])
    if minor_digits != minor:
        raise TemplateError(
            f"minor {info['minor']!r} does not match gitVersion {git_version}",
            filename,
            source.line(value, "minor"),
            "version.minor",
        )
    if int(minor) < 22:
        raise TemplateError(
            "minor must be at least 22: Rancher probes componentstatuses on older versions",
            filename,
            source.line(value, "minor" if "minor" in value else "gitVersion"),
            "version.minor",
        )
    for marker, provider in PROVIDER_MARKERS.items():
        if marker in git_version:
            line = source.line(value, "gitVersion")
            warnings.append(
                f"{filename}:{line}: version.gitVersion: {marker!r} makes Rancher treat every "
                f"cluster as a {provider} cluster (driver, provider and upgrade controllers)"
            )
    return info


def _extend_registry(
    manifests: Sequence[Any],
    lines: Sequence[int | None],
    source: _Source,
) -> Registry:
    registry = BUILTIN_REGISTRY
    for index, manifest in enumerate(manifests):
        if not isinstance(manifest, dict):
            continue
        api_version = manifest.get("apiVersion")
        kind = manifest.get("kind")
        try:
            if kind == "CustomResourceDefinition" and api_version == "apiextensions.k8s.io/v1":
                registry = registry.with_crd(manifest)
            elif kind == "APIService" and api_version == "apiregistration.k8s.io/v1":
                spec = manifest.get("spec")
                if isinstance(spec, dict) and spec.get("service"):
                    registry = registry.with_api_service(manifest)
        except (InvalidCustomResourceDefinition, UnsupportedAPIService, ValueError) as error:
            raise TemplateError(
                str(error), source.filename, lines[index], f"objects[{index}]"
            ) from None
    return registry


def _check_keys(
    objects: Sequence[TemplateObject],
    manifests: Sequence[Any],
    source: _Source,
) -> None:
    seen: dict[tuple[Any, ...], TemplateObject] = {}
    namespaces = {
        obj.name.source for obj in objects if obj.resource_type.group_resource == ("", "namespaces")
    }
    for obj in objects:
        key = (*obj.resource_type.group_resource, obj.namespace.source, obj.name.source)
        if key in seen:
            raise TemplateError(
                f"{obj.resource_type.kind} "
                f"{obj.namespace.source + '/' if obj.namespace.source else ''}"
                f"{obj.name.source} is defined twice (first on line {seen[key].line})",
                source.filename,
                obj.line,
            )
        seen[key] = obj
        if obj.resource_type.namespaced and obj.namespace.source not in namespaces:
            raise TemplateError(
                f"namespace {obj.namespace.source!r} is not defined in the template; "
                "add a Namespace object",
                source.filename,
                obj.line,
            )


def _server_address(objects: Sequence[TemplateObject]) -> str:
    # A real server advertises the first control-plane node's address and
    # the API port; k3s serves on 6443.
    for obj in objects:
        if obj.resource_type.group_resource != ("", "nodes"):
            continue
        for address in obj._head.get("status", {}).get("addresses", ()):
            if address.get("type") == "InternalIP" and isinstance(address.get("address"), str):
                if "{{" not in address["address"]:
                    return f"{address['address']}:6443"
    return DEFAULT_SERVER_ADDRESS


# Schema validation


_SCHEMA_CACHE: dict[tuple[int, str, str], Any] = {}


def _schema_validator(minor: int, api_version: str, kind: str) -> Any:
    """A cached strict JSON-schema validator for one kind, or C{None}."""
    key = (minor, api_version, kind)
    if key in _SCHEMA_CACHE:
        return _SCHEMA_CACHE[key]
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry as SchemaRegistry
    from referencing import Resource

    schema_dir = f"kubernetes-json-schema/v1.{minor}.0-local-strict"
    file_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"{schema_dir}/{kind.lower()}-{file_version}.json",
            f"1.{minor}",
        )
    except (FileNotFoundError, utils.VersionNotSupportedError):
        _SCHEMA_CACHE[key] = None
        return None
    definitions_key = (minor, "", "_definitions")
    definitions = _SCHEMA_CACHE.get(definitions_key)
    if definitions is None:
        definitions = _SCHEMA_CACHE[definitions_key] = Resource.from_contents(
            utils.schema_contents(f"{schema_dir}/_definitions.json", f"1.{minor}")
        )
    registry = definitions @ (Resource.from_contents(schema) @ SchemaRegistry())
    validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
    _SCHEMA_CACHE[key] = validator
    return validator


def _validate_schemas(
    objects: Sequence[TemplateObject],
    manifests: Sequence[Any],
    version_info: Mapping[str, str],
    source: _Source,
) -> None:
    # What is checked is what a cluster serves: the object as rendered for a
    # sample cluster, with its generated metadata.
    sample = ClusterContext("sample", "sample", datetime(2024, 1, 1, tzinfo=timezone.utc))
    minor = int(re.sub(r"[^0-9]", "", version_info["minor"]))
    minor = max(SCHEMA_VALIDATION_VERSIONS[0], min(SCHEMA_VALIDATION_VERSIONS[1], minor))
    offset = len(objects) - len(manifests)
    for index, manifest in enumerate(manifests):
        obj = objects[offset + index]
        rendered = obj.render(sample)
        validator = _schema_validator(minor, rendered["apiVersion"], rendered["kind"])
        if validator is None:
            # Custom resources and kinds the schemas do not know.
            continue
        error = min(
            validator.iter_errors(rendered),
            key=lambda e: [str(step) for step in e.absolute_path],
            default=None,
        )
        if error is None:
            continue
        container: Any = manifest
        line = obj.line
        path = f"objects[{index}]"
        for step in error.absolute_path:
            if isinstance(container, (dict, list)):
                try:
                    child = container[step]
                except (KeyError, IndexError, TypeError):
                    container = None
                else:
                    line = source.line(container, step) or line
                    container = child
            path += f"[{step}]" if isinstance(step, int) else f".{step}"
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            unknown = sorted(key for key in error.instance if key not in known)
            if unknown:
                message = f"unknown field {unknown[0]!r}"
                if isinstance(container, dict) and unknown[0] in container:
                    line = source.line(container, unknown[0]) or line
                path += f".{unknown[0]}"
        raise TemplateError(
            f"{rendered['kind']} does not match Kubernetes 1.{minor}: {message}",
            source.filename,
            line,
            path,
        )


# The earlier Go tool's format


_LEGACY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "nodes": (
        "name", "status", "roles", "age", "version", "internalIP", "externalIP", "osImage",
        "kernelVer", "containerRuntime", "capacity", "allocatable", "labels",
    ),
    "pods": ("name", "namespace", "status", "ready", "restarts", "age", "ip", "node", "labels"),
    "services": ("name", "namespace", "type", "clusterIP", "externalIP", "ports", "age", "labels"),
    "secrets": ("name", "namespace", "type", "data", "dataKeys", "age"),
    "configmaps": ("name", "namespace", "data", "dataKeys", "age"),
    "deployments": ("name", "namespace", "ready", "upToDate", "available", "age", "labels"),
}
_LEGACY_DEFAULT_IMAGE = "registry.k8s.io/pause:3.9"
# When the summaries' finished containers ran.
_LEGACY_RUN = {"startedAt": "{{ created + 10s }}", "finishedAt": "{{ created + 20s }}"}
_STANDARD_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


class _Legacy:
    """Converts the earlier tool's summaries to full manifests."""

    def __init__(self, source: _Source, warnings: list[str]) -> None:
        self.source = source
        self.warnings = warnings
        self.node_addresses: dict[str, str] = {}

    def error(self, message: str, container: Any, key: Any, path: str) -> TemplateError:
        return TemplateError(message, self.source.filename, self.source.line(container, key), path)

    def entries(self, document: dict, section: str) -> list[tuple[dict, str]]:
        items = document.get(section) or []
        if not isinstance(items, list):
            raise self.error(f"{section}: must be a list", document, section, section)
        result = []
        for index, item in enumerate(items):
            path = f"{section}[{index}]"
            if not isinstance(item, dict):
                raise self.error("each entry must be a mapping", items, index, path)
            for key in item:
                if key not in _LEGACY_FIELDS[section]:
                    raise self.error(
                        f"unknown field; {section} entries have "
                        f"{', '.join(_LEGACY_FIELDS[section])}",
                        item,
                        key,
                        f"{path}.{key}",
                    )
            if not isinstance(item.get("name"), str) or not item["name"]:
                raise self.error("name is required", item, "name", f"{path}.name")
            result.append((item, path))
        return result

    def adopt(self, manifest: dict, item: dict) -> dict:
        # Errors found in the converted object point at the summary.
        self.source.marks.adopt(manifest, item)
        return manifest

    def string(self, item: dict, key: str, path: str, default: str = "") -> str:
        value = item.get(key, default)
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.error("must be a string", item, key, f"{path}.{key}")
        return value

    def mapping(self, item: dict, key: str, path: str) -> dict[str, str]:
        value = item.get(key) or {}
        if not isinstance(value, dict):
            raise self.error("must be a mapping", item, key, f"{path}.{key}")
        return {str(k): self.string(value, k, f"{path}.{key}") for k in value}

    def node(self, item: dict, path: str, index: int) -> dict:
        name = item["name"]
        roles = item.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise self.error("roles must be a list of strings", item, "roles", f"{path}.roles")
        version = self.string(item, "version", path, "v1.28.15")
        ready = self.string(item, "status", path, "Ready") == "Ready"
        internal_ip = self.string(item, "internalIP", path, f"10.0.0.{index + 1}")
        external_ip = self.string(item, "externalIP", path, "")
        self.node_addresses[name] = internal_ip
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }
        for role in roles:
            labels[f"node-role.kubernetes.io/{role}"] = "true"
        labels.update(self.mapping(item, "labels", path))
        addresses = [{"address": internal_ip, "type": "InternalIP"}]
        if external_ip and external_ip != "<none>":
            addresses.append({"address": external_ip, "type": "ExternalIP"})
        addresses.append({"address": name, "type": "Hostname"})
        capacity = {"cpu": "4", "ephemeral-storage": "102350Mi", "memory": "8Gi", "pods": "110"}
        capacity.update(self.mapping(item, "capacity", path))
        allocatable = dict(capacity)
        allocatable.update(self.mapping(item, "allocatable", path))
        condition_time = "{{ created }}"

        def condition(kind: str, status: str, reason: str, message: str) -> dict:
            return {
                "lastHeartbeatTime": condition_time,
                "lastTransitionTime": condition_time,
                "message": message,
                "reason": reason,
                "status": status,
                "type": kind,
            }

        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
                "labels": labels,
                "name": name,
            },
            "spec": {"podCIDR": f"10.42.{index}.0/24", "podCIDRs": [f"10.42.{index}.0/24"]},
            "status": {
                "addresses": addresses,
                "allocatable": allocatable,
                "capacity": capacity,
                "conditions": [
                    condition(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    condition(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                    ),
                    condition(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
                    if ready
                    else condition(
                        "Ready",
                        "False",
                        "KubeletNotReady",
                        "container runtime status check may not have completed yet",
                    ),
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": str(uuid.uuid5(_UID_NAMESPACE, f"boot/{name}")),
                    "containerRuntimeVersion": self.string(
                        item,
                        "containerRuntime",
                        path,
                        "containerd://1.7.22",
                    ),
                    "kernelVersion": self.string(item, "kernelVer", path, "6.1.0"),
                    "kubeProxyVersion": version,
                    "kubeletVersion": version,
                    "machineID": hashlib.md5(
                        f"machine/{name}".encode(), usedforsecurity=False
                    ).hexdigest(),
                    "operatingSystem": "linux",
                    "osImage": self.string(item, "osImage", path, "Ubuntu 22.04.4 LTS"),
                    "systemUUID": str(uuid.uuid5(_UID_NAMESPACE, f"system/{name}")),
                },
            },
        }

    def pod(self, item: dict, path: str) -> dict:
        name = item["name"]
        namespace = self.string(item, "namespace", path, "default")
        status_text = self.string(item, "status", path, "Running")
        ready_text = self.string(item, "ready", path, "1/1")
        match = re.fullmatch(r"([0-9]+)/([0-9]+)", ready_text)
        if match is None:
            raise self.error("ready must look like 1/1", item, "ready", f"{path}.ready")
        ready_count, total = int(match.group(1)), max(1, int(match.group(2)))
        restarts = item.get("restarts", 0)
        if not isinstance(restarts, int) or isinstance(restarts, bool):
            raise self.error("restarts must be a number", item, "restarts", f"{path}.restarts")
        node = self.string(item, "node", path, "")
        ip = self.string(item, "ip", path, "")
        # The workload name: pod names end in -<hash> or -<hash>-<suffix>.
        base = re.sub(r"(-[a-z0-9]{5,10})?-[a-z0-9]{5}$", "", name) or name
        names = [base] if total == 1 else [f"{base}-{number}" for number in range(total)]
        phase = {"Completed": "Succeeded", "Error": "Failed"}.get(status_text, status_text)
        if phase not in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            # A container state such as CrashLoopBackOff in a running pod.
            phase = "Running"
        statuses = []
        for number, container in enumerate(names):
            ready = number < ready_count
            if phase == "Succeeded":
                state = {"terminated": dict(_LEGACY_RUN, exitCode=0, reason="Completed")}
            elif phase == "Failed":
                state = {"terminated": dict(_LEGACY_RUN, exitCode=1, reason="Error")}
            elif phase == "Pending":
                state = {"waiting": {"reason": "ContainerCreating"}}
            elif ready:
                state = {"running": {"startedAt": "{{ created + 10s }}"}}
            else:
                reason = status_text if status_text not in ("Running",) else "CrashLoopBackOff"
                state = {"waiting": {"reason": reason}}
            statuses.append(
                {
                    "image": _LEGACY_DEFAULT_IMAGE,
                    "imageID": "",
                    "lastState": {},
                    "name": container,
                    "ready": ready,
                    "restartCount": restarts if number == 0 else 0,
                    "started": ready,
                    "state": state,
                }
            )
        all_ready = "True" if ready_count >= total and phase == "Running" else "False"
        status: dict[str, Any] = {
            "conditions": [
                {
                    "lastProbeTime": None,
                    "lastTransitionTime": "{{ created }}",
                    "status": "True",
                    "type": "Initialized",
                },
                {
                    "lastProbeTime": None,
                    "lastTransitionTime": "{{ created }}",
                    "status": all_ready,
                    "type": "Ready",
                },
                {
                    "lastProbeTime": None,
                    "lastTransitionTime": "{{ created }}",
                    "status": all_ready,
                    "type": "ContainersReady",
                },
                {
                    "lastProbeTime": None,
                    "lastTransitionTime": "{{ created }}",
                    "status": "True" if node else "False",
                    "type": "PodScheduled",
                },
            ],
            "containerStatuses": statuses,
            "phase": phase,
            "qosClass": "BestEffort",
        }
        if node:
            host_ip = self.node_addresses.get(node, "")
            if host_ip:
                status["hostIP"] = host_ip
                status["hostIPs"] = [{"ip": host_ip}]
            status["startTime"] = "{{ created }}"
        if ip:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        spec: dict[str, Any] = {
            "containers": [
                {
                    "image": _LEGACY_DEFAULT_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "name": container,
                }
                for container in names
            ],
            "restartPolicy": "Never" if phase in ("Succeeded", "Failed") else "Always",
            "serviceAccountName": "default",
        }
        if node:
            spec["nodeName"] = node
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        labels = self.mapping(item, "labels", path)
        if labels:
            metadata["labels"] = labels
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        }

    def service(self, item: dict, path: str) -> dict:
        name = item["name"]
        kind = self.string(item, "type", path, "ClusterIP")
        ports = []
        names = set()
        for piece in self.string(item, "ports", path, "").split(","):
            piece = piece.strip()
            if not piece:
                continue
            match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?(?:/([A-Za-z]+))?", piece)
            if match is None:
                raise self.error(
                    f"cannot read port {piece!r}; write e.g. 80/TCP or 80:30080/TCP",
                    item,
                    "ports",
                    f"{path}.ports",
                )
            port = int(match.group(1))
            protocol = (match.group(3) or "TCP").upper()
            port_name = f"{protocol.lower()}-{port}"
            while port_name in names:
                port_name += "-x"
            names.add(port_name)
            entry: dict[str, Any] = {
                "name": port_name,
                "port": port,
                "protocol": protocol,
                "targetPort": port,
            }
            if match.group(2):
                entry["nodePort"] = int(match.group(2))
            ports.append(entry)
        if len(ports) == 1:
            # A single port needs no name.
            del ports[0]["name"]
        cluster_ip = self.string(item, "clusterIP", path, "")
        labels = self.mapping(item, "labels", path)
        spec: dict[str, Any] = {}
        if cluster_ip and cluster_ip != "None":
            spec["clusterIP"] = cluster_ip
            spec["clusterIPs"] = [cluster_ip]
        spec["internalTrafficPolicy"] = "Cluster"
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"
        spec["ports"] = ports
        if labels:
            spec["selector"] = labels
        spec["sessionAffinity"] = "None"
        spec["type"] = kind
        status: dict[str, Any] = {"loadBalancer": {}}
        external = [
            address.strip()
            for address in self.string(item, "externalIP", path, "").split(",")
            if address.strip() not in ("", "<none>")
        ]
        if kind == "LoadBalancer" and external:
            status["loadBalancer"] = {"ingress": [{"ip": ip} for ip in external]}
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.string(item, "namespace", path, "default"),
        }
        if labels:
            metadata["labels"] = labels
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        }

    def data_keys(self, item: dict, path: str) -> dict[str, str]:
        keys = item.get("dataKeys")
        if keys is None:
            count = item.get("data", 0)
            if not isinstance(count, int) or isinstance(count, bool):
                raise self.error("data must be a number of keys", item, "data", f"{path}.data")
            keys = [f"key-{number + 1}" for number in range(count)]
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise self.error(
                "dataKeys must be a list of strings",
                item,
                "dataKeys",
                f"{path}.dataKeys",
            )
        # No real content: the summaries carry key names only.
        return {key: "" for key in keys}

    def secret(self, item: dict, path: str) -> dict | None:
        kind = self.string(item, "type", path, "Opaque")
        if kind == "kubernetes.io/service-account-token":
            line = self.source.line(item)
            self.warnings.append(
                f"{self.source.filename}:{line}: {path}: service account token Secrets are "
                "created per cluster at run time; skipped"
            )
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": item["name"],
                "namespace": self.string(item, "namespace", path, "default"),
            },
            "data": self.data_keys(item, path),
            "type": kind,
        }

    def config_map(self, item: dict, path: str) -> dict | None:
        if item["name"] == "kube-root-ca.crt":
            line = self.source.line(item)
            self.warnings.append(
                f"{self.source.filename}:{line}: {path}: kube-root-ca.crt holds each cluster's "
                "own CA and is created at run time; skipped"
            )
            return None
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": item["name"],
                "namespace": self.string(item, "namespace", path, "default"),
            },
            "data": self.data_keys(item, path),
        }

    def deployment(self, item: dict, path: str) -> dict:
        name = item["name"]

        def count(key: str) -> int | None:
            text = self.string(item, key, path, "")
            if not text:
                return None
            match = re.fullmatch(r"([0-9]+)(?:/([0-9]+))?", text)
            if match is None:
                raise self.error("must be a number or ready/desired", item, key, f"{path}.{key}")
            return int(match.group(1))

        ready_text = self.string(item, "ready", path, "")
        desired_match = re.fullmatch(r"[0-9]+/([0-9]+)", ready_text)
        available = count("available")
        ready = count("ready")
        replicas = int(desired_match.group(1)) if desired_match else (available or ready or 1)
        ready = replicas if ready is None else ready
        available = ready if available is None else available
        updated = count("upToDate")
        updated = replicas if updated is None else updated
        labels = self.mapping(item, "labels", path) or {"app": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "generation": 1,
                "labels": labels,
                "name": name,
                "namespace": self.string(item, "namespace", path, "default"),
            },
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": labels},
                "strategy": {
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    "type": "RollingUpdate",
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "image": _LEGACY_DEFAULT_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "name": name,
                            }
                        ],
                        "restartPolicy": "Always",
                    },
                },
            },
            "status": {
                "availableReplicas": available,
                "conditions": [
                    {
                        "lastTransitionTime": "{{ created }}",
                        "lastUpdateTime": "{{ created }}",
                        "message": "Deployment has minimum availability.",
                        "reason": "MinimumReplicasAvailable",
                        "status": "True" if available > 0 else "False",
                        "type": "Available",
                    },
                ],
                "observedGeneration": 1,
                "readyReplicas": ready,
                "replicas": replicas,
                "updatedReplicas": updated,
            },
        }


def _convert_legacy(
    document: dict,
    source: _Source,
    warnings: list[str],
) -> tuple[list[dict], dict[str, str]]:
    """
    Convert the earlier tool's summary format to manifests, and derive the
    C{/version} answer from the nodes' version (without build metadata such
    as C{+k3s1}, which would change how Rancher treats the cluster).
    """
    converter = _Legacy(source, warnings)
    manifests: list[dict] = []
    namespaces: list[str] = list(_STANDARD_NAMESPACES)
    version_info = dict(DEFAULT_VERSION_INFO)
    nodes = converter.entries(document, "nodes")
    for index, (item, path) in enumerate(nodes):
        manifests.append(converter.adopt(converter.node(item, path, index), item))
    for item, path in nodes[:1]:
        version = item.get("version")
        if isinstance(version, str):
            match = _SEMVER.match(version)
            if match is None:
                raise converter.error(
                    f"{version!r} is not a version like v1.28.15",
                    item,
                    "version",
                    f"{path}.version",
                )
            plain = f"v{match.group(1)}.{match.group(2)}.{match.group(3)}"
            if plain != version_info["gitVersion"]:
                version_info = _version_info(
                    {"gitVersion": plain},
                    {"version": {}},
                    source,
                    warnings,
                )
    sections: list[tuple[str, Callable[[dict, str], dict | None]]] = [
        ("configmaps", converter.config_map),
        ("secrets", converter.secret),
        ("services", converter.service),
        ("deployments", converter.deployment),
        ("pods", converter.pod),
    ]
    for section, convert in sections:
        for item, path in converter.entries(document, section):
            manifest = convert(item, path)
            if manifest is None:
                continue
            namespace = manifest["metadata"].get("namespace")
            if namespace and namespace not in namespaces:
                namespaces.append(namespace)
            manifests.append(converter.adopt(manifest, item))
    prelude: list[dict] = []
    for namespace in namespaces:
        prelude.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "labels": {"kubernetes.io/metadata.name": namespace},
                    "name": namespace,
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )
        prelude.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": namespace},
            }
        )
    return prelude + manifests, version_info

# -*- test-case-name: tests.test_kube_store -*-
"""
One simulated cluster's API objects and the storage semantics of a
kube-apiserver over them, without I/O: resourceVersions, consistent and
paginated lists, watches with history replay and watch-list, optimistic
concurrency, finalizers and namespace termination.

An L{ObjectStore} is an overlay on a L{SeedSet}: the objects of a cluster
template, shared by every simulated cluster made from it and rendered into
dicts only when something reads them. Whatever a client writes is kept in
the overlay, a few dicts per cluster.

Objects are plain JSON-shaped dicts and are immutable by convention: the
store never changes a dict after it has stored or returned it, each write
builds new dicts (copying only what it changes), and callers must not change
the dicts they get, nor the nested values of the objects they pass in.
That is what lets thousands of clusters, list results and watch events
share one object.

Semantics follow kube-apiserver 1.35 (C{k8s.io/apiserver}'s generic
registry, cacher and watch cache; the namespace registry and the
NamespaceLifecycle admission plugin). Every create and update is decoded
as the apiserver decodes a body (L{scaleagent.kube.defaults}: the Go round
trip and API defaulting) before the strategy and the admission functions
see it, and what goes to storage is decoded again, as the apiserver reads
it back from etcd; Services get their cluster IPs and node ports as the
Service registry allocates them. Template objects are read as they are
written. Where this store approximates, the code says so.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import random
import re
import uuid
import weakref
from bisect import bisect_left, bisect_right
from datetime import datetime, timezone
from heapq import merge
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Union

from twisted.logger import Logger

from scaleagent.kube.defaults import allocate_service, default_object, normalise_object
from scaleagent.kube.errors import (
    APIError,
    CauseType,
    FieldError,
    StatusCause,
    StatusDetails,
    StatusReason,
    go_quote,
    new_already_exists,
    new_bad_request,
    new_conflict,
    new_forbidden,
    new_generate_name_conflict,
    new_invalid,
    new_not_found,
    new_resource_expired,
    new_too_large_resource_version,
    new_unknown,
    success_status,
)
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.selectors import (
    EVERYTHING,
    FieldSelector,
    LabelSelector,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
    parse_field_selector,
    parse_label_selector,
)

__all__ = [
    "ADDED",
    "BOOKMARK",
    "DELETED",
    "ERROR",
    "INITIAL_EVENTS_END_ANNOTATION",
    "MODIFIED",
    "ListResult",
    "ObjectStore",
    "SeedSet",
    "Watch",
    "validate_list_options",
    "validate_watch_options",
]

#: Watch event types.
ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"

#: The annotation on the bookmark that ends a watch-list's initial events.
INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end"

GroupResource = tuple[str, str]
SeedEntry = tuple[ResourceType, str, str, object]
LabelSelectorLike = Union[str, LabelSelector, None]
FieldSelectorLike = Union[str, FieldSelector, None]
WatchCallback = Callable[[str, dict], object]
Admission = Callable[[str, ResourceType, dict, Optional[dict]], Optional[dict]]
Observer = Callable[[str, ResourceType, dict, Optional[dict]], object]

_NAMESPACES: GroupResource = ("", "namespaces")
_SERVICES: GroupResource = ("", "services")

# NamespaceLifecycle's immortal namespaces.
_IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})

_OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest "
    "version and try again"
)

# names.SimpleNameGenerator and the registry's RetryGenerateName (GA in 1.32).
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_NAME_SUFFIX_LENGTH = 5
_GENERATE_NAME_BASE_LIMIT = 63 - _GENERATE_NAME_SUFFIX_LENGTH
_GENERATE_NAME_ATTEMPTS = 8

# Built-in resources whose strategies never set metadata.generation although
# they have a spec. Everything else with a spec gets generation 1 on create,
# as Deployments do (and custom resources, with or without a spec).
# Kubelets register Nodes with their status, and the node strategy keeps
# it; every other built-in strategy with a status subresource resets it on
# create (pods to Pending, below).
_KEEPS_STATUS_ON_CREATE = frozenset({("", "nodes")})
_PODS: GroupResource = ("", "pods")

_NO_GENERATION = frozenset(
    {
        ("", "namespaces"),
        ("", "nodes"),
        ("", "services"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "resourcequotas"),
        ("", "limitranges"),
    }
)

# Registries built with ReturnDeletedObject: a delete answers with the
# object instead of a Status. (Pods, service accounts and storage classes in
# their storage.go; namespaces in the namespace registry.)
_RETURNS_DELETED_OBJECT = frozenset(
    {
        ("", "pods"),
        ("", "serviceaccounts"),
        ("", "namespaces"),
        ("storage.k8s.io", "storageclasses"),
    }
)

# Metadata that a built-in status update cannot change (the Deployment and
# Pod status strategies).
_STATUS_KEEPS_METADATA = {
    ("apps", "deployments"): ("labels",),
    ("", "pods"): ("ownerReferences",),
}

# Kinds whose ValidateXUpdate validates the new object's metadata in full
# again after ValidateObjectMetaUpdate (ValidateConfigMapUpdate calls
# ValidateConfigMap, and so on), so that its problems are listed once more.
_REVALIDATES_METADATA_ON_UPDATE = frozenset(
    {
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
    }
)

# Name rules per resource; the default is an RFC 1123 subdomain.
_DNS1123_LABEL_NAMES = frozenset({("", "namespaces")})
_DNS1035_LABEL_NAMES = frozenset({("", "services")})
# RBAC names only need to be safe as a path segment ("system:node" etc.).
_PATH_SEGMENT_NAME_GROUPS = frozenset({"rbac.authorization.k8s.io"})

# The order kube-apiserver serialises ObjectMeta in.
_METADATA_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)

# Top-level keys that are not part of what metadata.generation tracks.
_UNVERSIONED_KEYS = frozenset({"apiVersion", "kind", "metadata", "status"})

# What the create handler clears (rest.WipeObjectMetaSystemFields).
_WIPED_ON_CREATE = (
    "creationTimestamp",
    "uid",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)

_STRING_METADATA = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
)

_ANNOTATIONS_SIZE_LIMIT = 256 * 1024
_FINALIZER_ORPHAN = "orphan"
_FINALIZER_FOREGROUND = "foregroundDeletion"
_NAMESPACE_LABEL = "kubernetes.io/metadata.name"

_MISSING = object()
_DIGITS = re.compile(r"[0-9]+")
_URL_BASE64 = re.compile(r"[A-Za-z0-9_-]*")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(namespace: str, name: str) -> str:
    # The part of the etcd key after the resource prefix: lists come back in
    # this key's byte order, which is not (namespace, name) order.
    return f"{namespace}/{name}" if namespace else name


def _split_key(key: str) -> tuple[str, str]:
    namespace, slash, name = key.partition("/")
    return (namespace, name) if slash else ("", key)


def _identity(seed: object) -> dict:
    return seed  # type: ignore[return-value]


class _ResourceVersionError(Exception):
    """A resourceVersion that is not a uint64; the message is strconv's."""


def _parse_resource_version(text: str) -> int:
    """
    C{APIObjectVersioner.ParseResourceVersion}: C{""} and C{"0"} mean 0,
    anything else must be a decimal uint64.
    """
    if text in ("", "0"):
        return 0
    if not _DIGITS.fullmatch(text):
        raise _ResourceVersionError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if value >= 1 << 64:
        raise _ResourceVersionError(
            f"strconv.ParseUint: parsing {go_quote(text)}: value out of range"
        )
    return value


def _object_resource_version(obj: Mapping) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def _as_version(obj: dict, resource_type: ResourceType) -> dict:
    """The object as the requested version names it (no schema conversion)."""
    api_version = resource_type.api_version
    if obj.get("apiVersion") == api_version:
        return obj
    return {**obj, "apiVersion": api_version}


def _with_metadata(obj: Mapping, **changes: Any) -> dict:
    """A shallow copy of C{obj} with some metadata fields replaced."""
    metadata = dict(obj["metadata"])
    metadata.update(changes)
    copy = dict(obj)
    copy["metadata"] = _ordered_metadata(metadata)
    return copy


def _ordered_metadata(metadata: Mapping) -> dict:
    ordered = {key: metadata[key] for key in _METADATA_ORDER if key in metadata}
    if len(ordered) != len(metadata):
        for key, value in metadata.items():
            if key not in ordered:
                ordered[key] = value
    return ordered


def _labels_of(obj: Mapping) -> Mapping[str, str]:
    return obj["metadata"].get("labels") or {}


def _is_clean_path(path: str) -> bool:
    # path.Clean(path) == path, for paths that start with "/".
    if path == "/":
        return True
    return all(segment not in ("", ".", "..") for segment in path[1:].split("/"))


class _ContinueError(Exception):
    """A continue token that cannot be decoded; the message is apiserver's."""


def _encode_continue(start: str, resource_version: int) -> str:
    """C{storage.EncodeContinue}: base64url (unpadded) JSON."""
    payload = json.dumps(
        {"v": "meta.k8s.io/v1", "rv": resource_version, "start": start},
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(payload.encode("utf-8")).rstrip(b"=").decode("ascii")


def _decode_continue(token: str) -> tuple[str, int]:
    """
    C{storage.DecodeContinue}, minus the key prefix.

    @return: the start key relative to the listed prefix, and the
        resourceVersion of the list it continues (negative: the latest).
    """
    invalid = "continue key is not valid"
    if not _URL_BASE64.fullmatch(token):
        position = next(
            index for index, character in enumerate(token) if not _URL_BASE64.fullmatch(character)
        )
        raise _ContinueError(f"{invalid}: illegal base64 data at input byte {position}")
    if len(token) % 4 == 1:
        raise _ContinueError(f"{invalid}: illegal base64 data at input byte {len(token) - 1}")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(data)
    except (binascii.Error, ValueError) as error:
        # Approximation: Go's encoding/json words these errors differently.
        raise _ContinueError(f"{invalid}: {error}") from None
    if not isinstance(payload, dict):
        raise _ContinueError(
            f"{invalid}: json: cannot unmarshal {type(payload).__name__} into Go value "
            "of type storage.continueToken"
        )
    version = payload.get("v", "")
    resource_version = payload.get("rv", 0)
    start = payload.get("start", "")
    if (
        not isinstance(version, str)
        or not isinstance(start, str)
        or isinstance(resource_version, bool)
        or not isinstance(resource_version, int)
    ):
        raise _ContinueError(f"{invalid}: json: cannot unmarshal into Go struct continueToken")
    if version != "meta.k8s.io/v1":
        raise _ContinueError(f"{invalid}: server does not recognize this encoded version {version}")
    if resource_version == 0:
        raise _ContinueError(
            f"{invalid}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        )
    if not start:
        raise _ContinueError(f"{invalid}: encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    if not _is_clean_path(key):
        raise _ContinueError(f"{invalid}: {start}")
    return key[1:], resource_version


def _label_selector(selector: LabelSelectorLike) -> LabelSelector:
    if selector is None:
        return EVERYTHING
    if isinstance(selector, LabelSelector):
        return selector
    return parse_label_selector(selector)


def _field_selector(selector: FieldSelectorLike) -> FieldSelector:
    if selector is None:
        return parse_field_selector("")
    if isinstance(selector, FieldSelector):
        return selector
    return parse_field_selector(selector)


def _mask_trailing_dash(name: str) -> str:
    # generic.maskTrailingDash, quirk included: it drops two characters.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def _dns1035_label_errors(value: str) -> list[str]:
    errors = []
    if len(value.encode("utf-8")) > 63:
        errors.append("must be no more than 63 bytes")
    if not re.fullmatch("[a-z]([-a-z0-9]*[a-z0-9])?", value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters "
            "or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used "
            "for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errors


def _path_segment_errors(name: str, prefix: bool) -> list[str]:
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{illegal}'" for illegal in ("/", "%") if illegal in name]


def _name_errors(group_resource: GroupResource, name: str, prefix: bool) -> list[str]:
    """
    What the resource's strategy and the generic path-segment check say
    about a name (or, with C{prefix}, a generateName).
    """
    errors = _path_segment_errors(name, prefix)
    if group_resource[0] in _PATH_SEGMENT_NAME_GROUPS:
        return errors
    if prefix:
        name = _mask_trailing_dash(name)
    if group_resource in _DNS1123_LABEL_NAMES:
        return dns1123_label_errors(name) + errors
    if group_resource in _DNS1035_LABEL_NAMES:
        return _dns1035_label_errors(name) + errors
    return dns1123_subdomain_errors(name) + errors


def _go_string_slice(values: Iterable[str]) -> str:
    # How Go's %#v prints a []string.
    return "[]string{" + ", ".join(go_quote(value) for value in values) + "}"


def validate_list_options(
    resource_version: Optional[str],
    resource_version_match: Optional[str],
    continue_token: Optional[str] = None,
    send_initial_events: Optional[bool] = None,
) -> None:
    """
    Check the options of a LIST request as the apiserver's list handler
    does before the storage sees them (C{ValidateListOptions}).
    L{ObjectStore.list} applies this itself (without
    C{send_initial_events}); the HTTP layer calls it with everything the
    request gave, so that every cause is reported, in the apiserver's order.

    @raise APIError: Invalid C{ListOptions.meta.k8s.io}.
    """
    errors = []
    path = "resourceVersionMatch"
    if resource_version_match:
        if not resource_version:
            errors.append(
                FieldError.forbidden(
                    path, "resourceVersionMatch is forbidden unless resourceVersion is provided"
                )
            )
        if continue_token:
            errors.append(
                FieldError.forbidden(
                    path, "resourceVersionMatch is forbidden when continue is provided"
                )
            )
        if resource_version_match not in ("Exact", "NotOlderThan"):
            errors.append(
                FieldError.not_supported(
                    path, resource_version_match, ("Exact", "NotOlderThan", "")
                )
            )
        if resource_version_match == "Exact" and resource_version == "0":
            errors.append(
                FieldError.forbidden(
                    path, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
                )
            )
    if send_initial_events is not None:
        errors.append(
            FieldError.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
        )
    if errors:
        raise new_invalid(("meta.k8s.io", "ListOptions"), "", errors)


def validate_watch_options(
    resource_version_match: Optional[str],
    send_initial_events: Optional[bool],
    continue_token: Optional[str] = None,
) -> None:
    """
    Check the options of a watch request as the apiserver's handler does
    (C{ValidateListOptions} with C{watch=true}, the WatchList feature on):
    C{sendInitialEvents} needs C{resourceVersionMatch=NotOlderThan}, which
    in turn is only allowed with C{sendInitialEvents}. The HTTP layer calls
    this before L{ObjectStore.watch}, which does not see the match.

    @raise APIError: Invalid C{ListOptions.meta.k8s.io}.
    """
    errors = []
    path = "resourceVersionMatch"
    if send_initial_events is not None and resource_version_match != "NotOlderThan":
        errors.append(
            FieldError.forbidden(
                path, "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
            )
        )
    if resource_version_match:
        if send_initial_events is None:
            errors.append(
                FieldError.forbidden(
                    path,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is "
                    "provided",
                )
            )
        if resource_version_match != "NotOlderThan":
            errors.append(FieldError.not_supported(path, resource_version_match, ("NotOlderThan",)))
        if continue_token:
            errors.append(
                FieldError.forbidden(
                    path, "resourceVersionMatch is forbidden when continue is provided"
                )
            )
    if errors:
        raise new_invalid(("meta.k8s.io", "ListOptions"), "", errors)


class ListResult(NamedTuple):
    """
    What a list answers with.

    @ivar items: the objects (shared, do not modify).
    @ivar resource_version: the list's C{metadata.resourceVersion}.
    @ivar continue_token: C{metadata.continue}, C{""} on the last page.
    @ivar remaining_item_count: C{metadata.remainingItemCount}, or L{None}
        when the list is complete or filtered by a selector.
    """

    items: list
    resource_version: str
    continue_token: str
    remaining_item_count: Optional[int]


class _SeedTable:
    """The seed objects of one group-resource: sorted keys and key -> seed."""

    __slots__ = ("keys", "objects")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.objects: dict[str, object] = {}


class SeedSet:
    """
    An immutable index of seed objects that any number of L{ObjectStore}s
    share. A store given seed entries uses L{SeedSet.shared}, so stores
    given equal entries (the same template objects under the same names)
    share one index without the caller doing anything.

    Iterating yields the C{(resource_type, namespace, name, seed)} tuples it
    was built from.
    """

    __slots__ = ("_entries", "_tables", "__weakref__")

    def __init__(self, seed: Iterable[SeedEntry] = ()) -> None:
        entries = tuple(seed)
        tables: dict[GroupResource, _SeedTable] = {}
        for resource_type, namespace, name, seed_object in entries:
            if bool(namespace) != resource_type.namespaced:
                raise ValueError(
                    f"seed {resource_type.resource} {name!r} has namespace {namespace!r} "
                    f"but the resource is {'' if resource_type.namespaced else 'not '}namespaced"
                )
            table = tables.get(resource_type.group_resource)
            if table is None:
                table = tables[resource_type.group_resource] = _SeedTable()
            key = _key(namespace, name)
            if key in table.objects:
                raise ValueError(f"duplicate seed {resource_type.resource} {key!r}")
            table.objects[key] = seed_object
        for table in tables.values():
            table.keys = sorted(table.objects)
        self._entries = entries
        self._tables = tables

    @classmethod
    def shared(cls, seed: Iterable[SeedEntry]) -> SeedSet:
        """
        The index of these entries, shared with every caller that passes
        equal entries while any of them is alive. Entries whose seed objects
        cannot be hashed get a private index.
        """
        entries = tuple(seed)
        if not entries:
            return _NO_SEEDS
        try:
            cached = _SHARED_SEED_SETS.get(entries)
        except TypeError:
            return cls(entries)
        if cached is None:
            cached = _SHARED_SEED_SETS[entries] = cls(entries)
        return cached

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def table(self, group_resource: GroupResource) -> Optional[_SeedTable]:
        return self._tables.get(group_resource)

    def group_resources(self) -> Iterable[GroupResource]:
        return self._tables.keys()


class _Event:
    """
    One committed change: C{object} is the new state (for DELETED, the last
    state stamped with the deletion's resourceVersion), C{previous} the state
    before (L{None} for ADDED).
    """

    __slots__ = ("resource_version", "type", "key", "object", "previous", "time")

    def __init__(
        self,
        resource_version: int,
        event_type: str,
        key: str,
        obj: dict,
        previous: Optional[dict],
        time: float = 0.0,
    ) -> None:
        self.resource_version = resource_version
        self.type = event_type
        self.key = key
        self.object = obj
        self.previous = previous
        self.time = time


def _event_resource_version(event: _Event) -> int:
    return event.resource_version


class _History:
    """
    The watch cache of one group-resource: its latest events, and the
    oldest resourceVersion a watch can still resume from (C{floor}).
    """

    __slots__ = ("events", "floor")

    def __init__(self, floor: int) -> None:
        self.events: list[_Event] = []
        self.floor = floor


class Watch:
    """
    One open watch. Events go to its callback as C{callback(type, object)}
    until L{cancel} is called.
    """

    __slots__ = (
        "_store",
        "resource_type",
        "_namespace",
        "_labels",
        "_fields",
        "_callback",
        "_allow_bookmarks",
        "_after",
        "_active",
    )

    def __init__(
        self,
        store: ObjectStore,
        resource_type: ResourceType,
        namespace: str,
        labels: LabelSelector,
        fields: FieldSelector,
        callback: WatchCallback,
        allow_bookmarks: bool,
        after: int,
    ) -> None:
        self._store = store
        self.resource_type = resource_type
        self._namespace = namespace
        self._labels = labels
        self._fields = fields
        self._callback = callback
        self._allow_bookmarks = allow_bookmarks
        # Events at or below this resourceVersion were already sent (or
        # predate the watch).
        self._after = after
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    def cancel(self) -> None:
        """Stop sending events. Safe to call more than once."""
        if self._active:
            self._active = False
            self._store._remove_watch(self)

    def bookmark(self) -> None:
        """
        Send a BOOKMARK with the resourceVersion every event already sent is
        at or below, if the watch allowed bookmarks. The HTTP layer calls
        this from one shared timer for all watches.
        """
        if self._active and self._allow_bookmarks:
            self._callback(
                BOOKMARK,
                _bookmark_object(self.resource_type, self._store._delivered_resource_version),
            )

    def _selects(self, obj: Mapping) -> bool:
        if self._namespace and obj["metadata"].get("namespace", "") != self._namespace:
            return False
        return self._labels.matches(_labels_of(obj)) and self._fields.matches(obj)

    def _emit(self, event_type: str, obj: dict) -> None:
        self._callback(event_type, _as_version(obj, self.resource_type))

    def _deliver(self, event: _Event) -> None:
        if event.resource_version <= self._after:
            return
        if event.type == ADDED:
            if self._selects(event.object):
                self._emit(ADDED, event.object)
        elif event.type == MODIFIED:
            selected_now = self._selects(event.object)
            selected_before = self._selects(event.previous)
            if selected_now and selected_before:
                self._emit(MODIFIED, event.object)
            elif selected_now:
                self._emit(ADDED, event.object)
            elif selected_before:
                # As the watch cache does: the old content, the new version.
                self._emit(
                    DELETED,
                    _with_metadata(event.previous, resourceVersion=str(event.resource_version)),
                )
        elif self._selects(event.object):
            self._emit(DELETED, event.object)


def _bookmark_object(resource_type: ResourceType, resource_version: int, end: bool = False) -> dict:
    metadata: dict = {"resourceVersion": str(resource_version)}
    if end:
        metadata["annotations"] = {INITIAL_EVENTS_END_ANNOTATION: "true"}
    return {
        "kind": resource_type.kind,
        "apiVersion": resource_type.api_version,
        "metadata": metadata,
    }


class ObjectStore:
    """
    The API objects of one simulated cluster.

    All operations are synchronous and keyed by a L{ResourceType}; storage
    is shared by every version of a resource (C{rt.group_resource}) and the
    objects returned carry the C{apiVersion} the caller asked with (this
    store does not convert schemas between versions). Namespace C{""} means
    cluster-scoped. Errors are L{APIError}s as kube-apiserver would answer.

    Hooks for built-in controllers:
      - L{add_admission}: mutating admission before a create or update is
        persisted.
      - L{add_observer}: called after every committed change. Observers may
        write to the store; their changes are committed at once, but every
        notification (to watches and observers) is delivered in commit order
        after the change being notified, and the outermost operation returns
        only once the whole cascade has been delivered.
    """

    __slots__ = (
        "_seeds",
        "_render",
        "_now",
        "_uid_factory",
        "_random",
        "_history_limit",
        "_history_age",
        "_history_keep",
        "_resource_version",
        "_base_resource_version",
        "_delivered_resource_version",
        "_changes",
        "_overlay",
        "_history",
        "_watches",
        "_admissions",
        "_observers",
        "_pending",
        "_dispatching",
    )

    _log = Logger()

    def __init__(
        self,
        seed: Iterable[SeedEntry] = (),
        render: Optional[Callable[[object], dict]] = None,
        initial_resource_version: int = 1,
        now: Callable[[], datetime] = _utc_now,
        history_limit: int = 1000,
        *,
        history_age: float = 0.0,
        history_keep: int = 10,
        uid_factory: Optional[Callable[[], str]] = None,
        rng: Optional[random.Random] = None,
    ) -> None:
        """
        @param seed: C{(resource_type, namespace, name, seed_object)}
            tuples, or a L{SeedSet}.
        @param render: turns a seed object into the full object dict
            (apiVersion, kind, metadata with uid, a resourceVersion no
            greater than C{initial_resource_version}, creationTimestamp).
            Called whenever a seed is read; its results are treated as
            immutable. L{None}: the seeds are such dicts already.
        @param initial_resource_version: the current resourceVersion; the
            first write gets the next one.
        @param now: the current time (UTC) for timestamps.
        @param history_limit: watch events kept per group-resource for
            resuming watches and paginated lists.
        @param history_age: if positive, events older than this many
            seconds are dropped too (beyond the C{history_keep} newest of
            each group-resource), as the apiserver's watch cache keeps a
            time window rather than everything: every kept event pins an old
            version of an object, and thousands of clusters whose nodes
            report every few minutes would otherwise hold gigabytes.
        @param history_keep: events kept per group-resource whatever their
            age.
        @param uid_factory: makes object UIDs (default: random UUIDs).
        @param rng: source of generateName suffixes.
        """
        self._seeds = seed if isinstance(seed, SeedSet) else SeedSet.shared(seed)
        self._render = render if render is not None else _identity
        self._now = now
        self._uid_factory = uid_factory
        self._random = rng
        self._history_limit = max(0, history_limit)
        self._history_age = max(0.0, history_age)
        self._history_keep = max(0, history_keep)
        self._resource_version = initial_resource_version
        self._base_resource_version = initial_resource_version
        self._delivered_resource_version = initial_resource_version
        self._changes = 0
        self._overlay: dict[GroupResource, dict[str, Optional[dict]]] = {}
        self._history: dict[GroupResource, _History] = {}
        self._watches: dict[GroupResource, list[Watch]] = {}
        self._admissions: tuple[Admission, ...] = ()
        self._observers: tuple[Observer, ...] = ()
        self._pending: Optional[list[tuple[ResourceType, _Event]]] = None
        self._dispatching = False

    # -- introspection -----------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest committed change."""
        return self._resource_version

    @property
    def generation(self) -> int:
        """
        Committed changes since this store was built or restored: a
        persistence flusher saves when it differs from what it last saved.
        """
        return self._changes

    @property
    def watch_count(self) -> int:
        """How many watches are open."""
        return sum(len(watches) for watches in self._watches.values())

    def count(self, resource_type: Optional[ResourceType] = None) -> int:
        """How many objects of one resource, or of all, exist."""
        if resource_type is not None:
            group_resources: Iterable[GroupResource] = (resource_type.group_resource,)
        else:
            group_resources = set(self._seeds.group_resources()) | set(self._overlay)
        total = 0
        for group_resource in group_resources:
            table = self._seeds.table(group_resource)
            total += len(table.objects) if table is not None else 0
            for key, value in self._overlay.get(group_resource, {}).items():
                seeded = table is not None and key in table.objects
                if value is None:
                    total -= 1
                elif not seeded:
                    total += 1
        return total

    # -- hooks -------------------------------------------------------------

    def add_admission(self, admission: Admission) -> None:
        """
        Add a mutating admission function, called as C{admission(operation,
        resource_type, new, old)} with C{"CREATE"} or C{"UPDATE"} once the
        store has filled in system fields (name, uid, timestamps) and applied
        the resource's strategy, before validation and persistence.

        It returns the object to persist (a modified copy: never change
        C{new} itself) or L{None} to keep it, or raises L{APIError} to refuse
        the request. It must not change the name or namespace.
        """
        self._admissions += (admission,)

    def add_observer(self, observer: Observer) -> None:
        """
        Add an observer, called as C{observer(event_type, resource_type,
        obj, old)} after each committed change (C{ADDED}, C{MODIFIED},
        C{DELETED}). Exceptions are logged and otherwise ignored.
        """
        self._observers += (observer,)

    # -- reads -------------------------------------------------------------

    def get(self, resource_type: ResourceType, namespace: str, name: str) -> dict:
        """
        One object.

        @raise APIError: NotFound.
        """
        namespace = namespace if resource_type.namespaced else ""
        group_resource = resource_type.group_resource
        obj = self._stored(group_resource, _key(namespace, name))
        if obj is None:
            raise new_not_found(group_resource, name)
        return _as_version(obj, resource_type)

    def list(
        self,
        resource_type: ResourceType,
        namespace: Optional[str] = None,
        label_selector: LabelSelectorLike = None,
        field_selector: FieldSelectorLike = None,
        limit: Optional[int] = None,
        continue_token: Optional[str] = None,
        resource_version: Optional[str] = None,
        resource_version_match: Optional[str] = None,
    ) -> ListResult:
        """
        List objects in etcd key order (C{namespace/name} compared as
        bytes, so C{a-b/x} comes before C{a/x}), with the semantics of a
        LIST request's parameters:

          - C{resource_version} C{""}: the latest state; C{"0"}: any state
            (the latest here; C{limit} is ignored, as the watch cache does);
            C{"N"}: at least N, or exactly N with C{resource_version_match}
            C{"Exact"} (or, as legacy, with a C{limit}).
          - C{limit}/C{continue_token}: pages of one consistent snapshot.
            A token whose snapshot has left the history is refused with 410
            and a token to continue inconsistently, as etcd3 storage does.

        @raise APIError: BadRequest, Invalid, Gone/Expired, Timeout (504
            "Too large resource version").
        """
        labels = _label_selector(label_selector)
        fields = _field_selector(field_selector)
        text = resource_version or ""
        match = resource_version_match or ""
        token = continue_token or ""
        validate_list_options(text, match, token)
        try:
            requested = _parse_resource_version(text)
        except _ResourceVersionError as error:
            # The cacher returns storage.InvalidError, which no layer turns
            # into a Status: the client sees a 500 without a reason.
            raise new_unknown(
                500, str(FieldError.invalid("resourceVersion", text, str(error)))
            ) from None

        group_resource = resource_type.group_resource
        if resource_type.namespaced:
            namespace = namespace or ""
            if not namespace:
                # A field selector on one namespace narrows the key range
                # (and so the continue key), as the registry does.
                selected = fields.requires_exact_match("metadata.namespace")
                if selected and not dns1123_label_errors(selected):
                    namespace = selected
        else:
            namespace = ""
        prefix = namespace + "/" if namespace else ""
        low, high = (prefix, namespace + "0") if namespace else ("", None)
        name = fields.requires_exact_match("metadata.name")
        if name is not None and (namespace or not resource_type.namespaced):
            # A single-object list reads one key.
            low = prefix + name
            high = low + "\x00"

        at: Optional[int] = None
        start_relative = ""
        if token:
            if text not in ("", "0"):
                raise new_bad_request(
                    "specifying resource version is not allowed when using continue"
                )
            try:
                start_relative, token_version = _decode_continue(token)
            except _ContinueError as error:
                raise new_bad_request(f"invalid continue token: {error}") from None
            low = max(low, prefix + start_relative)
            if token_version > 0:
                at = token_version
        elif match == "Exact" or (not match and limit and limit > 0 and requested > 0):
            at = requested
        elif requested > self._resource_version:
            raise new_too_large_resource_version(requested, self._resource_version, 1)

        undo: dict[str, Optional[dict]] = {}
        if at is not None:
            if at > self._resource_version:
                raise new_too_large_resource_version(at, self._resource_version, 1)
            if at < self._floor(group_resource):
                if token:
                    raise new_resource_expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter, "
                        "or use the continue token in this response to retrieve the remainder "
                        "of the results. Continuing with the provided token results in an "
                        "inconsistent list - objects that were created, modified, or deleted "
                        "between the time the first chunk was returned and now may show up in "
                        "the list.",
                        continue_token=_encode_continue(start_relative, -1),
                    )
                # etcd3 storage's interpretListError for a compacted
                # revision; "too old resource version" is the watch's text.
                raise new_resource_expired("The resourceVersion for the provided list is too old.")
            undo = self._undo_since(group_resource, at)
        list_version = at if at is not None else self._resource_version

        # The watch cache ignores the limit of a resourceVersion=0 list.
        page = limit if limit and limit > 0 and text != "0" else None
        keys = self._keys(group_resource, low, high, undo)
        items: list[dict] = []
        last_key = ""
        stop: Optional[int] = None
        for index, key in enumerate(keys):
            obj = undo[key] if key in undo else self._stored(group_resource, key)
            if obj is None:
                continue
            if labels.matches(_labels_of(obj)) and fields.matches(obj):
                items.append(_as_version(obj, resource_type))
                last_key = key
                if page is not None and len(items) >= page:
                    stop = index
                    break
        continue_value = ""
        remaining = None
        # As the cacher: there is more when any key, matching or not,
        # follows the last item returned.
        if stop is not None and stop < len(keys) - 1:
            continue_value = _encode_continue(last_key[len(prefix):] + "\x00", list_version)
            if labels.empty and fields.empty:
                remaining = len(keys) - stop - 1
        return ListResult(items, str(list_version), continue_value, remaining)

    def watch(
        self,
        resource_type: ResourceType,
        namespace: Optional[str] = None,
        label_selector: LabelSelectorLike = None,
        field_selector: FieldSelectorLike = None,
        resource_version: Optional[str] = None,
        send_initial_events: Optional[bool] = None,
        allow_bookmarks: bool = False,
        callback: Optional[WatchCallback] = None,
    ) -> Watch:
        """
        Open a watch; C{callback(event_type, obj)} gets its events, the
        first ones before this returns.

          - C{resource_version} unset or C{"0"}: an ADDED event for every
            matching object, then changes. (kube-apiserver 1.34+ turns such
            a request into a watch-list, so with C{allow_bookmarks} the
            initial events also end with the C{initial-events-end} bookmark.)
          - C{"N"}: every change after N from the history, then new ones.
          - C{send_initial_events=True} (watch-list): ADDED for every
            matching object, then (with C{allow_bookmarks}) a BOOKMARK
            annotated C{k8s.io/initial-events-end: "true"} at the current
            resourceVersion, then changes. C{False}: no initial events.

        An object that stops matching the selectors is sent as DELETED, one
        that starts matching as ADDED.

        @raise APIError: Invalid (422) for an unparsable resourceVersion and
            BadRequest for bad selectors, which kube-apiserver answers as
            HTTP errors; and Expired (410, C{too old resource version: N
            (M)}) or Timeout (504, C{Too large resource version}), which it
            reports inside a 200 watch stream as a single ERROR event whose
            object is L{APIError.to_status}. client-go relists either way.
        """
        if callback is None:
            raise TypeError("watch() needs a callback")
        labels = _label_selector(label_selector)
        fields = _field_selector(field_selector)
        group_resource = resource_type.group_resource
        text = resource_version or ""
        try:
            requested = _parse_resource_version(text)
        except _ResourceVersionError as error:
            raise new_invalid(
                group_resource, "", [FieldError.invalid("resourceVersion", text, str(error))]
            ) from None
        if send_initial_events is None and text in ("", "0"):
            # SetListOptionsDefaults with the WatchList feature (on by
            # default since 1.34).
            send_initial_events = True
        namespace = (namespace or "") if resource_type.namespaced else ""
        current = self._resource_version
        if send_initial_events:
            if requested > current:
                raise new_too_large_resource_version(requested, current, 1)
        elif text not in ("", "0"):
            floor = self._floor(group_resource)
            if requested < floor:
                raise new_resource_expired(f"too old resource version: {requested} ({floor})")

        watch = Watch(
            self,
            resource_type,
            namespace,
            labels,
            fields,
            callback,
            allow_bookmarks,
            after=0 if send_initial_events else requested,
        )
        if send_initial_events:
            low, high = (namespace + "/", namespace + "0") if namespace else ("", None)
            for key in self._keys(group_resource, low, high, {}):
                obj = self._stored(group_resource, key)
                if obj is not None and watch._selects(obj):
                    watch._emit(ADDED, obj)
            if allow_bookmarks:
                callback(BOOKMARK, _bookmark_object(resource_type, current, end=True))
        elif text not in ("", "0"):
            history = self._history.get(group_resource)
            if history is not None:
                events = history.events
                first = bisect_right(events, requested, key=_event_resource_version)
                for event in events[first:]:
                    watch._deliver(event)
        # Everything committed so far has been sent or predates the watch;
        # events still queued for delivery must not be sent twice.
        watch._after = max(watch._after, current)
        self._watches.setdefault(group_resource, []).append(watch)
        return watch

    def _remove_watch(self, watch: Watch) -> None:
        group_resource = watch.resource_type.group_resource
        watches = self._watches.get(group_resource)
        if watches is not None and watch in watches:
            watches.remove(watch)
            if not watches:
                del self._watches[group_resource]

    # -- writes ------------------------------------------------------------

    def create(
        self, resource_type: ResourceType, namespace: str, obj: Mapping, dry_run: bool = False
    ) -> dict:
        """
        Create an object, as POST to the collection does.

        The store decodes and defaults the object, fills in uid,
        creationTimestamp, resourceVersion, a name from C{generateName},
        C{generation} (1 for resources that track it), resets the client's
        status for resources with a status subresource, and allocates a
        Service's cluster IP and node ports. With C{dry_run} nothing is
        stored and the result has no resourceVersion.

        @raise APIError: BadRequest (wrong apiVersion/kind, namespace
            mismatch), NotFound (namespace), Forbidden (namespace
            terminating), Invalid, AlreadyExists.
        """
        group_resource = resource_type.group_resource
        namespace = (namespace or "") if resource_type.namespaced else ""
        new = default_object(resource_type, self._decode(resource_type, obj))
        metadata = new["metadata"]
        for field in _WIPED_ON_CREATE:
            metadata.pop(field, None)
        self._ensure_namespace_matches(metadata, namespace)
        if namespace:
            self._admit_namespace(
                resource_type,
                namespace,
                metadata.get("name") or metadata.get("generateName") or "",
                creating=True,
            )

        generate_name = metadata.get("generateName") or ""
        generating = bool(generate_name) and not metadata.get("name")
        if generating:
            metadata["name"] = self._generated_name(group_resource, namespace, generate_name)
        name = metadata.get("name") or ""
        metadata["uid"] = self._new_uid()
        metadata["creationTimestamp"] = _format_time(self._now())
        client_version = metadata.pop("resourceVersion", None)
        decoded = dict(new)
        self._prepare_for_create(resource_type, new)
        new = self._admit("CREATE", resource_type, new, None)
        if group_resource == _SERVICES:
            new = self._allocate_service(resource_type, new, None, dry_run)
        new = self._decoded(resource_type, new, None, decoded, None)
        metadata = new["metadata"]

        errors = self._validate_metadata(resource_type, metadata)
        if errors:
            raise new_invalid((resource_type.group, resource_type.kind), name, errors)
        if client_version:
            try:
                client_number = _parse_resource_version(client_version)
            except _ResourceVersionError:
                client_number = 0
            if client_number:
                raise new_unknown(500, "resourceVersion should not be set on objects to be created")

        key = _key(namespace, name)
        existing = self._stored(group_resource, key)
        if existing is not None:
            if generating:
                error = new_generate_name_conflict(group_resource, name, 1)
            else:
                error = new_already_exists(group_resource, name)
            if existing["metadata"].get("deletionTimestamp"):
                error = APIError(
                    error.code,
                    error.reason,
                    f"object is being deleted: {error.message}",
                    error.details,
                )
            raise error

        new["metadata"] = _ordered_metadata(metadata)
        if dry_run:
            return new
        self._resource_version += 1
        stored = _with_metadata(new, resourceVersion=str(self._resource_version))
        self._overlay.setdefault(group_resource, {})[key] = stored
        self._commit(resource_type, ADDED, key, stored, None)
        self._flush()
        return stored

    def update(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        obj: Mapping,
        subresource: Optional[str] = None,
        dry_run: bool = False,
    ) -> dict:
        """
        Replace an object, as PUT does, on the object or on its C{status}
        (or, for namespaces, C{finalize}) subresource.

          - A C{metadata.resourceVersion} other than the stored one is a 409
            Conflict; none at all is an unconditional update.
          - uid, creationTimestamp and deletionTimestamp stay as stored;
            C{generation} grows by one when anything but metadata and status
            changes.
          - With a status subresource, a PUT of the object keeps the stored
            status, and a PUT of C{status} keeps the stored spec: built-in
            resources take the request's metadata with it (as nodes/status
            does), custom resources change nothing but their status.
          - An update that removes the last finalizer of an object being
            deleted deletes it (DELETED event) and returns the object.
          - An update that changes nothing commits nothing.

        @raise APIError: NotFound, BadRequest (name/namespace mismatch),
            Conflict, Invalid.
        """
        group_resource = resource_type.group_resource
        namespace = (namespace or "") if resource_type.namespaced else ""
        if subresource is not None and (
            subresource not in resource_type.subresources
            or subresource not in ("status", "finalize")
        ):
            raise APIError(
                404,
                StatusReason.NOT_FOUND,
                "the server could not find the requested resource",
                StatusDetails(),
            )
        new = self._decode(resource_type, obj)
        key = _key(namespace, name)
        # What this store wrote is decoded already: the parts of the body
        # that are still the stored object's need no second walk.
        overlay = self._overlay.get(group_resource)
        written = overlay.get(key) if overlay is not None else None
        new = default_object(resource_type, new, subresource, written)
        decoded = dict(new)
        metadata = new["metadata"]
        # checkName, in the update handler.
        body_name = metadata.get("name") or ""
        if body_name != name:
            raise new_bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        body_namespace = metadata.get("namespace") or ""
        if namespace and body_namespace and body_namespace != namespace:
            raise new_bad_request(
                f"the namespace of the object ({body_namespace}) does not match the "
                f"namespace on the request ({namespace})"
            )

        old = self._stored(group_resource, key)
        if old is None:
            raise new_not_found(group_resource, name)
        try:
            requested = _parse_resource_version(str(metadata.get("resourceVersion") or ""))
        except _ResourceVersionError as error:
            raise new_unknown(500, str(error)) from None
        old_version = _object_resource_version(old)
        if requested and requested != old_version:
            raise new_conflict(group_resource, name, _OPTIMISTIC_LOCK_MESSAGE)
        if namespace:
            self._admit_namespace(resource_type, namespace, name, creating=False)

        old_metadata = old["metadata"]
        self._ensure_namespace_matches(metadata, namespace)
        new = self._prepare_for_update(resource_type, subresource, new, old)
        metadata = new["metadata"]
        metadata["resourceVersion"] = str(old_version)
        # rest.BeforeUpdate: the request cannot change these.
        if "generation" in old_metadata:
            metadata["generation"] = old_metadata["generation"]
        else:
            metadata.pop("generation", None)
        if not metadata.get("uid"):
            metadata["uid"] = old_metadata.get("uid", "")
        if "creationTimestamp" in old_metadata:
            metadata["creationTimestamp"] = old_metadata["creationTimestamp"]
        if old_metadata.get("deletionTimestamp"):
            metadata["deletionTimestamp"] = old_metadata["deletionTimestamp"]
        grace = old_metadata.get("deletionGracePeriodSeconds")
        if grace is not None and "deletionGracePeriodSeconds" not in metadata:
            metadata["deletionGracePeriodSeconds"] = grace
        # The stored object as the apiserver would have decoded it: a
        # template object (or one stored by an older scaleagent) may lack
        # what defaulting adds, which is no change the client made.
        decoded_old = _LazyDecoded(resource_type, key, old, self._overlay.get(group_resource))
        if (
            old_metadata.get("generation")
            and _spec_changed(new, old)
            and _spec_changed(new, decoded_old.get())
        ):
            metadata["generation"] = old_metadata["generation"] + 1
        new = self._admit("UPDATE", resource_type, new, _as_version(old, resource_type))
        if group_resource == _SERVICES and subresource is None:
            new = self._allocate_service(resource_type, new, old, dry_run)
        new = self._decoded(resource_type, new, subresource, decoded, written)
        metadata = new["metadata"]

        errors = self._validate_update_metadata(resource_type, metadata, old_metadata)
        if errors:
            raise new_invalid((resource_type.group, resource_type.kind), name, errors)
        new["metadata"] = _ordered_metadata(metadata)

        if self._should_delete_during_update(group_resource, new, old):
            if dry_run:
                return new
            # What the watch sees is the stored object going away; the
            # client gets the object it sent, as kube-apiserver answers.
            self._remove(resource_type, key, old)
            self._flush()
            return new
        current = _as_version(old, resource_type)
        if new == current or new == _as_version(decoded_old.get(), resource_type):
            return current
        if dry_run:
            return new
        self._resource_version += 1
        stored = _with_metadata(new, resourceVersion=str(self._resource_version))
        self._overlay.setdefault(group_resource, {})[key] = stored
        self._commit(resource_type, MODIFIED, key, stored, old)
        self._flush()
        return stored

    def bind_pod(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        node_name: str,
        annotations: Optional[Mapping[str, str]] = None,
        dry_run: bool = False,
    ) -> dict:
        """
        Assign a pod to a node, as C{pods/binding} does: the binding
        storage's C{setPodNodeAndMetadata} updates the stored pod directly,
        without the pod strategy or admission, so C{metadata.generation}
        stays as it is. It sets C{spec.nodeName}, merges the binding's
        annotations, and marks the C{PodScheduled} condition true.

        @raise APIError: NotFound; Conflict on C{pods/binding} when the pod
            is being deleted or already assigned.
        """
        group_resource = resource_type.group_resource
        key = _key(namespace, name)
        old = self._stored(group_resource, key)
        if old is None:
            raise new_not_found(group_resource, name)
        binding = (group_resource[0], group_resource[1] + "/binding")
        if old["metadata"].get("deletionTimestamp"):
            raise new_conflict(
                binding, name, f"pod {name} is being deleted, cannot be assigned to a host"
            )
        assigned = (old.get("spec") or {}).get("nodeName")
        if assigned:
            raise new_conflict(
                binding, name, f"pod {name} is already assigned to node {go_quote(assigned)}"
            )
        bound = dict(old)
        bound["spec"] = {**(old.get("spec") or {}), "nodeName": node_name}
        if annotations:
            merged = {**(old["metadata"].get("annotations") or {}), **annotations}
            bound = _with_metadata(bound, annotations=merged)
        status = dict(old.get("status") or {})
        conditions = list(status.get("conditions") or ())
        now = _format_time(self._now())
        # podutil.UpdatePodCondition: the condition is replaced, keeping its
        # transition time when its status does not change.
        scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None}
        for index, condition in enumerate(conditions):
            if condition.get("type") == "PodScheduled":
                same = condition.get("status") == "True"
                scheduled["lastTransitionTime"] = (
                    condition.get("lastTransitionTime") if same else now
                )
                conditions[index] = scheduled
                break
        else:
            scheduled["lastTransitionTime"] = now
            conditions.append(scheduled)
        status["conditions"] = conditions
        bound["status"] = status
        overlay = self._overlay.get(group_resource)
        written = old if overlay is not None and overlay.get(key) is old else None
        # In field order, as the binding storage encodes the typed pod.
        bound = normalise_object(resource_type, bound, written)
        return self._write_marked(resource_type, key, bound, old, dry_run)

    def delete(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        preconditions: Optional[Mapping[str, str]] = None,
        grace_period: Optional[int] = None,
        propagation: Optional[str] = None,
        dry_run: bool = False,
    ) -> dict:
        """
        Delete an object, as DELETE does.

        An object with finalizers only gets C{deletionTimestamp} and
        C{deletionGracePeriodSeconds: 0} (one MODIFIED event) and stays until
        an update removes the last finalizer. A namespace's first delete
        sets C{deletionTimestamp} and C{status.phase: Terminating}; while its
        C{spec.finalizers} are not empty, later deletes change nothing.

        C{grace_period} and C{propagation} are accepted and ignored: no
        resource here is deleted gracefully (there is no kubelet), and
        dependents are not garbage-collected (the C{orphan} and
        C{foregroundDeletion} finalizers those modes add would then never be
        removed).

        @param preconditions: C{{"uid": ..., "resourceVersion": ...}}, either
            optional, as C{DeleteOptions.preconditions}.
        @return: the object as marked for deletion; once deleted, the
            object for resources that return it (pods, namespaces...) and a
            success Status for the others.
        @raise APIError: NotFound, Conflict (preconditions), Forbidden.
        """
        group_resource = resource_type.group_resource
        namespace = (namespace or "") if resource_type.namespaced else ""
        preconditions = preconditions or {}
        if group_resource == _NAMESPACES and name in _IMMORTAL_NAMESPACES:
            raise new_forbidden(group_resource, name, "this namespace may not be deleted")
        key = _key(namespace, name)
        old = self._stored(group_resource, key)
        if old is None:
            raise new_not_found(group_resource, name)
        old_metadata = old["metadata"]

        if group_resource == _NAMESPACES:
            self._check_namespace_preconditions(name, old_metadata, preconditions)
            if not old_metadata.get("deletionTimestamp"):
                marked = _with_metadata(old, deletionTimestamp=_format_time(self._now()))
                marked["status"] = {**(old.get("status") or {}), "phase": "Terminating"}
                return self._write_marked(resource_type, key, marked, old, dry_run)
            if (old.get("spec") or {}).get("finalizers"):
                return _as_version(old, resource_type)
        else:
            self._check_delete_preconditions(resource_type, old_metadata, preconditions)

        if old_metadata.get("finalizers"):
            # markAsDeleting: the grace period drops to zero, the timestamp
            # is set once, and generation counts the start of deletion.
            changes: dict[str, Any] = {"deletionGracePeriodSeconds": 0}
            if not old_metadata.get("deletionTimestamp"):
                changes["deletionTimestamp"] = _format_time(self._now())
                if old_metadata.get("generation"):
                    changes["generation"] = old_metadata["generation"] + 1
            marked = _with_metadata(old, **changes)
            if marked == old:
                return _as_version(old, resource_type)
            return self._write_marked(resource_type, key, marked, old, dry_run)

        if not dry_run:
            self._remove(resource_type, key, old)
            self._flush()
        if group_resource in _RETURNS_DELETED_OBJECT:
            return _as_version(old, resource_type)
        return success_status(
            name, resource_type.group, resource_type.resource, old_metadata.get("uid", "")
        )

    def delete_collection(
        self,
        resource_type: ResourceType,
        namespace: Optional[str] = None,
        label_selector: LabelSelectorLike = None,
        field_selector: FieldSelectorLike = None,
        dry_run: bool = False,
    ) -> list:
        """
        Delete every matching object, as DELETE on the collection does.

        @return: the objects as listed before deleting them (what the
            apiserver returns as the items of a list).
        """
        listed = self.list(resource_type, namespace, label_selector, field_selector)
        for obj in listed.items:
            metadata = obj["metadata"]
            try:
                self.delete(
                    resource_type,
                    metadata.get("namespace", ""),
                    metadata["name"],
                    dry_run=dry_run,
                )
            except APIError as error:
                if error.code != 404:
                    raise
        return listed.items

    # -- persistence -------------------------------------------------------

    def export_changes(self) -> dict:
        """
        Everything needed to rebuild this store over the same seeds: every
        object that is not an untouched seed, the seeds that were deleted,
        and the resourceVersion. JSON-serialisable as long as the objects
        written are; the objects are shared, do not modify them.
        """
        objects = []
        deleted = []
        for (group, resource), overlay in sorted(self._overlay.items()):
            for key in sorted(overlay):
                namespace, name = _split_key(key)
                entry: dict = {
                    "group": group,
                    "resource": resource,
                    "namespace": namespace,
                    "name": name,
                }
                value = overlay[key]
                if value is None:
                    deleted.append(entry)
                else:
                    entry["object"] = value
                    objects.append(entry)
        return {
            "version": 1,
            "resourceVersion": self._resource_version,
            "objects": objects,
            "deleted": deleted,
        }

    @classmethod
    def restore(
        cls,
        seed: Iterable[SeedEntry],
        render: Optional[Callable[[object], dict]],
        changes: Mapping,
        initial_resource_version: int = 1,
        **options: Any,
    ) -> ObjectStore:
        """
        Rebuild a store from L{export_changes} output over the given seeds.

        The watch history is not kept, so watches and paginated lists can
        only resume from the restored resourceVersion on.

        @param options: the other L{ObjectStore} constructor arguments.
        @raise ValueError: when C{changes} is not an export.
        """
        if changes.get("version") != 1:
            raise ValueError(f"unknown store export version {changes.get('version')!r}")
        exported_version = changes.get("resourceVersion")
        if not isinstance(exported_version, int) or isinstance(exported_version, bool):
            raise ValueError("store export has no resourceVersion")
        store = cls(
            seed,
            render,
            initial_resource_version=max(initial_resource_version, exported_version),
            **options,
        )
        for entry in changes.get("objects", ()):
            obj = entry["object"]
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                raise ValueError(f"store export has a malformed object {entry.get('name')!r}")
            group_resource = (entry["group"], entry["resource"])
            key = _key(entry["namespace"], entry["name"])
            store._overlay.setdefault(group_resource, {})[key] = obj
        for entry in changes.get("deleted", ()):
            group_resource = (entry["group"], entry["resource"])
            key = _key(entry["namespace"], entry["name"])
            table = store._seeds.table(group_resource)
            # A seed that a newer template no longer has needs no tombstone.
            if table is not None and key in table.objects:
                store._overlay.setdefault(group_resource, {})[key] = None
        return store

    # -- internals: storage ------------------------------------------------

    def _stored(self, group_resource: GroupResource, key: str) -> Optional[dict]:
        """The current object at C{key}, rendering a seed if need be."""
        overlay = self._overlay.get(group_resource)
        if overlay is not None:
            value = overlay.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
        table = self._seeds.table(group_resource)
        if table is not None:
            seed = table.objects.get(key, _MISSING)
            if seed is not _MISSING:
                return self._render(seed)
        return None

    def _keys(
        self,
        group_resource: GroupResource,
        low: str,
        high: Optional[str],
        undo: Mapping[str, Optional[dict]],
    ) -> list[str]:
        """
        The sorted keys in C{[low, high)} that exist now, or, with C{undo}
        (see L{_undo_since}), that existed at an earlier resourceVersion.
        """

        def in_range(key: str) -> bool:
            return low <= key and (high is None or key < high)

        table = self._seeds.table(group_resource)
        if table is not None:
            seed_keys = table.keys
            end = len(seed_keys) if high is None else bisect_left(seed_keys, high)
            seed_keys = seed_keys[bisect_left(seed_keys, low):end]
        else:
            seed_keys = []
        overlay = self._overlay.get(group_resource)
        if overlay:
            seeded = table.objects if table is not None else {}
            added = sorted(
                key
                for key, value in overlay.items()
                if value is not None and key not in seeded and in_range(key)
            )
            surviving = [key for key in seed_keys if overlay.get(key, _MISSING) is not None]
            keys = list(merge(surviving, added)) if added else surviving
        else:
            keys = seed_keys
        if undo:
            present = set(keys)
            for key, value in undo.items():
                if not in_range(key):
                    continue
                if value is None:
                    present.discard(key)
                else:
                    present.add(key)
            keys = sorted(present)
        return keys

    def _floor(self, group_resource: GroupResource) -> int:
        """The oldest resourceVersion the history can resume from."""
        history = self._history.get(group_resource)
        return history.floor if history is not None else self._base_resource_version

    def _undo_since(self, group_resource: GroupResource, version: int) -> dict[str, Optional[dict]]:
        """
        For each key changed after C{version}, its state at C{version}
        (L{None}: absent), from the history.
        """
        history = self._history.get(group_resource)
        if history is None:
            return {}
        events = history.events
        first = bisect_right(events, version, key=_event_resource_version)
        undo: dict[str, Optional[dict]] = {}
        # Newest first, so that the oldest change after `version` wins.
        for event in reversed(events[first:]):
            undo[event.key] = event.previous
        return undo

    def _remove(self, resource_type: ResourceType, key: str, old: dict) -> None:
        group_resource = resource_type.group_resource
        self._resource_version += 1
        gone = _with_metadata(old, resourceVersion=str(self._resource_version))
        overlay = self._overlay.setdefault(group_resource, {})
        table = self._seeds.table(group_resource)
        if table is not None and key in table.objects:
            overlay[key] = None
        else:
            overlay.pop(key, None)
            if not overlay:
                del self._overlay[group_resource]
        self._commit(resource_type, DELETED, key, gone, old)

    def _write_marked(
        self, resource_type: ResourceType, key: str, marked: dict, old: dict, dry_run: bool
    ) -> dict:
        if dry_run:
            return _as_version(marked, resource_type)
        self._resource_version += 1
        stored = _with_metadata(marked, resourceVersion=str(self._resource_version))
        self._overlay.setdefault(resource_type.group_resource, {})[key] = stored
        self._commit(resource_type, MODIFIED, key, stored, old)
        self._flush()
        return _as_version(stored, resource_type)

    # -- internals: notification -------------------------------------------

    def _commit(
        self,
        resource_type: ResourceType,
        event_type: str,
        key: str,
        obj: dict,
        previous: Optional[dict],
    ) -> None:
        """Record a change (already stored) and queue its notifications."""
        now = self._now().timestamp() if self._history_age else 0.0
        event = _Event(self._resource_version, event_type, key, obj, previous, now)
        group_resource = resource_type.group_resource
        history = self._history.get(group_resource)
        if history is None:
            history = self._history[group_resource] = _History(self._base_resource_version)
        history.events.append(event)
        self._evict(history, now)
        self._changes += 1
        if self._pending is None:
            self._pending = []
        self._pending.append((resource_type, event))

    def _evict(self, history: _History, now: float) -> None:
        events = history.events
        drop = max(0, len(events) - self._history_limit)
        if self._history_age:
            horizon = now - self._history_age
            while (
                drop < len(events) - self._history_keep and events[drop].time < horizon
            ):
                drop += 1
        if not drop:
            return
        # The oldest events fall out; a watch can still resume from just
        # before the oldest one left.
        last_dropped = events[drop - 1].resource_version
        del events[:drop]
        history.floor = events[0].resource_version - 1 if events else last_dropped

    def compact_history(self) -> None:
        """
        Drop watch events past the history's age everywhere, also for
        resources that have not changed since (called from a shared timer).
        """
        if not self._history_age:
            return
        now = self._now().timestamp()
        for history in self._history.values():
            self._evict(history, now)

    def _flush(self) -> None:
        """
        Deliver queued notifications in commit order, including those of
        writes the observers make meanwhile. Re-entrant calls return at once:
        the outermost one delivers everything.
        """
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                resource_type, event = self._pending.pop(0)
                self._notify(resource_type, event)
                self._delivered_resource_version = event.resource_version
        finally:
            self._pending = None
            self._dispatching = False

    def _notify(self, resource_type: ResourceType, event: _Event) -> None:
        watches = self._watches.get(resource_type.group_resource)
        if watches:
            for watch in tuple(watches):
                if not watch._active:
                    continue
                try:
                    watch._deliver(event)
                except Exception:
                    self._log.failure(
                        "Watch callback failed on {event_type} of {resource} {key}; "
                        "cancelling the watch",
                        event_type=event.type,
                        resource=resource_type.resource,
                        key=event.key,
                    )
                    watch.cancel()
        for observer in self._observers:
            try:
                observer(event.type, resource_type, event.object, event.previous)
            except Exception:
                self._log.failure(
                    "Observer {observer!r} failed on {event_type} of {resource} {key}",
                    observer=observer,
                    event_type=event.type,
                    resource=resource_type.resource,
                    key=event.key,
                )

    # -- internals: request processing -------------------------------------

    @staticmethod
    def _decode(resource_type: ResourceType, obj: Mapping) -> dict:
        """
        Check a request body against the resource (what decoding does in
        the apiserver) and copy its top level and metadata, so that the
        store can change those without touching the caller's dicts.
        """
        version = resource_type.api_version.rpartition("/")[2]
        if not isinstance(obj, Mapping):
            raise new_bad_request(
                f"the object provided is unrecognized (must be of type {resource_type.kind})"
            )
        api_version = obj.get("apiVersion") or ""
        kind = obj.get("kind") or ""
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise new_bad_request(
                f"the object provided is unrecognized (must be of type {resource_type.kind})"
            )
        if kind and kind != resource_type.kind:
            # Approximation: the Go decoder's own error follows the colon.
            raise new_bad_request(
                f"{kind} in version {go_quote(api_version.rpartition('/')[2] or version)} "
                f"cannot be handled as a {resource_type.kind}: no kind {go_quote(kind)} is "
                f"registered for version {go_quote(api_version or resource_type.api_version)}"
            )
        if api_version and api_version != resource_type.api_version:
            raise new_bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({resource_type.api_version})"
            )
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {}
        _check_metadata_types(resource_type, version, metadata)
        new = {"kind": resource_type.kind, "apiVersion": resource_type.api_version}
        new["metadata"] = {key: value for key, value in metadata.items() if value is not None}
        for key, value in obj.items():
            if key not in new:
                new[key] = value
        return new

    @staticmethod
    def _ensure_namespace_matches(metadata: dict, namespace: str) -> None:
        """C{rest.EnsureObjectNamespaceMatchesRequestNamespace}."""
        body_namespace = metadata.get("namespace") or ""
        if body_namespace == namespace:
            return
        if not body_namespace:
            metadata["namespace"] = namespace
        elif not namespace:
            metadata.pop("namespace", None)
        else:
            raise new_bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )

    def _admit_namespace(
        self, resource_type: ResourceType, namespace: str, name: str, creating: bool
    ) -> None:
        """The NamespaceLifecycle admission plugin."""
        namespace_object = self._stored(_NAMESPACES, namespace)
        if namespace_object is None:
            raise new_not_found(_NAMESPACES, namespace)
        phase = (namespace_object.get("status") or {}).get("phase")
        if creating and phase == "Terminating":
            raise new_forbidden(
                resource_type.group_resource,
                name,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                (
                    StatusCause(
                        reason=CauseType.NAMESPACE_TERMINATING,
                        message=f"namespace {namespace} is being terminated",
                        field="metadata.namespace",
                    ),
                ),
            )

    def _generated_name(self, group_resource: GroupResource, namespace: str, base: str) -> str:
        """
        A free name from C{generateName}, trying as often as the registry
        does; the last candidate is returned taken, for the caller's 409.
        """
        base = base[:_GENERATE_NAME_BASE_LIMIT]
        source = self._random if self._random is not None else _RANDOM
        candidate = base
        for _ in range(_GENERATE_NAME_ATTEMPTS):
            suffix = "".join(
                source.choice(_GENERATE_NAME_ALPHABET) for _ in range(_GENERATE_NAME_SUFFIX_LENGTH)
            )
            candidate = base + suffix
            if self._stored(group_resource, _key(namespace, candidate)) is None:
                return candidate
        return candidate

    def _new_uid(self) -> str:
        if self._uid_factory is not None:
            return self._uid_factory()
        return str(uuid.uuid4())

    @staticmethod
    def _prepare_for_create(resource_type: ResourceType, new: dict) -> None:
        """The resource strategy's PrepareForCreate, generically."""
        group_resource = resource_type.group_resource
        metadata = new["metadata"]
        metadata.pop("generation", None)
        if group_resource == _NAMESPACES:
            spec = dict(new.get("spec") or {})
            finalizers = list(spec.get("finalizers") or ())
            if "kubernetes" not in finalizers:
                finalizers.append("kubernetes")
            spec["finalizers"] = finalizers
            new["spec"] = spec
            new["status"] = {"phase": "Active"}
            _default_namespace_label(metadata)
            return
        if group_resource == _PODS:
            new["status"] = {"phase": "Pending", "qosClass": _pod_qos_class(new.get("spec") or {})}
        elif resource_type.has_status and group_resource not in _KEEPS_STATUS_ON_CREATE:
            new.pop("status", None)
        # Custom resources always start at generation 1; built-in
        # strategies set it for resources with a spec.
        if resource_type.custom or ("spec" in new and group_resource not in _NO_GENERATION):
            metadata["generation"] = 1

    @staticmethod
    def _prepare_for_update(
        resource_type: ResourceType, subresource: Optional[str], new: dict, old: dict
    ) -> dict:
        """The resource strategy's PrepareForUpdate, generically."""
        group_resource = resource_type.group_resource
        if group_resource == _NAMESPACES:
            if subresource == "status":
                if "spec" in old:
                    new["spec"] = old["spec"]
                else:
                    new.pop("spec", None)
            elif subresource == "finalize":
                new["status"] = old.get("status") or {}
            else:
                spec = dict(new.get("spec") or {})
                old_finalizers = (old.get("spec") or {}).get("finalizers")
                if old_finalizers is None:
                    spec.pop("finalizers", None)
                else:
                    spec["finalizers"] = old_finalizers
                new["spec"] = spec
                new["status"] = old.get("status") or {}
            _default_namespace_label(new["metadata"])
            return new
        if subresource == "status":
            if resource_type.custom:
                # The custom resource status strategy: nothing but the
                # status changes, metadata included.
                result = {key: value for key, value in old.items() if key != "status"}
                result["apiVersion"] = resource_type.api_version
                result["metadata"] = dict(old["metadata"])
            else:
                # Built-in status strategies keep the stored spec (and any
                # other field) but take the request's metadata, except what
                # a few of them pin.
                result = {
                    "kind": new["kind"],
                    "apiVersion": new["apiVersion"],
                    "metadata": new["metadata"],
                }
                for key, value in old.items():
                    if key not in result and key != "status":
                        result[key] = value
                for field in _STATUS_KEEPS_METADATA.get(group_resource, ()):
                    if field in old["metadata"]:
                        result["metadata"][field] = old["metadata"][field]
                    else:
                        result["metadata"].pop(field, None)
            if "status" in new:
                result["status"] = new["status"]
            return result
        if resource_type.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def _admit(
        self, operation: str, resource_type: ResourceType, new: dict, old: Optional[dict]
    ) -> dict:
        for admission in self._admissions:
            admitted = admission(operation, resource_type, new, old)
            if admitted is not None:
                if not isinstance(admitted, dict) or not isinstance(admitted.get("metadata"), dict):
                    raise TypeError(f"admission {admission!r} returned {type(admitted).__name__}")
                new = admitted
        # Keep our own copy of the metadata so that later steps never touch a
        # dict an admission function may hold on to.
        new = dict(new)
        new["metadata"] = dict(new["metadata"])
        return new

    def _allocate_service(
        self, resource_type: ResourceType, new: dict, old: Optional[dict], dry_run: bool
    ) -> dict:
        """The Service registry's IP and node port allocation, over this store's Services."""
        metadata = new["metadata"]
        own = _key(metadata.get("namespace", ""), metadata.get("name", ""))
        used_ips: set[int] = set()
        used_ports: set[int] = set()
        for key in self._keys(_SERVICES, "", None, {}):
            if key == own:
                continue
            service = self._stored(_SERVICES, key)
            spec = (service or {}).get("spec") or {}
            for address in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                try:
                    used_ips.add(int(ipaddress.ip_address(address)))
                except (TypeError, ValueError):
                    pass
            for port in spec.get("ports") or ():
                if isinstance(port, Mapping) and port.get("nodePort"):
                    used_ports.add(port["nodePort"])
            if spec.get("healthCheckNodePort"):
                used_ports.add(spec["healthCheckNodePort"])
        allocated = allocate_service(new, old, used_ips, used_ports, dry_run=dry_run)
        allocated["metadata"] = metadata
        return allocated

    @staticmethod
    def _decoded(
        resource_type: ResourceType,
        new: dict,
        subresource: Optional[str],
        decoded: Mapping,
        written: Optional[Mapping],
    ) -> dict:
        """
        The object as the apiserver stores and answers it: what the strategy
        and admission plugins made of it goes to storage and is decoded back
        (with defaulting) into the object the client gets (a Deployment's
        reset status is C{{}}, a PVC's is Pending again). What is still as
        decoding or the stored object had it is not walked again.
        """
        if new.keys() == decoded.keys() and all(
            key == "metadata"
            or value is decoded[key]
            or (written is not None and value is written.get(key))
            for key, value in new.items()
        ):
            # Only the store's own metadata changed since decoding (a status
            # update, say): there is nothing to decode again.
            result = dict(new)
            result["metadata"] = dict(new["metadata"])
            return result
        reference = {}
        for key, value in new.items():
            if value is decoded.get(key) or (written is not None and value is written.get(key)):
                reference[key] = value
            elif key in decoded:
                reference[key] = decoded[key]
            elif written is not None and key in written:
                reference[key] = written[key]
        result = default_object(resource_type, new, subresource, reference)
        # Our own metadata: later steps change it.
        result["metadata"] = dict(result["metadata"])
        return result

    @classmethod
    def _validate_update_metadata(
        cls, resource_type: ResourceType, metadata: Mapping, old_metadata: Mapping
    ) -> list[FieldError]:
        """
        What C{rest.BeforeUpdate} reports about metadata, duplicates
        included: its C{validateCommonFields} (C{ValidateObjectMetaAccessor}
        with path-segment name rules, then C{ValidateObjectMetaAccessorUpdate}),
        then the strategy's C{ValidateUpdate}, which runs
        C{ValidateObjectMetaUpdate} again and, for some kinds, validates the
        new metadata in full once more. The message names each problem once
        (the aggregate drops duplicates); the causes list every one.
        """
        # The stored object's labels and annotations passed validation when
        # it was written: only changed ones are looked at (each time Go
        # validates them, the same problems are listed).
        if metadata.get("labels") == old_metadata.get("labels") and metadata.get(
            "annotations"
        ) == old_metadata.get("annotations"):
            labels: list[FieldError] = []
        else:
            labels = _label_and_annotation_errors(metadata)
        update = cls._validate_metadata_update(metadata, old_metadata, labels)
        errors = cls._validate_metadata(resource_type, metadata, True, labels)
        errors.extend(update)
        errors.extend(update)
        if resource_type.group_resource in _REVALIDATES_METADATA_ON_UPDATE:
            errors.extend(cls._validate_metadata(resource_type, metadata, False, labels))
        return errors

    @staticmethod
    def _validate_metadata(
        resource_type: ResourceType,
        metadata: Mapping,
        path_segment_names: bool = False,
        labels: Optional[list[FieldError]] = None,
    ) -> list[FieldError]:
        """
        C{ValidateObjectMetaAccessor} with the resource's name rules (or,
        with C{path_segment_names}, only C{path.ValidatePathSegmentName}'s).

        @param labels: what L{_label_and_annotation_errors} says about the
            metadata, if already known.
        """
        group_resource = resource_type.group_resource

        def name_errors(name: str, prefix: bool) -> list[str]:
            if path_segment_names:
                return _path_segment_errors(name, prefix)
            return _name_errors(group_resource, name, prefix)

        errors: list[FieldError] = []
        generate_name = metadata.get("generateName") or ""
        if generate_name:
            errors.extend(
                FieldError.invalid("metadata.generateName", generate_name, problem)
                for problem in name_errors(generate_name, True)
            )
        name = metadata.get("name") or ""
        if not name:
            errors.append(FieldError.required("metadata.name", "name or generateName is required"))
        else:
            errors.extend(
                FieldError.invalid("metadata.name", name, problem)
                for problem in name_errors(name, False)
            )
        namespace = metadata.get("namespace") or ""
        if resource_type.namespaced:
            if not namespace:
                errors.append(FieldError.required("metadata.namespace"))
            else:
                errors.extend(
                    FieldError.invalid("metadata.namespace", namespace, problem)
                    for problem in dns1123_label_errors(namespace)
                )
        elif namespace:
            errors.append(FieldError.forbidden("metadata.namespace", "not allowed on this type"))
        generation = metadata.get("generation", 0)
        if generation < 0:
            errors.append(
                FieldError.invalid(
                    "metadata.generation", generation, "must be greater than or equal to 0"
                )
            )
        errors.extend(_label_and_annotation_errors(metadata) if labels is None else labels)
        finalizers = metadata.get("finalizers") or ()
        for finalizer in finalizers:
            errors.extend(
                FieldError.invalid("metadata.finalizers", finalizer, problem)
                for problem in label_key_errors(finalizer)
            )
        if _FINALIZER_ORPHAN in finalizers and _FINALIZER_FOREGROUND in finalizers:
            errors.append(
                FieldError.invalid(
                    "metadata.finalizers",
                    list(finalizers),
                    f"finalizer {_FINALIZER_ORPHAN} and {_FINALIZER_FOREGROUND} cannot be both set",
                )
            )
        return errors

    @staticmethod
    def _validate_metadata_update(
        metadata: Mapping, old_metadata: Mapping, labels: list[FieldError]
    ) -> list[FieldError]:
        """
        C{ValidateObjectMetaAccessorUpdate}, for what a request can change
        (the store keeps name, namespace, resourceVersion, generation and
        creationTimestamp itself).
        """
        errors = []
        if old_metadata.get("deletionTimestamp"):
            extra = sorted(
                set(metadata.get("finalizers") or ()) - set(old_metadata.get("finalizers") or ())
            )
            if extra:
                errors.append(
                    FieldError.forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {_go_string_slice(extra)}",
                    )
                )
        for field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds"):
            value = metadata.get(field)
            if value != old_metadata.get(field):
                shown = value if value is not None else ""
                errors.append(FieldError.invalid(f"metadata.{field}", shown, "field is immutable"))
        errors.extend(labels)
        return errors

    @staticmethod
    def _should_delete_during_update(
        group_resource: GroupResource, new: Mapping, old: Mapping
    ) -> bool:
        """
        C{ShouldDeleteDuringUpdate}: the last finalizer of an object being
        deleted (with no grace period left) is gone; for namespaces, the
        C{spec.finalizers} must be empty too.
        """
        old_metadata = old["metadata"]
        if new["metadata"].get("finalizers") or not old_metadata.get("deletionTimestamp"):
            return False
        if old_metadata.get("deletionGracePeriodSeconds"):
            return False
        if group_resource == _NAMESPACES and (new.get("spec") or {}).get("finalizers"):
            return False
        return True

    @staticmethod
    def _check_delete_preconditions(
        resource_type: ResourceType, metadata: Mapping, preconditions: Mapping[str, str]
    ) -> None:
        # rest.BeforeDelete's early check, which names the kind, not the
        # resource.
        kind = (resource_type.group, resource_type.kind)
        name = metadata.get("name", "")
        uid = preconditions.get("uid")
        if uid is not None and uid != metadata.get("uid", ""):
            raise new_conflict(
                kind,
                name,
                f"the UID in the precondition ({uid}) does not match the UID in record "
                f"({metadata.get('uid', '')}). The object might have been deleted and then "
                "recreated",
            )
        version = preconditions.get("resourceVersion")
        if version is not None and version != metadata.get("resourceVersion", ""):
            raise new_conflict(
                kind,
                name,
                f"the ResourceVersion in the precondition ({version}) does not match the "
                f"ResourceVersion in record ({metadata.get('resourceVersion', '')}). "
                "The object might have been modified",
            )

    @staticmethod
    def _check_namespace_preconditions(
        name: str, metadata: Mapping, preconditions: Mapping[str, str]
    ) -> None:
        uid = preconditions.get("uid")
        if uid is not None and uid != metadata.get("uid", ""):
            raise new_conflict(
                _NAMESPACES,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{metadata.get('uid', '')}",
            )
        version = preconditions.get("resourceVersion")
        if version is not None and version != metadata.get("resourceVersion", ""):
            raise new_conflict(
                _NAMESPACES,
                name,
                f"Precondition failed: ResourceVersion in precondition: {version}, "
                f"ResourceVersion in object meta: {metadata.get('resourceVersion', '')}",
            )


_RANDOM = random.Random()

_NO_SEEDS = SeedSet()

# Seed indexes by their entries, alive as long as a store uses them. An
# index holds its entries, so an entry here always describes live objects.
_SHARED_SEED_SETS: weakref.WeakValueDictionary[tuple, SeedSet] = weakref.WeakValueDictionary()


def _label_and_annotation_errors(metadata: Mapping) -> list[FieldError]:
    """C{ValidateLabels} and C{ValidateAnnotations} of the metadata."""
    errors: list[FieldError] = []
    for label, value in (metadata.get("labels") or {}).items():
        errors.extend(
            FieldError.invalid("metadata.labels", label, problem)
            for problem in label_key_errors(label)
        )
        errors.extend(
            FieldError.invalid("metadata.labels", value, problem)
            for problem in label_value_errors(value)
        )
    annotations = metadata.get("annotations") or {}
    size = 0
    for annotation, value in annotations.items():
        size += len(annotation.encode("utf-8")) + len(value.encode("utf-8"))
        errors.extend(
            FieldError.invalid("metadata.annotations", annotation, problem)
            for problem in label_key_errors(annotation.lower())
        )
    if size > _ANNOTATIONS_SIZE_LIMIT:
        errors.append(FieldError.too_long("metadata.annotations", _ANNOTATIONS_SIZE_LIMIT))
    return errors


def _pod_qos_class(spec: Mapping) -> str:
    """
    The QoS class the pod strategy records on create: Guaranteed when every
    container limits CPU and memory with requests equal to the limits,
    BestEffort when none asks for anything, Burstable otherwise.
    """
    containers = list(spec.get("containers") or ()) + list(spec.get("initContainers") or ())
    requested = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or limits
        if limits or resources.get("requests"):
            requested = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name) != limits.get(name):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requested else "BestEffort"


class _LazyDecoded:
    """
    A stored object as decoding would give it, worked out only if asked:
    objects this store wrote are that already; template objects are read
    as written.
    """

    __slots__ = ("_resource_type", "_object", "_decoded")

    def __init__(
        self,
        resource_type: ResourceType,
        key: str,
        obj: dict,
        overlay: Optional[Mapping[str, Optional[dict]]],
    ) -> None:
        self._resource_type = resource_type
        self._object = obj
        written = overlay is not None and overlay.get(key) is obj
        self._decoded: Optional[dict] = obj if written else None

    def get(self) -> dict:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = default_object(self._resource_type, self._object)
        return decoded


def _spec_changed(new: Mapping, old: Mapping) -> bool:
    """Whether anything metadata.generation tracks differs."""
    keys = (set(new) | set(old)) - _UNVERSIONED_KEYS
    return any(new.get(key) != old.get(key) for key in keys)


def _default_namespace_label(metadata: dict) -> None:
    # SetDefaults_Namespace labels every namespace with its own name.
    name = metadata.get("name")
    if name and (metadata.get("labels") or {}).get(_NAMESPACE_LABEL) != name:
        metadata["labels"] = {**(metadata.get("labels") or {}), _NAMESPACE_LABEL: name}


_GO_JSON_TYPES = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
}


def _json_type(value: object) -> str:
    for python_type, name in _GO_JSON_TYPES.items():
        if isinstance(value, python_type):
            return name
    return "object"


def _check_metadata_types(resource_type: ResourceType, version: str, metadata: object) -> None:
    """
    Refuse metadata whose fields have the wrong JSON types, as decoding into
    C{ObjectMeta} does, with the decoder's message.
    """

    def refuse(json_type: str, field: str, go_type: str) -> APIError:
        return new_bad_request(
            f"{resource_type.kind} in version {go_quote(version)} cannot be handled as a "
            f"{resource_type.kind}: json: cannot unmarshal {json_type} into Go struct field "
            f"ObjectMeta.metadata.{field} of type {go_type}"
        )

    if not isinstance(metadata, Mapping):
        raise new_bad_request(
            f"{resource_type.kind} in version {go_quote(version)} cannot be handled as a "
            f"{resource_type.kind}: json: cannot unmarshal {_json_type(metadata)} into Go "
            "struct field .metadata of type v1.ObjectMeta"
        )
    for field in _STRING_METADATA:
        value = metadata.get(field)
        if value is not None and not isinstance(value, str):
            raise refuse(_json_type(value), field, "string")
    for field in ("generation", "deletionGracePeriodSeconds"):
        value = metadata.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise refuse(_json_type(value), field, "int64")
    for field in ("labels", "annotations"):
        value = metadata.get(field)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise refuse(_json_type(value), field, "map[string]string")
        for item in value.values():
            if not isinstance(item, str):
                raise refuse(_json_type(item), field, "string")
    for field in ("finalizers",):
        value = metadata.get(field)
        if value is None:
            continue
        if not isinstance(value, (list, tuple)):
            raise refuse(_json_type(value), field, "[]string")
        for item in value:
            if not isinstance(item, str):
                raise refuse(_json_type(item), field, "string")
    owners = metadata.get("ownerReferences")
    if owners is not None and (
        not isinstance(owners, (list, tuple))
        or not all(isinstance(owner, Mapping) for owner in owners)
    ):
        raise refuse(_json_type(owners), "ownerReferences", "[]v1.OwnerReference")

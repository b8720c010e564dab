# -*- test-case-name: tests.test_kube_controllers -*-
"""
Shared vocabulary of the built-in controllers: resource types, times, object helpers.

The resource types the controllers write, timestamps as the API spells
them, and small helpers that build new objects from stored ones without
touching the stored dicts.

Objects read from an L{ObjectStore} are shared (between watch events, list
results and, for template objects, every simulated cluster) and must never
be changed: every helper here copies the containers it changes and shares
everything else.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import BUILTIN_REGISTRY, Registry, ResourceType
from scaleagent.kube.store import ObjectStore


def _builtin(group: str, resource: str, version: str = "v1") -> ResourceType:
    resource_type = BUILTIN_REGISTRY.lookup(group, version, resource)
    if resource_type is None:  # pragma: no cover - the built-in table is fixed
        raise LookupError(f"{group}/{version} {resource} is not a built-in resource")
    return resource_type


NAMESPACES = _builtin("", "namespaces")
NODES = _builtin("", "nodes")
PODS = _builtin("", "pods")
SECRETS = _builtin("", "secrets")
CONFIG_MAPS = _builtin("", "configmaps")
SERVICE_ACCOUNTS = _builtin("", "serviceaccounts")
DEPLOYMENTS = _builtin("apps", "deployments")
REPLICA_SETS = _builtin("apps", "replicasets")
DAEMON_SETS = _builtin("apps", "daemonsets")
STATEFUL_SETS = _builtin("apps", "statefulsets")
CONTROLLER_REVISIONS = _builtin("apps", "controllerrevisions")
JOBS = _builtin("batch", "jobs")
LEASES = _builtin("coordination.k8s.io", "leases")
PRIORITY_CLASSES = _builtin("scheduling.k8s.io", "priorityclasses")
CUSTOM_RESOURCE_DEFINITIONS = _builtin("apiextensions.k8s.io", "customresourcedefinitions")

#: The metadata finalizers the garbage collector acts on.
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"

#: kubectl's client-side apply annotation.
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

# Generated name suffixes and hashes use apimachinery's alphabet (no vowels,
# no look-alike characters).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- time ----------------------------------------------------------------


def format_time(seconds: float) -> str:
    """C{metav1.Time} as JSON: RFC 3339, whole seconds, UTC."""
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(seconds: float) -> str:
    """C{metav1.MicroTime} as JSON (Lease renew times): microseconds, UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> Optional[float]:
    """Seconds since the epoch of an RFC 3339 timestamp; L{None} if unparsable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# -- reading ---------------------------------------------------------------


def get_or_none(
    store: ObjectStore, resource_type: ResourceType, namespace: str, name: str
) -> Optional[dict]:
    """The stored object, or L{None} when there is none."""
    try:
        return store.get(resource_type, namespace, name)
    except APIError as error:
        if error.code == 404:
            return None
        raise


def list_items(
    store: ObjectStore, resource_type: ResourceType, namespace: Optional[str] = None
) -> list:
    """Every object of a resource, in one namespace or in all."""
    return store.list(resource_type, namespace).items


def metadata_of(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


def uid_of(obj: Mapping) -> str:
    return metadata_of(obj).get("uid", "")


def deleting(obj: Mapping) -> bool:
    """Whether the object has a deletionTimestamp."""
    return bool(metadata_of(obj).get("deletionTimestamp"))


def controller_reference(obj: Mapping) -> Optional[Mapping]:
    """The owner reference with C{controller: true}, if any."""
    for reference in metadata_of(obj).get("ownerReferences") or ():
        if reference.get("controller"):
            return reference
    return None


def controlled_by(obj: Mapping, owner_uid: str) -> bool:
    reference = controller_reference(obj)
    return reference is not None and reference.get("uid") == owner_uid


def owner_reference(owner: Mapping, controller: bool = True) -> dict:
    """
    C{metav1.NewControllerRef}: what a workload controller puts on what it
    creates (field order as C{OwnerReference} serialises).
    """
    metadata = metadata_of(owner)
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
    }
    if controller:
        reference["controller"] = True
        reference["blockOwnerDeletion"] = True
    return reference


def resolve_kind(registry: Registry, api_version: str, kind: str) -> Optional[ResourceType]:
    """
    The resource type of an owner reference's C{apiVersion}/C{kind}, or of
    the kind in its group's preferred version when that version is not
    served (every version of a resource shares storage).
    """
    resource_type = registry.by_api_version(api_version, kind)
    if resource_type is None:
        group = api_version.rpartition("/")[0]
        resource_type = registry.by_kind(group, kind)
    return resource_type


def persisted_types(registry: Registry, namespaced: Optional[bool] = None) -> tuple[ResourceType, ...]:
    """
    One resource type per stored resource (versions share storage), in
    registry order, the preferred version's; optionally only the namespaced
    or cluster-scoped ones. Computed once per registry (registries are
    immutable and shared by every cluster that serves the same APIs).
    """
    key = ("scaleagent.kube.controllers", "persisted", namespaced)
    cached = registry.cache.get(key)
    if cached is not None:
        return cached
    seen: set = set()
    types = []
    for resource_type in registry:
        if not resource_type.persisted or resource_type.group_resource in seen:
            continue
        if namespaced is not None and resource_type.namespaced != namespaced:
            continue
        seen.add(resource_type.group_resource)
        preferred = registry.by_kind(resource_type.group, resource_type.kind)
        if preferred is not None and preferred.group_resource == resource_type.group_resource:
            resource_type = preferred
        types.append(resource_type)
    result = registry.cache[key] = tuple(types)
    return result


def stored_type(registry: Registry, group: str, resource: str) -> Optional[ResourceType]:
    """The resource type L{persisted_types} gives for a group-resource."""
    key = ("scaleagent.kube.controllers", "by-group-resource")
    index = registry.cache.get(key)
    if index is None:
        index = registry.cache[key] = {item.group_resource: item for item in persisted_types(registry)}
    return index.get((group, resource))


# -- building --------------------------------------------------------------


def sorted_map(values: Mapping[str, Any]) -> dict:
    """
    A map in key order: Go serialises maps (labels, annotations, data)
    sorted, so that is how a real server's answers show them.
    """
    return {key: values[key] for key in sorted(values)}


def with_metadata(obj: Mapping, **changes: Any) -> dict:
    """A shallow copy of C{obj} whose metadata has some fields replaced."""
    metadata = dict(metadata_of(obj))
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    copy = dict(obj)
    copy["metadata"] = metadata
    return copy


def with_annotations(obj: Mapping, changes: Mapping[str, Optional[str]]) -> dict:
    """A copy of C{obj} with annotations set (or removed, for L{None})."""
    annotations = dict(metadata_of(obj).get("annotations") or {})
    for key, value in changes.items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return with_metadata(obj, annotations=sorted_map(annotations) if annotations else None)


def with_finalizers(obj: Mapping, add: Iterable[str] = (), remove: Iterable[str] = ()) -> dict:
    """A copy of C{obj} with metadata finalizers added (at the end) or removed."""
    removed = set(remove)
    finalizers = [item for item in metadata_of(obj).get("finalizers") or () if item not in removed]
    for item in add:
        if item not in finalizers:
            finalizers.append(item)
    return with_metadata(obj, finalizers=finalizers or None)


def b64(text: str) -> str:
    """A Secret's C{data} value: standard base64 of the UTF-8 text."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def short_hash(value: object) -> str:
    """
    A stable short hash in the alphabet of C{pod-template-hash} and
    C{controller-revision-hash} labels.

    The real controllers hash a deep print of the Go struct (FNV-32a) and
    encode the decimal number with C{rand.SafeEncodeString}; the Go print
    cannot be reproduced, so this hashes canonical JSON the same way. Equal
    templates still get equal hashes, which is what rollbacks rely on.
    """
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
    digest = 0x811C9DC5
    for byte in data:
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(character) % len(_SAFE_ALPHABET)] for character in str(digest))


def name_suffix(seed: str, length: int = 5) -> str:
    """A generateName-like suffix derived from C{seed} (stable for a seed)."""
    digest = 0xCBF29CE484222325
    for byte in seed.encode("utf-8"):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    characters = []
    for _ in range(length):
        digest, index = divmod(digest, len(_SAFE_ALPHABET))
        characters.append(_SAFE_ALPHABET[index])
    return "".join(characters)


def go_json(value: object) -> str:
    """
    C{json.Marshal} of a decoded object, as kubectl writes the
    last-applied-configuration annotation: map keys sorted, no spaces, and
    C{<}, C{>}, C{&}, U+2028 and U+2029 escaped as Go escapes them.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def condition(
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    previous: Optional[Mapping] = None,
    update_time: bool = False,
    probe_time: bool = False,
) -> dict:
    """
    A status condition as the controllers set it: the transition time stays
    when the status does not change; with C{update_time} it carries a
    C{lastUpdateTime} (Deployments), with C{probe_time} a C{lastProbeTime}
    (Jobs). If nothing changed, the previous condition itself is returned.
    """
    if (
        previous is not None
        and previous.get("status") == status
        and previous.get("reason") == reason
        and previous.get("message") == message
    ):
        return dict(previous)
    transition = now
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    result: dict = {"type": type_, "status": status}
    if update_time:
        result["lastUpdateTime"] = now
    if probe_time:
        result["lastProbeTime"] = now
    result["lastTransitionTime"] = transition
    if reason:
        result["reason"] = reason
    if message:
        result["message"] = message
    return result


def find_condition(conditions: Iterable[Mapping], type_: str) -> Optional[Mapping]:
    for item in conditions or ():
        if item.get("type") == type_:
            return item
    return None

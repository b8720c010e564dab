# -*- test-case-name: tests.test_kube_controllers -*-
"""
Namespace lifecycle: root CA, default ServiceAccount, termination.

As kube-controller-manager runs it: the root CA publisher
(C{kube-root-ca.crt} in every namespace), the service account controller
(C{default} in every namespace) and the namespace controller,
which empties a terminating namespace, reports its progress in status
conditions and removes the C{kubernetes} finalizer (through the
C{namespaces/<name>/finalize} subresource) once nothing is left.

The store does the rest of what kube-apiserver does: a DELETE only marks a
namespace (C{deletionTimestamp}, phase C{Terminating}), and the namespace
goes away when both C{spec.finalizers} and C{metadata.finalizers} (Rancher's
C{controller.cattle.io/namespace-auth}) are empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from scaleagent.kube.controllers._common import (
    CONFIG_MAPS,
    NAMESPACES,
    SERVICE_ACCOUNTS,
    find_condition,
    get_or_none,
    list_items,
    metadata_of,
    persisted_types,
    sorted_map,
)
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
DEFAULT_SERVICE_ACCOUNT = "default"
NAMESPACE_FINALIZER = "kubernetes"

DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)

#: The namespaces kube-apiserver itself keeps in existence.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# The conditions the namespace deleter maintains, in the order it adds
# them, with their "nothing wrong" reason and message.
_CONDITIONS = (
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
)


def _active(namespace: Optional[Mapping]) -> bool:
    return namespace is not None and (namespace.get("status") or {}).get("phase") == "Active"


def _wants_description(controllers: Controllers) -> bool:
    """
    Whether C{kube-root-ca.crt} carries the description annotation: newer
    publishers add it, older ones do not. A template that ships its own
    C{kube-system} copy tells which kind of cluster it is; otherwise the
    current behaviour applies.
    """
    reference = get_or_none(controllers.store, CONFIG_MAPS, "kube-system", ROOT_CA_CONFIG_MAP)
    if reference is None:
        return True
    return DESCRIPTION_ANNOTATION in (metadata_of(reference).get("annotations") or {})


def ensure_root_ca(controllers: Controllers, namespace: str) -> None:
    """The root CA publisher's C{syncNamespace}."""
    store = controllers.store
    data = {"ca.crt": controllers.ca_text}
    existing = get_or_none(store, CONFIG_MAPS, namespace, ROOT_CA_CONFIG_MAP)
    if existing is None:
        metadata: dict = {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace}
        if _wants_description(controllers):
            metadata["annotations"] = {DESCRIPTION_ANNOTATION: DESCRIPTION}
        controllers.create_quietly(
            CONFIG_MAPS,
            namespace,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data},
        )
        return
    annotations = metadata_of(existing).get("annotations") or {}
    wants_description = namespace != "kube-system" and _wants_description(controllers)
    if existing.get("data") == data and (annotations.get(DESCRIPTION_ANNOTATION) or not wants_description):
        return
    new = dict(existing)
    new["data"] = data
    if wants_description:
        new["metadata"] = {
            **metadata_of(existing),
            "annotations": sorted_map({**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}),
        }
    controllers.update_quietly(CONFIG_MAPS, namespace, ROOT_CA_CONFIG_MAP, new)


def ensure_default_service_account(controllers: Controllers, namespace: str) -> None:
    """The service account controller's C{syncNamespace}."""
    if get_or_none(controllers.store, SERVICE_ACCOUNTS, namespace, DEFAULT_SERVICE_ACCOUNT) is None:
        controllers.create_quietly(
            SERVICE_ACCOUNTS,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
            },
        )


def observe_namespace(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    if event == DELETED:
        return
    name = metadata_of(obj).get("name", "")
    current = get_or_none(controllers.store, NAMESPACES, "", name)
    if current is None:
        return
    if metadata_of(current).get("deletionTimestamp"):
        if NAMESPACE_FINALIZER in ((current.get("spec") or {}).get("finalizers") or ()):
            delete_content(controllers, current)
        return
    if _active(current):
        ensure_root_ca(controllers, name)
        ensure_default_service_account(controllers, name)


def observe_root_ca(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """Put back a changed or deleted C{kube-root-ca.crt}, as the publisher does."""
    metadata = metadata_of(obj)
    if metadata.get("name") != ROOT_CA_CONFIG_MAP:
        return
    namespace = metadata.get("namespace", "")
    if _active(get_or_none(controllers.store, NAMESPACES, "", namespace)):
        ensure_root_ca(controllers, namespace)


def observe_default_service_account(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """Recreate a deleted C{default} ServiceAccount in an active namespace."""
    metadata = metadata_of(obj)
    if event != DELETED or metadata.get("name") != DEFAULT_SERVICE_ACCOUNT:
        return
    namespace = metadata.get("namespace", "")
    if _active(get_or_none(controllers.store, NAMESPACES, "", namespace)):
        ensure_default_service_account(controllers, namespace)


def content_removed(controllers: Controllers, namespace: str) -> None:
    """
    Something in C{namespace} went away: if the namespace is waiting for
    its content, look again (the real controller requeues with an estimate).
    """
    current = get_or_none(controllers.store, NAMESPACES, "", namespace)
    if (
        current is not None
        and metadata_of(current).get("deletionTimestamp")
        and NAMESPACE_FINALIZER in ((current.get("spec") or {}).get("finalizers") or ())
    ):
        delete_content(controllers, current)


def delete_content(controllers: Controllers, namespace_object: Mapping) -> None:
    """
    C{NamespacedResourcesDeleter.Delete}: delete every namespaced object
    (background propagation, so each object's own finalizers still hold
    it), record what remains in the status conditions, and finalize the
    namespace once it is empty.
    """
    store = controllers.store
    name = metadata_of(namespace_object)["name"]
    remaining: dict[str, int] = {}
    finalizers: dict[str, int] = {}
    for resource_type in persisted_types(controllers.registry, namespaced=True):
        if "delete" not in resource_type.verbs or "list" not in resource_type.verbs:
            continue
        items = list_items(store, resource_type, name)
        if not items:
            continue
        for item in items:
            controllers.delete_quietly(resource_type, name, metadata_of(item)["name"])
        left = list_items(store, resource_type, name)
        if left:
            remaining[f"{resource_type.resource}.{resource_type.group}"] = len(left)
            for item in left:
                for finalizer in metadata_of(item).get("finalizers") or ():
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1

    current = get_or_none(store, NAMESPACES, "", name)
    if current is None:
        return
    conditions = _conditions(controllers, current, remaining, finalizers)
    status = current.get("status") or {}
    if conditions != status.get("conditions"):
        new = dict(current)
        new["status"] = {**status, "conditions": conditions}
        current = controllers.update_quietly(NAMESPACES, "", name, new, subresource="status")
        if current is None:
            return
    if remaining:
        return
    spec = current.get("spec") or {}
    kept = sorted({item for item in spec.get("finalizers") or () if item != NAMESPACE_FINALIZER})
    new = dict(current)
    new["spec"] = {**spec, "finalizers": kept}
    controllers.update_quietly(NAMESPACES, "", name, new, subresource="finalize")


def _tally(counts: Mapping[str, int], relation: str) -> str:
    """
    C{"<key> <relation> <count> resource instances"} for each entry, sorted
    as the namespace deleter sorts them (its counts are Go maps, unordered),
    so that a pass over unchanged content writes an unchanged message.
    """
    return ", ".join(sorted(f"{key} {relation} {count} resource instances" for key, count in counts.items()))


def _conditions(
    controllers: Controllers,
    namespace_object: Mapping,
    remaining: Mapping[str, int],
    finalizers: Mapping[str, int],
) -> list:
    """C{namespaceConditionUpdater.Update} for a deletion pass."""
    now = controllers.now_text()
    problems: dict[str, tuple[str, str]] = {}
    if remaining:
        problems["NamespaceContentRemaining"] = (
            "SomeResourcesRemain",
            f"Some resources are remaining: {_tally(remaining, 'has')}",
        )
    if finalizers:
        problems["NamespaceFinalizersRemaining"] = (
            "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {_tally(finalizers, 'in')}",
        )
    existing = list((namespace_object.get("status") or {}).get("conditions") or ())
    result = [dict(item) for item in existing]
    for type_, ok_reason, ok_message in _CONDITIONS:
        if type_ in problems:
            status, (reason, message) = "True", problems[type_]
        else:
            status, reason, message = "False", ok_reason, ok_message
        old = find_condition(result, type_)
        if old is None:
            result.append(
                {
                    "type": type_,
                    "status": status,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
            )
        elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
            # Our own copy (see above), so it may be changed in place.
            changed = dict(old)
            if old.get("status") != status:
                changed["lastTransitionTime"] = now
            changed.update(status=status, reason=reason, message=message)
            result[result.index(old)] = changed
    return result

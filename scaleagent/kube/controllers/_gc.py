# -*- test-case-name: tests.test_kube_controllers -*-
"""
The garbage collector: owner references, foreground and orphan deletion.

It deletes objects whose owners are gone and carries out the
C{foreground} and C{orphan} propagation policies, as
kube-controller-manager's C{GarbageCollector} does (C{attemptToDeleteItem},
C{processDeletingDependentsItem}, C{orphanDependents}).

The real collector keeps a graph of every object's owners. Keeping one per
simulated cluster would cost memory in every cluster for a rare event, so
dependents are found by scanning when an owner is deleted: within the
owner's namespace for a namespaced owner, everywhere for a cluster-scoped
one, and only among the objects written since the cluster was made unless
the owner itself came from the template (see L{dependents}).

Which policy applies is carried by the owner's finalizers, as in
kube-apiserver: C{foregroundDeletion} or C{orphan}, added when the object is
deleted with that policy (see L{delete_with_propagation}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Mapping, Optional

from scaleagent.kube.controllers._common import (
    CUSTOM_RESOURCE_DEFINITIONS,
    FOREGROUND_FINALIZER,
    NAMESPACES,
    ORPHAN_FINALIZER,
    deleting,
    get_or_none,
    list_items,
    metadata_of,
    persisted_types,
    resolve_kind,
    stored_type,
    uid_of,
    with_finalizers,
    with_metadata,
)
from scaleagent.kube.controllers._crds import CLEANUP_FINALIZER
from scaleagent.kube.errors import new_conflict
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

#: DeleteOptions.propagationPolicy values.
FOREGROUND = "Foreground"
BACKGROUND = "Background"
ORPHAN = "Orphan"

_POLICY_FINALIZERS = {FOREGROUND: FOREGROUND_FINALIZER, ORPHAN: ORPHAN_FINALIZER}

Item = tuple[ResourceType, dict]


def _finalizers(obj: Mapping) -> tuple:
    return tuple(metadata_of(obj).get("finalizers") or ())


def delete_with_propagation(
    controllers: Controllers,
    resource_type: ResourceType,
    namespace: str,
    name: str,
    preconditions: Optional[Mapping[str, str]] = None,
    grace_period: Optional[int] = None,
    propagation: Optional[str] = None,
    dry_run: bool = False,
) -> dict:
    """
    DELETE as kube-apiserver's registry does it: with C{Foreground} or
    C{Orphan} propagation the object first gets the matching finalizer (and
    a CustomResourceDefinition its cleanup finalizer), so that the store
    only marks it and the collector (or the CRD finalizer) finishes the job.

    kube-apiserver adds the finalizer and the C{deletionTimestamp} in one
    write; L{ObjectStore.delete} cannot add finalizers, so here it is an
    update followed by the delete (two MODIFIED events).
    """
    store = controllers.store
    wanted: list[str] = []
    finalizer = _POLICY_FINALIZERS.get(propagation or "")
    if finalizer is not None and resource_type.group_resource != NAMESPACES.group_resource:
        wanted.append(finalizer)
    if resource_type.group_resource == CUSTOM_RESOURCE_DEFINITIONS.group_resource:
        wanted.append(CLEANUP_FINALIZER)
    if not wanted or dry_run:
        return store.delete(resource_type, namespace, name, preconditions, grace_period, propagation, dry_run)
    current = store.get(resource_type, namespace, name)
    metadata = metadata_of(current)
    preconditions = dict(preconditions or {})
    _check_preconditions(resource_type, metadata, preconditions)
    present = set(_finalizers(current))
    if not metadata.get("deletionTimestamp") and not present.issuperset(wanted):
        # The two policies exclude each other (validation refuses both).
        other = {FOREGROUND_FINALIZER: ORPHAN_FINALIZER, ORPHAN_FINALIZER: FOREGROUND_FINALIZER}
        remove = [other[item] for item in wanted if item in other]
        store.update(
            resource_type,
            namespace,
            name,
            with_metadata(with_finalizers(current, add=wanted, remove=remove), resourceVersion=None),
        )
    # The uid still identifies the object; the resourceVersion moved with
    # the finalizer update above.
    return store.delete(
        resource_type,
        namespace,
        name,
        {"uid": metadata["uid"]} if metadata.get("uid") else None,
        grace_period,
        propagation,
    )


def _check_preconditions(
    resource_type: ResourceType, metadata: Mapping, preconditions: Mapping[str, str]
) -> None:
    """
    The delete preconditions, worded as the registry words them: the CRD
    registry's own check, or C{rest.BeforeDelete}'s (which names the kind).
    """
    name = metadata.get("name", "")
    uid = preconditions.get("uid")
    version = preconditions.get("resourceVersion")
    stored_uid = metadata.get("uid", "")
    stored_version = metadata.get("resourceVersion", "")
    if resource_type.group_resource == CUSTOM_RESOURCE_DEFINITIONS.group_resource:
        if uid is not None and uid != stored_uid:
            raise new_conflict(
                resource_type.group_resource,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {stored_uid}",
            )
        if version is not None and version != stored_version:
            raise new_conflict(
                resource_type.group_resource,
                name,
                f"Precondition failed: ResourceVersion in precondition: {version}, "
                f"ResourceVersion in object meta: {stored_version}",
            )
        return
    kind = (resource_type.group, resource_type.kind)
    if uid is not None and uid != stored_uid:
        raise new_conflict(
            kind,
            name,
            f"the UID in the precondition ({uid}) does not match the UID in record ({stored_uid}). "
            "The object might have been deleted and then recreated",
        )
    if version is not None and version != stored_version:
        raise new_conflict(
            kind,
            name,
            f"the ResourceVersion in the precondition ({version}) does not match the ResourceVersion "
            f"in record ({stored_version}). The object might have been modified",
        )


def observe(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """Every change of every object passes here."""
    metadata = metadata_of(obj)
    if event == DELETED:
        # Its dependents lost an owner; owners waiting in foreground
        # deletion may have lost their last blocking dependent.
        for dependent_type, dependent in dependents(controllers, resource_type, obj, deleted=True):
            if not deleting(dependent) or FOREGROUND_FINALIZER in _finalizers(dependent):
                attempt_to_delete(controllers, dependent_type, dependent)
        for owner_type, owner in _owners_deleting_dependents(controllers, obj):
            process_deleting_dependents(controllers, owner_type, owner)
        return
    if metadata.get("deletionTimestamp"):
        finalizers = _finalizers(obj)
        if ORPHAN_FINALIZER in finalizers:
            orphan_dependents(controllers, resource_type, obj)
        elif FOREGROUND_FINALIZER in finalizers:
            process_deleting_dependents(controllers, resource_type, obj)
        return
    references = metadata.get("ownerReferences")
    if references and (old is None or references != metadata_of(old).get("ownerReferences")):
        attempt_to_delete(controllers, resource_type, obj)


def dependents(
    controllers: Controllers, owner_type: ResourceType, owner: Mapping, deleted: bool = False
) -> list[Item]:
    """
    Every object whose ownerReferences name C{owner}'s uid: in the owner's
    namespace for a namespaced owner (a dependent can only be owned from
    its own namespace or from cluster scope), anywhere otherwise.

    Template objects only ever name template objects as owners, and an
    untouched one costs a render to read. So for a C{deleted} owner that
    was not itself from the template, only the objects written since the
    cluster was made are looked at (the store keeps those as they are).
    """
    uid = uid_of(owner)
    if not uid:
        return []
    namespace = metadata_of(owner).get("namespace", "") if owner_type.namespaced else None
    if deleted and not _was_template_object(controllers, owner_type, owner):
        candidates: Iterator[Item] = _written_objects(controllers, namespace)
    else:
        candidates = _objects(controllers, namespace)
    found: list[Item] = []
    for resource_type, item in candidates:
        for reference in metadata_of(item).get("ownerReferences") or ():
            if reference.get("uid") == uid:
                found.append((resource_type, item))
                break
    return found


def _objects(controllers: Controllers, namespace: Optional[str]) -> Iterator[Item]:
    store = controllers.store
    registry = controllers.registry
    if namespace is None:
        for resource_type in persisted_types(registry):
            for item in list_items(store, resource_type):
                yield resource_type, item
    else:
        for resource_type in persisted_types(registry, namespaced=True):
            for item in list_items(store, resource_type, namespace):
                yield resource_type, item


def _written_objects(controllers: Controllers, namespace: Optional[str]) -> Iterator[Item]:
    """
    The objects that are not untouched template objects, read without
    rendering anything. L{ObjectStore.export_changes} is the only public
    way to those; it builds a small entry per changed object.
    """
    registry = controllers.registry
    for entry in controllers.store.export_changes()["objects"]:
        if namespace is not None and entry["namespace"] != namespace:
            continue
        resource_type = stored_type(registry, entry["group"], entry["resource"])
        if resource_type is not None:
            yield resource_type, entry["object"]


def _was_template_object(controllers: Controllers, resource_type: ResourceType, obj: Mapping) -> bool:
    """Whether a deleted object came from the template (the store keeps a tombstone for those)."""
    metadata = metadata_of(obj)
    key = (
        resource_type.group,
        resource_type.resource,
        metadata.get("namespace", "") if resource_type.namespaced else "",
        metadata.get("name", ""),
    )
    for entry in controllers.store.export_changes()["deleted"]:
        if (entry["group"], entry["resource"], entry["namespace"], entry["name"]) == key:
            return True
    return False


def _owner(controllers: Controllers, dependent: Mapping, reference: Mapping) -> tuple[str, Optional[Item]]:
    """
    Look up an owner reference: C{("absent", None)}, C{("present", item)},
    or C{("unknown", None)} when it cannot be resolved (a kind nothing
    serves, or a namespaced owner of a cluster-scoped dependent), which the
    real collector does not act on either.
    """
    owner_type = resolve_kind(
        controllers.registry,
        reference.get("apiVersion", ""),
        reference.get("kind", ""),
    )
    if owner_type is None:
        return "unknown", None
    dependent_namespace = metadata_of(dependent).get("namespace", "")
    if owner_type.namespaced and not dependent_namespace:
        return "unknown", None
    namespace = dependent_namespace if owner_type.namespaced else ""
    owner = get_or_none(controllers.store, owner_type, namespace, reference.get("name", ""))
    if owner is None or uid_of(owner) != reference.get("uid"):
        return "absent", None
    return "present", (owner_type, owner)


def _owners_deleting_dependents(controllers: Controllers, dependent: Mapping) -> Iterator[Item]:
    for reference in metadata_of(dependent).get("ownerReferences") or ():
        state, item = _owner(controllers, dependent, reference)
        if item is not None and deleting(item[1]) and FOREGROUND_FINALIZER in _finalizers(item[1]):
            yield item


def attempt_to_delete(controllers: Controllers, resource_type: ResourceType, item: Mapping) -> None:
    """
    C{attemptToDeleteItem}: an object none of whose owners still exists is
    deleted (in the foreground when an owner waits for it and it has
    dependents of its own); references to owners that are gone or waiting
    are removed from an object that keeps another owner.
    """
    metadata = metadata_of(item)
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    current = get_or_none(controllers.store, resource_type, namespace, name)
    if current is None or uid_of(current) != uid_of(item):
        return
    if deleting(current) and FOREGROUND_FINALIZER not in _finalizers(current):
        return
    if deleting(current):
        process_deleting_dependents(controllers, resource_type, current)
        return
    references = metadata_of(current).get("ownerReferences") or ()
    if not references:
        return
    solid, dangling, waiting = [], [], []
    for reference in references:
        state, owner = _owner(controllers, current, reference)
        if state != "present":
            # An unresolvable reference keeps the object, as an owner would.
            (dangling if state == "absent" else solid).append(reference)
        elif deleting(owner[1]) and FOREGROUND_FINALIZER in _finalizers(owner[1]):
            waiting.append(reference)
        else:
            solid.append(reference)
    if solid:
        if dangling or waiting:
            gone = {reference.get("uid") for reference in dangling + waiting}
            kept = [reference for reference in references if reference.get("uid") not in gone]
            controllers.update_quietly(
                resource_type,
                namespace,
                name,
                with_metadata(current, ownerReferences=kept or None),
            )
        return
    if waiting and dependents(controllers, resource_type, current):
        policy = FOREGROUND
    elif ORPHAN_FINALIZER in _finalizers(current):
        policy = ORPHAN
    elif FOREGROUND_FINALIZER in _finalizers(current):
        policy = FOREGROUND
    else:
        policy = BACKGROUND
    controllers.delete_quietly(resource_type, namespace, name, uid=uid_of(current), propagation=policy)


def process_deleting_dependents(
    controllers: Controllers, resource_type: ResourceType, owner: Mapping
) -> None:
    """
    C{processDeletingDependentsItem}: delete the dependents of an object in
    foreground deletion, and remove its C{foregroundDeletion} finalizer once
    none that blocks it (C{blockOwnerDeletion}) is left.
    """
    uid = uid_of(owner)
    for dependent_type, dependent in dependents(controllers, resource_type, owner):
        if not deleting(dependent):
            attempt_to_delete(controllers, dependent_type, dependent)
    blocking = [
        item
        for _, item in dependents(controllers, resource_type, owner)
        if any(
            reference.get("uid") == uid and reference.get("blockOwnerDeletion")
            for reference in metadata_of(item).get("ownerReferences") or ()
        )
    ]
    if blocking:
        return
    _release(controllers, resource_type, owner, FOREGROUND_FINALIZER)


def orphan_dependents(controllers: Controllers, resource_type: ResourceType, owner: Mapping) -> None:
    """
    C{orphanDependents}: take the owner out of its dependents'
    ownerReferences, then remove its C{orphan} finalizer.
    """
    uid = uid_of(owner)
    for dependent_type, dependent in dependents(controllers, resource_type, owner):
        metadata = metadata_of(dependent)
        kept = [
            reference for reference in metadata.get("ownerReferences") or () if reference.get("uid") != uid
        ]
        controllers.update_quietly(
            dependent_type,
            metadata.get("namespace", ""),
            metadata["name"],
            with_metadata(dependent, ownerReferences=kept or None),
        )
    _release(controllers, resource_type, owner, ORPHAN_FINALIZER)


def _release(controllers: Controllers, resource_type: ResourceType, owner: Mapping, finalizer: str) -> None:
    """
    Remove a propagation finalizer once its work is done, so the store can
    finish the owner's deletion.
    """
    # Re-read: handling the dependents ran observers, which may have
    # finished the owner already or let a recreated namesake take its place.
    metadata = metadata_of(owner)
    current = get_or_none(
        controllers.store,
        resource_type,
        metadata.get("namespace", ""),
        metadata.get("name", ""),
    )
    if current is None or uid_of(current) != uid_of(owner) or finalizer not in _finalizers(current):
        return
    controllers.update_quietly(
        resource_type,
        metadata.get("namespace", ""),
        metadata["name"],
        with_finalizers(current, remove=(finalizer,)),
    )

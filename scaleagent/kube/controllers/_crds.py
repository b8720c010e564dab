# -*- test-case-name: tests.test_kube_controllers -*-
"""
Serve CustomResourceDefinitions as the apiextensions apiserver does.

That is: the registry strategy (spec defaults, C{storedVersions}), the
naming and establishing controllers (C{acceptedNames}, conditions C{NamesAccepted} and
C{Established}), serving the resources (the cluster's L{Registry}) and the
finalizer controller that deletes every custom resource before the CRD
goes.

Registration happens in the observer of the CRD's own write, so by the
time a create or update has been answered the new resources are served;
the status arrives as a separate MODIFIED event, as it does from the real
controllers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from scaleagent.kube.controllers._common import (
    CUSTOM_RESOURCE_DEFINITIONS,
    find_condition,
    get_or_none,
    list_items,
    metadata_of,
    with_finalizers,
)
from scaleagent.kube.resources import (
    InvalidCustomResourceDefinition,
    ResourceType,
    resource_types_for_crd,
)
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

# CustomResourceDefinitionNames, in the order Go serialises them.
_NAME_FIELDS = ("plural", "singular", "shortNames", "kind", "listKind", "categories")


def _storage_version(crd: Mapping) -> Optional[str]:
    for version in (crd.get("spec") or {}).get("versions") or ():
        if isinstance(version, Mapping) and version.get("storage"):
            return version.get("name")
    return None


def admit_crd(
    controllers: Controllers,
    operation: str,
    resource_type: ResourceType,
    new: dict,
    old: Optional[dict],
) -> Optional[dict]:
    """
    What decoding and the CRD strategy do before a write: default the
    names and conversion, reset the status on create, and record the
    storage version in C{status.storedVersions}.
    """
    spec = new.get("spec")
    if not isinstance(spec, Mapping):
        return None
    result = dict(new)
    names = spec.get("names")
    new_spec = dict(spec)
    if isinstance(names, Mapping):
        kind = names.get("kind")
        new_names = dict(names)
        if not names.get("singular") and isinstance(kind, str):
            new_names["singular"] = kind.lower()
        if not names.get("listKind") and isinstance(kind, str) and kind:
            new_names["listKind"] = kind + "List"
        new_spec["names"] = new_names
    if spec.get("conversion") is None:
        new_spec["conversion"] = {"strategy": "None"}
    result["spec"] = new_spec
    if operation == "CREATE":
        status: dict = {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}
    else:
        status = dict(new.get("status") or {})
    storage = _storage_version(result)
    stored = list(status.get("storedVersions") or ())
    if storage and storage not in stored:
        stored.append(storage)
    status["storedVersions"] = stored
    result["status"] = status
    return result if result != new else None


def _accepted_names(names: Mapping) -> dict:
    # plural and kind are always serialised, the others only when set.
    return {
        field: names.get(field, "")
        for field in _NAME_FIELDS
        if field in ("plural", "kind") or names.get(field)
    }


def _taken_names(controllers: Controllers, crd: Mapping) -> tuple[set, set]:
    """The resource names and kinds other CRDs of the group have been given."""
    group = (crd.get("spec") or {}).get("group")
    name = metadata_of(crd).get("name")
    resources: set = set()
    kinds: set = set()
    for other in list_items(controllers.store, CUSTOM_RESOURCE_DEFINITIONS):
        if metadata_of(other).get("name") == name or (other.get("spec") or {}).get("group") != group:
            continue
        accepted = (other.get("status") or {}).get("acceptedNames") or {}
        resources.update(filter(None, (accepted.get("plural"), accepted.get("singular"))))
        resources.update(accepted.get("shortNames") or ())
        kinds.update(filter(None, (accepted.get("kind"), accepted.get("listKind"))))
    return resources, kinds


def _names_and_conditions(controllers: Controllers, crd: Mapping) -> tuple[dict, str, str, str]:
    """
    The naming controller's C{calculateNamesAndConditions}: which requested
    names can be accepted, and the C{NamesAccepted} condition.
    """
    requested = (crd.get("spec") or {}).get("names") or {}
    accepted = dict((crd.get("status") or {}).get("acceptedNames") or {})
    resources, kinds = _taken_names(controllers, crd)
    status, reason, message = "True", "NoConflicts", "no conflicts found"

    def fresh(field: str, taken: set, conflict: str) -> None:
        nonlocal status, reason, message
        wanted = requested.get(field, "")
        if wanted == accepted.get(field, "") or wanted not in taken:
            if wanted:
                accepted[field] = wanted
            else:
                accepted.pop(field, None)
        else:
            status, reason, message = "False", conflict, f'"{wanted}" is already in use'

    fresh("plural", resources, "PluralConflict")
    fresh("singular", resources, "SingularConflict")
    short_names = list(requested.get("shortNames") or ())
    if short_names != list(accepted.get("shortNames") or ()):
        mine = set(accepted.get("shortNames") or ())
        clashes = [name for name in short_names if name not in mine and name in resources]
        if clashes:
            status, reason = "False", "ShortNamesConflict"
            message = ", ".join(f'"{name}" is already in use' for name in clashes)
            if len(clashes) > 1:
                message = f"[{message}]"
        elif short_names:
            accepted["shortNames"] = short_names
        else:
            accepted.pop("shortNames", None)
    fresh("kind", kinds, "KindConflict")
    fresh("listKind", kinds, "ListKindConflict")
    if requested.get("categories"):
        accepted["categories"] = list(requested["categories"])
    else:
        accepted.pop("categories", None)
    return _accepted_names(accepted), status, reason, message


def _set_condition(conditions: list, type_: str, status: str, reason: str, message: str, now: str) -> None:
    """C{SetCRDCondition}: the transition time moves only with the status."""
    for index, existing in enumerate(conditions):
        if existing.get("type") == type_:
            transition = existing.get("lastTransitionTime") or now
            if existing.get("status") != status:
                transition = now
            conditions[index] = {
                "type": type_,
                "status": status,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
            return
    conditions.append(
        {"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}
    )


def observe_crd(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    name = metadata_of(obj).get("name", "")
    if event == DELETED:
        _forget(controllers, obj)
        return
    current = get_or_none(controllers.store, CUSTOM_RESOURCE_DEFINITIONS, "", name)
    if current is None:
        return
    if metadata_of(current).get("deletionTimestamp"):
        if CLEANUP_FINALIZER in (metadata_of(current).get("finalizers") or ()):
            finalize(controllers, current)
        return
    establish(controllers, current)


def establish(controllers: Controllers, crd: Mapping) -> None:
    """Accept the names, serve the resources and report it in the status."""
    name = metadata_of(crd)["name"]
    status = dict(crd.get("status") or {})
    conditions = [dict(item) for item in status.get("conditions") or ()]
    now = controllers.now_text()
    accepted, names_status, names_reason, names_message = _names_and_conditions(controllers, crd)
    if names_status == "True":
        try:
            controllers.set_registry(controllers.registry.with_crd(crd))
        except (InvalidCustomResourceDefinition, ValueError) as error:
            # A resource another API already serves: a real server's naming
            # controller reports the clash the same way.
            names_status, names_reason, names_message = "False", "PluralConflict", str(error)
    _set_condition(conditions, "NamesAccepted", names_status, names_reason, names_message, now)
    established = find_condition(conditions, "Established")
    if names_status == "True":
        _set_condition(
            conditions,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            now,
        )
    elif established is None or established.get("status") != "True":
        _set_condition(conditions, "Established", "False", "NotAccepted", "not all names are accepted", now)
    new_status = {"conditions": conditions, "acceptedNames": accepted}
    new_status["storedVersions"] = status.get("storedVersions") or []
    for key, value in status.items():
        new_status.setdefault(key, value)
    if _same_conditions(status.get("conditions"), conditions) and status.get("acceptedNames") == accepted:
        return
    new = dict(crd)
    new["status"] = new_status
    controllers.update_quietly(CUSTOM_RESOURCE_DEFINITIONS, "", name, new, subresource="status")


def _same_conditions(old: object, new: list) -> bool:
    # A condition rewritten with the same status, reason and message is the
    # same condition: SetCRDCondition only moves the transition time with
    # the status, and the naming controller skips updates that change
    # nothing else.
    if not isinstance(old, list) or len(old) != len(new):
        return False
    for before, after in zip(old, new):
        for key in ("type", "status", "reason", "message"):
            if before.get(key) != after.get(key):
                return False
    return True


def finalize(controllers: Controllers, crd: Mapping) -> None:
    """
    C{CRDFinalizer.sync}: report the deletion, delete every custom
    resource, and drop the finalizer once they are gone (objects with
    finalizers of their own keep the CRD until they are).
    """
    name = metadata_of(crd)["name"]
    store = controllers.store
    conditions = [dict(item) for item in (crd.get("status") or {}).get("conditions") or ()]
    now = controllers.now_text()
    terminating = find_condition(conditions, "Terminating")
    if terminating is None or terminating.get("reason") != "InstanceDeletionCheck":
        # Only once: a CRD already waiting for instances with finalizers is
        # looked at again when one of them goes, and that must not rewrite
        # its status back and forth.
        _set_condition(
            conditions,
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
            now,
        )
    current = _write_conditions(controllers, crd, conditions)
    if current is None:
        return
    established = find_condition(conditions, "Established")
    if established is not None and established.get("status") == "True":
        remaining = _delete_instances(controllers, current)
        if remaining:
            _set_condition(
                conditions,
                "Terminating",
                "True",
                "InstanceDeletionCheck",
                f"could not confirm zero CustomResources remaining: {remaining} remaining",
                now,
            )
            _write_conditions(controllers, current, conditions)
            return
        _set_condition(
            conditions,
            "Terminating",
            "False",
            "InstanceDeletionCompleted",
            "removed all instances",
            now,
        )
    else:
        _set_condition(
            conditions,
            "Terminating",
            "False",
            "NeverEstablished",
            "resource was never established",
            now,
        )
    current = _write_conditions(controllers, current, conditions)
    if current is None:
        return
    # The real controller drops the finalizer with the same status write;
    # this store's status updates keep metadata, so it is a second write.
    current = get_or_none(store, CUSTOM_RESOURCE_DEFINITIONS, "", name) or current
    controllers.update_quietly(
        CUSTOM_RESOURCE_DEFINITIONS, "", name, with_finalizers(current, remove=(CLEANUP_FINALIZER,))
    )


def _write_conditions(controllers: Controllers, crd: Mapping, conditions: list) -> Optional[dict]:
    status = crd.get("status") or {}
    if status.get("conditions") == conditions:
        return dict(crd)
    new = dict(crd)
    # A copy: the caller goes on changing its list, and stored objects are
    # never changed.
    new["status"] = {**status, "conditions": [dict(item) for item in conditions]}
    return controllers.update_quietly(
        CUSTOM_RESOURCE_DEFINITIONS, "", metadata_of(crd)["name"], new, subresource="status"
    )


def _custom_types(crd: Mapping) -> tuple[ResourceType, ...]:
    try:
        return resource_types_for_crd(crd)
    except InvalidCustomResourceDefinition:
        return ()


def _delete_instances(controllers: Controllers, crd: Mapping) -> int:
    """Delete every object of the CRD's resource; return how many remain."""
    types = _custom_types(crd)
    if not types:
        return 0
    resource_type = types[0]
    store = controllers.store
    for item in list_items(store, resource_type):
        metadata = metadata_of(item)
        controllers.delete_quietly(resource_type, metadata.get("namespace", ""), metadata["name"])
    return len(list_items(store, resource_type))


def instance_removed(controllers: Controllers, resource_type: ResourceType) -> None:
    """A custom resource went away: a CRD waiting for that may now go."""
    name = f"{resource_type.resource}.{resource_type.group}"
    crd = get_or_none(controllers.store, CUSTOM_RESOURCE_DEFINITIONS, "", name)
    if (
        crd is not None
        and metadata_of(crd).get("deletionTimestamp")
        and CLEANUP_FINALIZER in (metadata_of(crd).get("finalizers") or ())
    ):
        finalize(controllers, crd)


def _forget(controllers: Controllers, crd: Mapping) -> None:
    """The CRD is gone: stop serving its resources and drop what is left."""
    name = metadata_of(crd).get("name", "")
    if name not in _served_crds(controllers):
        return
    # Deleted without the cleanup finalizer (a plain store delete): the
    # instances would otherwise outlive their type.
    _delete_instances(controllers, crd)
    controllers.set_registry(controllers.registry.without_crd(name))


def _served_crds(controllers: Controllers) -> set:
    return {
        extension[len("crd:"):]
        for extension in controllers.registry.extension_names
        if extension.startswith("crd:")
    }


def serve_stored_crds(controllers: Controllers) -> None:
    """
    Converge the CRDs already stored (the template's): serve them and give
    them the status the controllers would have written. Used by bootstrap.
    """
    for crd in list_items(controllers.store, CUSTOM_RESOURCE_DEFINITIONS):
        if metadata_of(crd).get("deletionTimestamp"):
            continue
        establish(controllers, crd)

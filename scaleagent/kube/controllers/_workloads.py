# -*- test-case-name: tests.test_kube_controllers -*-
"""
The workload controllers: Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs.

As kube-controller-manager runs them, converging at once: Deployments
(through ReplicaSets), ReplicaSets, DaemonSets, StatefulSets and Jobs
create their pods, the pods are scheduled and started (L{_pods}), and
every workload reports the status the real controller reports once its
rollout has finished.

A real rollout takes many steps (surge, wait for readiness, scale down,
repeat); here a template change creates the new ReplicaSet at full size
with its pods running, then scales the old ones to zero and deletes their
pods, in one cascade. Watchers see the objects appear and the final status
written after the spec, as MODIFIED events, as they would from the real
controllers; the intermediate statuses are skipped.

Every sync reads the current state and writes only what differs, so a sync
triggered by the controllers' own writes is a no-op.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Optional

from scaleagent.kube.controllers._common import (
    CONTROLLER_REVISIONS,
    DAEMON_SETS,
    DEPLOYMENTS,
    JOBS,
    NODES,
    PODS,
    REPLICA_SETS,
    STATEFUL_SETS,
    condition,
    controlled_by,
    controller_reference,
    deleting,
    find_condition,
    get_or_none,
    list_items,
    metadata_of,
    owner_reference,
    short_hash,
    sorted_map,
    uid_of,
    with_annotations,
    with_finalizers,
)
from scaleagent.kube.controllers._pods import node_fits, run_pod
from scaleagent.kube.defaults import default_message
from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

POD_TEMPLATE_HASH = "pod-template-hash"

_POD_TEMPLATE = "core/v1.PodTemplateSpec"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

# What a Deployment's annotations do not pass on to its ReplicaSets.
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
    }
)

# AddOrUpdateDaemonPodTolerations.
_DAEMON_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}

# The apiserver's default of progressDeadlineSeconds means "has a deadline";
# only the maximum int32 means none.
_NO_DEADLINE = 2147483647


# -- helpers ---------------------------------------------------------------


def _replicas(spec: Mapping, default: int = 1) -> int:
    value = spec.get("replicas")
    return default if value is None else int(value)


def _resolve(value: object, total: int, round_up: bool) -> int:
    """C{intstr.GetScaledValueFromIntOrPercent}."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = total * percent / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _surge_and_unavailable(deployment: Mapping) -> tuple[int, int]:
    """C{MaxSurge} and C{MaxUnavailable} of a Deployment."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    replicas = _replicas(spec)
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    if replicas == 0:
        unavailable = 0
    return surge, min(unavailable, replicas)


def _labels(obj: Mapping) -> Mapping[str, str]:
    return metadata_of(obj).get("labels") or {}


def _pod_ready(pod: Mapping) -> bool:
    ready = find_condition((pod.get("status") or {}).get("conditions") or (), "Ready")
    return ready is not None and ready.get("status") == "True"


def _active(pod: Mapping) -> bool:
    """C{controller.IsPodActive}."""
    return not deleting(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _owned_pods(controllers: Controllers, namespace: str, owner_uid: str) -> list:
    return [pod for pod in list_items(controllers.store, PODS, namespace) if controlled_by(pod, owner_uid)]


def _pod_from_template(owner: Mapping, template: Mapping, prefix: str, **extra_labels: str) -> dict:
    """C{controller.GetPodFromTemplate}."""
    template_metadata = template.get("metadata") or {}
    metadata: dict = {"generateName": prefix, "namespace": metadata_of(owner).get("namespace", "")}
    labels = dict(template_metadata.get("labels") or {})
    labels.update(extra_labels)
    if labels:
        metadata["labels"] = sorted_map(labels)
    if template_metadata.get("annotations"):
        metadata["annotations"] = dict(template_metadata["annotations"])
    metadata["ownerReferences"] = [owner_reference(owner)]
    if template_metadata.get("finalizers"):
        metadata["finalizers"] = list(template_metadata["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template.get("spec") or {}}


def _create_pod(controllers: Controllers, pod: dict) -> Optional[Mapping]:
    """Create a pod and let it be scheduled and started straight away."""
    namespace = pod["metadata"]["namespace"]
    created = controllers.create_quietly(PODS, namespace, pod)
    if created is None:
        return None
    # Outside an observer the store has already run the observers (and so
    # maybe the kubelet) for this create: start from what is stored now.
    current = get_or_none(controllers.store, PODS, namespace, metadata_of(created)["name"])
    return run_pod(controllers, current) if current is not None else None


def _delete(controllers: Controllers, resource_type: ResourceType, objects: Iterable[Mapping]) -> None:
    # The uid precondition spares an object recreated under the same name.
    for obj in objects:
        metadata = metadata_of(obj)
        controllers.delete_quietly(
            resource_type,
            metadata.get("namespace", ""),
            metadata["name"],
            uid=metadata.get("uid"),
        )


def _deletion_rank(pod: Mapping) -> tuple:
    """
    Which pods a scale-down removes first (C{controller.ActivePods}):
    unscheduled, then not running, then not ready, then the newest.
    """
    status = pod.get("status") or {}
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        status.get("phase") == "Running",
        _pod_ready(pod),
    )


def _read_workload(
    controllers: Controllers, resource_type: ResourceType, namespace: str, name: str
) -> Optional[tuple[dict, str, Mapping, Mapping]]:
    """
    A stored workload with its uid, spec and pod template; L{None} once it
    is gone (a sync triggered by its deletion has nothing to do).
    """
    workload = get_or_none(controllers.store, resource_type, namespace, name)
    if workload is None:
        return None
    spec = workload.get("spec") or {}
    return workload, uid_of(workload), spec, spec.get("template") or {}


def _write_status(
    controllers: Controllers, resource_type: ResourceType, obj: Mapping, status: dict
) -> Optional[dict]:
    if obj.get("status") == status:
        return dict(obj)
    new = dict(obj)
    new["status"] = status
    metadata = metadata_of(obj)
    return controllers.update_quietly(
        resource_type, metadata.get("namespace", ""), metadata["name"], new, subresource="status"
    )


# -- admission -------------------------------------------------------------


def admit_daemon_set(
    controllers: Controllers, operation: str, resource_type: ResourceType, new: dict, old: Optional[dict]
) -> Optional[dict]:
    """The DaemonSet strategy keeps the template generation annotation."""
    annotations = metadata_of(new).get("annotations") or {}
    if operation == "CREATE":
        generation = 1
    else:
        old_annotations = metadata_of(old or {}).get("annotations") or {}
        try:
            generation = int(old_annotations.get(TEMPLATE_GENERATION_ANNOTATION, "1"))
        except ValueError:
            generation = 1
        if ((old or {}).get("spec") or {}).get("template") != (new.get("spec") or {}).get("template"):
            generation += 1
    if annotations.get(TEMPLATE_GENERATION_ANNOTATION) == str(generation):
        return None
    return with_annotations(new, {TEMPLATE_GENERATION_ANNOTATION: str(generation)})


def admit_job(
    controllers: Controllers, operation: str, resource_type: ResourceType, new: dict, old: Optional[dict]
) -> Optional[dict]:
    """
    The Job strategy's C{generateSelector}: unless the Job chose its own
    selector, it selects its pods by its uid, and its template labels them
    so.
    """
    if operation != "CREATE":
        return None
    spec = new.get("spec")
    if not isinstance(spec, Mapping) or spec.get("manualSelector"):
        return None
    metadata = metadata_of(new)
    uid, name = metadata.get("uid", ""), metadata.get("name", "")
    template = dict(spec.get("template") or {})
    template_metadata = dict(template.get("metadata") or {})
    labels = dict(template_metadata.get("labels") or {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )
    template_metadata["labels"] = sorted_map(labels)
    template["metadata"] = template_metadata
    new_spec = dict(spec)
    new_spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    new_spec["template"] = template
    result = dict(new)
    result["spec"] = new_spec
    return result


# -- Deployments -------------------------------------------------------------


def _without_hash(template: Mapping) -> Mapping:
    metadata = template.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if POD_TEMPLATE_HASH not in labels:
        return template
    trimmed = {key: value for key, value in labels.items() if key != POD_TEMPLATE_HASH}
    new_metadata = dict(metadata)
    if trimmed:
        new_metadata["labels"] = trimmed
    else:
        new_metadata.pop("labels", None)
    return {**template, "metadata": new_metadata}


def _same_template(left: Mapping, right: Mapping) -> bool:
    """
    C{EqualIgnoreHash}, treating absent and empty maps alike. Templates
    compare as the apiserver decodes them: a template object (written
    without what defaulting adds) is the same template as its defaulted
    copy in an object written since.
    """

    def normal(template: Mapping) -> Mapping:
        template = _without_hash(template)
        metadata = {
            key: value for key, value in (template.get("metadata") or {}).items() if value not in ({}, None)
        }
        metadata.pop("creationTimestamp", None)
        return {**template, "metadata": metadata}

    if normal(left) == normal(right):
        return True
    return normal(default_message(_POD_TEMPLATE, left)) == normal(default_message(_POD_TEMPLATE, right))


def _revision(obj: Mapping) -> int:
    try:
        return int((metadata_of(obj).get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def sync_deployment(controllers: Controllers, namespace: str, name: str) -> None:
    """The deployment controller's C{syncDeployment}, converging at once."""
    store = controllers.store
    workload = _read_workload(controllers, DEPLOYMENTS, namespace, name)
    if workload is None:
        return
    deployment, uid, spec, template = workload
    replicas = _replicas(spec)
    surge, _ = _surge_and_unavailable(deployment)
    owned = [rs for rs in list_items(store, REPLICA_SETS, namespace) if controlled_by(rs, uid)]
    owned.sort(key=lambda rs: (metadata_of(rs).get("creationTimestamp", ""), metadata_of(rs)["name"]))
    new_rs = next(
        (rs for rs in owned if _same_template((rs.get("spec") or {}).get("template") or {}, template)),
        None,
    )
    old_rss = [rs for rs in owned if rs is not new_rs]

    if not deleting(deployment):
        if spec.get("paused"):
            if new_rs is not None:
                new_rs = _scale_replica_set(controllers, deployment, new_rs, replicas, surge)
        else:
            new_rs = _ensure_new_replica_set(controllers, deployment, new_rs, old_rss, replicas, surge)
            for rs in old_rss:
                _scale_replica_set(controllers, deployment, rs, 0, surge)
            _clean_up(controllers, deployment, old_rss)
        if new_rs is not None:
            revision = (metadata_of(new_rs).get("annotations") or {}).get(REVISION_ANNOTATION)
            annotations = metadata_of(deployment).get("annotations") or {}
            if revision and annotations.get(REVISION_ANNOTATION) != revision:
                # SetDeploymentRevision; the real controller sends it with
                # a status update, which this store's status writes do not
                # carry, so it is a metadata update before the status one.
                updated = controllers.update_quietly(
                    DEPLOYMENTS, namespace, name, with_annotations(
                        deployment,
                        {REVISION_ANNOTATION: revision},
                    )
                )
                if updated is None:
                    return
                deployment = updated

    owned = [rs for rs in list_items(store, REPLICA_SETS, namespace) if controlled_by(rs, uid)]
    if new_rs is not None:
        new_rs = next((rs for rs in owned if uid_of(rs) == uid_of(new_rs)), None)
    _write_status(
        controllers,
        DEPLOYMENTS,
        deployment,
        _deployment_status(controllers, deployment, new_rs, owned),
    )


def _replica_set_annotations(
    deployment: Mapping, rs: Optional[Mapping], revision: int, replicas: int, surge: int, creating: bool
) -> dict:
    """C{SetNewReplicaSetAnnotations}."""
    annotations = dict((metadata_of(rs).get("annotations") or {}) if rs is not None else {})
    for key, value in (metadata_of(deployment).get("annotations") or {}).items():
        if key not in _NOT_COPIED:
            annotations[key] = value
    old_revision = annotations.get(REVISION_ANNOTATION)
    try:
        old_number = int(old_revision) if old_revision else 0
    except ValueError:
        old_number = revision
    if old_number < revision:
        annotations[REVISION_ANNOTATION] = str(revision)
        if old_revision:
            history = annotations.get(REVISION_HISTORY_ANNOTATION)
            annotations[REVISION_HISTORY_ANNOTATION] = (
                f"{history},{old_revision}" if history else old_revision
            )
    if creating or rs is None:
        annotations[DESIRED_REPLICAS_ANNOTATION] = str(replicas)
        annotations[MAX_REPLICAS_ANNOTATION] = str(replicas + surge)
    return annotations


def _ensure_new_replica_set(
    controllers: Controllers,
    deployment: Mapping,
    new_rs: Optional[Mapping],
    old_rss: list,
    replicas: int,
    surge: int,
) -> Optional[Mapping]:
    metadata = metadata_of(deployment)
    namespace, name = metadata.get("namespace", ""), metadata["name"]
    spec = deployment.get("spec") or {}
    revision = max((_revision(rs) for rs in old_rss), default=0) + 1
    if new_rs is not None:
        annotations = _replica_set_annotations(deployment, new_rs, revision, replicas, surge, False)
        rs_spec = new_rs.get("spec") or {}
        min_ready = spec.get("minReadySeconds")
        stale = annotations != (metadata_of(new_rs).get("annotations") or {})
        if stale or rs_spec.get("minReadySeconds") != min_ready:
            new = dict(new_rs)
            new["metadata"] = {**metadata_of(new_rs), "annotations": sorted_map(annotations)}
            new_spec = {key: value for key, value in rs_spec.items() if key != "minReadySeconds"}
            if min_ready:
                new_spec["minReadySeconds"] = min_ready
            new["spec"] = new_spec
            updated = controllers.update_quietly(REPLICA_SETS, namespace, metadata_of(new_rs)["name"], new)
            new_rs = updated or new_rs
        return _scale_replica_set(controllers, deployment, new_rs, replicas, surge)

    template = spec.get("template") or {}
    collisions = int((deployment.get("status") or {}).get("collisionCount") or 0)
    for attempt in range(collisions, collisions + 5):
        hash_ = short_hash([template, attempt] if attempt else template)
        rs_name = f"{name}-{hash_}"
        existing = get_or_none(controllers.store, REPLICA_SETS, namespace, rs_name)
        if existing is not None:
            if controlled_by(existing, metadata["uid"]) and _same_template(
                (existing.get("spec") or {}).get("template") or {}, template
            ):
                return _scale_replica_set(controllers, deployment, existing, replicas, surge)
            continue
        template_metadata = dict(template.get("metadata") or {})
        labels = sorted_map({**(template_metadata.get("labels") or {}), POD_TEMPLATE_HASH: hash_})
        template_metadata["labels"] = labels
        selector = dict(spec.get("selector") or {})
        selector["matchLabels"] = sorted_map(
            {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: hash_}
        )
        rs_spec: dict = {"replicas": replicas}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        rs_spec["selector"] = selector
        rs_spec["template"] = {**template, "metadata": template_metadata}
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": labels,
                "annotations": sorted_map(
                    _replica_set_annotations(deployment, None, revision, replicas, surge, True)
                ),
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": rs_spec,
        }
        created = controllers.create_quietly(REPLICA_SETS, namespace, rs)
        if created is None:
            return None
        return sync_replica_set(controllers, namespace, rs_name)
    return None


def _scale_replica_set(
    controllers: Controllers, deployment: Mapping, rs: Mapping, replicas: int, surge: int
) -> Optional[Mapping]:
    """C{scaleReplicaSet}: size and the replica annotations, then its pods."""
    metadata = metadata_of(rs)
    namespace, name = metadata.get("namespace", ""), metadata["name"]
    spec = rs.get("spec") or {}
    annotations = metadata.get("annotations") or {}
    deployment_replicas = _replicas(deployment.get("spec") or {})
    wanted = {
        DESIRED_REPLICAS_ANNOTATION: str(deployment_replicas),
        MAX_REPLICAS_ANNOTATION: str(deployment_replicas + surge),
    }
    if _replicas(spec) != replicas or any(annotations.get(key) != value for key, value in wanted.items()):
        new = with_annotations(rs, wanted)
        new["spec"] = {**spec, "replicas": replicas}
        if controllers.update_quietly(REPLICA_SETS, namespace, name, new) is None:
            return None
    return sync_replica_set(controllers, namespace, name)


def _clean_up(controllers: Controllers, deployment: Mapping, old_rss: list) -> None:
    """C{cleanupDeployment}: keep at most revisionHistoryLimit old ReplicaSets."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit", 10)
    if limit is None:
        return
    candidates = []
    for rs in old_rss:
        current = get_or_none(
            controllers.store,
            REPLICA_SETS,
            metadata_of(rs).get("namespace", ""),
            metadata_of(rs)["name"],
        )
        if current is None or deleting(current):
            continue
        if _replicas(current.get("spec") or {}) == 0 and not (current.get("status") or {}).get("replicas"):
            candidates.append(current)
    candidates.sort(key=_revision)
    _delete(controllers, REPLICA_SETS, candidates[: max(0, len(old_rss) - int(limit))])


def _set_deployment_condition(conditions: list, new: dict) -> None:
    """C{SetDeploymentCondition}: a changed condition moves to the end."""
    for index, existing in enumerate(conditions):
        if existing.get("type") == new["type"]:
            if existing == new:
                return
            del conditions[index]
            break
    conditions.append(new)


def _deployment_status(
    controllers: Controllers, deployment: Mapping, new_rs: Optional[Mapping], owned: list
) -> dict:
    """C{calculateStatus} and C{syncRolloutStatus}."""
    spec = deployment.get("spec") or {}
    old_status = deployment.get("status") or {}
    now = controllers.now_text()
    replicas = _replicas(spec)
    _, max_unavailable = _surge_and_unavailable(deployment)
    active = [rs for rs in owned if not deleting(rs)] or owned

    def total(field: str, items: list) -> int:
        return sum(int((rs.get("status") or {}).get(field) or 0) for rs in items)

    available = total("availableReplicas", active)
    wanted = sum(_replicas(rs.get("spec") or {}) for rs in active)
    status: dict = {}
    generation = metadata_of(deployment).get("generation")
    if generation:
        status["observedGeneration"] = generation
    counts = {
        "replicas": total("replicas", active),
        "updatedReplicas": total("replicas", [new_rs]) if new_rs is not None else 0,
        "readyReplicas": total("readyReplicas", active),
        "availableReplicas": available,
        "unavailableReplicas": max(0, wanted - available),
    }
    status.update({key: value for key, value in counts.items() if value})
    conditions = [dict(item) for item in old_status.get("conditions") or ()]

    def set_condition(type_: str, state: str, reason: str, message: str) -> None:
        _set_deployment_condition(
            conditions,
            condition(
                type_,
                state,
                reason,
                message,
                now,
                find_condition(conditions, type_),
                update_time=True,
            ),
        )

    if available >= replicas - max_unavailable:
        set_condition(
            "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
        )
    else:
        set_condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    name = metadata_of(deployment)["name"]
    subject = f'ReplicaSet "{metadata_of(new_rs)["name"]}"' if new_rs is not None else f'Deployment "{name}"'
    if spec.get("progressDeadlineSeconds") == _NO_DEADLINE:
        conditions = [item for item in conditions if item.get("type") != "Progressing"]
    elif spec.get("paused"):
        set_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
    elif (
        counts["updatedReplicas"] == replicas
        and counts["replicas"] == replicas
        and available == replicas
        and new_rs is not None
    ):
        set_condition(
            "Progressing", "True", "NewReplicaSetAvailable", f"{subject} has successfully progressed."
        )
    else:
        set_condition("Progressing", "True", "ReplicaSetUpdated", f"{subject} is progressing.")
    status["conditions"] = conditions
    if "collisionCount" in old_status:
        status["collisionCount"] = old_status["collisionCount"]
    return status


# -- ReplicaSets -----------------------------------------------------------


def sync_replica_set(controllers: Controllers, namespace: str, name: str) -> Optional[dict]:
    """The ReplicaSet controller's C{syncReplicaSet}; returns the ReplicaSet."""
    workload = _read_workload(controllers, REPLICA_SETS, namespace, name)
    if workload is None:
        return None
    rs, uid, spec, template = workload
    pods = [pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)]
    if not deleting(rs):
        wanted = _replicas(spec)
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                _create_pod(controllers, _pod_from_template(rs, template, f"{name}-"))
        elif len(pods) > wanted:
            # Newest first among equals: sort by age, then by rank.
            ordered = sorted(
                pods,
                key=lambda pod: metadata_of(pod).get("creationTimestamp", ""),
                reverse=True,
            )
            ordered.sort(key=_deletion_rank)
            _delete(controllers, PODS, ordered[: len(pods) - wanted])
        pods = [pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)]
    selector_labels = (template.get("metadata") or {}).get("labels") or {}
    ready = sum(1 for pod in pods if _pod_ready(pod))
    status: dict = {"replicas": len(pods)}
    labelled = sum(
        1 for pod in pods if all(_labels(pod).get(key) == value for key, value in selector_labels.items())
    )
    if labelled:
        status["fullyLabeledReplicas"] = labelled
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    generation = metadata_of(rs).get("generation")
    if generation:
        status["observedGeneration"] = generation
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return _write_status(controllers, REPLICA_SETS, rs, status) or rs


# -- ControllerRevisions -----------------------------------------------------


def _ensure_revision(
    controllers: Controllers, owner: Mapping, template: Mapping, create: bool = True
) -> tuple[str, str]:
    """
    The ControllerRevision of an owner's current template (DaemonSets and
    StatefulSets keep their history this way); returns its name and hash.

    An existing revision with the same template is the current one, whatever
    its hash: a template's revisions carry the hashes a real controller
    computed, which L{short_hash} does not reproduce, and their pods must
    not look outdated because of that.
    """
    metadata = metadata_of(owner)
    namespace, name, uid = metadata.get("namespace", ""), metadata["name"], metadata["uid"]
    revisions = [
        item
        for item in list_items(controllers.store, CONTROLLER_REVISIONS, namespace)
        if controlled_by(item, uid)
    ]
    for item in revisions:
        recorded = dict(((item.get("data") or {}).get("spec") or {}).get("template") or {})
        recorded.pop("$patch", None)
        if _same_template(recorded, template):
            revision_name = metadata_of(item)["name"]
            hash_ = _labels(item).get(CONTROLLER_REVISION_HASH) or revision_name.rpartition("-")[2]
            return revision_name, hash_
    hash_ = short_hash(template)
    revision_name = f"{name}-{hash_}"
    if not create or any(metadata_of(item)["name"] == revision_name for item in revisions):
        return revision_name, hash_
    number = max((int(item.get("revision") or 0) for item in revisions), default=0) + 1
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[CONTROLLER_REVISION_HASH] = hash_
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name,
            "namespace": namespace,
            "labels": sorted_map(labels),
            "ownerReferences": [owner_reference(owner)],
        },
        "data": {"spec": {"template": {**template, "$patch": "replace"}}},
        "revision": number,
    }
    if metadata.get("annotations"):
        revision["metadata"]["annotations"] = dict(metadata["annotations"])
    controllers.create_quietly(CONTROLLER_REVISIONS, namespace, revision)
    return revision_name, hash_


# -- DaemonSets --------------------------------------------------------------


def _daemon_pod_spec(template_spec: Mapping, node_name: str) -> dict:
    """The template's pod spec pinned to one Node, with the daemon tolerations."""
    spec = dict(template_spec)
    tolerations = [dict(item) for item in spec.get("tolerations") or ()]
    extra = list(_DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        extra.append(_HOST_NETWORK_TOLERATION)
    for toleration in extra:
        for index, existing in enumerate(tolerations):
            if existing.get("key") == toleration["key"] and existing.get("effect") == toleration["effect"]:
                tolerations[index] = dict(toleration)
                break
        else:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    affinity["nodeAffinity"] = node_affinity
    spec["affinity"] = affinity
    return spec


def sync_daemon_set(controllers: Controllers, namespace: str, name: str) -> None:
    """The DaemonSet controller: one pod per Node the template fits."""
    workload = _read_workload(controllers, DAEMON_SETS, namespace, name)
    if workload is None:
        return
    ds, uid, spec, template = workload
    template_spec = template.get("spec") or {}
    generation = str(
        (metadata_of(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
        or metadata_of(ds).get("generation")
        or 1
    )
    extra_tolerations = list(_DAEMON_TOLERATIONS) + (
        [_HOST_NETWORK_TOLERATION] if template_spec.get("hostNetwork") else []
    )
    nodes = [node for node in list_items(controllers.store, NODES) if not deleting(node)]
    wanted = {
        metadata_of(node)["name"]: node for node in nodes if node_fits(template_spec, node, extra_tolerations)
    }
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    if not deleting(ds):
        _, hash_ = _ensure_revision(controllers, ds, template)
        pods = [pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)]
        by_node: dict[str, list] = {}
        for pod in pods:
            by_node.setdefault((pod.get("spec") or {}).get("nodeName") or "", []).append(pod)
        for node_name, node_pods in by_node.items():
            if node_name not in wanted:
                _delete(controllers, PODS, node_pods)
            elif len(node_pods) > 1:
                _delete(controllers, PODS, node_pods[1:])
        for node_name in wanted:
            current = by_node.get(node_name, [])[:1]
            if current and not on_delete and _labels(current[0]).get(CONTROLLER_REVISION_HASH) != hash_:
                _delete(controllers, PODS, current)
                current = []
            if not current:
                pod = _pod_from_template(
                    ds,
                    template,
                    f"{name}-",
                    **{CONTROLLER_REVISION_HASH: hash_, "pod-template-generation": generation},
                )
                pod["spec"] = _daemon_pod_spec(template_spec, node_name)
                _create_pod(controllers, pod)
    else:
        _, hash_ = _ensure_revision(controllers, ds, template, create=False)
    pods = [pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)]
    scheduled = {(pod.get("spec") or {}).get("nodeName") for pod in pods}
    ready = [pod for pod in pods if _pod_ready(pod) and (pod.get("spec") or {}).get("nodeName") in wanted]
    status: dict = {
        "currentNumberScheduled": len(scheduled & set(wanted)),
        "numberMisscheduled": len(scheduled - set(wanted) - {None, ""}),
        "desiredNumberScheduled": len(wanted),
        "numberReady": len(ready),
    }
    if metadata_of(ds).get("generation"):
        status["observedGeneration"] = metadata_of(ds)["generation"]
    updated = sum(1 for pod in pods if _labels(pod).get(CONTROLLER_REVISION_HASH) == hash_)
    if updated:
        status["updatedNumberScheduled"] = updated
    if ready:
        status["numberAvailable"] = len(ready)
    if len(wanted) - len(ready) > 0:
        status["numberUnavailable"] = len(wanted) - len(ready)
    old_status = ds.get("status") or {}
    for key in ("collisionCount", "conditions"):
        if key in old_status:
            status[key] = old_status[key]
    _write_status(controllers, DAEMON_SETS, ds, status)


# -- StatefulSets ------------------------------------------------------------


def sync_stateful_set(controllers: Controllers, namespace: str, name: str) -> None:
    """The StatefulSet controller: pods C{<name>-0} to C{<name>-(n-1)}."""
    store = controllers.store
    workload = _read_workload(controllers, STATEFUL_SETS, namespace, name)
    if workload is None:
        return
    sts, uid, spec, template = workload
    replicas = _replicas(spec)
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    if not deleting(sts):
        revision_name, _ = _ensure_revision(controllers, sts, template)
        pods = {
            metadata_of(pod)["name"]: pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)
        }
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            current = pods.pop(pod_name, None)
            outdated = current is not None and _labels(current).get(CONTROLLER_REVISION_HASH) != revision_name
            if outdated and not on_delete:
                _delete(controllers, PODS, [current])
                current = None
            if current is not None or get_or_none(store, PODS, namespace, pod_name) is not None:
                continue
            pod = _pod_from_template(
                sts,
                template,
                "",
                **{
                    CONTROLLER_REVISION_HASH: revision_name,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                },
            )
            del pod["metadata"]["generateName"]
            pod["metadata"] = {"name": pod_name, **pod["metadata"]}
            pod_spec = dict(pod["spec"])
            pod_spec["hostname"] = pod_name
            if spec.get("serviceName"):
                pod_spec["subdomain"] = spec["serviceName"]
            pod["spec"] = pod_spec
            _create_pod(controllers, pod)
        # Ordinals beyond the size go, the highest first.
        extra = sorted(pods.values(), key=lambda pod: metadata_of(pod)["name"], reverse=True)
        _delete(controllers, PODS, extra)
    else:
        revision_name, _ = _ensure_revision(controllers, sts, template, create=False)
    pods_now = [pod for pod in _owned_pods(controllers, namespace, uid) if _active(pod)]
    ready = sum(1 for pod in pods_now if _pod_ready(pod))
    current = sum(1 for pod in pods_now if _labels(pod).get(CONTROLLER_REVISION_HASH) == revision_name)
    status: dict = {}
    if metadata_of(sts).get("generation"):
        status["observedGeneration"] = metadata_of(sts)["generation"]
    status["replicas"] = len(pods_now)
    if ready:
        status["readyReplicas"] = ready
    if current:
        status["currentReplicas"] = current
        status["updatedReplicas"] = current
    status["currentRevision"] = revision_name
    status["updateRevision"] = revision_name
    status["collisionCount"] = int((sts.get("status") or {}).get("collisionCount") or 0)
    status["availableReplicas"] = ready
    _write_status(controllers, STATEFUL_SETS, sts, status)


# -- Jobs ------------------------------------------------------------------


def _finished(job: Mapping) -> bool:
    for item in (job.get("status") or {}).get("conditions") or ():
        if item.get("type") in ("Complete", "Failed") and item.get("status") == "True":
            return True
    return False


def sync_job(controllers: Controllers, namespace: str, name: str) -> None:
    """The Job controller: run the pods to completion and report it."""
    workload = _read_workload(controllers, JOBS, namespace, name)
    if workload is None:
        return
    job, uid, spec, template = workload
    pods = _owned_pods(controllers, namespace, uid)
    # Pods whose success has been counted lose the tracking finalizer.
    for pod in pods:
        if JOB_TRACKING_FINALIZER in (metadata_of(pod).get("finalizers") or ()) and not _active(pod):
            metadata = metadata_of(pod)
            controllers.update_quietly(
                PODS, namespace, metadata["name"], with_finalizers(pod, remove=(JOB_TRACKING_FINALIZER,))
            )
    if _finished(job) or deleting(job) or spec.get("suspend"):
        return
    parallelism = spec.get("parallelism", 1)
    completions = spec.get("completions")
    if completions is None:
        completions = 1 if parallelism else 0
    succeeded = sum(1 for pod in pods if (pod.get("status") or {}).get("phase") == "Succeeded")
    active = sum(1 for pod in pods if _active(pod))
    while parallelism and succeeded + active < completions:
        pod = _pod_from_template(job, template, f"{name}-")
        pod["metadata"]["finalizers"] = [*pod["metadata"].get("finalizers", ()), JOB_TRACKING_FINALIZER]
        created = _create_pod(controllers, pod)
        if created is None:
            break
        if (created.get("status") or {}).get("phase") == "Succeeded":
            succeeded += 1
            created_metadata = metadata_of(created)
            controllers.update_quietly(
                PODS,
                namespace,
                created_metadata["name"],
                with_finalizers(created, remove=(JOB_TRACKING_FINALIZER,)),
            )
        else:
            active += 1
    job = get_or_none(controllers.store, JOBS, namespace, name) or job
    now = controllers.now_text()
    old_status = job.get("status") or {}
    status: dict = {}
    if completions and succeeded >= completions:
        status["conditions"] = [
            {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
        ]
    status["startTime"] = old_status.get("startTime") or now
    if "conditions" in status:
        status["completionTime"] = now
    if active:
        status["active"] = active
    if succeeded:
        status["succeeded"] = succeeded
    status["uncountedTerminatedPods"] = {}
    status["ready"] = sum(
        1 for pod in _owned_pods(controllers, namespace, uid) if _active(pod) and _pod_ready(pod)
    )
    _write_status(controllers, JOBS, job, status)


# -- dispatch ---------------------------------------------------------------

_SYNCS: dict[str, Callable[["Controllers", str, str], object]] = {
    "ReplicaSet": sync_replica_set,
    "DaemonSet": sync_daemon_set,
    "StatefulSet": sync_stateful_set,
    "Job": sync_job,
}


def _only_status_changed(obj: Mapping, old: Optional[Mapping]) -> bool:
    if old is None:
        return False
    keys = (set(obj) | set(old)) - {"status", "metadata"}
    if any(obj.get(key) != old.get(key) for key in keys):
        return False
    ignored = ("resourceVersion", "managedFields")
    metadata = {key: value for key, value in metadata_of(obj).items() if key not in ignored}
    old_metadata = {key: value for key, value in metadata_of(old).items() if key not in ignored}
    return metadata == old_metadata


def observe_deployment(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    if event == DELETED or _only_status_changed(obj, old):
        return
    metadata = metadata_of(obj)
    sync_deployment(controllers, metadata.get("namespace", ""), metadata["name"])


def observe_replica_set(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    metadata = metadata_of(obj)
    namespace = metadata.get("namespace", "")
    if event != DELETED and not _only_status_changed(obj, old):
        sync_replica_set(controllers, namespace, metadata["name"])
    owner = controller_reference(obj)
    if owner is not None and owner.get("kind") == "Deployment":
        sync_deployment(controllers, namespace, owner.get("name", ""))


def observe_workload(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """DaemonSets, StatefulSets and Jobs."""
    if event == DELETED or _only_status_changed(obj, old):
        return
    metadata = metadata_of(obj)
    _SYNCS[obj.get("kind", "")](controllers, metadata.get("namespace", ""), metadata["name"])


def observe_owned_pod(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """A pod changed: its controller (and a ReplicaSet's Deployment) resyncs."""
    owner = controller_reference(obj)
    if owner is None:
        return
    namespace = metadata_of(obj).get("namespace", "")
    sync = _SYNCS.get(owner.get("kind", ""))
    if sync is None:
        return
    owner_object = sync(controllers, namespace, owner.get("name", ""))
    if owner.get("kind") == "ReplicaSet" and owner_object is not None:
        deployment = controller_reference(owner_object)
        if deployment is not None and deployment.get("kind") == "Deployment":
            sync_deployment(controllers, namespace, deployment.get("name", ""))


def observe_node_for_daemons(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """Nodes come and go, or change labels and taints: DaemonSets follow."""
    if event != DELETED and old is not None:
        before, after = old.get("spec") or {}, obj.get("spec") or {}
        if (
            metadata_of(old).get("labels") == metadata_of(obj).get("labels")
            and before.get("taints") == after.get("taints")
            and before.get("unschedulable") == after.get("unschedulable")
        ):
            return
    for ds in list_items(controllers.store, DAEMON_SETS):
        metadata = metadata_of(ds)
        sync_daemon_set(controllers, metadata.get("namespace", ""), metadata["name"])


def converge_workloads(controllers: Controllers) -> None:
    """
    Bring the stored workloads that carry no status yet (a template's
    hand-written ones) to where the controllers would have them; those
    with a status are left as the template has them. Used by bootstrap.
    """
    store = controllers.store
    for resource_type, sync in (
        (DEPLOYMENTS, sync_deployment),
        (DAEMON_SETS, sync_daemon_set),
        (STATEFUL_SETS, sync_stateful_set),
        (JOBS, sync_job),
    ):
        for item in list_items(store, resource_type):
            if item.get("status"):
                continue
            metadata = metadata_of(item)
            try:
                sync(controllers, metadata.get("namespace", ""), metadata["name"])
            except APIError as error:
                controllers.log_write_failure(
                    error,
                    resource_type,
                    metadata.get("namespace", ""),
                    metadata["name"],
                )

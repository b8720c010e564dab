# -*- test-case-name: tests.test_kube_controllers -*-
"""
Admit, schedule and start Pods as the API server, scheduler and kubelet do.

What happens to a Pod after it is created in a real cluster, without the
waiting: the admission plugins that complete it (ServiceAccount,
DefaultTolerationSeconds, Priority, and the pod strategy's initial
status), the scheduler binding it to a Node, and the kubelet starting its
containers (or, for a Job's pod, running them to completion).

A created pod is seen as ADDED (Pending), then MODIFIED when it is bound
(C{spec.nodeName}), then MODIFIED when the kubelet reports it Running, as a
watcher of a real cluster sees it, minus the intermediate kubelet reports.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Optional

from scaleagent.kube.controllers._common import (
    NODES,
    PODS,
    PRIORITY_CLASSES,
    SERVICE_ACCOUNTS,
    controller_reference,
    deleting,
    find_condition,
    get_or_none,
    list_items,
    metadata_of,
    name_suffix,
)
from scaleagent.kube.errors import APIError
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"

# The ServiceAccount admission plugin's projected token volume.
_TOKEN_SOURCES = (
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
    {
        "downwardAPI": {
            "items": [
                {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}
            ]
        }
    },
)

# DefaultTolerationSeconds' tolerations.
_DEFAULT_TOLERATIONS = (
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
)

# The two PriorityClasses every cluster has without storing them.
_SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}

_RUNNING_PHASES = frozenset({"Running", "Succeeded", "Failed"})


# -- admission -------------------------------------------------------------


def admit_pod(
    controllers: Controllers,
    operation: str,
    resource_type: ResourceType,
    new: dict,
    old: Optional[dict],
) -> Optional[dict]:
    """
    Complete a new pod as kube-apiserver's admission chain and pod strategy
    do. Everything here leaves a pod that already has it alone, so it does
    no harm if the HTTP layer also defaults pods.
    """
    if operation != "CREATE":
        return None
    spec = new.get("spec")
    if not isinstance(spec, Mapping):
        return None
    spec = dict(spec)
    metadata = new["metadata"]
    namespace = metadata.get("namespace", "")
    account_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account_name
    spec["serviceAccount"] = account_name
    if _mounts_token(controllers, spec, namespace, account_name):
        _mount_token(spec, metadata.get("uid", "") or metadata.get("name", ""))
    spec["tolerations"] = _with_default_tolerations(spec.get("tolerations") or [])
    priority = _priority(controllers, spec.get("priorityClassName"))
    if "priority" not in spec and priority is not None:
        spec["priority"] = priority[0]
    if "preemptionPolicy" not in spec and priority is not None:
        spec["preemptionPolicy"] = priority[1]
    spec.setdefault("enableServiceLinks", True)
    result = dict(new)
    result["spec"] = spec
    # The pod strategy's PrepareForCreate: a new pod is Pending, with its
    # QoS class already known.
    result["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    return result


def _mounts_token(controllers: Controllers, spec: Mapping, namespace: str, account_name: str) -> bool:
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    account = get_or_none(controllers.store, SERVICE_ACCOUNTS, namespace, account_name)
    if account is not None and account.get("automountServiceAccountToken") is False:
        return False
    return True


def _mount_token(spec: dict, seed: str) -> None:
    volumes = list(spec.get("volumes") or [])
    volume_name = next(
        (
            volume.get("name")
            for volume in volumes
            if str(volume.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)
        ),
        None,
    )
    has_volume = volume_name is not None
    if volume_name is None:
        volume_name = TOKEN_VOLUME_PREFIX + name_suffix(seed)
    mount = {"mountPath": TOKEN_MOUNT_PATH, "name": volume_name, "readOnly": True}
    needs_volume = False
    for field in ("initContainers", "containers"):
        containers = spec.get(field)
        if not containers:
            continue
        changed = []
        for container in containers:
            mounts = container.get("volumeMounts") or []
            if any(item.get("mountPath") == TOKEN_MOUNT_PATH for item in mounts):
                changed.append(container)
                continue
            changed.append({**container, "volumeMounts": [*mounts, mount]})
            needs_volume = True
        spec[field] = changed
    if needs_volume and not has_volume:
        volumes.append(
            {
                "name": volume_name,
                "projected": {"defaultMode": 420, "sources": [dict(item) for item in _TOKEN_SOURCES]},
            }
        )
        spec["volumes"] = volumes


def _with_default_tolerations(tolerations: list) -> list:
    result = list(tolerations)
    for default in _DEFAULT_TOLERATIONS:
        covered = any(
            (item.get("key") in (default["key"], None, "")) and item.get("effect") in ("NoExecute", None, "")
            for item in tolerations
        )
        if not covered:
            result.append(dict(default))
    return result


def _priority(controllers: Controllers, class_name: Optional[str]) -> Optional[tuple[int, str]]:
    """The Priority plugin: the class's value and preemption policy."""
    if not class_name:
        for item in list_items(controllers.store, PRIORITY_CLASSES):
            if item.get("globalDefault"):
                return int(item.get("value", 0)), item.get("preemptionPolicy", "PreemptLowerPriority")
        return 0, "PreemptLowerPriority"
    if class_name in _SYSTEM_PRIORITIES:
        return _SYSTEM_PRIORITIES[class_name], "PreemptLowerPriority"
    item = get_or_none(controllers.store, PRIORITY_CLASSES, "", class_name)
    if item is None:
        # kube-apiserver refuses the pod; leaving it without a priority is
        # the nearest thing admission here can do without failing writes.
        return None
    return int(item.get("value", 0)), item.get("preemptionPolicy", "PreemptLowerPriority")


def _cpu_and_memory(resources: Optional[Mapping]) -> dict:
    return {key: value for key, value in (resources or {}).items() if key in ("cpu", "memory")}


def qos_class(spec: Mapping) -> str:
    """C{qos.GetPodQOS}, for CPU and memory."""
    requests: dict = {}
    limits: dict = {}
    guaranteed = True
    containers = list(spec.get("containers") or ()) + list(spec.get("initContainers") or ())
    for container in containers:
        resources = container.get("resources") or {}
        container_requests = _cpu_and_memory(resources.get("requests"))
        container_limits = _cpu_and_memory(resources.get("limits"))
        requests.update(container_requests)
        limits.update(container_limits)
        if set(container_limits) != {"cpu", "memory"}:
            guaranteed = False
        elif any(container_requests.get(key, limit) != limit for key, limit in container_limits.items()):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# -- scheduling ------------------------------------------------------------


def _tolerates(tolerations: Iterable[Mapping], taint: Mapping) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key") or ""
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expression_matches(expression: Mapping, value: Optional[str]) -> bool:
    operator = expression.get("operator")
    values = expression.get("values") or ()
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Mapping, node: Mapping) -> bool:
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False
    labels = metadata_of(node).get("labels") or {}
    for expression in expressions:
        if not _expression_matches(expression, labels.get(expression.get("key", ""))):
            return False
    for expression in fields:
        value = metadata_of(node).get("name") if expression.get("key") == "metadata.name" else None
        if not _expression_matches(expression, value):
            return False
    return True


def node_fits(spec: Mapping, node: Mapping, extra_tolerations: Iterable[Mapping] = ()) -> bool:
    """The scheduler's filters that matter without real resources."""
    node_spec = node.get("spec") or {}
    tolerations = list(spec.get("tolerations") or ()) + list(extra_tolerations)
    if node_spec.get("unschedulable") and not _tolerates(
        tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return False
    for taint in node_spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return False
    labels = metadata_of(node).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not any(_term_matches(term, node) for term in terms):
        return False
    return True


def _preference(spec: Mapping, node: Mapping) -> int:
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or ()
    return sum(
        int(item.get("weight", 0)) for item in preferred if _term_matches(item.get("preference") or {}, node)
    )


def choose_node(controllers: Controllers, pod: Mapping) -> Optional[Mapping]:
    """
    Pick a Node for a pod: one it fits, preferring its preferred node
    affinity, then the Node with the fewest pods started since the cluster
    was made (then by name). The real scheduler balances by requested
    resources; counting the template's pods as well would mean rendering
    every one of them on every scheduling decision.
    """
    spec = pod.get("spec") or {}
    nodes = [
        node for node in list_items(controllers.store, NODES) if not deleting(node) and node_fits(spec, node)
    ]
    if len(nodes) <= 1:
        return nodes[0] if nodes else None
    load: dict[str, int] = {}
    for item in _written_pods(controllers):
        node_name = (item.get("spec") or {}).get("nodeName")
        if node_name:
            load[node_name] = load.get(node_name, 0) + 1
    return min(
        nodes,
        key=lambda node: (
            -_preference(spec, node),
            load.get(metadata_of(node)["name"], 0),
            metadata_of(node)["name"],
        ),
    )


def _written_pods(controllers: Controllers) -> Iterator[Mapping]:
    """
    The pods written since the cluster was made, read without rendering
    the template's (L{ObjectStore.export_changes} is the public way to them).
    """
    for entry in controllers.store.export_changes()["objects"]:
        if entry["resource"] == "pods" and not entry["group"]:
            yield entry["object"]


# -- running ---------------------------------------------------------------


def observe_pod(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    if event == DELETED:
        return
    metadata = metadata_of(obj)
    current = get_or_none(controllers.store, PODS, metadata.get("namespace", ""), metadata.get("name", ""))
    if current is not None:
        run_pod(controllers, current)


def run_pod(controllers: Controllers, pod: Mapping) -> Mapping:
    """
    Bind a pending pod to a Node and start it, as the scheduler and the
    kubelet would; return the pod as it is now. Pods that are running,
    finished or being deleted are left as they are.
    """
    if deleting(pod):
        return pod
    metadata = metadata_of(pod)
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if status.get("phase") in _RUNNING_PHASES:
        return pod
    node_name = spec.get("nodeName")
    if not node_name:
        node = choose_node(controllers, pod)
        if node is None:
            return _unschedulable(controllers, pod)
        # The scheduler binds through pods/binding, which changes the stored
        # pod without bumping its generation.
        try:
            controllers.store.bind_pod(PODS, namespace, name, metadata_of(node)["name"])
        except APIError as error:
            controllers.log_write_failure(error, PODS, namespace, name)
            return pod
        # Outside an observer the binding's own notification may already
        # have started the pod.
        current = get_or_none(controllers.store, PODS, namespace, name)
        if current is None or deleting(current):
            return current or pod
        if (current.get("status") or {}).get("phase") in _RUNNING_PHASES:
            return current
        pod = current
    else:
        node = get_or_none(controllers.store, NODES, "", node_name)
        if node is None:
            # No kubelet will ever report it.
            return pod
    new = dict(pod)
    new["status"] = _started_status(controllers, pod, node)
    started = controllers.update_quietly(PODS, namespace, name, new, subresource="status")
    return started if started is not None else pod


def _unschedulable(controllers: Controllers, pod: Mapping) -> Mapping:
    status = pod.get("status") or {}
    nodes = len(list_items(controllers.store, NODES))
    if nodes:
        message = (
            f"0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node "
            "affinity/selector or had untolerated taints."
        )
    else:
        message = "no nodes available to schedule pods"
    previous = find_condition(status.get("conditions") or (), "PodScheduled")
    if previous is not None and previous.get("message") == message:
        return pod
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": controllers.now_text(),
        "reason": "Unschedulable",
        "message": message,
    }
    new = dict(pod)
    new["status"] = {**status, "phase": "Pending", "conditions": [scheduled]}
    metadata = metadata_of(pod)
    updated = controllers.update_quietly(
        PODS, metadata.get("namespace", ""), metadata.get("name", ""), new, subresource="status"
    )
    return updated if updated is not None else pod


def _node_address(node: Mapping) -> str:
    for address in (node.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP":
            return address.get("address", "")
    return ""


def _pod_ip(controllers: Controllers, pod: Mapping, node: Mapping, host_ip: str) -> str:
    """
    A free address of the Node's pod CIDR.

    host-local IPAM hands addresses out in order from the start of the
    range, and that is where a template's pods sit; reading them all to
    find the next free one would render every template pod. Pods started
    here are handed addresses in order from the middle of the range
    instead, skipping those of the other pods started since the cluster
    was made.
    """
    if (pod.get("spec") or {}).get("hostNetwork"):
        return host_ip
    node_name = metadata_of(node).get("name")
    cidr = (node.get("spec") or {}).get("podCIDR") or "10.42.0.0/24"
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        network = ipaddress.ip_network("10.42.0.0/24")
    used = {
        (item.get("status") or {}).get("podIP")
        for item in _written_pods(controllers)
        if (item.get("spec") or {}).get("nodeName") == node_name
    }
    size = min(network.num_addresses, 65536)
    first = max(2, size // 2)
    for offset in range(first, max(first + 1, size - 1)):
        candidate = str(network.network_address + offset)
        if candidate not in used:
            return candidate
    return str(network.network_address + first)


def _normalised_image(image: str) -> tuple[str, str]:
    """The image reference as containerd reports it, and its repository."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
    else:
        repository, tag = name, "latest"
    first = repository.split("/", 1)[0]
    if "/" not in repository:
        repository = "docker.io/library/" + repository
    elif "." not in first and ":" not in first and first != "localhost":
        repository = "docker.io/" + repository
    reference = f"{repository}@{digest}" if digest else f"{repository}:{tag}"
    return reference, repository


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _container_status(pod_uid: str, container: Mapping, now: str, completes: bool) -> dict:
    name = container.get("name", "")
    image = container.get("image", "")
    reference, repository = _normalised_image(image)
    container_id = "containerd://" + _digest(f"{pod_uid}/{name}")
    if completes:
        state = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": now,
                "finishedAt": now,
                "containerID": container_id,
            }
        }
    else:
        state = {"running": {"startedAt": now}}
    return {
        "name": name,
        "state": state,
        "lastState": {},
        "ready": not completes,
        "restartCount": 0,
        "image": reference,
        "imageID": f"{repository}@sha256:{_digest(reference)}",
        "containerID": container_id,
        "started": not completes,
    }


def _completes(pod: Mapping) -> bool:
    """A Job's pod runs to completion; everything else keeps running."""
    reference = controller_reference(pod)
    return reference is not None and reference.get("kind") == "Job"


def _started_status(controllers: Controllers, pod: Mapping, node: Mapping) -> dict:
    now = controllers.now_text()
    spec = pod.get("spec") or {}
    uid = metadata_of(pod).get("uid", "")
    completes = _completes(pod)
    host_ip = _node_address(node)
    pod_ip = _pod_ip(controllers, pod, node, host_ip)

    def pod_condition(type_: str, status: str, reason: str = "") -> dict:
        result: dict = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
        if reason:
            result["reason"] = reason
        return result

    ready = "False" if completes else "True"
    reason = "PodCompleted" if completes else ""
    status: dict = {
        "phase": "Succeeded" if completes else "Running",
        "conditions": [
            pod_condition("Initialized", "True", reason),
            pod_condition("Ready", ready, reason),
            pod_condition("ContainersReady", ready, reason),
            pod_condition("PodScheduled", "True"),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
    }
    init_containers = spec.get("initContainers") or ()
    if init_containers:
        statuses = []
        for container in init_containers:
            item = _container_status(uid, container, now, True)
            item["ready"] = True
            statuses.append(item)
        status["initContainerStatuses"] = statuses
    status["containerStatuses"] = [
        _container_status(uid, container, now, completes) for container in spec.get("containers") or ()
    ]
    status["qosClass"] = (pod.get("status") or {}).get("qosClass") or qos_class(spec)
    return status


def schedule_pending(controllers: Controllers) -> None:
    """A Node appeared or changed: try the pods still waiting for one."""
    for pod in list_items(controllers.store, PODS):
        if not (pod.get("spec") or {}).get("nodeName") and not deleting(pod):
            run_pod(controllers, pod)


def observe_node(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """Schedule waiting pods on a new Node; collect the pods of a deleted one."""
    if event == DELETED:
        # The pod garbage collector deletes pods bound to a Node that no
        # longer exists (after a short grace period in a real cluster).
        name = metadata_of(obj).get("name")
        for pod in list_items(controllers.store, PODS):
            if (pod.get("spec") or {}).get("nodeName") == name:
                pod_metadata = metadata_of(pod)
                controllers.delete_quietly(
                    PODS, pod_metadata.get("namespace", ""), pod_metadata["name"], uid=pod_metadata.get("uid")
                )
        return
    if old is not None and _scheduling_view(old) == _scheduling_view(obj):
        return
    schedule_pending(controllers)


def _scheduling_view(node: Mapping) -> tuple:
    spec = node.get("spec") or {}
    return (metadata_of(node).get("labels"), spec.get("taints"), spec.get("unschedulable"))

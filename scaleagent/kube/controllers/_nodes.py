# -*- test-case-name: tests.test_kube_controllers -*-
"""
The kubelets' periodic writes (node status reports and Lease renewals),
and the taints Nodes get from their conditions (the TaintNodesByCondition
admission plugin and the node lifecycle controller's NoSchedule pass).

A kubelet reports its Node's status (every condition's
C{lastHeartbeatTime}) every five minutes when nothing changes, and renews
its Lease in C{kube-node-lease} every ten seconds. Both are driven here by one timer the
whole fleet shares (L{heartbeat}), and Lease renewal is lazy: renewing
every Lease of ten thousand clusters every ten seconds would be thousands
of writes a second that nobody reads. Instead a Lease is renewed when
someone is about to read leases (the HTTP layer calls
L{Controllers.prepare_read}) and its renewal is older than ten seconds, and
at least with every status report. The trade-off: whoever reads a Lease
(GET, LIST, or the initial events of a watch) sees it fresh, exactly as
from a live kubelet; a client that only keeps watching sees a renewal when
anyone reads, or every five minutes, so by the Lease's own 40 seconds it
may look expired in between. Nothing Rancher runs reads node Leases, and
there is no node lifecycle controller here to act on an expired one.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Mapping, Optional

from scaleagent.kube.controllers._common import (
    LEASES,
    NAMESPACES,
    NODES,
    find_condition,
    format_micro_time,
    format_time,
    get_or_none,
    list_items,
    metadata_of,
    owner_reference,
    parse_time,
)
from scaleagent.kube.resources import ResourceType
from scaleagent.kube.store import DELETED

if TYPE_CHECKING:
    from scaleagent.kube.controllers._manager import Controllers

#: The kubelet's C{nodeStatusReportFrequency} (when the status is unchanged).
NODE_STATUS_REPORT_INTERVAL = 300.0

#: How often a kubelet renews its Lease: a quarter of its duration.
LEASE_RENEW_INTERVAL = 10.0

#: The kubelet's C{nodeLeaseDurationSeconds}.
LEASE_DURATION_SECONDS = 40

NODE_LEASE_NAMESPACE = "kube-node-lease"


def _first_due(controllers: Controllers, now: float) -> float:
    """
    When the next status report is due: one interval after the latest
    heartbeat the Nodes show, or, when that is already past (a restored or
    long-idle cluster), at a point of the coming interval derived from the
    cluster's name, so that a fleet started at once does not report at once.
    """
    latest = None
    for node in list_items(controllers.store, NODES):
        ready = find_condition((node.get("status") or {}).get("conditions") or (), "Ready")
        heartbeat = parse_time(ready.get("lastHeartbeatTime")) if ready is not None else None
        if heartbeat is not None and (latest is None or heartbeat > latest):
            latest = heartbeat
    if latest is not None and latest + NODE_STATUS_REPORT_INTERVAL > now:
        return latest + NODE_STATUS_REPORT_INTERVAL
    spread = zlib.crc32(controllers.identity.cluster_name.encode("utf-8")) % int(NODE_STATUS_REPORT_INTERVAL)
    return now + spread


def heartbeat(controllers: Controllers, now: float) -> int:
    """
    Report node status if it is due (and renew the Leases with it).

    @return: how many objects were written.
    """
    due = controllers._node_report_due
    if due is None:
        due = controllers._node_report_due = _first_due(controllers, now)
    if now < due:
        return 0
    before = controllers.store.resource_version
    report_node_status(controllers, now)
    renew_leases(controllers, now, force=True)
    # Keep the phase; after a long pause (a suspended process) start over
    # from now rather than reporting many times in a row.
    due += NODE_STATUS_REPORT_INTERVAL
    if due <= now:
        due = now + NODE_STATUS_REPORT_INTERVAL
    controllers._node_report_due = due
    return controllers.store.resource_version - before


def report_node_status(controllers: Controllers, now: float) -> None:
    """Every condition of every Node gets C{lastHeartbeatTime: now}."""
    stamp = format_time(now)
    for node in list_items(controllers.store, NODES):
        status = node.get("status") or {}
        conditions = status.get("conditions")
        if not conditions:
            continue
        refreshed = [
            {**item, "lastHeartbeatTime": stamp} if "lastHeartbeatTime" in item else item
            for item in conditions
        ]
        if refreshed == conditions:
            continue
        new = dict(node)
        new["status"] = {**status, "conditions": refreshed}
        controllers.update_quietly(NODES, "", metadata_of(node)["name"], new, subresource="status")


def renew_leases(controllers: Controllers, now: float, force: bool = False) -> None:
    """
    Renew the node Leases, at most once per renewal interval unless
    C{force}d.
    """
    if not force and now - controllers._leases_renewed_at < LEASE_RENEW_INTERVAL:
        return
    controllers._leases_renewed_at = now
    stamp = format_micro_time(now)
    for lease in list_items(controllers.store, LEASES, NODE_LEASE_NAMESPACE):
        spec = lease.get("spec") or {}
        renewed = parse_time(spec.get("renewTime"))
        if renewed is not None and now - renewed < LEASE_RENEW_INTERVAL:
            continue
        new = dict(lease)
        new["spec"] = {**spec, "renewTime": stamp}
        controllers.update_quietly(LEASES, NODE_LEASE_NAMESPACE, metadata_of(lease)["name"], new)


def ensure_node_leases(controllers: Controllers) -> None:
    """Every Node has its Lease, as its kubelet creates it on start."""
    store = controllers.store
    if get_or_none(store, NAMESPACES, "", NODE_LEASE_NAMESPACE) is None:
        return
    now = controllers.clock.seconds()
    for node in list_items(store, NODES):
        name = metadata_of(node)["name"]
        if get_or_none(store, LEASES, NODE_LEASE_NAMESPACE, name) is not None:
            continue
        controllers.create_quietly(
            LEASES,
            NODE_LEASE_NAMESPACE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": NODE_LEASE_NAMESPACE,
                    "ownerReferences": [owner_reference(node, controller=False)],
                },
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                    "renewTime": format_micro_time(now),
                },
            },
        )


# -- node taints ---------------------------------------------------------------

_NOT_READY = "node.kubernetes.io/not-ready"
_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# The node lifecycle controller's nodeConditionToTaintKeyStatusMap: which
# condition status taints a Node NoSchedule with which key.
_CONDITION_TAINTS = {
    "Ready": {"False": _NOT_READY, "Unknown": "node.kubernetes.io/unreachable"},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
_CONDITION_TAINT_KEYS = frozenset(
    key for statuses in _CONDITION_TAINTS.values() for key in statuses.values()
)


def admit_node(
    controllers: Controllers, operation: str, resource_type: ResourceType, new: dict, old: Optional[dict]
) -> Optional[dict]:
    """
    The TaintNodesByCondition admission plugin: every Node is created
    tainted C{node.kubernetes.io/not-ready:NoSchedule}, whatever its
    conditions say, so that nothing schedules on it before the node
    lifecycle controller has looked at it (L{observe_node_taints}).
    """
    if operation != "CREATE":
        return None
    spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    taints = list(spec.get("taints") or ())
    if any(_matches(taint, _NOT_READY) for taint in taints):
        return None
    taints.append({"key": _NOT_READY, "effect": "NoSchedule"})
    return {**new, "spec": {**spec, "taints": taints}}


def _matches(taint: object, key: str) -> bool:
    # Taint.MatchTaint: the same key and effect.
    return isinstance(taint, Mapping) and taint.get("key") == key and taint.get("effect") == "NoSchedule"


def observe_node_taints(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    """
    The node lifecycle controller's C{doNoScheduleTaintingPass}, on every
    change of a Node: its NoSchedule condition taints (and the
    unschedulable one) follow its conditions and C{spec.unschedulable}. A
    Ready Node loses the not-ready taint it was created with; others are
    left alone.
    """
    if event == DELETED:
        return
    name = metadata_of(obj).get("name", "")
    node = get_or_none(controllers.store, NODES, "", name)
    if node is None or node.get("metadata", {}).get("deletionTimestamp"):
        return
    wanted = []
    for condition in (node.get("status") or {}).get("conditions") or ():
        key = _CONDITION_TAINTS.get(condition.get("type"), {}).get(condition.get("status"))
        if key is not None:
            wanted.append(key)
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        wanted.append(_UNSCHEDULABLE)
    taints = list(spec.get("taints") or ())
    present = [
        taint["key"]
        for taint in taints
        if isinstance(taint, Mapping)
        and taint.get("effect") == "NoSchedule"
        and (taint.get("key") in _CONDITION_TAINT_KEYS or taint.get("key") == _UNSCHEDULABLE)
    ]
    to_add = [key for key in wanted if key not in present]
    to_remove = {key for key in present if key not in wanted}
    if not to_add and not to_remove:
        return
    kept = [taint for taint in taints if not any(_matches(taint, key) for key in to_remove)]
    kept.extend({"key": key, "effect": "NoSchedule"} for key in to_add)
    new = dict(node)
    new["spec"] = {**spec, "taints": kept}
    controllers.update_quietly(NODES, "", name, new)


def lease_read(namespace: object) -> bool:
    """Whether a read in C{namespace} can return node Leases."""
    return namespace in (None, "", NODE_LEASE_NAMESPACE)

# -*- test-case-name: tests.test_kube_controllers -*-
"""
Real-cluster controllers for one simulated cluster's object store.

They keep a simulated cluster's object store looking like a cluster
that is alive, with what Rancher relies on:

  - service-account tokens (in the create response, for Rancher's
    impersonation), C{kube-root-ca.crt} and C{default} in every namespace,
    namespace termination;
  - CustomResourceDefinitions: status, and serving their resources;
  - Deployments, ReplicaSets, DaemonSets, StatefulSets and Jobs, with pods
    scheduled on the cluster's Nodes and running;
  - the garbage collector (background, foreground and orphan deletion);
  - the kubelets' node status reports and Lease renewals, from one timer
    shared by the whole fleet.

Two entry points: L{install_controllers} when a cluster's store is made,
L{bootstrap} once for a new cluster. Everything else is synchronous inside
the store's writes.
"""

from scaleagent.kube.controllers._bootstrap import apply_created, bootstrap
from scaleagent.kube.controllers._manager import Controllers, controllers_for, install_controllers
from scaleagent.kube.controllers._nodes import (
    LEASE_RENEW_INTERVAL,
    NODE_STATUS_REPORT_INTERVAL,
)

__all__ = [
    "Controllers",
    "LEASE_RENEW_INTERVAL",
    "NODE_STATUS_REPORT_INTERVAL",
    "apply_created",
    "bootstrap",
    "controllers_for",
    "install_controllers",
]

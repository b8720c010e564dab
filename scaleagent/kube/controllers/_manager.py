# -*- test-case-name: tests.test_kube_controllers -*-
"""
Connect one simulated cluster's controllers to its object store.

L{Controllers} is the per-cluster state the controllers share; its
hooks are the store's admission function and observer.

Everything runs synchronously inside the store's write that triggers it:
admission functions complete an object before it is stored, observers react
right after each committed change (their own writes are committed at once
and notified in order afterwards). Only L{Controllers.heartbeat} is driven
by time, from one timer the whole fleet shares.

Per cluster this is one small object; the behaviour lives in module-level
functions and dispatch tables that every cluster shares.
"""

from __future__ import annotations

import base64
import weakref
from typing import Callable, Iterable, Mapping, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from scaleagent.identity import ClusterIdentity
from scaleagent.kube.controllers import _crds, _gc, _namespaces, _nodes, _pods, _tokens, _workloads
from scaleagent.kube.controllers._common import (
    CONFIG_MAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DAEMON_SETS,
    DEPLOYMENTS,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICA_SETS,
    SECRETS,
    SERVICE_ACCOUNTS,
    STATEFUL_SETS,
    format_time,
    metadata_of,
)
from scaleagent.kube.errors import APIError, CauseType
from scaleagent.kube.resources import Registry, ResourceType
from scaleagent.kube.store import DELETED, ObjectStore

Admission = Callable[["Controllers", str, ResourceType, dict, Optional[dict]], Optional[dict]]
Observer = Callable[["Controllers", str, ResourceType, dict, Optional[dict]], object]
RegistryListener = Callable[[Registry], object]

# Which admission functions and observers see which resource, shared by
# every cluster. The garbage collector and the namespace and CRD
# finalizers see every resource (see Controllers._observe).
_ADMISSIONS: Mapping[tuple[str, str], tuple[Admission, ...]] = {
    SECRETS.group_resource: (_tokens.admit_secret,),
    SERVICE_ACCOUNTS.group_resource: (_tokens.admit_service_account,),
    PODS.group_resource: (_pods.admit_pod,),
    CUSTOM_RESOURCE_DEFINITIONS.group_resource: (_crds.admit_crd,),
    DAEMON_SETS.group_resource: (_workloads.admit_daemon_set,),
    JOBS.group_resource: (_workloads.admit_job,),
    NODES.group_resource: (_nodes.admit_node,),
}

_OBSERVERS: Mapping[tuple[str, str], tuple[Observer, ...]] = {
    NAMESPACES.group_resource: (_namespaces.observe_namespace,),
    CONFIG_MAPS.group_resource: (_namespaces.observe_root_ca,),
    SERVICE_ACCOUNTS.group_resource: (
        _tokens.observe_service_account,
        _namespaces.observe_default_service_account,
    ),
    SECRETS.group_resource: (_tokens.observe_secret,),
    CUSTOM_RESOURCE_DEFINITIONS.group_resource: (_crds.observe_crd,),
    DEPLOYMENTS.group_resource: (_workloads.observe_deployment,),
    REPLICA_SETS.group_resource: (_workloads.observe_replica_set,),
    DAEMON_SETS.group_resource: (_workloads.observe_workload,),
    STATEFUL_SETS.group_resource: (_workloads.observe_workload,),
    JOBS.group_resource: (_workloads.observe_workload,),
    # The kubelet first, so that the pod's owner counts it running.
    PODS.group_resource: (_pods.observe_pod, _workloads.observe_owned_pod),
    # The node lifecycle controller's taints first: the scheduler then
    # sees the Node as it is after them.
    NODES.group_resource: (
        _nodes.observe_node_taints,
        _pods.observe_node,
        _workloads.observe_node_for_daemons,
    ),
}

# Write failures the controllers expect and simply drop, as the real ones
# drop them or retry until they stop happening: the object changed or went
# away meanwhile, or its namespace is being deleted.
_EXPECTED_FAILURES = frozenset({404, 409})

# The controllers installed on each store, for bootstrap(). Keyed by the
# store's id and weak: an entry lives as long as its Controllers.
_INSTALLED: "weakref.WeakValueDictionary[int, Controllers]" = weakref.WeakValueDictionary()


class Controllers:
    """
    The built-in controllers of one simulated cluster.

    @ivar store: the cluster's objects.
    @ivar identity: the cluster's CA and token signer.
    @ivar clock: the time source for the timestamps controllers write.
    """

    __slots__ = (
        "store",
        "identity",
        "clock",
        "_registry",
        "_registry_listeners",
        "_ca_text",
        "_ca_base64",
        "_node_report_due",
        "_leases_renewed_at",
        "__weakref__",
    )

    _log = Logger()

    def __init__(
        self, store: ObjectStore, registry: Registry, identity: ClusterIdentity, clock: IReactorTime
    ) -> None:
        """
        Use L{install_controllers}, which also connects the hooks.
        """
        self.store = store
        self.identity = identity
        self.clock = clock
        self._registry = registry
        self._registry_listeners: tuple[RegistryListener, ...] = ()
        self._ca_text: Optional[str] = None
        self._ca_base64: Optional[str] = None
        self._node_report_due: Optional[float] = None
        self._leases_renewed_at = 0.0

    def __repr__(self) -> str:
        return f"<Controllers of {self.identity.cluster_name!r}>"

    # -- what other layers use ---------------------------------------------

    @property
    def registry(self) -> Registry:
        """
        The resources the cluster serves right now: the registry given at
        installation plus every established CustomResourceDefinition. The
        HTTP layer should read it on every request.
        """
        return self._registry

    def add_registry_listener(self, listener: RegistryListener) -> None:
        """
        Call C{listener(registry)} whenever L{registry} changes (a CRD was
        established, changed or deleted).
        """
        self._registry_listeners += (listener,)

    def heartbeat(self, now: float) -> int:
        """
        The kubelets' periodic work, for the fleet's shared timer to call as
        often as it likes: every five minutes each Node's status report
        (all conditions' C{lastHeartbeatTime}) and the renewal of the node
        Leases. Between reports a call costs one comparison.

        @param now: seconds since the epoch.
        @return: how many objects were written.
        """
        return _nodes.heartbeat(self, now)

    def prepare_read(self, resource_type: ResourceType, namespace: Optional[str] = None) -> None:
        """
        To be called by the HTTP layer before it serves a GET, LIST or WATCH:
        renews node Leases that are due when the read can return them (see
        L{scaleagent.kube.controllers._nodes}). Costs a comparison for any
        other resource.

        @param namespace: the request's namespace, L{None} or C{""} for all.
        """
        if resource_type.group_resource != LEASES.group_resource or not _nodes.lease_read(namespace):
            return
        _nodes.renew_leases(self, self.clock.seconds())

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
        L{ObjectStore.delete} with what kube-apiserver's registry adds: the
        C{foregroundDeletion} or C{orphan} finalizer for those propagation
        policies (C{"Foreground"}, C{"Orphan"}; C{"Background"} and L{None}
        need nothing), and a CRD's cleanup finalizer. The HTTP layer should
        send DELETE requests here.

        @return: what L{ObjectStore.delete} returns.
        @raise APIError: as L{ObjectStore.delete}.
        """
        return _gc.delete_with_propagation(
            self, resource_type, namespace, name, preconditions, grace_period, propagation, dry_run
        )

    # -- what the controllers share ------------------------------------------

    @property
    def ca_text(self) -> str:
        """The cluster CA, PEM text (decoded once, shared by every copy)."""
        if self._ca_text is None:
            self._ca_text = self.identity.ca_pem.decode("ascii")
        return self._ca_text

    @property
    def ca_base64(self) -> str:
        """The cluster CA as a Secret's C{data} holds it."""
        if self._ca_base64 is None:
            self._ca_base64 = base64.b64encode(self.identity.ca_pem).decode("ascii")
        return self._ca_base64

    def now_text(self) -> str:
        """The current time as status conditions carry it."""
        return format_time(self.clock.seconds())

    def set_registry(self, registry: Registry) -> None:
        if registry is self._registry:
            return
        self._registry = registry
        for listener in self._registry_listeners:
            try:
                listener(registry)
            except Exception:
                self._log.failure("Registry listener {listener!r} failed", listener=listener)

    def create_quietly(self, resource_type: ResourceType, namespace: str, obj: dict) -> Optional[dict]:
        """Create, or log why not and return L{None}."""
        try:
            return self.store.create(resource_type, namespace, obj)
        except APIError as error:
            self.log_write_failure(error, resource_type, namespace, metadata_of(obj).get("name", ""))
            return None

    def update_quietly(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        obj: dict,
        subresource: Optional[str] = None,
    ) -> Optional[dict]:
        """Update, or log why not and return L{None}."""
        try:
            return self.store.update(resource_type, namespace, name, obj, subresource=subresource)
        except APIError as error:
            self.log_write_failure(error, resource_type, namespace, name)
            return None

    def delete_quietly(
        self,
        resource_type: ResourceType,
        namespace: str,
        name: str,
        uid: Optional[str] = None,
        propagation: Optional[str] = None,
    ) -> None:
        """Delete (only the object with C{uid}, if given), or log why not."""
        try:
            _gc.delete_with_propagation(
                self, resource_type, namespace, name, {"uid": uid} if uid else None, propagation=propagation
            )
        except APIError as error:
            self.log_write_failure(error, resource_type, namespace, name)

    def log_write_failure(
        self, error: APIError, resource_type: ResourceType, namespace: str, name: str
    ) -> None:
        causes = error.details.causes if error.details is not None else ()
        terminating = error.code == 403 and any(
            cause.reason == CauseType.NAMESPACE_TERMINATING for cause in causes
        )
        if error.code in _EXPECTED_FAILURES or terminating:
            self._log.debug(
                "Controller write to {resource} {namespace}/{name} not done: {message}",
                resource=resource_type.resource,
                namespace=namespace,
                name=name,
                message=error.message,
            )
        else:
            self._log.warn(
                "Controller write to {resource} {namespace}/{name} refused ({code}): {message}",
                resource=resource_type.resource,
                namespace=namespace,
                name=name,
                code=error.code,
                message=error.message,
            )

    # -- store hooks ---------------------------------------------------------

    def _admit(
        self, operation: str, resource_type: ResourceType, new: dict, old: Optional[dict]
    ) -> Optional[dict]:
        admissions = _ADMISSIONS.get(resource_type.group_resource)
        if admissions is None:
            return None
        result = None
        for admission in admissions:
            try:
                admitted = admission(self, operation, resource_type, new if result is None else result, old)
            except APIError:
                raise
            except Exception:
                # A bug here must not refuse a client's write.
                self._log.failure(
                    "Admission {admission} failed on {resource}",
                    admission=admission.__name__,
                    resource=resource_type.resource,
                )
                continue
            if admitted is not None:
                result = admitted
        return result

    def _observe(self, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]) -> None:
        handlers: Iterable[Observer] = _OBSERVERS.get(resource_type.group_resource, ())
        for handler in (*handlers, _gc.observe):
            self._run(handler, event, resource_type, obj, old)
        if event == DELETED:
            namespace = metadata_of(obj).get("namespace")
            if namespace and resource_type.namespaced:
                self._run(_content_removed, event, resource_type, obj, old)
            if resource_type.custom:
                self._run(_instance_removed, event, resource_type, obj, old)

    def _run(
        self, handler: Observer, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
    ) -> None:
        try:
            handler(self, event, resource_type, obj, old)
        except APIError as error:
            metadata = metadata_of(obj)
            self.log_write_failure(
                error,
                resource_type,
                metadata.get("namespace", ""),
                metadata.get("name", ""),
            )
        except Exception:
            metadata = metadata_of(obj)
            self._log.failure(
                "Controller {handler} failed on {event} of {resource} {namespace}/{name}",
                handler=getattr(handler, "__name__", repr(handler)),
                event=event,
                resource=resource_type.resource,
                namespace=metadata.get("namespace", ""),
                name=metadata.get("name", ""),
            )


def _content_removed(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    _namespaces.content_removed(controllers, metadata_of(obj)["namespace"])


def _instance_removed(
    controllers: Controllers, event: str, resource_type: ResourceType, obj: dict, old: Optional[dict]
) -> None:
    _crds.instance_removed(controllers, resource_type)


def install_controllers(
    store: ObjectStore, registry: Registry, identity: ClusterIdentity, clock: IReactorTime
) -> Controllers:
    """
    Give a simulated cluster the controllers of a real one: connect them to
    its store's admission and observer hooks. Installing twice on one
    store returns the controllers already installed.

    @param store: the cluster's objects.
    @param registry: the resources it serves (built-ins and the template's
        CRDs); L{Controllers.registry} follows CRDs from here on.
    @param identity: its CA (for C{kube-root-ca.crt} and token Secrets) and
        token signer.
    @param clock: the time source for the timestamps the controllers write
        (C{seconds()} only; nothing is scheduled on it).
    @return: the installed controllers.
    """
    existing = controllers_for(store)
    if existing is not None:
        return existing
    controllers = Controllers(store, registry, identity, clock)
    store.add_admission(controllers._admit)
    store.add_observer(controllers._observe)
    _INSTALLED[id(store)] = controllers
    return controllers


def controllers_for(store: ObjectStore) -> Optional[Controllers]:
    """The controllers installed on C{store}, if any."""
    controllers = _INSTALLED.get(id(store))
    if controllers is not None and controllers.store is store:
        return controllers
    return None

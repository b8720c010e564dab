# -*- test-case-name: tests.test_kube_api -*-
"""
One simulated cluster as Rancher reaches it: its object store, the
resources it serves, its controllers, and the TLS + HTTP endpoint that
answers the streams Rancher opens through the main tunnel to the announced
address.

A L{KubeCluster} is small: the store is an overlay on the template's shared
seeds, the registry, discovery documents, OpenAPI documents and schemas are
shared with every cluster that serves the same resources, and the HTTP site
and the TLS context are built only when Rancher first connects.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from scaleagent.identity import ClusterIdentity
from scaleagent.kube import openapi
from scaleagent.kube.api import APISite, KubeAPI
from scaleagent.kube.resources import (
    InvalidCustomResourceDefinition,
    Registry,
    ResourceType,
)
from scaleagent.kube.schema import SchemaIndex, crd_schemas
from scaleagent.kube.store import ADDED, DELETED, ObjectStore
from scaleagent.kube.template import ClusterContext, ClusterTemplate
from scaleagent.kube.watchstream import WatchHub, WatchStats

try:
    from scaleagent.kube import controllers as _controllers
except ImportError:  # pragma: no cover - the API works without controllers
    _controllers = None  # type: ignore[assignment]
if not hasattr(_controllers, "install_controllers"):
    # Not there (yet): the cluster then serves CRDs itself and nothing
    # bootstraps the cattle account.
    _controllers = None  # type: ignore[assignment]

__all__ = ["ClusterStats", "KubeCluster"]

_CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")

#: Watch events kept per resource for resuming watches. A real apiserver's
#: watch cache starts at 100 per resource; a watch that falls further
#: behind gets 410 and its informer relists. Thousands of clusters make a
#: large history expensive (every kept event pins an old object).
WATCH_HISTORY = 200

#: ... and only for this many seconds (beyond the newest few of each
#: resource): node status reports every few minutes would otherwise pin
#: hundreds of old Node versions per cluster.
WATCH_HISTORY_AGE = 300.0

# Schema indexes extended with CRD schemas, by a digest of those schemas:
# clusters with the same CRDs share one.
_SCHEMA_CACHE: dict[tuple[int, str], SchemaIndex] = {}
_SCHEMA_CACHE_SIZE = 64


class ClusterStats(WatchStats):
    """
    Per-cluster counters for metrics.

    @ivar requests: answered requests by (verb, HTTP status code); a watch
        counts once, as 200, when it starts.
    @ivar bytes_received: request body bytes (by Content-Length).
    @ivar bytes_sent: response bytes, watch events included.
    @ivar watches_open: watch streams open now.
    """

    __slots__ = ("requests", "bytes_received")

    def __init__(self) -> None:
        super().__init__()
        self.requests: dict[tuple[str, int], int] = {}
        self.bytes_received = 0

    def count(self, verb: str, code: int) -> None:
        key = (verb, code)
        self.requests[key] = self.requests.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {f"{verb} {code}": count for (verb, code), count in sorted(self.requests.items())},
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "watches_open": self.watches_open,
            "watches_started": self.watches_started,
            "watch_events": self.watch_events,
            "slow_watches_closed": self.slow_closed,
        }


def _serve_stored_crds(controllers: Any) -> None:
    """
    After a restore, serve the CRDs the restored store holds (created at
    runtime, so not in the template's registry). The controllers package
    has no public hook for it yet; its CRD module's is used.
    """
    serve = getattr(_controllers, "serve_stored_crds", None)
    if serve is None:
        from scaleagent.kube.controllers._crds import serve_stored_crds as serve
    serve(controllers)


def _established(crd: Mapping) -> bool:
    for condition in (crd.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Established":
            return condition.get("status") == "True"
    return False


class KubeCluster:
    """
    Everything one simulated cluster serves.

    Build one with L{KubeCluster.create}.

    @ivar store: the cluster's objects.
    @ivar identity: its CA, serving certificate and token keys.
    @ivar clock: its reactor (time and scheduling).
    @ivar version_info: the C{/version} answer (shared; do not modify).
    @ivar stats: counters for metrics.
    @ivar controllers: what C{install_controllers} returned, or L{None}.
    """

    __slots__ = (
        "template",
        "context",
        "identity",
        "clock",
        "store",
        "stats",
        "controllers",
        "watch_hub",
        "_registry",
        "_schemas",
        "_schemas_registry",
        "_site",
        "_tls_factory",
        "_serve_unestablished",
        "__weakref__",
    )

    _log = Logger()

    def __init__(
        self,
        template: ClusterTemplate,
        context: ClusterContext,
        identity: ClusterIdentity,
        clock: IReactorTime,
        store: ObjectStore,
        registry: Registry,
    ) -> None:
        """Use L{create}."""
        self.template = template
        self.context = context
        self.identity = identity
        self.clock = clock
        self.store = store
        self.stats = ClusterStats()
        self.controllers: Any = None
        self.watch_hub = WatchHub.for_clock(clock)
        self._registry = registry
        self._schemas: Optional[SchemaIndex] = None
        self._schemas_registry: Optional[Registry] = None
        self._site: Optional[APISite] = None
        self._tls_factory: Optional[TLSMemoryBIOFactory] = None
        # Without the controllers nothing marks a CRD Established; serve
        # CRDs as soon as they exist then.
        self._serve_unestablished = True

    @classmethod
    def create(
        cls,
        template: ClusterTemplate,
        context: ClusterContext,
        identity: ClusterIdentity,
        clock: IReactorTime,
        import_objects: Iterable[Mapping] = (),
        restored_changes: Optional[Mapping] = None,
    ) -> KubeCluster:
        """
        Build a cluster from its template, or restore it from what
        L{export_changes} saved.

        @param template: the shared cluster template.
        @param context: this cluster's name, uid seed and creation time.
        @param identity: its identity (announced in the tunnel params).
        @param clock: the reactor.
        @param import_objects: the import manifest's objects, which the
            bootstrap applies as the agent's C{kubectl apply} would.
        @param restored_changes: a store export; when given, the store is
            restored and no bootstrap runs (it ran before the export).
        """
        seed = template.seed_for(context)

        def now() -> datetime:
            return datetime.fromtimestamp(clock.seconds(), timezone.utc)

        if restored_changes is None:
            store = ObjectStore(
                seed.entries,
                seed.render,
                seed.initial_resource_version,
                now=now,
                history_limit=WATCH_HISTORY,
                history_age=WATCH_HISTORY_AGE,
            )
        else:
            store = ObjectStore.restore(
                seed.entries,
                seed.render,
                restored_changes,
                seed.initial_resource_version,
                now=now,
                history_limit=WATCH_HISTORY,
                history_age=WATCH_HISTORY_AGE,
            )
        cluster = cls(template, context, identity, clock, store, seed.registry)
        if _controllers is not None:
            # The controllers serve CRDs (their registry is the cluster's).
            controllers = _controllers.install_controllers(store, seed.registry, identity, clock)
            cluster.controllers = controllers
            if restored_changes is None:
                _controllers.bootstrap(store, identity, tuple(import_objects))
            else:
                _serve_stored_crds(controllers)
        else:
            cluster._serve_restored_crds()
            store.add_observer(cluster._observe)
        return cluster

    # -- what the API layer reads ------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The resources served now: the template's, plus CRDs created since."""
        controllers = self.controllers
        if controllers is not None:
            return controllers.registry
        return self._registry

    @property
    def version_info(self) -> Mapping[str, str]:
        return self.template.version_info

    @property
    def version_json(self) -> bytes:
        """The C{/version} body (shared bytes)."""
        return self.template.version_json

    @property
    def server_address(self) -> str:
        """What discovery reports in C{serverAddressByClientCIDRs}."""
        return self.template.server_address

    def schemas(self) -> SchemaIndex:
        """
        The OpenAPI schemas of the served kinds: Kubernetes' own for the
        template's minor, extended with the CRDs' (shared between clusters
        with the same CRDs).
        """
        registry = self.registry
        if self._schemas is None or self._schemas_registry is not registry:
            self._schemas = self._build_schemas(registry)
            self._schemas_registry = registry
        return self._schemas

    def _build_schemas(self, registry: Registry) -> SchemaIndex:
        minor = int("".join(ch for ch in str(self.version_info.get("minor", "28")) if ch.isdigit()) or 28)
        base = SchemaIndex.load(minor)
        crds = self._served_crds(registry)
        if not crds:
            return base
        encoded = json.dumps([crd.get("spec") for crd in crds], sort_keys=True).encode("utf-8")
        key = (minor, hashlib.sha256(encoded).hexdigest())
        index = _SCHEMA_CACHE.get(key)
        if index is None:
            definitions: dict[str, Any] = {}
            for crd in crds:
                definitions.update(crd_schemas(crd, base))
            index = base.extended(definitions)
            if len(_SCHEMA_CACHE) >= _SCHEMA_CACHE_SIZE:
                del _SCHEMA_CACHE[next(iter(_SCHEMA_CACHE))]
            _SCHEMA_CACHE[key] = index
        return index

    def _served_crds(self, registry: Registry) -> list[dict]:
        names = {name[len("crd:"):] for name in registry.extension_names if name.startswith("crd:")}
        if not names:
            return []
        crd_type = self._crd_type()
        crds = []
        for name in sorted(names):
            try:
                crds.append(self.store.get(crd_type, "", name))
            except Exception:
                continue
        return crds

    def openapi_v3(self) -> openapi.OpenAPIV3:
        """The C{/openapi/v3} documents (cached process-wide)."""
        return openapi.openapi_v3(tuple(self.registry), self.schemas())

    def openapi_v2(self) -> openapi.OpenAPIDocument:
        """The C{/openapi/v2} document as JSON (cached process-wide)."""
        return openapi.openapi_v2(
            tuple(self.registry), self.schemas(), self.version_info.get("gitVersion", "")
        )

    # -- writes and reads that the controllers take part in --------------------------

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
        DELETE as the apiserver's registry does it: through the controllers
        (which add the propagation policy's finalizer and a CRD's cleanup
        finalizer) when there are any, else straight to the store.
        """
        controllers = self.controllers
        if controllers is not None:
            return controllers.delete(
                resource_type, namespace, name, preconditions, grace_period, propagation, dry_run
            )
        return self.store.delete(resource_type, namespace, name, preconditions, grace_period, propagation, dry_run)

    def prepare_read(self, resource_type: ResourceType, namespace: Optional[str]) -> None:
        """Before a GET, LIST or WATCH: let the controllers catch up (node Leases)."""
        controllers = self.controllers
        if controllers is not None:
            controllers.prepare_read(resource_type, namespace)

    def heartbeat(self, now: float) -> int:
        """
        The kubelets' periodic work (node status reports, Lease renewals),
        for the fleet's one shared timer.

        @return: how many objects were written.
        """
        self.store.compact_history()
        controllers = self.controllers
        return controllers.heartbeat(now) if controllers is not None else 0

    # -- CRDs ---------------------------------------------------------------------

    def _crd_type(self) -> ResourceType:
        crd_type = self.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        return crd_type

    def _serve_restored_crds(self) -> None:
        # CRDs created after the template (and restored with the store)
        # are served again.
        crd_type = self._crd_type()
        for crd in self.store.list(crd_type).items:
            self._serve_crd(crd)

    def _observe(self, event_type: str, resource_type: ResourceType, obj: dict, old: Optional[dict]) -> None:
        if resource_type.group_resource != _CRDS:
            return
        if event_type == DELETED:
            self._unserve_crd(obj)
        elif event_type == ADDED or old is None or obj.get("spec") != old.get("spec") or (
            _established(obj) and not _established(old)
        ):
            self._serve_crd(obj)

    def _serve_crd(self, crd: Mapping) -> None:
        name = (crd.get("metadata") or {}).get("name", "")
        if not (self._serve_unestablished or _established(crd)):
            return
        try:
            registry = self._registry.with_crd(crd)
        except (InvalidCustomResourceDefinition, ValueError) as error:
            self._log.warn(
                "cluster {cluster}: not serving CRD {name}: {error}",
                cluster=self.context.name,
                name=name,
                error=str(error),
            )
            return
        if registry is not self._registry:
            self._registry = registry

    def _unserve_crd(self, crd: Mapping) -> None:
        name = (crd.get("metadata") or {}).get("name", "")
        self._registry = self._registry.without_crd(name)

    # -- serving -----------------------------------------------------------------

    @property
    def site(self) -> APISite:
        """The HTTP site of this cluster's API, built on first use."""
        if self._site is None:
            self._site = APISite(KubeAPI(self), self.clock)
        return self._site

    def route(self, proto: str, address: str) -> Optional[IProtocolFactory]:
        """
        For the main tunnel's L{StreamRouter}: the factory of TLS + HTTP
        streams to the announced API address, and L{None} (connection
        refused) for any other address.
        """
        if proto != "tcp" or address != self.identity.address:
            return None
        if self._tls_factory is None:
            self._tls_factory = TLSMemoryBIOFactory(
                self.identity.server_context(), False, self.site, clock=self.clock
            )
        return self._tls_factory

    # -- persistence and lifecycle --------------------------------------------------

    def export_changes(self) -> dict:
        """What to save to restore this cluster (see L{ObjectStore.export_changes})."""
        return self.store.export_changes()

    def close(self) -> None:
        """
        Stop the cluster's controllers (open streams end with the tunnel
        that carries them).
        """
        controllers, self.controllers = self.controllers, None
        stop = getattr(controllers, "stop", None)
        if stop is not None:
            stop()

    def __repr__(self) -> str:
        return f"<KubeCluster {self.context.name!r} {self.identity.address}>"

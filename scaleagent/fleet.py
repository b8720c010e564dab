# -*- test-case-name: tests.test_fleet -*-
"""
Every simulated cluster of the process, and the machinery they share.

The L{Fleet} owns what must exist once, not once per cluster: the Rancher
client, the trust registry (one CA download and one TLS context per
server), the heartbeat wheel that pings every tunnel, the steve site, the
state store and its flush timer, the cluster template, and three shared
timers — Rancher's view of every cluster (one paginated list per interval),
node heartbeats (a slice of the clusters per tick), and the start-up ramp
that spreads thousands of reconnecting clusters over time.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .cluster import ClusterPhase, RancherRecord, SimulatedCluster
from .identity import ClusterIdentity
from .metrics import Registry
from .persistence import StateStore
from .rancher.client import RancherClient, RancherError
from .steve import SteveSite
from .tunnel.heartbeat import Heartbeat
from .tunnel.inbound import InboundScheduler
from .tunnel.trust import RancherTrust, TrustRegistry

#: A cluster name is a DNS-1123 label: Rancher uses it as an object name.
CLUSTER_NAME = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")

#: Seconds between polls of Rancher's view of the clusters.
RANCHER_POLL_INTERVAL = 30.0

#: Seconds between node heartbeat ticks, and how many ticks one round
#: takes: each cluster is visited every NODE_TICK * NODE_SLOTS seconds; its
#: controllers report node status when due (every 5 minutes, as a kubelet)
#: and a visit that is not due costs a comparison.
NODE_TICK = 10.0
NODE_SLOTS = 6

#: Restored clusters start spread over this many seconds per 100 clusters
#: (at least 1 s, at most 10 minutes), so a restart with 10,000 clusters
#: does not open 20,000 websockets at once.
RAMP_PER_100 = 2.0
RAMP_MAX = 600.0


class FleetError(Exception):
    """
    A control request that cannot be carried out.

    @ivar code: the HTTP status the control API answers with.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not CLUSTER_NAME.match(name):
        raise FleetError(
            400,
            f"invalid cluster name {name!r}: must be a DNS-1123 label (lower-case letters, "
            "digits and '-', starting and ending with a letter or digit, at most 63 characters)",
        )
    return name


class Fleet(MultiService):
    """
    @param reactor: the reactor (clock, TCP, name resolution).
    @param rancher: the Rancher client (carries the API token).
    @param template: the shared L{ClusterTemplate}.
    @param state: the L{StateStore}.
    @param api_address: the API address clusters announce (C{10.43.0.1:443}).
    @param insecure: do not verify Rancher's certificate.
    @param connect_concurrency: clusters being created or registered at once.
    @param trust_http: a non-verifying treq client for the cacerts download.
    @param endpoint_factory: how tunnels connect (tests use memory ones).
    @param metrics: the process's metrics registry.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        rancher: RancherClient,
        template: Any,
        state: StateStore,
        api_address: str,
        insecure: bool = False,
        connect_concurrency: int = 10,
        trust_http: Any = None,
        endpoint_factory: Any = None,
        metrics: Optional[Registry] = None,
        rancher_poll_interval: float = RANCHER_POLL_INTERVAL,
        flush_interval: float = 5.0,
        inbound: Optional[InboundScheduler] = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.clock = reactor
        self.rancher = rancher
        self.template = template
        self.state = state
        self.api_address = api_address
        self.insecure = insecure
        self.endpoint_factory = endpoint_factory
        self.heartbeat = Heartbeat(reactor)
        self.heartbeat.setServiceParent(self)
        self.inbound = inbound or InboundScheduler(reactor)
        self.steve_site = SteveSite(reactor)
        self.clusters: dict[str, SimulatedCluster] = {}
        self.metrics = metrics or Registry()
        self._semaphore = DeferredSemaphore(max(1, connect_concurrency))
        if trust_http is None:
            from .tunnel.trust import unverified_http_client

            trust_http = unverified_http_client(reactor)
        self._trust = TrustRegistry(trust_http)
        self._poll_interval = rancher_poll_interval
        self._flush_interval = flush_interval
        self._poller = LoopingCall(self._poll_rancher)
        self._poller.clock = reactor
        self._polling: Optional[Deferred[Any]] = None
        self._nodes = LoopingCall(self._node_tick)
        self._nodes.clock = reactor
        self._node_slot = 0
        self._starts: dict[str, IDelayedCall] = {}
        self._register_metrics()

    # -- shared machinery for clusters -----------------------------------------

    def creation_slot(self) -> DeferredSemaphore:
        """An C{async with} slot bounding concurrent creates/registrations."""
        return self._semaphore

    def trust_for(self, rancher: RancherRecord) -> Deferred[RancherTrust]:
        return self._trust.trust_for(rancher.server_url, rancher.ca_checksum, self.insecure)

    def watch_objects(self, cluster: SimulatedCluster) -> None:
        """Save a cluster's objects (coalesced) whenever they change."""
        kube = cluster.kube
        assert kube is not None
        name = cluster.name

        def changed(*event: Any) -> None:
            if self.clusters.get(name) is cluster:
                self.state.mark_objects_dirty(name, kube.export_changes)

        kube.store.add_observer(changed)

    def cluster_changed(self, cluster: SimulatedCluster, previous: ClusterPhase) -> None:
        if cluster.phase is ClusterPhase.ACTIVE and previous is not ClusterPhase.ACTIVE:
            self._active_transitions.inc()

    # -- control ---------------------------------------------------------------

    def add(self, name: str) -> SimulatedCluster:
        """
        Accept a new cluster: validated, saved, then created in Rancher in
        the background.

        @raise FleetError: 400 for a bad name, 409 if it exists.
        """
        self._check_new(name)
        return self._add(name)

    def add_many(self, names: list[str]) -> list[SimulatedCluster]:
        """All or nothing: every name is checked before any is added."""
        seen = set()
        for name in names:
            self._check_new(name)
            if name in seen:
                raise FleetError(409, f"cluster {name} is listed twice")
            seen.add(name)
        return [self._add(name) for name in names]

    def _check_new(self, name: str) -> None:
        validate_name(name)
        if name in self.clusters:
            raise FleetError(409, f"cluster {name} already exists")

    def _add(self, name: str) -> SimulatedCluster:
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        identity = ClusterIdentity.generate(self.api_address, name, now)
        identity.ensure_cattle_account()
        cluster = SimulatedCluster(self, name, identity, created_at=now)
        cluster.save()
        self.clusters[name] = cluster
        cluster.setServiceParent(self)
        return cluster

    async def remove(self, name: str, force: bool = False) -> None:
        cluster = self.clusters.get(name)
        if cluster is None:
            raise FleetError(404, f"cluster {name} not found")
        try:
            await cluster.delete(force=force)
        except RancherError as e:
            raise FleetError(502, f"cluster {name} could not be deleted in Rancher: {e}") from None
        if self.clusters.get(name) is cluster:
            del self.clusters[name]
            pending = self._starts.pop(name, None)
            if pending is not None and pending.active():
                pending.cancel()
            await cluster.disownServiceParent()
            self.state.delete(name)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for cluster in self.clusters.values():
            counts[cluster.phase.value] = counts.get(cluster.phase.value, 0) + 1
        return {"total": len(self.clusters), "states": counts}

    # -- service ---------------------------------------------------------------

    def load(self) -> None:
        """Bring back every saved cluster (before the service starts)."""
        records = self.state.load_all()
        for name, record in sorted(records.items()):
            try:
                cluster = SimulatedCluster.from_record(self, record)
            except Exception as e:
                self._log.error(
                    "cluster {cluster}: its saved state cannot be used: {error}",
                    cluster=name,
                    error=str(e),
                )
                continue
            self.clusters[name] = cluster
        if self.clusters:
            self._log.info("restored {count} clusters", count=len(self.clusters))

    def startService(self) -> None:
        # The tunnels are started by the clusters; the clusters are started
        # here, spread over the ramp, not by MultiService all at once.
        self.running = 1
        self.heartbeat.startService()
        self.state.start(self._flush_interval)
        restored = [c for c in self.clusters.values() if c.parent is None]
        ramp = min(RAMP_MAX, max(1.0, RAMP_PER_100 * len(restored) / 100))
        for cluster in restored:
            delay = random.uniform(0, ramp) if len(restored) > 1 else 0
            self._starts[cluster.name] = self.clock.callLater(delay, self._start_cluster, cluster)
        if self._poll_interval > 0:
            self._poller.start(self._poll_interval, now=False)
        self._nodes.start(NODE_TICK, now=False)

    def _start_cluster(self, cluster: SimulatedCluster) -> None:
        self._starts.pop(cluster.name, None)
        if self.clusters.get(cluster.name) is cluster and cluster.parent is None:
            cluster.setServiceParent(self)

    def stopService(self) -> Deferred[None]:
        for pending in self._starts.values():
            if pending.active():
                pending.cancel()
        self._starts.clear()
        for loop in (self._poller, self._nodes):
            if loop.running:
                loop.stop()
        if self._polling is not None:
            self._polling.cancel()
        stopped = super().stopService()

        def flush(result: Any) -> Any:
            self.state.stop()
            return result

        return stopped.addBoth(flush)

    # -- shared timers -----------------------------------------------------------

    def _poll_rancher(self) -> None:
        if self._polling is not None or not any(
            c.rancher.cluster_id for c in self.clusters.values()
        ):
            return
        self._polling = ensureDeferred(self.rancher.cluster_states())

        def got(states: dict[str, str]) -> None:
            for cluster in list(self.clusters.values()):
                if cluster.rancher.cluster_id:
                    cluster.rancher_reported(states.get(cluster.rancher.cluster_id, "missing"))

        def failed(failure: Any) -> None:
            if failure.check(CancelledError):
                return
            self._log.warn(
                "cannot read cluster states from Rancher: {error}", error=failure.getErrorMessage()
            )

        def done(result: Any) -> None:
            self._polling = None

        self._polling.addCallbacks(got, failed).addBoth(done)

    def _node_tick(self) -> None:
        now = self.clock.seconds()
        slot = self._node_slot
        self._node_slot = (slot + 1) % NODE_SLOTS
        for index, cluster in enumerate(list(self.clusters.values())):
            if index % NODE_SLOTS == slot and cluster.kube is not None:
                cluster.kube.heartbeat(now)

    # -- metrics -----------------------------------------------------------------

    def _register_metrics(self) -> None:
        metrics = self.metrics

        def by_phase() -> dict[tuple[str, ...], int]:
            counts = {(phase.value,): 0 for phase in ClusterPhase}
            for cluster in self.clusters.values():
                counts[(cluster.phase.value,)] += 1
            return counts

        def tunnels() -> dict[tuple[str, ...], int]:
            counts: dict[tuple[str, ...], int] = {}
            for cluster in self.clusters.values():
                for kind, tunnel in (("main", cluster.main_tunnel), ("steve", cluster.steve_tunnel)):
                    if tunnel is not None:
                        key = (kind, tunnel.state.value)
                        counts[key] = counts.get(key, 0) + 1
            return counts

        def reconnects() -> dict[tuple[str, ...], int]:
            counts = {("main",): 0, ("steve",): 0}
            for cluster in self.clusters.values():
                for kind, tunnel in (("main", cluster.main_tunnel), ("steve", cluster.steve_tunnel)):
                    if tunnel is not None:
                        counts[(kind,)] += tunnel.status.reconnects
            return counts

        def streams() -> int:
            total = 0
            for cluster in self.clusters.values():
                for tunnel in (cluster.main_tunnel, cluster.steve_tunnel):
                    protocol = tunnel.protocol if tunnel is not None else None
                    session = getattr(protocol, "session", None)
                    if session is not None:
                        total += len(session)
            return total

        def objects() -> int:
            return sum(c.kube.store.count() for c in self.clusters.values() if c.kube is not None)

        def watches() -> int:
            return sum(
                c.kube.store.watch_count for c in self.clusters.values() if c.kube is not None
            )

        metrics.gauge("scaleagent_clusters", "Simulated clusters by state.", ["state"], collect=by_phase)
        metrics.gauge(
            "scaleagent_tunnels", "Tunnels by kind and state.", ["kind", "state"], collect=tunnels
        )
        metrics.gauge(
            "scaleagent_tunnel_reconnects",
            "Reconnects of the current tunnels since they were started.",
            ["kind"],
            collect=reconnects,
        )
        metrics.gauge("scaleagent_streams_open", "Tunnelled streams open now.", collect=streams)
        metrics.gauge("scaleagent_objects", "Objects held by all simulated clusters.", collect=objects)
        metrics.gauge("scaleagent_watches_open", "Kubernetes watches open now.", collect=watches)
        metrics.gauge(
            "scaleagent_heartbeat_tunnels",
            "Tunnels registered with the shared heartbeat.",
            collect=lambda: len(self.heartbeat),
        )
        inbound = self.inbound.stats
        metrics.gauge(
            "scaleagent_inbound_queued_messages",
            "Messages from Rancher waiting for a reactor turn with budget left.",
            collect=lambda: inbound.queued,
        )
        metrics.gauge(
            "scaleagent_inbound_held_tunnels",
            "Tunnels not being read until their backlog is worked off.",
            collect=lambda: inbound.held,
        )
        metrics.counter(
            "scaleagent_inbound_deferred_messages_total",
            "Messages from Rancher that waited for a later reactor turn.",
            collect=lambda: inbound.deferred,
        )
        self._active_transitions = metrics.counter(
            "scaleagent_cluster_became_active_total",
            "Times a simulated cluster became active (Rancher reported Active with both tunnels up).",
        )

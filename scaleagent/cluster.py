# -*- test-case-name: tests.test_cluster -*-
"""
One simulated cluster's life: from a name to an imported cluster Rancher
reports Active, kept Active across reconnects and daemon restarts.

A L{SimulatedCluster} walks through the phases of L{ClusterPhase}:

  - C{pending}: accepted, waiting for a creation slot;
  - C{creating}: creating the imported cluster in Rancher;
  - C{registering}: fetching its registration token and import manifest,
    verifying Rancher's CA, building the cluster's API;
  - C{connecting}: both tunnels are being (re)established;
  - C{connected}: both tunnels are up; Rancher does not report Active yet;
  - C{active}: both tunnels are up and Rancher reports the cluster Active;
  - C{error}: the last step failed; C{reason} says why and C{retry_at} when
    it is tried again (never, for failures only the user can fix);
  - C{deleting}: closing the tunnels and deleting the cluster in Rancher.

Everything that must survive a restart is in the cluster's record, saved
through the L{StateStore} whenever it changes: the identity announced in
the tunnel params (so they are byte-identical on every reconnect), the
Rancher cluster id, the registration token and the agent settings read from
the import manifest. A restarted daemon never creates a cluster twice: a
record with a Rancher id goes straight to C{connecting}.
"""

from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .identity import ClusterIdentity
from .rancher.client import ClusterRef, RancherError, RetryPolicy
from .rancher.manifest import AgentSettings, ManifestError, parse_import_manifest
from .tunnel.service import Tunnel, TunnelState, TunnelStatus
from .tunnel.trust import TrustError

if TYPE_CHECKING:
    from .fleet import Fleet
    from .kube.cluster import KubeCluster

#: Backoff for transient failures while creating or registering.
RETRY_INITIAL = 5.0
RETRY_MAX = 300.0
#: How long to wait before trying again after a failure the user must fix.
RETRY_SLOW = 600.0

RECORD_VERSION = 1

#: How long before its import a simulated cluster appears to have existed.
CLUSTER_AGE = timedelta(days=1)


class ClusterPhase(enum.Enum):
    PENDING = "pending"
    CREATING = "creating"
    REGISTERING = "registering"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ACTIVE = "active"
    ERROR = "error"
    DELETING = "deleting"


@dataclass
class RancherRecord:
    """What this cluster is in Rancher (secrets: never log C{token})."""

    cluster_id: str = ""
    api: str = ""
    server_url: str = ""
    token: str = field(default="", repr=False)
    ca_checksum: str = ""
    strict_verify: bool = False
    server_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusterId": self.cluster_id,
            "api": self.api,
            "serverURL": self.server_url,
            "token": self.token,
            "caChecksum": self.ca_checksum,
            "strictVerify": self.strict_verify,
            "serverVersion": self.server_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RancherRecord":
        return cls(
            cluster_id=str(data.get("clusterId", "")),
            api=str(data.get("api", "")),
            server_url=str(data.get("serverURL", "")),
            token=str(data.get("token", "")),
            ca_checksum=str(data.get("caChecksum", "")),
            strict_verify=bool(data.get("strictVerify", False)),
            server_version=str(data.get("serverVersion", "")),
        )


def _format_time(moment: Optional[datetime]) -> Optional[str]:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedCluster(MultiService):
    """
    One simulated cluster. Its child services are its two tunnels once it
    is registered.

    @param fleet: the owner, providing the shared machinery (Rancher client,
        template, trust registry, heartbeat, state store, clock).
    @param name: the cluster's name (DNS-1123 label), in Rancher too.
    @param identity: its persisted identity.
    @param rancher: what is known of it in Rancher.
    @param created_at: when it was first created (stable across restarts).
    @param uid_seed: seed of its deterministic object uids.
    @param registered: its main tunnel has connected once (then
        C{/v3/connect} is used, as the agent does).
    """

    _log = Logger()

    def __init__(
        self,
        fleet: "Fleet",
        name: str,
        identity: ClusterIdentity,
        rancher: Optional[RancherRecord] = None,
        created_at: Optional[datetime] = None,
        uid_seed: Optional[str] = None,
        registered: bool = False,
    ) -> None:
        super().__init__()
        self.setName(name)
        self.fleet = fleet
        self.identity = identity
        self.rancher = rancher or RancherRecord()
        self.created_at = created_at or datetime.fromtimestamp(fleet.clock.seconds(), timezone.utc)
        self.uid_seed = uid_seed or str(uuid.uuid4())
        self.registered = registered
        self.phase = ClusterPhase.PENDING
        self.reason = ""
        self.retry_at: Optional[float] = None
        self.rancher_state = ""
        self.connected_since: Optional[float] = None
        self.active_since: Optional[float] = None
        self.connect_count = 0
        self.last_error = ""
        self.kube: Optional["KubeCluster"] = None
        self.main_tunnel: Optional[Tunnel] = None
        self.steve_tunnel: Optional[Tunnel] = None
        self._failures = 0
        self._retry_call: Optional[IDelayedCall] = None
        self._working: Optional[Deferred[None]] = None
        self._deleted = False

    # -- persistence -------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "name": self.name,
            "createdAt": _format_time(self.created_at),
            "uidSeed": self.uid_seed,
            "registered": self.registered,
            "identity": self.identity.to_dict(),
            "rancher": self.rancher.to_dict(),
        }

    @classmethod
    def from_record(cls, fleet: "Fleet", record: dict[str, Any]) -> "SimulatedCluster":
        created_at = datetime.strptime(record["createdAt"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        )
        return cls(
            fleet,
            record["name"],
            ClusterIdentity.from_dict(record["identity"]),
            RancherRecord.from_dict(record.get("rancher") or {}),
            created_at=created_at,
            uid_seed=record["uidSeed"],
            registered=bool(record.get("registered", False)),
        )

    def save(self) -> None:
        self.fleet.state.save_record(self.name, self.to_record())

    # -- observation ---------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Everything the control API shows about this cluster."""
        clock = self.fleet.clock
        tunnels = {}
        for kind, tunnel in (("main", self.main_tunnel), ("steve", self.steve_tunnel)):
            if tunnel is None:
                continue
            status = tunnel.status
            tunnels[kind] = {
                "state": status.state.value,
                "url": status.url,
                "connectedSince": self._wall(status.connected_since),
                "reconnects": status.reconnects,
                "attempts": status.attempts,
                "consecutiveFailures": status.consecutive_failures,
                "lastError": status.last_error or None,
                "nextAttemptAt": self._wall(status.next_attempt_at),
            }
        description: dict[str, Any] = {
            "name": self.name,
            "state": self.phase.value,
            "reason": self.reason or None,
            "rancherId": self.rancher.cluster_id or None,
            "rancherState": self.rancher_state or None,
            "rancherURL": self.rancher.server_url or None,
            "createdAt": _format_time(self.created_at),
            "connectedSince": self._wall(self.connected_since),
            "activeSince": self._wall(self.active_since),
            "reconnects": max(0, self.connect_count - 1),
            "lastError": self.last_error or None,
            "retryAt": self._wall(self.retry_at),
            "apiAddress": self.identity.address,
            "tunnels": tunnels,
        }
        if self.kube is not None:
            description["objects"] = self.kube.store.count()
        return description

    def _wall(self, clock_time: Optional[float]) -> Optional[str]:
        if clock_time is None:
            return None
        return _format_time(datetime.fromtimestamp(clock_time, timezone.utc))

    def _set_phase(self, phase: ClusterPhase, reason: str = "") -> None:
        if phase is self.phase and reason == self.reason:
            return
        previous = self.phase
        self.phase = phase
        self.reason = reason
        if phase is ClusterPhase.ERROR and reason:
            self.last_error = reason
        if phase is ClusterPhase.ACTIVE and previous is not ClusterPhase.ACTIVE:
            self.active_since = self.fleet.clock.seconds()
        elif phase is not ClusterPhase.ACTIVE:
            self.active_since = None
        emit = self._log.warn if phase is ClusterPhase.ERROR else self._log.info
        emit(
            "cluster {cluster} {previous} -> {phase}{why}",
            cluster=self.name,
            previous=previous.value,
            phase=phase.value,
            why=f": {reason}" if reason else "",
            cluster_phase=phase.value,
        )
        self.fleet.cluster_changed(self, previous)

    # -- running -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._kick()

    def _kick(self) -> None:
        """Make progress towards connected, unless something is in flight."""
        if self._working is not None or not self.running or self._deleted:
            return
        self._working = ensureDeferred(self._advance())

        def done(result: Any) -> None:
            self._working = None
            if isinstance(result, Failure) and result.check(CancelledError):
                return
            if isinstance(result, Failure):
                self._log.failure(
                    "cluster {cluster}: unexpected failure", result, cluster=self.name
                )
                self._fail(f"internal error: {result.getErrorMessage()}", RetryPolicy.BACKOFF)

        self._working.addBoth(done)

    async def _advance(self) -> None:
        try:
            if not self.rancher.cluster_id:
                self._set_phase(ClusterPhase.PENDING)
                async with self.fleet.creation_slot():
                    if not self.running or self._deleted:
                        return
                    self._set_phase(ClusterPhase.CREATING)
                    ref = await self.fleet.rancher.create_imported_cluster(self.name)
                    self.rancher.cluster_id = ref.id
                    self.rancher.api = ref.api
                    self.save()
            if not self.rancher.token:
                async with self.fleet.creation_slot():
                    if not self.running or self._deleted:
                        return
                    self._set_phase(ClusterPhase.REGISTERING)
                    settings = await self._register()
                    self._build_kube(settings)
                    self.save()
            else:
                self._set_phase(ClusterPhase.REGISTERING)
            trust = await self.fleet.trust_for(self.rancher)
            if self.kube is None:
                self._build_kube(None)
            if not self.running or self._deleted:
                return
            self._failures = 0
            self.retry_at = None
            self._start_tunnels(trust)
        except RancherError as e:
            self._fail(str(e), e.retry)
        except (ManifestError, TrustError) as e:
            self._fail(str(e), RetryPolicy.SLOW)

    async def _register(self) -> AgentSettings:
        rancher = self.fleet.rancher
        token = await rancher.registration_token(self.rancher.cluster_id)
        manifest = await rancher.import_manifest(token.manifest_url)
        settings = parse_import_manifest(manifest)
        self.rancher.server_url = settings.server_url.rstrip("/")
        self.rancher.token = settings.token
        self.rancher.ca_checksum = settings.ca_checksum
        self.rancher.strict_verify = settings.strict_verify
        self.rancher.server_version = settings.server_version
        return settings

    def _build_kube(self, settings: Optional[AgentSettings]) -> None:
        """
        The cluster's API and objects: restored from the state directory, or
        new, holding what applying the import manifest would have created.
        """
        from .kube.cluster import KubeCluster
        from .kube.template import ClusterContext

        # The template's timeline ({{ created + 10m }}) starts when the
        # cluster was born; a real cluster exists before it is imported, so
        # its objects are dated a day before this record was created, which
        # also keeps every template offset in the past.
        context = ClusterContext(self.name, self.uid_seed, self.created_at - CLUSTER_AGE)
        restored = self.fleet.state.load_objects(self.name)
        import_objects = settings.objects if settings is not None else ()
        self.kube = KubeCluster.create(
            self.fleet.template,
            context,
            self.identity,
            self.fleet.clock,
            import_objects=import_objects,
            restored_changes=restored,
        )
        self.fleet.watch_objects(self)

    def _start_tunnels(self, trust: Any) -> None:
        assert self.kube is not None
        self._stop_tunnels()
        common = dict(
            reactor=self.fleet.reactor,
            heartbeat=self.fleet.heartbeat,
            inbound=self.fleet.inbound,
            trust=trust,
            endpoint_factory=self.fleet.endpoint_factory,
            observer=self._tunnel_changed,
        )
        self.main_tunnel = Tunnel.main(
            self.rancher.server_url,
            self.rancher.token,
            self.identity.tunnel_params(),
            self.kube.route,
            label=f"{self.name}/main",
            registered=self.registered,
            **common,
        )
        self.steve_tunnel = Tunnel.steve(
            self.rancher.server_url,
            self.rancher.token,
            site=self.fleet.steve_site,
            label=f"{self.name}/steve",
            **common,
        )
        self.main_tunnel.setServiceParent(self)
        self.steve_tunnel.setServiceParent(self)
        self._set_phase(ClusterPhase.CONNECTING)

    def _stop_tunnels(self) -> list[Deferred[Any]]:
        stopping = []
        for tunnel in (self.main_tunnel, self.steve_tunnel):
            if tunnel is not None and tunnel.parent is self:
                result = tunnel.disownServiceParent()
                if isinstance(result, Deferred):
                    stopping.append(result)
        self.main_tunnel = self.steve_tunnel = None
        return stopping

    def _tunnel_changed(self, status: TunnelStatus) -> None:
        if self._deleted or not self.running or self.phase is ClusterPhase.DELETING:
            # Tunnels closing because we stop or delete are not news.
            return
        if status.state is TunnelState.CONNECTED and status.kind.value == "main":
            if not self.registered:
                self.registered = True
                self.save()
        tunnels = [t for t in (self.main_tunnel, self.steve_tunnel) if t is not None]
        if len(tunnels) < 2:
            return
        if all(t.state is TunnelState.CONNECTED for t in tunnels):
            if self.connected_since is None:
                self.connected_since = self.fleet.clock.seconds()
                self.connect_count += 1
            self._update_connected_phase()
        else:
            self.connected_since = None
            errors = [t.status.last_error for t in tunnels if t.status.last_error]
            if errors and any(t.state is TunnelState.WAITING for t in tunnels):
                self.last_error = errors[0]
                self._set_phase(ClusterPhase.CONNECTING, errors[0])
            else:
                self._set_phase(ClusterPhase.CONNECTING)

    def _update_connected_phase(self) -> None:
        if self.connected_since is None:
            return
        if self.rancher_state == "active":
            self._set_phase(ClusterPhase.ACTIVE)
        else:
            why = f"Rancher reports {self.rancher_state}" if self.rancher_state else ""
            self._set_phase(ClusterPhase.CONNECTED, why)

    def rancher_reported(self, state: str) -> None:
        """The shared poller read this cluster's state in Rancher."""
        if state == self.rancher_state:
            return
        self.rancher_state = state
        if self.phase in (ClusterPhase.CONNECTED, ClusterPhase.ACTIVE):
            self._update_connected_phase()

    def _fail(self, reason: str, retry: str) -> None:
        self._failures += 1
        clock = self.fleet.clock
        if retry == RetryPolicy.NEVER:
            self.retry_at = None
        else:
            if retry == RetryPolicy.SLOW:
                delay = RETRY_SLOW
            else:
                delay = min(RETRY_MAX, RETRY_INITIAL * 2 ** (self._failures - 1))
            # Jitter spreads thousands of clusters that failed together.
            delay *= 0.5 + random.random() / 2
            self.retry_at = clock.seconds() + delay
            self._retry_call = clock.callLater(delay, self._retry)
        self._set_phase(ClusterPhase.ERROR, reason)

    def _retry(self) -> None:
        self._retry_call = None
        self.retry_at = None
        self._kick()

    def stopService(self) -> Deferred[None]:
        self.running = 0
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self._working is not None:
            self._working.cancel()
        return super().stopService()

    # -- deletion ----------------------------------------------------------

    async def delete(self, force: bool = False) -> None:
        """
        Close the tunnels, delete the cluster in Rancher (unless C{force}
        and Rancher cannot be reached) and forget it.

        @raise RancherError: if Rancher refused and C{force} is false; the
            cluster stays, in the error phase, and can be deleted again.
        """
        self._deleted = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        if self._working is not None:
            self._working.cancel()
        self._set_phase(ClusterPhase.DELETING)
        for stopping in self._stop_tunnels():
            await stopping
        if self.kube is not None:
            self.kube.close()
        if self.rancher.cluster_id:
            ref = ClusterRef(self.rancher.cluster_id, self.name, self.rancher.api or "v3")
            try:
                await self.fleet.rancher.delete_cluster(ref)
            except RancherError as e:
                if not force:
                    self._deleted = False
                    self._set_phase(ClusterPhase.ERROR, f"delete failed: {e}")
                    raise
                self._log.warn(
                    "cluster {cluster}: forgotten although Rancher could not delete it: {error}",
                    cluster=self.name,
                    error=str(e),
                )

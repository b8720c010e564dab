"""
End-to-end acceptance tests: the real daemon (C{twistd scaleagent}, run
from the source tree as its own process) against the Go Rancher stand-in
(C{tests/standin}), driven through the control API the way a user drives
it.

  - 20 clusters made with one bulk request become Active in Rancher, serve
    the template's nodes and pods, and stay Active through three health
    probes;
  - after C{kill -9} and a restart the same 20 clusters come back, with the
    same Rancher ids and tunnel params, none created twice;
  - after a restart of Rancher every cluster reconnects, with jittered,
    spaced attempts while it is away;
  - bad requests, a wrong API token, an unreachable Rancher and broken
    configuration files give clear errors and leave nothing half-created;
  - C{twistd --pidfile ... scaleagent} daemonises and stops cleanly on
    SIGTERM.

Every wait is for observable state (the daemon's C{GET /clusters}, the
stand-in's control and management APIs, the process table), never for a
fixed time. The stand-in runs with short intervals (probe and Connected
check every 2 s, controllers 100 ms) and the daemon reads Rancher's view
every second, so the module takes a few minutes.

No token may appear in a daemon's log: neither the API token nor any
cluster's registration or service-account token. Failure messages show
summaries of the stand-in's views, which hold tokens, never the views.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import urlencode

import yaml
from twisted.internet import ssl
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from treq.client import HTTPClient

from scaleagent.tunnel.service import RetryPolicy
from tests.daemon import (
    REPO_ROOT,
    ControlClient,
    DaemonProcess,
    cleanup_pidfile_process,
    free_port,
    listen_address,
    process_alive,
    read_logs,
    run_twistd,
    start_daemon,
    write_config,
)
from tests.standin import BUILD_TIMEOUT, StandinProcess, start_standin, wait_for

#: The template every simulated cluster is made from (copied to the
#: configuration directory as cluster.yaml on first start).
TEMPLATE = REPO_ROOT / "cluster_templates" / "k3s-v1.28.yaml"

#: Pods that exist besides the template's once the import manifest is
#: applied: the cattle-cluster-agent Deployment's pod (checked by name in
#: test_bulk_create...).
BOOTSTRAP_PODS = 1

#: How many clusters the fleet tests make.
FLEET = 20

#: Short Rancher intervals, so that a cluster is Active within seconds.
STANDIN_ARGS = ("--probe-interval", "2s", "--ping-interval", "2s", "--controller-delay", "100ms")

#: Seconds between polls of the control APIs (every request of the daemon's
#: API is in its access log: keep it readable).
POLL = 0.5

#: How long a fleet may take to become Active (the stand-in's author saw
#: 20 clusters Active about 30 s after a bulk create; this is a limit for
#: slow machines, not an expectation).
ACTIVE_TIMEOUT = 180.0


#: Whether this process has built (and started) the stand-in once: until
#: then a test's timeout includes the time a cold build may take.
_standin_built = False


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def template_counts(path: Path = TEMPLATE) -> tuple[int, int]:
    """The number of Node and Pod objects in a cluster template."""
    document = yaml.safe_load(path.read_text())
    kinds = Counter(obj.get("kind") for obj in document["objects"])
    return kinds["Node"], kinds["Pod"]


def fingerprint(secret: Optional[str]) -> Optional[str]:
    """What a secret is compared as: never shown, never logged."""
    if secret is None:
        return None
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def brief(view: dict[str, Any]) -> dict[str, Any]:
    """
    What the tests read of a stand-in cluster view, without its tokens: safe
    to show in a failure message.
    """
    rancher = view.get("rancher") or {}
    probe = view.get("probe") or {}
    tunnels = view.get("tunnels") or {}
    params = view.get("params") or None
    return {
        "id": view["id"],
        "name": view["name"],
        "state": view.get("state"),
        "transitioningMessage": view.get("transitioningMessage"),
        "nodeCount": rancher.get("nodeCount"),
        "podCount": rancher.get("podCount"),
        "probeChecks": probe.get("checks", 0),
        "probeOk": probe.get("ok", 0),
        "probeFailed": probe.get("failed", 0),
        "mainLive": (tunnels.get("main") or {}).get("live"),
        "steveLive": (tunnels.get("steve") or {}).get("live"),
        "mainRegisterConnects": (tunnels.get("main") or {}).get("registerConnects"),
        "paramsChanges": view.get("paramsChanges"),
        "params": None
        if params is None
        else {
            "address": params.get("address"),
            "caCert": fingerprint(params.get("caCert")),
            "token": fingerprint(params.get("token")),
        },
        "createdAt": view.get("createdAt"),
        "timeline": [(t.get("at"), t.get("state")) for t in rancher.get("timeline") or []],
        "versionChanges": rancher.get("versionChanges"),
    }


def secrets_of(view: dict[str, Any]) -> list[str]:
    """A stand-in cluster's registration tokens and tunnel SA token."""
    found = [t["token"] for t in view.get("tokens") or [] if t.get("token")]
    params = view.get("params") or {}
    if params.get("token"):
        found.append(params["token"])
    return found


def by_name(clusters: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in clusters}


def fleet_names(prefix: str = "e2e-", count: int = FLEET) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]


class Rig:
    """
    One test's stand-in and daemon, in the test's own directory:

        <base>/standin-state   the stand-in's state (and .stderr.log)
        <base>/cacerts.pem     its CA, the daemon's CACerts
        <base>/config/         the daemon's configuration directory
        <base>/state/          the daemon's StateDir
        <base>/daemon*.log     the daemon's log(s)

    The stand-in listens on fixed free ports so that it can be restarted
    under a running daemon.
    """

    def __init__(self, test: TestCase) -> None:
        self.test = test
        self.base = Path(test.mktemp()).absolute()
        self.base.mkdir(parents=True)
        self.standin_state = str(self.base / "standin-state")
        self.standin_port = free_port()
        self.standin_control_port = free_port()
        self.control_port = free_port()
        self.config_dir = self.base / "config"
        self.state_dir = self.base / "state"
        self.standin: Optional[StandinProcess] = None
        self.daemon: Optional[DaemonProcess] = None
        self._mgmt_pool: Optional[HTTPConnectionPool] = None
        self._mgmt: Optional[HTTPClient] = None
        #: Every daemon log file of this test.
        self.log_paths: list[Path] = []

    # -- processes -------------------------------------------------------------------

    async def start_standin(self) -> StandinProcess:
        global _standin_built
        self.standin = await start_standin(
            self.test,
            "--listen",
            f"127.0.0.1:{self.standin_port}",
            "--control-listen",
            f"127.0.0.1:{self.standin_control_port}",
            *STANDIN_ARGS,
            state_dir=self.standin_state,
        )
        _standin_built = True
        (self.base / "cacerts.pem").write_text(self.standin.cacerts + "\n")
        return self.standin

    @property
    def api_token(self) -> str:
        assert self.standin is not None
        return str(self.standin.ready["apiToken"])

    def write_config(self, **overrides: Any) -> Path:
        """
        The daemon's configuration: the stand-in, its CA, the control API on
        C{control_port}, Rancher's view read every second; C{overrides}
        replace keys (a value of None drops one).
        """
        entries: dict[str, Any] = {}
        if self.standin is not None:
            entries.update(
                RancherURL=self.standin.url,
                BearerToken=self.api_token,
                CACerts=str(self.base / "cacerts.pem"),
            )
        entries.update(
            ListenAddress=listen_address(self.control_port),
            StateDir=str(self.state_dir),
            RancherPollInterval="1",
        )
        entries.update(overrides)
        return write_config(self.config_dir, {k: v for k, v in entries.items() if v is not None})

    async def start_daemon(self, log_name: str = "daemon.log") -> DaemonProcess:
        self.daemon = await start_daemon(self.test, self.config_dir, self.control_port, log_name=log_name)
        if self.daemon.log_path not in self.log_paths:
            self.log_paths.append(self.daemon.log_path)
        return self.daemon

    def logs(self) -> str:
        """Every log of every daemon of this test."""
        return "".join(read_logs(path) for path in self.log_paths)

    # -- the stand-in's management API (what Rancher's users see) ---------------------

    def _management(self) -> HTTPClient:
        if self._mgmt is None:
            assert self.standin is not None
            reactor = _reactor()
            authority = ssl.Certificate.loadPEM(self.standin.cacerts.encode("ascii"))
            self._mgmt_pool = HTTPConnectionPool(reactor, persistent=True)
            self._mgmt = HTTPClient(
                Agent(
                    reactor,
                    contextFactory=BrowserLikePolicyForHTTPS(trustRoot=authority),
                    pool=self._mgmt_pool,
                )
            )
            self.test.addCleanup(self._close_management)
        return self._mgmt

    def _close_management(self) -> Any:
        pool, self._mgmt_pool, self._mgmt = self._mgmt_pool, None, None
        if pool is not None:
            return pool.closeCachedConnections()
        return None

    async def management(self, path: str) -> Any:
        """One authenticated GET of Rancher's management API."""
        assert self.standin is not None
        response = await self._management().get(
            self.standin.url + path,
            headers={b"Authorization": [f"Bearer {self.api_token}".encode()]},
        )
        content = await response.content()
        if response.code != 200:
            raise AssertionError(f"GET {path}: HTTP {response.code}: {content[:300]!r}")
        return json.loads(content)

    async def v3_clusters(self) -> dict[str, dict[str, Any]]:
        """Rancher's v3 clusters by id (C{state}, C{name}, ...)."""
        document = await self.management("/v3/clusters?" + urlencode({"limit": 1000}))
        self.test.assertEqual(document["pagination"]["total"], len(document["data"]))
        return {c["id"]: c for c in document["data"]}

    async def v1_clusters(self) -> dict[str, dict[str, Any]]:
        """The provisioning clusters by name (C{metadata.uid}, C{status})."""
        document = await self.management("/v1/provisioning.cattle.io.clusters/fleet-default")
        return {c["metadata"]["name"]: c for c in document["data"]}

    # -- the stand-in's control API --------------------------------------------------

    async def standin_views(self) -> dict[str, dict[str, Any]]:
        """Every stand-in cluster's full view by name (holds tokens: never show)."""
        assert self.standin is not None
        return by_name(await self.standin.clusters())

    async def standin_briefs(self) -> dict[str, dict[str, Any]]:
        return {name: brief(view) for name, view in (await self.standin_views()).items()}

    # -- the fleet ---------------------------------------------------------------------

    async def create_fleet(self, names: list[str], prefix: str = "e2e-") -> None:
        """One bulk request for C{names} (C{prefix}1 ... C{prefix}N)."""
        assert self.daemon is not None
        code, body = await self.daemon.control("POST", "/clusters", {"count": len(names), "prefix": prefix})
        self.test.assertEqual(code, 202, body)
        self.test.assertEqual(body["created"], names)
        self.test.assertEqual(body["summary"]["total"], len(names))

    async def wait_cluster_state(self, name: str, state: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the daemon shows cluster C{name} in C{state}; its view."""
        assert self.daemon is not None
        daemon = self.daemon

        async def probe() -> dict[str, Any]:
            code, body = await daemon.control("GET", f"/clusters/{name}")
            return body

        return await wait_for(
            probe,
            timeout=timeout,
            interval=POLL,
            until=lambda c: c.get("state") == state,
            what=f"{name} to be {state}",
        )

    async def wait_daemon_active(
        self, names: list[str], timeout: float = ACTIVE_TIMEOUT
    ) -> dict[str, dict[str, Any]]:
        """Wait until the daemon shows exactly C{names}, all active."""
        assert self.daemon is not None
        daemon = self.daemon

        async def probe() -> dict[str, Any]:
            listing = await daemon.clusters()
            return {
                c["name"]: {k: c[k] for k in ("state", "reason", "rancherId", "rancherState")}
                for c in listing["clusters"]
            }

        await wait_for(
            probe,
            timeout=timeout,
            interval=POLL,
            until=lambda seen: sorted(seen) == sorted(names)
            and all(c["state"] == "active" for c in seen.values()),
            what=f"{len(names)} clusters active in the daemon",
        )
        return by_name((await daemon.clusters())["clusters"])

    async def wait_standin_active(
        self, names: list[str], timeout: float = ACTIVE_TIMEOUT
    ) -> dict[str, dict[str, Any]]:
        """
        Wait until the stand-in has exactly C{names}, all active, both
        tunnels of each live, their node and pod counts read; returns the
        briefs.
        """

        def ready(seen: dict[str, dict[str, Any]]) -> bool:
            return sorted(seen) == sorted(names) and all(
                b["state"] == "active"
                and b["mainLive"] == 1
                and b["steveLive"] == 1
                and b["nodeCount"]
                and b["podCount"]
                for b in seen.values()
            )

        return await wait_for(
            self.standin_briefs,
            timeout=timeout,
            interval=POLL,
            until=ready,
            what=f"{len(names)} clusters active at the stand-in",
        )

    async def make_active_fleet(self, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Bulk-create C{names} and wait until all are active at both ends."""
        await self.create_fleet(names)
        daemon_view = await self.wait_daemon_active(names)
        standin_view = await self.wait_standin_active(names)
        return daemon_view, standin_view

    def record_files(self) -> list[str]:
        """The daemon's state directory's cluster records (names of files)."""
        directory = self.state_dir / "clusters"
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".objects.json"))

    # -- secrets -----------------------------------------------------------------------

    async def assert_no_secrets_logged(self, extra: Iterable[str] = ()) -> None:
        """
        No daemon log of this rig contains the API token (or its secret
        part), a cluster's registration token or its tunnel SA token, raw or
        base64-encoded.
        """
        secrets: list[str] = list(extra)
        if self.standin is not None and self.standin.exit_code is None:
            secrets.append(self.api_token)
            secrets.append(self.api_token.split(":", 1)[1])
            for view in (await self.standin_views()).values():
                secrets.extend(secrets_of(view))
        logs = self.logs()
        self.test.assertTrue(logs, "the daemon wrote no log")
        leaked = []
        for index, secret in enumerate(secrets):
            for form in (secret, base64.b64encode(secret.encode()).decode()):
                if len(form) >= 8 and form in logs:
                    leaked.append(f"secret #{index} ({fingerprint(secret)})")
        self.test.assertEqual(leaked, [], "secrets found in the daemon's log")


def attempt_counts(log: str, names: Iterable[str]) -> dict[str, int]:
    """Tunnel connection attempts per C{<cluster>/<kind>}, from a debug log."""
    counts = {}
    for name in names:
        for kind in ("main", "steve"):
            label = f"{name}/{kind}"
            counts[label] = len(re.findall(rf"tunnel {re.escape(label)}: connecting to ", log))
    return counts


def first_delays(log: str, names: Iterable[str]) -> dict[str, str]:
    """
    The first backoff delay each tunnel logged ("next attempt in 4.1 s"),
    per C{<cluster>/<kind>}; tunnels that logged none are left out.
    """
    delays = {}
    for name in names:
        for kind in ("main", "steve"):
            label = f"{name}/{kind}"
            found = re.search(rf"tunnel {re.escape(label)}: [^\n]*; next attempt in ([0-9.]+) s", log)
            if found:
                delays[label] = found.group(1)
    return delays


def shown_forms(path: Path) -> list[str]:
    """How a message may show C{path}: as is, or under C{~}."""
    forms = [str(path)]
    home = os.path.expanduser("~")
    if home not in ("", "~", "/") and str(path).startswith(home + os.sep):
        forms.append("~" + str(path)[len(home) :])
    return forms


def most_attempts(outage: float, policy: RetryPolicy = RetryPolicy()) -> int:
    """
    The most attempts a tunnel can start in C{outage} seconds after its
    session was lost, waiting at least the shortest jittered delay of the
    production policy before each (network backoff).
    """
    elapsed, attempts = 0.0, 0
    while True:
        shortest = policy.network.base(attempts + 1) * (1.0 - policy.jitter)
        if elapsed + shortest > outage:
            return attempts
        elapsed += shortest
        attempts += 1


class EndToEndTests(TestCase):
    """
    The daemon against the stand-in, each test with its own processes. Each
    test has its own C{timeout}; the first to start the stand-in may also
    build it.
    """

    timeout = 300

    def getTimeout(self) -> float:
        timeout = float(super().getTimeout())
        return timeout if _standin_built else timeout + BUILD_TIMEOUT

    def assertNamesFile(self, path: Path, text: str, suffix: str = "") -> None:
        """C{text} shows C{path} (perhaps under C{~}) followed by C{suffix}."""
        forms = [form + suffix for form in shown_forms(path)]
        self.assertTrue(any(form in text for form in forms), f"none of {forms} in {text!r}")

    async def test_bulk_created_fleet_becomes_and_stays_active(self) -> None:
        """
        20 clusters from one bulk POST: all active in the daemon and in
        Rancher (v3 state and the control view), with the template's node
        and pod counts; then still active at every observation while every
        cluster gets three more health probes, and Rancher's timeline shows
        nothing but active since each first became active.
        """
        rig = Rig(self)
        await rig.start_standin()
        rig.write_config()
        await rig.start_daemon()
        names = fleet_names()
        daemon_view, standin_view = await rig.make_active_fleet(names)

        # The daemon and Rancher agree on every id and state.
        v3 = await rig.v3_clusters()
        self.assertEqual(sorted(c["name"] for c in v3.values()), sorted(names))
        for name in names:
            cluster = daemon_view[name]
            self.assertEqual(cluster["rancherId"], standin_view[name]["id"], name)
            self.assertEqual(v3[cluster["rancherId"]]["state"], "active", name)
            self.assertEqual(cluster["rancherState"], "active", name)
            self.assertEqual(cluster["tunnels"]["main"]["state"], "connected", name)
            self.assertEqual(cluster["tunnels"]["steve"]["state"], "connected", name)

        # The template the daemon used is the bundled one; every cluster
        # shows Rancher its nodes and its pods plus the agent's.
        self.assertEqual((rig.config_dir / "cluster.yaml").read_bytes(), TEMPLATE.read_bytes())
        nodes, pods = template_counts()
        self.assertGreater(nodes, 0)
        self.assertGreater(pods, 0)
        counts = {name: (b["nodeCount"], b["podCount"]) for name, b in standin_view.items()}
        self.assertEqual(counts, {name: (nodes, pods + BOOTSTRAP_PODS) for name in names})

        # The one pod beyond the template's is the cluster agent's.
        assert rig.standin is not None
        result = await rig.standin.control(
            "POST",
            f"/standin/clusters/{standin_view[names[0]]['id']}/kubectl",
            {"args": ["get", "pods", "--all-namespaces", "-o", "json"], "timeoutSeconds": 60},
        )
        self.assertEqual(result["exitCode"], 0, result.get("stderr"))
        listed = json.loads(result["stdout"])["items"]
        agent = [p["metadata"]["name"] for p in listed if p["metadata"]["namespace"] == "cattle-system"]
        self.assertEqual(len(agent), BOOTSTRAP_PODS, agent)
        self.assertTrue(agent[0].startswith("cattle-cluster-agent-"), agent)
        self.assertEqual(len(listed) - len(agent), pods)

        # Three more health probes per cluster from now, active at every look.
        baseline = {name: b["probeChecks"] for name, b in (await rig.standin_briefs()).items()}
        observations: list[tuple[dict[str, str], dict[str, str], dict[str, str]]] = []

        async def observe() -> dict[str, int]:
            assert rig.daemon is not None
            listing = (await rig.daemon.clusters())["clusters"]
            briefs = await rig.standin_briefs()
            v3_now = await rig.v3_clusters()
            observations.append(
                (
                    {c["name"]: c["state"] for c in listing},
                    {name: b["state"] for name, b in briefs.items()},
                    {c["name"]: c["state"] for c in v3_now.values()},
                )
            )
            return {name: b["probeChecks"] - baseline.get(name, 0) for name, b in briefs.items()}

        await wait_for(
            observe,
            timeout=120,
            interval=POLL,
            until=lambda more: sorted(more) == sorted(names) and min(more.values()) >= 3,
            what="three more health probes of every cluster",
        )
        everything_active = {name: "active" for name in names}
        for index, observed in enumerate(observations):
            for where, states in zip(("daemon", "stand-in view", "v3"), observed):
                self.assertEqual(states, everything_active, f"observation {index}, {where}")
        final = await rig.standin_briefs()
        for name, b in final.items():
            states = [state for _, state in b["timeline"]]
            self.assertIn("active", states, name)
            since_active = states[states.index("active") :]
            self.assertEqual(set(since_active), {"active"}, f"{name}: timeline {b['timeline']}")
            self.assertEqual(b["probeFailed"], 0, name)

        await rig.assert_no_secrets_logged()

    test_bulk_created_fleet_becomes_and_stays_active.timeout = 300  # type: ignore[attr-defined]

    async def test_kill_9_and_restart_brings_back_the_same_clusters(self) -> None:
        """
        SIGKILL the daemon, start it again with the same configuration and
        state: the same 20 clusters become active again with the same
        Rancher ids, Rancher still has 20 clusters, none was created again,
        and the tunnel params did not change.
        """
        rig = Rig(self)
        await rig.start_standin()
        rig.write_config()
        first = await rig.start_daemon("daemon.log")
        names = fleet_names()
        daemon_before, _ = await rig.make_active_fleet(names)
        ids_before = {name: c["rancherId"] for name, c in daemon_before.items()}
        briefs_before = await rig.standin_briefs()
        v1_before = await rig.v1_clusters()
        self.assertEqual(sorted(v1_before), sorted(names))

        code = await first.kill()
        self.assertEqual(code, 128 + signal.SIGKILL)
        # Rancher notices: no tunnel of any cluster is left.
        await wait_for(
            rig.standin_briefs,
            timeout=60,
            interval=POLL,
            until=lambda seen: all(b["mainLive"] == 0 and b["steveLive"] == 0 for b in seen.values()),
            what="the killed daemon's tunnels to close at the stand-in",
        )

        await rig.start_daemon("daemon-restarted.log")
        daemon_after = await rig.wait_daemon_active(names)
        briefs_after = await rig.wait_standin_active(names)

        self.assertEqual({name: c["rancherId"] for name, c in daemon_after.items()}, ids_before)
        self.assertEqual({name: b["id"] for name, b in briefs_after.items()}, ids_before)
        v3 = await rig.v3_clusters()
        self.assertEqual(sorted(v3), sorted(ids_before.values()))
        self.assertEqual(
            {c["id"]: c["state"] for c in v3.values()}, {i: "active" for i in ids_before.values()}
        )
        # The provisioning objects are the ones made the first time.
        v1_after = await rig.v1_clusters()
        self.assertEqual(
            {name: (c["metadata"]["uid"], c["status"].get("clusterName")) for name, c in v1_after.items()},
            {name: (c["metadata"]["uid"], c["status"].get("clusterName")) for name, c in v1_before.items()},
        )
        for name in names:
            before, after = briefs_before[name], briefs_after[name]
            self.assertEqual(after["createdAt"], before["createdAt"], name)
            self.assertEqual(after["timeline"][: len(before["timeline"])], before["timeline"], name)
            self.assertEqual(after["paramsChanges"], 0, name)
            self.assertEqual(after["params"], before["params"], name)
            self.assertEqual(after["versionChanges"], 0, name)
            # Registered once: the restarted daemon reconnects on /v3/connect.
            self.assertEqual(after["mainRegisterConnects"], 1, name)

        # The restarted daemon created nothing in Rancher.
        restarted_log = read_logs(rig.base / "daemon-restarted.log")
        self.assertIn(f"restored {FLEET} clusters", restarted_log)
        self.assertEqual(re.findall(r"cluster \S+ \S+ -> creating", restarted_log), [])
        self.assertNotIn("adopting cluster", restarted_log)
        self.assertEqual(sorted(rig.record_files()), sorted(f"{n}.json" for n in names))

        await rig.assert_no_secrets_logged()

    test_kill_9_and_restart_brings_back_the_same_clusters.timeout = 300  # type: ignore[attr-defined]

    async def test_standin_restart_reconnects_with_jittered_backoff(self) -> None:
        """
        Stop Rancher (SIGTERM) under 20 active clusters: while it is away
        the clusters show the tunnel errors and next attempts that differ
        between clusters, and the attempts are spaced by the backoff; start
        it again on the same ports and state: all 20 reconnect and become
        active again, unchanged.
        """
        rig = Rig(self)
        await rig.start_standin()
        # debug: each tunnel attempt is logged, so attempts can be counted.
        rig.write_config(LogLevel="debug")
        daemon = await rig.start_daemon()
        names = fleet_names()
        daemon_before, briefs_before = await rig.make_active_fleet(names)
        ids_before = {name: c["rancherId"] for name, c in daemon_before.items()}
        secrets_before = [s for view in (await rig.standin_views()).values() for s in secrets_of(view)]
        api_token = rig.api_token
        clock = _reactor()

        assert rig.standin is not None
        mark = len(daemon.log_text())
        went_away = clock.seconds()
        self.assertEqual(await rig.standin.stop(), 0)

        def waiting_tunnels(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
            return {
                f"{c['name']}/{kind}": tunnel
                for c in listing["clusters"]
                for kind, tunnel in c["tunnels"].items()
            }

        def all_refused(listing: dict[str, Any]) -> bool:
            # Every cluster is out of active and has met the closed port.
            return sorted(c["name"] for c in listing["clusters"]) == sorted(names) and all(
                c["state"] != "active"
                and any("refused" in (t["lastError"] or "").lower() for t in c["tunnels"].values())
                for c in listing["clusters"]
            )

        async def outage() -> tuple[dict[str, Any], dict[str, int]]:
            listing = await daemon.clusters()
            return listing, attempt_counts(daemon.log_text()[mark:], names)

        # Rancher stays away until every tunnel has tried it twice, so that
        # the spacing of the attempts shows.
        listing, tried = await wait_for(
            outage,
            timeout=120,
            interval=POLL,
            until=lambda seen: all_refused(seen[0]) and min(seen[1].values()) >= 2,
            what="every tunnel to try the stopped stand-in twice",
        )
        away = clock.seconds() - went_away
        self.assertLessEqual(max(tried.values()), most_attempts(away) + 1, (away, tried))
        tunnels = waiting_tunnels(listing)
        for label, tunnel in tunnels.items():
            self.assertTrue(tunnel["lastError"], label)
        for cluster in listing["clusters"]:
            self.assertEqual(cluster["state"], "connecting", cluster["name"])
            self.assertTrue(cluster["reason"], cluster["name"])
        next_attempts = [t["nextAttemptAt"] for t in tunnels.values() if t["state"] == "waiting"]
        self.assertGreaterEqual(len(next_attempts), len(names), tunnels)
        self.assertTrue(all(next_attempts), tunnels)
        # Jitter: the clusters do not all come back at the same moment (the
        # API shows whole seconds; the log the delays to a tenth).
        self.assertGreater(len(set(next_attempts)), 1, next_attempts)
        delays = first_delays(daemon.log_text()[mark:], names)
        self.assertEqual(len(delays), 2 * len(names), delays)
        self.assertGreater(len(set(delays.values())), len(names) // 2, delays)

        await rig.start_standin()
        daemon_after = await rig.wait_daemon_active(names)
        briefs_after = await rig.wait_standin_active(names)
        back = clock.seconds()

        self.assertEqual({name: c["rancherId"] for name, c in daemon_after.items()}, ids_before)
        self.assertEqual({name: b["id"] for name, b in briefs_after.items()}, ids_before)
        for name in names:
            self.assertEqual(briefs_after[name]["paramsChanges"], 0, name)
            self.assertEqual(briefs_after[name]["params"], briefs_before[name]["params"], name)
            self.assertGreaterEqual(daemon_after[name]["reconnects"], 1, name)

        # Spaced attempts: no tunnel tried more often than the backoff
        # allows in the time Rancher was away (plus the reconnect, and one
        # more should that one have met Rancher still starting), and,
        # whatever the policy says, about once a second at most.
        attempts = attempt_counts(daemon.log_text()[mark:], names)
        self.assertEqual([label for label in attempts if attempts[label] <= tried[label]], [])
        outage = back - went_away
        self.assertLessEqual(max(attempts.values()), most_attempts(outage) + 2, (outage, attempts))
        self.assertLessEqual(max(attempts.values()), int(outage) + 2, (outage, attempts))

        await rig.assert_no_secrets_logged(extra=[api_token, *secrets_before])

    test_standin_restart_reconnects_with_jittered_backoff.timeout = 300  # type: ignore[attr-defined]

    async def test_bad_requests_and_duplicates_create_nothing(self) -> None:
        """
        Malformed requests get 400, a name that exists 409 (a bulk request
        that overlaps one creates none of its names); the daemon, its state
        directory and Rancher have nothing new.
        """
        rig = Rig(self)
        await rig.start_standin()
        rig.write_config()
        daemon = await rig.start_daemon()
        code, body = await daemon.control("POST", "/clusters", {"name": "dup-1"})
        self.assertEqual(code, 202, body)
        self.assertEqual(body["name"], "dup-1")
        await rig.wait_daemon_active(["dup-1"])
        before = await rig.wait_standin_active(["dup-1"])
        records_before = rig.record_files()
        self.assertEqual(records_before, ["dup-1.json"])

        malformed = [
            b'{"name": "x"',
            b"",
            b"not json",
            b'["dup-2"]',
            b'{"name": "Not_A_DNS_Label"}',
            b'{"name": "x", "colour": "red"}',
            b'{"count": 0, "prefix": "bulk-"}',
            b'{"count": "3", "prefix": "bulk-"}',
        ]
        for raw in malformed:
            code, body = await daemon.control("POST", "/clusters", raw=raw)
            self.assertEqual(code, 400, (raw, body))
            self.assertIsInstance(body, dict, raw)
            self.assertTrue(body.get("error"), (raw, body))
        code, body = await daemon.control("POST", "/clusters", raw=b'{"name": "x"')
        self.assertIn("JSON", body["error"])

        code, body = await daemon.control("POST", "/clusters", {"name": "dup-1"})
        self.assertEqual(code, 409, body)
        self.assertIn("dup-1", body["error"])
        # dup-0, dup-1, dup-2: one exists, so none is made.
        code, body = await daemon.control("POST", "/clusters", {"count": 3, "prefix": "dup-", "start": 0})
        self.assertEqual(code, 409, body)
        self.assertIn("dup-1", body["error"])

        listing = await daemon.clusters()
        self.assertEqual([c["name"] for c in listing["clusters"]], ["dup-1"])
        self.assertEqual(listing["summary"]["total"], 1)
        self.assertEqual(rig.record_files(), records_before)

        # A request after them is served; then Rancher has exactly the two.
        code, body = await daemon.control("POST", "/clusters", {"name": "after-1"})
        self.assertEqual(code, 202, body)
        after = await rig.wait_standin_active(["dup-1", "after-1"])
        self.assertEqual(after["dup-1"]["id"], before["dup-1"]["id"])
        self.assertEqual(sorted(await rig.v1_clusters()), ["after-1", "dup-1"])
        self.assertEqual(sorted(c["name"] for c in (await rig.v3_clusters()).values()), ["after-1", "dup-1"])
        self.assertEqual(rig.record_files(), ["after-1.json", "dup-1.json"])

        await rig.assert_no_secrets_logged()

    test_bad_requests_and_duplicates_create_nothing.timeout = 240  # type: ignore[attr-defined]

    async def test_wrong_bearer_token_is_reported_and_creates_nothing(self) -> None:
        """
        A daemon with an API token Rancher refuses: the cluster is in error
        with a reason that names the 401 and BearerToken, and Rancher has
        no such cluster.
        """
        rig = Rig(self)
        await rig.start_standin()
        wrong = "token-wrong:notthesecretatall"
        rig.write_config(BearerToken=wrong)
        daemon = await rig.start_daemon()
        code, body = await daemon.control("POST", "/clusters", {"name": "refused-1"})
        self.assertEqual(code, 202, body)

        cluster = await rig.wait_cluster_state("refused-1", "error")
        self.assertIn("401", cluster["reason"])
        self.assertIn("BearerToken", cluster["reason"])
        self.assertIsNone(cluster["rancherId"])
        self.assertNotIn("notthesecret", json.dumps(cluster))

        self.assertEqual(await rig.standin_views(), {})
        self.assertEqual(await rig.v1_clusters(), {})
        self.assertEqual(await rig.v3_clusters(), {})
        await rig.assert_no_secrets_logged(extra=[wrong, wrong.split(":", 1)[1]])

    test_wrong_bearer_token_is_reported_and_creates_nothing.timeout = 120  # type: ignore[attr-defined]

    async def test_unreachable_rancher_is_reported_and_retried(self) -> None:
        """
        A daemon whose RancherURL is a closed port: the cluster is in error,
        "cannot reach Rancher", with a retry scheduled.
        """
        rig = Rig(self)
        closed = free_port()
        token = "token-abcde:unreachablesecret"
        rig.write_config(RancherURL=f"https://127.0.0.1:{closed}", BearerToken=token)
        daemon = await rig.start_daemon()
        code, body = await daemon.control("POST", "/clusters", {"name": "lonely-1"})
        self.assertEqual(code, 202, body)

        cluster = await rig.wait_cluster_state("lonely-1", "error")
        self.assertIn("cannot reach Rancher", cluster["reason"])
        self.assertIsNotNone(cluster["retryAt"])
        self.assertIsNone(cluster["rancherId"])
        code, health = await daemon.control("GET", "/healthz")
        self.assertEqual(code, 200)
        self.assertEqual(health["clusters"]["total"], 1)
        await rig.assert_no_secrets_logged(extra=[token, token.split(":", 1)[1]])

    test_unreachable_rancher_is_reported_and_retried.timeout = 120  # type: ignore[attr-defined]

    async def _config_error(self, text: Optional[str]) -> tuple[Path, str, str, int, Path]:
        """
        Run C{twistd -n scaleagent} with C{text} as the configuration file
        (none if L{None}); it must exit. Returns the file, stdout, stderr,
        exit code and the pidfile it was given.
        """
        base = Path(self.mktemp()).absolute()
        config_dir = base / "config"
        config_dir.mkdir(parents=True)
        config_file = config_dir / "config"
        if text is not None:
            config_file.write_text(text)
        pidfile = base / "twistd.pid"
        out, err, code = await run_twistd(
            ["-n", "--pidfile", str(pidfile), "--logfile", str(base / "daemon.log"),
             "scaleagent", "-c", str(config_dir)],
            cwd=base,
            timeout=60,
        )
        return config_file, out, err, code, pidfile

    #: Broken configuration files: (text, line, key, what the message says).
    BROKEN_CONFIGS = [
        (
            "RancherURL: https://127.0.0.1:1\nBearerTokn: token-abcde:s3cretvalue\n",
            2,
            "BearerTokn",
            'unknown key (did you mean "BearerToken"?)',
        ),
        (
            "RancherURL: https://127.0.0.1:1\nBearerToken: token-abcde:s3cretvalue\n"
            "RancherPollInterval: soon\n",
            3,
            "RancherPollInterval",
            'not a number of seconds: "soon"',
        ),
        ("# scaleagent\nRancherURL: http://127.0.0.1:1\n", 2, "RancherURL", "not an https URL"),
        (
            "RancherURL: https://127.0.0.1:1\n\nBearerToken: s3cretvalue with spaces\n",
            3,
            "BearerToken",
            "not a Rancher API key",
        ),
    ]

    async def test_config_errors_stop_the_daemon(self) -> None:
        """
        A missing or malformed configuration file stops twistd with exit
        code 1 and a message naming the file, the line and the key, never
        the token; no daemon is left running, no pidfile written.
        """
        config_file, out, err, code, pidfile = await self._config_error(None)
        self.assertEqual(code, 1, out + err)
        self.assertNamesFile(config_file, out + err, ": no such file")
        self.assertIn("RancherURL", out + err)
        self.assertFalse(pidfile.exists())

        for text, line, key, detail in self.BROKEN_CONFIGS:
            config_file, out, err, code, pidfile = await self._config_error(text)
            self.assertEqual(code, 1, out + err)
            self.assertNamesFile(config_file, out + err, f" line {line}: {key}:")
            self.assertIn(detail, out + err)
            self.assertNotIn("s3cretvalue", out + err)
            self.assertFalse(pidfile.exists(), text)

    test_config_errors_stop_the_daemon.timeout = 120  # type: ignore[attr-defined]

    async def test_config_errors_are_written_to_stderr(self) -> None:
        """
        The configuration error is on stderr, where a script or a service
        manager looks for it.
        """
        config_file, out, err, code, _ = await self._config_error(None)
        self.assertEqual(code, 1)
        self.assertNamesFile(config_file, err, ": no such file")
        text, line, key, _ = self.BROKEN_CONFIGS[1]
        config_file, out, err, code, _ = await self._config_error(text)
        self.assertEqual(code, 1)
        self.assertNamesFile(config_file, err, f" line {line}: {key}:")

    test_config_errors_are_written_to_stderr.timeout = 60  # type: ignore[attr-defined]

    async def test_twistd_daemonizes_and_stops_on_sigterm(self) -> None:
        """
        C{twistd --pidfile P --logfile L scaleagent -c DIR}: twistd returns,
        the daemon runs detached under the pid in the pidfile and serves
        the control API; SIGTERM stops it, removes the pidfile, keeps the
        state and logs the shutdown.
        """
        rig = Rig(self)
        await rig.start_standin()
        rig.write_config()
        pidfile = rig.base / "twistd.pid"
        log_path = rig.base / "daemon.log"
        rig.log_paths.append(log_path)
        cleanup_pidfile_process(self, pidfile)

        out, err, code = await run_twistd(
            ["--pidfile", str(pidfile), "--logfile", str(log_path), "scaleagent", "-c", str(rig.config_dir)],
            cwd=rig.base,
            timeout=120,
        )
        self.assertEqual(code, 0, out + err)
        pid = int(pidfile.read_text().strip())
        self.assertTrue(process_alive(pid), f"pid {pid} from the pidfile is not running")
        # Detached: not our child, not in our session.
        self.assertNotEqual(os.getsid(pid), os.getsid(0))
        with open(f"/proc/{pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        self.assertNotEqual(parent, os.getpid())

        client = ControlClient(f"http://127.0.0.1:{rig.control_port}")
        self.addCleanup(client.close)
        code, health = await client.control("GET", "/healthz")
        self.assertEqual(code, 200, health)
        code, body = await client.control("POST", "/clusters", {"name": "detached-1"})
        self.assertEqual(code, 202, body)
        await wait_for(
            client.clusters,
            timeout=ACTIVE_TIMEOUT,
            interval=POLL,
            until=lambda listing: [c["state"] for c in listing["clusters"]] == ["active"],
            what="detached-1 to become active",
        )
        rancher_id = (await client.clusters())["clusters"][0]["rancherId"]
        objects_file = rig.state_dir / "clusters" / "detached-1.objects.json"
        await wait_for(objects_file.exists, timeout=60, interval=POLL, what="the object store to be saved")
        await client.close()

        os.kill(pid, signal.SIGTERM)
        await wait_for(lambda: not process_alive(pid), timeout=60, interval=0.1, what=f"pid {pid} to exit")

        self.assertFalse(pidfile.exists(), "the pidfile is left behind")
        saved = json.loads((rig.state_dir / "clusters" / "detached-1.json").read_text())
        self.assertEqual(saved["name"], "detached-1")
        self.assertEqual(saved["record"]["rancher"]["clusterId"], rancher_id)
        self.assertTrue(saved["record"]["registered"])
        json.loads(objects_file.read_text())
        leftovers = [p.name for p in (rig.state_dir / "clusters").iterdir() if p.name.endswith(".tmp")]
        self.assertEqual(leftovers, [])

        log = read_logs(log_path)
        stop = log.index("Received SIGTERM, shutting down.")
        self.assertIn("Main loop terminated.", log[stop:])
        self.assertIn("Server Shut Down.", log[stop:])
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)
        await rig.assert_no_secrets_logged()

    test_twistd_daemonizes_and_stops_on_sigterm.timeout = 240  # type: ignore[attr-defined]


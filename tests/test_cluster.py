"""
Tests for L{scaleagent.cluster} and L{scaleagent.fleet}: a cluster's life
from a name to tunnels, against the in-memory L{FakeRancher}, with the
tunnels' endpoints replaced by ones that record attempts. (The tunnels
themselves against the Go stand-in are in C{tests.test_tunnel_standin}; the
whole daemon against it in C{tests.test_e2e}.)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from scaleagent.cluster import ClusterPhase
from scaleagent.config import DEFAULT_TEMPLATE_NAME, bundled_templates_dir
from scaleagent.fleet import Fleet
from scaleagent.kube.template import ClusterTemplate
from scaleagent.persistence import StateStore
from scaleagent.rancher.client import RancherClient
from scaleagent.testing.fake_rancher import FakeRancher
from scaleagent.tunnel.service import TunnelState

API_TOKEN = "token-abcde:s3cr3t"
_TEMPLATE: list[ClusterTemplate] = []


def default_template() -> ClusterTemplate:
    if not _TEMPLATE:
        _TEMPLATE.append(ClusterTemplate.load(bundled_templates_dir() / DEFAULT_TEMPLATE_NAME))
    return _TEMPLATE[0]


class PendingEndpoint:
    """A tunnel endpoint whose connection attempts never complete."""

    def __init__(self, attempts: list, host: str, port: int) -> None:
        self._attempts = attempts
        self._where = (host, port)

    def connect(self, factory: Any) -> Deferred:
        self._attempts.append(self._where)
        return Deferred()


class Harness:
    def __init__(self, test: SynchronousTestCase, state_dir: Optional[str] = None) -> None:
        self.test = test
        self.reactor = MemoryReactorClock()
        self.rancher = getattr(test, "rancher", None) or FakeRancher(api_token=API_TOKEN)
        test.rancher = self.rancher
        self.http = StubTreq(self.rancher.app.resource())
        self.attempts: list = []
        self.state_dir = state_dir or test.mktemp()
        self.fleet = Fleet(
            self.reactor,
            RancherClient("https://rancher.test", API_TOKEN, self.http, self.reactor, "instance-1"),
            default_template(),
            StateStore(self.state_dir, self.reactor),
            "10.43.0.1:443",
            trust_http=self.http,
            endpoint_factory=lambda host, port, creator: PendingEndpoint(self.attempts, host, port),
            rancher_poll_interval=0,
        )

    def start(self) -> None:
        self.fleet.load()
        self.fleet.startService()

    def stop(self) -> None:
        self.test.successResultOf(self.fleet.stopService())

    def settle(self, seconds: float = 30.0) -> None:
        """Let polls and retries run: flush HTTP, advance the clock."""
        for _ in range(int(seconds)):
            self.http.flush()
            self.reactor.advance(1.0)
        self.http.flush()


class ImportsRedirected(Resource):
    """The fake Rancher, but its import manifests answer 302 without a Location."""

    isLeaf = True

    def __init__(self, rancher: Resource) -> None:
        super().__init__()
        self._rancher = rancher

    def render(self, request: Any) -> bytes:
        if request.path.startswith(b"/v3/import/"):
            request.setResponseCode(302)
            return b""
        return self._rancher.render(request)


class LifecycleTests(SynchronousTestCase):
    def test_name_to_tunnels(self) -> None:
        """
        A new cluster is created in Rancher the UI's way, registered from
        the import manifest, given its API, and its two tunnels are started
        towards the server URL the manifest names.
        """
        harness = Harness(self)
        harness.start()
        cluster = harness.fleet.add("sim-1")
        harness.settle()
        self.assertEqual(cluster.phase, ClusterPhase.CONNECTING, cluster.reason)
        self.assertTrue(cluster.rancher.cluster_id.startswith("c-m-"))
        self.assertEqual(cluster.rancher.server_url, "https://rancher.test")
        self.assertEqual(cluster.rancher.api, "v1")
        self.assertIsNotNone(cluster.kube)
        self.assertEqual(sorted(set(harness.attempts)), [("rancher.test", 443)])
        self.assertEqual(cluster.main_tunnel.spec.first_path, "/v3/connect/register")
        # What the next start needs is on disk.
        record = harness.fleet.state.load_all()["sim-1"]
        self.assertEqual(record["rancher"]["clusterId"], cluster.rancher.cluster_id)
        self.assertEqual(record["rancher"]["token"], cluster.rancher.token)
        harness.stop()

    def test_restart_reconnects_without_creating_again(self) -> None:
        first = Harness(self)
        first.start()
        cluster = first.fleet.add("sim-1")
        first.settle()
        params = cluster.identity.tunnel_params().header_value()
        cluster_id = cluster.rancher.cluster_id
        first.stop()
        creates = [r for r in self.rancher.requests if r[0] == "POST"]

        second = Harness(self, state_dir=first.state_dir)
        second.start()
        second.settle(5)
        again = second.fleet.clusters["sim-1"]
        self.assertEqual(again.phase, ClusterPhase.CONNECTING, again.reason)
        self.assertEqual(again.rancher.cluster_id, cluster_id)
        self.assertEqual(again.identity.tunnel_params().header_value(), params)
        self.assertEqual([r for r in self.rancher.requests if r[0] == "POST"], creates)
        self.assertEqual(len(self.rancher.v1_clusters), 1)
        second.stop()

    def test_transient_rancher_failure_retried(self) -> None:
        harness = Harness(self)
        harness.start()
        self.rancher.fail_next = [503]
        cluster = harness.fleet.add("sim-1")
        harness.http.flush()
        self.assertEqual(cluster.phase, ClusterPhase.ERROR)
        self.assertIn("503", cluster.reason)
        self.assertIsNotNone(cluster.retry_at)
        harness.settle(60)
        self.assertEqual(cluster.phase, ClusterPhase.CONNECTING, cluster.reason)
        self.assertIn("503", cluster.describe()["lastError"])
        harness.stop()

    def test_manifest_failure_does_not_show_the_token(self) -> None:
        """
        The import manifest URL holds the registration token; a failed
        download (here a redirect without a Location, which Twisted reports
        with the URL) is in the cluster's reason, the control API and the
        log without it.
        """
        harness = Harness(self)
        harness.http = StubTreq(ImportsRedirected(self.rancher.app.resource()))
        harness.fleet.rancher._http = harness.http
        with capturedLogs() as events:
            harness.start()
            cluster = harness.fleet.add("sim-1")
            harness.settle(5)
        self.assertEqual(cluster.phase, ClusterPhase.ERROR)
        self.assertIn("downloading the import manifest", cluster.reason)
        token = self.rancher.tokens[cluster.rancher.cluster_id]["token"]
        shown = [cluster.reason, cluster.last_error, json.dumps(cluster.describe())]
        shown += [(formatEvent(event) or "") + repr(event) for event in events]
        self.assertTrue(any("downloading the import manifest" in text for text in shown[3:]))
        for text in shown:
            self.assertNotIn(token, text)
        harness.stop()

    def test_name_taken_is_not_retried(self) -> None:
        harness = Harness(self)
        harness.start()
        self.rancher.v1_clusters["taken"] = {
            "metadata": {"name": "taken", "annotations": {"scaleagent.io/owner": "someone-else"}},
            "status": {},
        }
        self.rancher._reads["taken"] = 0
        cluster = harness.fleet.add("taken")
        harness.settle(5)
        self.assertEqual(cluster.phase, ClusterPhase.ERROR)
        self.assertIn("already exists", cluster.reason)
        self.assertIsNone(cluster.retry_at)
        harness.stop()

    def test_active_needs_both_tunnels_and_rancher(self) -> None:
        harness = Harness(self)
        harness.start()
        cluster = harness.fleet.add("sim-1")
        harness.settle()

        def report(tunnel: Any, state: TunnelState) -> None:
            tunnel._status = dataclasses.replace(tunnel.status, state=state)
            cluster._tunnel_changed(tunnel.status)

        report(cluster.main_tunnel, TunnelState.CONNECTED)
        self.assertEqual(cluster.phase, ClusterPhase.CONNECTING)
        report(cluster.steve_tunnel, TunnelState.CONNECTED)
        self.assertEqual(cluster.phase, ClusterPhase.CONNECTED)
        cluster.rancher_reported("active")
        self.assertEqual(cluster.phase, ClusterPhase.ACTIVE)
        self.assertTrue(cluster.registered)
        report(cluster.steve_tunnel, TunnelState.WAITING)
        self.assertEqual(cluster.phase, ClusterPhase.CONNECTING)
        harness.stop()

    def test_delete_removes_it_in_rancher(self) -> None:
        harness = Harness(self)
        harness.start()
        harness.fleet.add("sim-1")
        harness.settle()
        self.assertEqual(len(self.rancher.v1_clusters), 1)
        deleting = Deferred.fromCoroutine(harness.fleet.remove("sim-1"))
        harness.settle(2)
        self.successResultOf(deleting)
        self.assertEqual(self.rancher.v1_clusters, {})
        self.assertEqual(harness.fleet.state.load_all(), {})
        harness.stop()

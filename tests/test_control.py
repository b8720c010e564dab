"""
Tests for L{scaleagent.control}: the REST API users drive scaleagent with,
in memory (treq's StubTreq), against a fleet whose Rancher is the
in-memory L{FakeRancher}.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.control import ControlAPI
from scaleagent.fleet import Fleet
from scaleagent.persistence import StateStore
from scaleagent.rancher.client import RancherClient
from scaleagent.testing.fake_rancher import FakeRancher

API_TOKEN = "token-abcde:s3cr3t"


def make_fleet(test: SynchronousTestCase, api_token: str = API_TOKEN) -> tuple[Fleet, FakeRancher, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    rancher = FakeRancher(api_token=API_TOKEN)
    http = StubTreq(rancher.app.resource())
    client = RancherClient("https://rancher.test", api_token, http, reactor, "instance-1", poll_attempts=3)
    state = StateStore(test.mktemp(), reactor)
    fleet = Fleet(
        reactor,
        client,
        template=None,
        state=state,
        api_address="10.43.0.1:443",
        trust_http=http,
        rancher_poll_interval=0,
    )
    fleet.startService()
    test.addCleanup(fleet.stopService)
    return fleet, rancher, reactor


class ControlAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        # A wrong API token: clusters stop at "creating" with Rancher's 401,
        # which is all these tests need and keeps them free of tunnels.
        self.fleet, self.rancher, self.reactor = make_fleet(self, api_token="token-wrong:nope")
        self.control = StubTreq(ControlAPI(self.fleet).resource())

    def request(self, method: str, path: str, body: Any = None, raw: bytes = None, headers=None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = self.successResultOf(
            self.control.request(method, "http://control" + path, data=data, headers=headers)
        )
        content = self.successResultOf(response.content())
        self.control.flush()
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content

    def test_create_one(self) -> None:
        code, body = self.request("POST", "/clusters", {"name": "sim-1"})
        self.assertEqual(code, 202)
        self.assertEqual(body["name"], "sim-1")
        self.assertIn("sim-1", self.fleet.clusters)
        code, body = self.request("GET", "/clusters/sim-1")
        self.assertEqual(code, 200)
        self.assertEqual(body["apiAddress"], "10.43.0.1:443")

    def test_wrong_rancher_token_reported_per_cluster(self) -> None:
        self.request("POST", "/clusters", {"name": "sim-1"})
        code, body = self.request("GET", "/clusters/sim-1")
        self.assertEqual(body["state"], "error")
        self.assertIn("401", body["reason"])
        self.assertIn("BearerToken", body["reason"])
        self.assertNotIn("nope", json.dumps(body))
        # Nothing was created in Rancher.
        self.assertEqual(self.rancher.v1_clusters, {})

    def test_bulk(self) -> None:
        code, body = self.request("POST", "/clusters", {"count": 3, "prefix": "load-"})
        self.assertEqual(code, 202)
        self.assertEqual(body["created"], ["load-1", "load-2", "load-3"])
        code, body = self.request("POST", "/clusters", {"count": 2, "prefix": "load-"})
        self.assertEqual(body["created"], ["load-4", "load-5"])
        code, body = self.request("GET", "/clusters")
        self.assertEqual(body["summary"]["total"], 5)
        self.assertEqual([c["name"] for c in body["clusters"]], [f"load-{i}" for i in range(1, 6)])

    def test_bad_requests_change_nothing(self) -> None:
        cases = [
            (None, b"{not json"),
            (None, b""),
            ([1, 2], None),
            ({"name": "Not_DNS"}, None),
            ({"name": ""}, None),
            ({"name": "a" * 64}, None),
            ({"name": 7}, None),
            ({"count": 0, "prefix": "x-"}, None),
            ({"count": "3", "prefix": "x-"}, None),
            ({"count": 2, "prefix": "UPPER-"}, None),
            ({"name": "a", "count": 2}, None),
            ({"nmae": "typo"}, None),
        ]
        for body, raw in cases:
            code, answer = self.request("POST", "/clusters", body, raw=raw)
            self.assertEqual(code, 400, (body, raw, answer))
            self.assertIn("error", answer)
        self.assertEqual(self.fleet.clusters, {})
        self.assertEqual(self.fleet.state.load_all(), {})

    def test_duplicates(self) -> None:
        self.request("POST", "/clusters", {"name": "sim-1"})
        code, body = self.request("POST", "/clusters", {"name": "sim-1"})
        self.assertEqual(code, 409)
        self.assertIn("already exists", body["error"])
        # A bulk request that collides creates none of its clusters.
        code, body = self.request("POST", "/clusters", {"count": 3, "prefix": "sim-", "start": 0})
        self.assertEqual(code, 409)
        self.assertEqual(sorted(self.fleet.clusters), ["sim-1"])

    def test_unknown_cluster(self) -> None:
        code, body = self.request("GET", "/clusters/nope")
        self.assertEqual(code, 404)
        code, body = self.request("DELETE", "/clusters/nope")
        self.assertEqual(code, 404)

    def test_delete_before_rancher_knew_it(self) -> None:
        self.request("POST", "/clusters", {"name": "sim-1"})
        code, body = self.request("DELETE", "/clusters/sim-1")
        self.assertEqual((code, body), (200, {"deleted": "sim-1"}))
        self.assertNotIn("sim-1", self.fleet.clusters)
        self.assertEqual(self.fleet.state.load_all(), {})

    def test_state_survives_as_records(self) -> None:
        self.request("POST", "/clusters", {"name": "sim-1"})
        records = self.fleet.state.load_all()
        self.assertEqual(list(records), ["sim-1"])
        self.assertEqual(records["sim-1"]["identity"], self.fleet.clusters["sim-1"].identity.to_dict())

    def test_healthz_and_metrics(self) -> None:
        self.request("POST", "/clusters", {"name": "sim-1"})
        code, body = self.request("GET", "/healthz")
        self.assertEqual(code, 200)
        self.assertEqual(body["clusters"]["total"], 1)
        code, body = self.request("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b'scaleagent_clusters{state="error"} 1\n', body)


class ControlTokenTests(SynchronousTestCase):
    def test_token_required(self) -> None:
        fleet, rancher, reactor = make_fleet(self)
        control = StubTreq(ControlAPI(fleet, token="control-secret").resource())

        def code(path: str, headers=None) -> int:
            response = self.successResultOf(control.get("http://control" + path, headers=headers))
            self.successResultOf(response.content())
            return response.code

        self.assertEqual(code("/clusters"), 401)
        self.assertEqual(code("/metrics"), 401)
        self.assertEqual(code("/clusters", {b"Authorization": [b"Bearer wrong"]}), 401)
        self.assertEqual(code("/clusters", {b"Authorization": [b"Bearer control-secret"]}), 200)
        self.assertEqual(code("/healthz"), 200)

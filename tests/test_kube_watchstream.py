"""
Tests for L{scaleagent.kube.watchstream}: the shared timer wheel, and
watches served over a real HTTP channel (on a C{StringTransport}) with a
C{Clock}: event order, watch-list, timeouts, bookmarks from the shared
timer, disconnects, too-old resourceVersions and clients that stop reading.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.kube import watchstream
from scaleagent.kube.store import INITIAL_EVENTS_END_ANNOTATION
from scaleagent.kube.watchstream import TimerWheel, WatchHub, encode_event
from scaleagent.remotedialer import frames
from tests.test_kube_api import CONFIG_MAPS, TABLE, Connection, TunnelHarness, add_account, new_cluster


class TimerWheelTests(SynchronousTestCase):
    def test_order_and_single_call(self) -> None:
        """Many timers, one pending reactor call; each runs once, in time order."""
        clock = Clock()
        wheel = TimerWheel(clock, resolution=1.0)
        ran: list[str] = []
        for delay, name in [(30, "c"), (10, "a"), (20, "b"), (10, "a2")]:
            wheel.call_later(delay, ran.append, name)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(10)
        self.assertEqual(ran, ["a", "a2"])
        clock.advance(10)
        clock.advance(10)
        self.assertEqual(ran, ["a", "a2", "b", "c"])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(len(wheel), 0)

    def test_never_early(self) -> None:
        clock = Clock()
        clock.advance(0.5)
        wheel = TimerWheel(clock, resolution=1.0)
        ran: list[float] = []
        wheel.call_later(1.2, lambda: ran.append(clock.seconds()))
        clock.advance(1.0)
        self.assertEqual(ran, [])
        clock.advance(0.5)
        self.assertEqual(len(ran), 1)
        self.assertGreaterEqual(ran[0], 1.7)

    def test_cancel(self) -> None:
        clock = Clock()
        wheel = TimerWheel(clock)
        ran: list[str] = []
        first = wheel.call_later(5, ran.append, "first")
        wheel.call_later(50, ran.append, "later")
        first.cancel()
        first.cancel()
        self.assertFalse(first.active)
        # The reactor call moved to the remaining timer's bucket.
        (call,) = clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 50)
        clock.advance(50)
        self.assertEqual(ran, ["later"])

    def test_failure_is_logged(self) -> None:
        clock = Clock()
        wheel = TimerWheel(clock)
        ran: list[int] = []
        wheel.call_later(1, lambda: 1 / 0)
        wheel.call_later(1, ran.append, 1)
        clock.advance(1)
        self.assertEqual(ran, [1])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_hub_per_clock(self) -> None:
        clock = Clock()
        self.assertIs(WatchHub.for_clock(clock), WatchHub.for_clock(clock))
        self.assertIsNot(WatchHub.for_clock(clock), WatchHub.for_clock(Clock()))


class EncodeTests(SynchronousTestCase):
    def test_frame(self) -> None:
        obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "é"}}
        frame = encode_event("ADDED", obj)
        self.assertTrue(frame.endswith(b"}\n"))
        self.assertEqual(json.loads(frame), {"type": "ADDED", "object": obj})
        self.assertEqual(encode_event("MODIFIED", obj), frame.replace(b"ADDED", b"MODIFIED"))


class WatchTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.cluster = new_cluster(self.clock)
        self.token = add_account(self.cluster)
        self.store = self.cluster.store

    def watch(self, path: str, **headers: Any) -> Connection:
        connection = Connection(self.cluster, self.token)
        connection.send("GET", path, headers=headers)
        return connection

    def rv(self) -> str:
        return str(self.store.resource_version)

    def configmap(self, name: str, **labels: str) -> dict:
        return self.store.create(CONFIG_MAPS, "default", {"metadata": {"name": name, "labels": labels}})

    def summary(self, connection: Connection) -> list[str]:
        return [
            f"{event['type']} {event['object']['metadata'].get('name', '')}".strip()
            for event in connection.events()
        ]


class WatchTests(WatchTestCase):
    def test_events_in_order(self) -> None:
        before = str(self.store.resource_version)
        connection = self.watch(
            f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={before}&allowWatchBookmarks=true&timeoutSeconds=300"
        )
        code, headers, body, complete = connection.read()
        self.assertEqual((code, complete, body), (200, False, b""))
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["transfer-encoding"], "chunked")
        created = self.configmap("w1")
        self.store.update(CONFIG_MAPS, "default", "w1", {**created, "data": {"a": "1"}})
        self.store.delete(CONFIG_MAPS, "default", "w1")
        self.assertEqual(self.summary(connection), ["ADDED w1", "MODIFIED w1", "DELETED w1"])
        events = connection.events()
        self.assertEqual(events[1]["object"]["data"], {"a": "1"})
        self.assertEqual(self.cluster.stats.watches_open, 1)

    def test_resume_from_history(self) -> None:
        before = str(self.store.resource_version)
        self.configmap("old")
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={before}")
        self.assertEqual(self.summary(connection), ["ADDED old"])

    def test_watch_list(self) -> None:
        """
        Rancher 2.14's informers: every current object as ADDED, the
        initial-events-end BOOKMARK, then changes.
        """
        self.configmap("a", app="x")
        self.configmap("b", app="x")
        self.configmap("c", app="y")
        connection = self.watch(
            "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
            "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app%3Dx&timeoutSeconds=540"
        )
        self.configmap("late", app="x")
        events = connection.events()
        self.assertEqual(self.summary(connection), ["ADDED a", "ADDED b", "BOOKMARK", "ADDED late"])
        bookmark = events[2]["object"]
        self.assertEqual((bookmark["kind"], bookmark["apiVersion"]), ("ConfigMap", "v1"))
        self.assertEqual(bookmark["metadata"]["annotations"], {INITIAL_EVENTS_END_ANNOTATION: "true"})
        self.assertEqual(int(bookmark["metadata"]["resourceVersion"]), int(events[3]["object"]["metadata"]["resourceVersion"]) - 1)

    def test_watch_list_validation(self) -> None:
        connection = self.watch("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true")
        code, _, body, complete = connection.read()
        self.assertEqual((code, complete), (422, True))
        self.assertIn("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan", json.loads(body)["message"])
        self.assertEqual(self.store.watch_count, 0)

    def test_timeout_ends_cleanly(self) -> None:
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=5")
        self.clock.advance(4)
        self.assertFalse(connection.read()[3])
        self.clock.advance(1)
        code, _, _, complete = connection.read()
        self.assertEqual((code, complete), (200, True))
        self.assertEqual(self.store.watch_count, 0)
        self.assertEqual(self.cluster.stats.watches_open, 0)
        # Keep-alive: the connection takes the next request.
        connection.send("GET", "/api/v1/namespaces/default")
        self.assertEqual(connection.read()[0], 200)

    def test_default_timeout(self) -> None:
        """Without timeoutSeconds the apiserver picks 30-60 minutes."""
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}")
        self.clock.advance(1799)
        self.assertFalse(connection.read()[3])
        self.clock.advance(1802)
        self.assertTrue(connection.read()[3])

    def test_bookmarks_from_the_shared_timer(self) -> None:
        """
        Watches that allowed bookmarks get one about every minute; those
        that did not get none. All of them share one reactor call.
        """
        calls_before = len(self.clock.getDelayedCalls())
        with_bookmarks = [
            self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&allowWatchBookmarks=true&timeoutSeconds=600&x={i}")
            for i in range(3)
        ]
        without = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=600")
        self.assertLessEqual(len(self.clock.getDelayedCalls()), calls_before + 1)
        self.clock.advance(60)
        for connection in with_bookmarks:
            (event,) = connection.events()
            self.assertEqual(event["type"], "BOOKMARK")
            self.assertEqual(event["object"]["metadata"]["resourceVersion"], str(self.store.resource_version))
        self.assertEqual(without.events(), [])
        self.clock.advance(60)
        self.assertEqual([event["type"] for event in with_bookmarks[0].events()], ["BOOKMARK", "BOOKMARK"])

    def test_disconnect_cancels(self) -> None:
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&allowWatchBookmarks=true")
        self.assertEqual(self.store.watch_count, 1)
        connection.close()
        self.assertEqual(self.store.watch_count, 0)
        self.assertEqual(self.cluster.stats.watches_open, 0)
        self.assertEqual(WatchHub.for_clock(self.clock).open_streams, 0)
        # Its timers are gone too: nothing fires into the closed stream.
        self.configmap("after")
        self.clock.advance(4000)

    def test_too_old(self) -> None:
        """
        A resourceVersion the history no longer holds: a 200 stream with a
        single ERROR event carrying 410 Expired, then the end, as the watch
        cache answers (a list answers the same with an HTTP 410).
        """
        self.cluster.store._history_limit = 2
        first = str(self.store.resource_version)
        for index in range(5):
            self.configmap(f"churn{index}")
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={first}")
        code, _, body, complete = connection.read()
        self.assertEqual((code, complete), (200, True))
        (event,) = [json.loads(line) for line in body.splitlines()]
        self.assertEqual(event["type"], "ERROR")
        self.assertEqual((event["object"]["code"], event["object"]["reason"]), (410, "Expired"))
        self.assertTrue(event["object"]["message"].startswith(f"too old resource version: {first}"))
        listed = Connection(self.cluster, self.token)
        listed.send("GET", f"/api/v1/namespaces/default/configmaps?resourceVersion={first}&resourceVersionMatch=Exact")
        self.assertEqual(listed.read()[0], 410)
        self.assertEqual(self.store.watch_count, 0)

    def test_invalid_resource_version(self) -> None:
        connection = self.watch("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc")
        code, _, body, _ = connection.read()
        self.assertEqual(code, 422)
        self.assertEqual(json.loads(body)["reason"], "Invalid")

    def test_single_object_and_legacy_path(self) -> None:
        self.configmap("one")
        self.configmap("two")
        connection = self.watch("/api/v1/watch/namespaces/default/configmaps/one?resourceVersion=0")
        self.assertEqual(self.summary(connection), ["ADDED one"])
        named = self.watch("/api/v1/namespaces/default/configmaps/two?watch=true")
        self.assertEqual(self.summary(named), ["ADDED two"])

    def test_table_watch(self) -> None:
        self.configmap("t1", table="yes")
        connection = self.watch(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0&labelSelector=table%3Dyes", Accept=TABLE
        )
        self.configmap("t2", table="yes")
        first, second = connection.events()
        self.assertEqual(first["object"]["kind"], "Table")
        self.assertTrue(first["object"]["columnDefinitions"])
        self.assertIsNone(second["object"]["columnDefinitions"])
        self.assertEqual(second["object"]["rows"][0]["cells"][0], "t2")


class SlowClientTests(WatchTestCase):
    def test_paused_events_are_held_then_sent(self) -> None:
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=600")
        connection.transport.producer.pauseProducing()
        self.configmap("held1")
        self.configmap("held2")
        self.assertEqual(connection.events(), [])
        connection.transport.producer.resumeProducing()
        self.assertEqual(self.summary(connection), ["ADDED held1", "ADDED held2"])

    def test_slow_watcher_is_closed(self) -> None:
        """
        A client that stops reading is not buffered for without bound: past
        the limit its watch ends cleanly and what it did not get is dropped
        (it resumes from its last resourceVersion).
        """
        self.patch(watchstream, "MAX_BUFFERED_EVENTS", 5)
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=600")
        self.configmap("seen")
        connection.transport.producer.pauseProducing()
        for index in range(6):
            self.configmap(f"dropped{index}")
        self.assertEqual(self.store.watch_count, 0)
        self.assertEqual(self.cluster.stats.slow_closed, 1)
        code, _, body, complete = connection.read()
        self.assertEqual((code, complete), (200, True))
        self.assertEqual([json.loads(line)["object"]["metadata"]["name"] for line in body.splitlines()], ["seen"])

    def test_slow_watcher_by_bytes(self) -> None:
        self.patch(watchstream, "MAX_BUFFERED_BYTES", 2000)
        connection = self.watch(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=600")
        connection.transport.producer.pauseProducing()
        for index in range(5):
            self.store.create(CONFIG_MAPS, "default", {"metadata": {"name": f"big{index}"}, "data": {"x": "y" * 600}})
        self.assertEqual(self.store.watch_count, 0)
        self.assertTrue(connection.read()[3])


class TunnelFlowControlTests(WatchTestCase):
    def test_rancher_pause_holds_events(self) -> None:
        """
        Rancher pausing the stream (remotedialer Pause) reaches the watch
        through TLS and HTTP: events wait in the watch, not in the tunnel,
        and flow again on Resume.
        """
        tunnel = TunnelHarness(self.cluster, self.clock)
        results = tunnel.request(
            f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={self.rv()}&timeoutSeconds=600",
            self.token,
        )
        self.assertEqual(results, [])
        self.configmap("before")
        tunnel.pump()
        self.assertIn(b'"name":"before"', b"".join(tunnel.chunks))
        tunnel.receive(frames.Pause(tunnel.conn_id))
        received = len(b"".join(tunnel.chunks))
        self.configmap("during")
        tunnel.pump()
        self.assertEqual(len(b"".join(tunnel.chunks)), received)
        self.assertEqual(tunnel.session._streams[tunnel.conn_id].outbox, type(tunnel.session._streams[tunnel.conn_id].outbox)())
        tunnel.receive(frames.Resume(tunnel.conn_id))
        tunnel.pump()
        self.assertIn(b'"name":"during"', b"".join(tunnel.chunks))

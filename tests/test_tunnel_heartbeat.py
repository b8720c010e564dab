"""
Tests for L{scaleagent.tunnel.heartbeat}: the shared keepalive wheel.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.tunnel.heartbeat import Heartbeat


class FakeTarget:
    """A tunnel that records what the heartbeat asks of it."""

    def __init__(self, name: str, clock: Clock, events: list[tuple[float, str, str]]) -> None:
        self.name = name
        self._clock = clock
        self.events = events
        self.last_received = clock.seconds()

    def hear(self) -> None:
        self.last_received = self._clock.seconds()

    def send_ping(self) -> None:
        self.events.append((self._clock.seconds(), self.name, "ping"))

    def send_sync_connections(self) -> None:
        self.events.append((self._clock.seconds(), self.name, "sync"))

    def heartbeat_expired(self, silence: float) -> None:
        self.events.append((self._clock.seconds(), self.name, f"expired {silence:.0f}"))


class HeartbeatTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.heartbeat = Heartbeat(self.clock)
        self.heartbeat.startService()
        self.addCleanup(self.heartbeat.stopService)
        self.events: list[tuple[float, str, str]] = []

    def target(self, name: str) -> FakeTarget:
        target = FakeTarget(name, self.clock, self.events)
        self.heartbeat.register(target)
        return target

    def run_for(self, seconds: int, keep_alive: tuple[FakeTarget, ...] = ()) -> None:
        """Advance one second at a time; C{keep_alive} hear a pong each second."""
        for _ in range(seconds):
            self.clock.advance(1)
            for target in keep_alive:
                target.hear()

    def of(self, name: str, what: str) -> list[float]:
        return [when for when, who, event in self.events if who == name and event.startswith(what)]

    def test_ping_every_five_seconds(self) -> None:
        target = self.target("a")
        self.run_for(30, keep_alive=(target,))
        pings = self.of("a", "ping")
        self.assertEqual(len(pings), 6)
        self.assertEqual([b - a for a, b in zip(pings, pings[1:])], [5.0] * 5)
        # First ping one full interval after registering, as in Go.
        self.assertEqual(pings[0], 5.0)

    def test_sync_connections_every_sixty_seconds(self) -> None:
        target = self.target("a")
        self.run_for(59, keep_alive=(target,))
        self.assertEqual(self.of("a", "sync"), [])
        self.run_for(125, keep_alive=(target,))
        syncs = self.of("a", "sync")
        self.assertEqual(len(syncs), 3)
        self.assertTrue(60 <= syncs[0] < 65)
        self.assertEqual([b - a for a, b in zip(syncs, syncs[1:])], [60.0, 60.0])

    def test_dead_peer_dropped_after_sixty_seconds_of_silence(self) -> None:
        target = self.target("a")
        self.run_for(59)
        self.assertEqual(self.of("a", "expired"), [])
        self.assertIn(target, self.heartbeat)
        self.run_for(6)
        expired = self.of("a", "expired")
        self.assertEqual(len(expired), 1)
        self.assertTrue(60 <= expired[0] <= 65)
        self.assertNotIn(target, self.heartbeat)
        self.assertEqual(self.heartbeat.stats.expired, 1)
        # Forgotten: no more pings.
        count = len(self.of("a", "ping"))
        self.run_for(20)
        self.assertEqual(len(self.of("a", "ping")), count)

    def test_pong_resets_silence(self) -> None:
        target = self.target("a")
        self.run_for(50)
        target.hear()
        self.run_for(50)
        self.assertEqual(self.of("a", "expired"), [])
        self.run_for(15)
        self.assertEqual(len(self.of("a", "expired")), 1)

    def test_spread_over_slots(self) -> None:
        """
        Twenty tunnels registered at once are pinged four per tick, not all
        in one tick.
        """
        targets = [self.target(str(i)) for i in range(20)]
        self.run_for(5, keep_alive=tuple(targets))
        per_second: dict[float, int] = {}
        for when, _, event in self.events:
            if event == "ping":
                per_second[when] = per_second.get(when, 0) + 1
        self.assertEqual(sorted(per_second.values()), [4, 4, 4, 4, 4])
        self.assertEqual(self.heartbeat.stats.pings_sent, 20)

    def test_unregister(self) -> None:
        target = self.target("a")
        self.heartbeat.unregister(target)
        self.heartbeat.unregister(target)
        self.run_for(70)
        self.assertEqual(self.events, [])
        self.assertEqual(self.heartbeat.stats.registered, 0)

    def test_missed_ticks_are_caught_up_once(self) -> None:
        """
        After the reactor stalled for 12 s every slot is visited once, not
        twice.
        """
        targets = [self.target(str(i)) for i in range(5)]
        self.clock.advance(12)
        for target in targets:
            self.assertEqual(len(self.of(target.name, "ping")), 1)

    def test_stop_stops_ticking(self) -> None:
        self.target("a")
        self.heartbeat.stopService()
        self.run_for(20)
        self.assertEqual(self.events, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_broken_target_does_not_stop_the_wheel(self) -> None:
        class Broken(FakeTarget):
            def send_ping(self) -> None:
                raise RuntimeError("boom")

        broken = Broken("broken", self.clock, self.events)
        self.heartbeat.register(broken)
        good = self.target("good")
        with capturedLogs() as events:
            self.run_for(10, keep_alive=(broken, good))
        self.assertEqual(len(self.of("good", "ping")), 2)
        self.assertEqual(self.heartbeat.stats.errors, 2)
        self.assertTrue(any(event.get("log_failure") for event in events))
        self.flushLoggedErrors(RuntimeError)

    def test_unregistered_during_ping_is_not_resurrected(self) -> None:
        heartbeat = self.heartbeat

        class Closing(FakeTarget):
            def send_ping(self) -> None:
                super().send_ping()
                heartbeat.unregister(self)

        target = Closing("closing", self.clock, self.events)
        heartbeat.register(target)
        self.run_for(200, keep_alive=(target,))
        self.assertEqual(len(self.of("closing", "ping")), 1)
        self.assertNotIn(target, heartbeat)

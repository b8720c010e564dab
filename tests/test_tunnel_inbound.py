"""
Tests for L{scaleagent.tunnel.inbound}: a budget of work per reactor turn,
order kept, busy tunnels held and released.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.trial.unittest import SynchronousTestCase

from scaleagent.tunnel.inbound import InboundScheduler


class TurnClock:
    """
    Zero-delay calls as the reactor runs them: a call made during a turn
    waits for the next one (L{twisted.internet.task.Clock} would run it in
    the same C{advance}).
    """

    def __init__(self) -> None:
        self.pending: list[Callable[[], Any]] = []

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Any:
        assert delay == 0
        self.pending.append(lambda: f(*args))
        return object()

    def seconds(self) -> float:
        return 0.0

    def turn(self) -> None:
        calls, self.pending = self.pending, []
        for call in calls:
            call()


class FakeTimer:
    """A monotonic clock that handling advances by a set cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Target:
    def __init__(self, timer: FakeTimer, name: str, log: list[tuple[str, bytes]], cost: float = 0.01) -> None:
        self.timer = timer
        self.name = name
        self.log = log
        self.cost = cost
        self.reading = True
        self.fail = False
        self.waits: list[float] = []

    def handle_message(self, payload: bytes, waited: float) -> None:
        self.waits.append(waited)
        self.timer.now += self.cost
        self.log.append((self.name, payload))
        if self.fail:
            raise RuntimeError("boom")

    def pause_reading(self) -> None:
        assert self.reading
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading
        self.reading = True


class InboundSchedulerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = TurnClock()
        self.timer = FakeTimer()
        self.log: list[tuple[str, bytes]] = []
        self.scheduler = InboundScheduler(self.clock, budget=0.025, high_water=10, timer=self.timer)

    def target(self, name: str, cost: float = 0.01) -> Target:
        return Target(self.timer, name, self.log, cost)

    def test_quiet_process_handles_at_once(self) -> None:
        a = self.target("a", cost=0.001)
        for i in range(5):
            self.scheduler.deliver(a, b"%d" % i)
        self.assertEqual([p for _, p in self.log], [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(self.scheduler.stats.deferred, 0)

    def test_work_beyond_the_budget_waits_for_the_next_turn(self) -> None:
        a = self.target("a")
        for i in range(7):
            self.scheduler.deliver(a, b"%d" % i)
        # 0.01 s each, 0.025 s per turn: three fit (the third starts under
        # budget), the rest wait.
        self.assertEqual(len(self.log), 3)
        self.assertEqual(self.scheduler.stats.queued, 4)
        self.clock.turn()
        self.assertEqual(len(self.log), 6)
        self.clock.turn()
        self.assertEqual([p for _, p in self.log], [b"%d" % i for i in range(7)])
        self.assertEqual(self.scheduler.stats.queued, 0)
        self.assertEqual(self.scheduler.stats.queued_bytes, 0)
        self.assertEqual(self.scheduler.stats.slices, 2)

    def test_messages_carry_how_long_they_waited(self) -> None:
        a = self.target("a")
        for _ in range(4):
            self.scheduler.deliver(a, b"x")
        self.timer.now += 7.0
        self.clock.turn()
        # Three at once, the fourth queued at 0.03 and handled at 7.03.
        self.assertEqual(a.waits[:3], [0.0, 0.0, 0.0])
        self.assertAlmostEqual(a.waits[3], 7.0)

    def test_order_is_kept_across_tunnels(self) -> None:
        a, b = self.target("a"), self.target("b", cost=0.0)
        for i in range(4):
            self.scheduler.deliver(a, b"a%d" % i)
        # b's work is free, but it arrived after a's waiting messages.
        self.scheduler.deliver(b, b"b0")
        self.clock.turn()
        self.assertEqual(self.log, [("a", b"a0"), ("a", b"a1"), ("a", b"a2"), ("a", b"a3"), ("b", b"b0")])

    def test_budget_is_renewed_each_turn(self) -> None:
        a = self.target("a")
        for i in range(3):
            self.scheduler.deliver(a, b"x")
        self.scheduler.deliver(a, b"y")
        self.assertEqual(len(self.log), 3)
        self.clock.turn()
        self.assertEqual(len(self.log), 4)
        # A fresh turn: handled at once again.
        self.scheduler.deliver(a, b"z")
        self.assertEqual(self.log[-1], ("a", b"z"))
        self.clock.turn()
        self.assertEqual(self.clock.pending, [])

    def test_busy_tunnel_is_held_until_its_backlog_is_worked_off(self) -> None:
        a, b = self.target("a"), self.target("b")
        for _ in range(3):
            self.scheduler.deliver(a, b"x")
        self.scheduler.deliver(a, b"123456")
        self.assertTrue(a.reading)
        self.scheduler.deliver(a, b"123456")  # 12 bytes waiting > 10
        self.assertFalse(a.reading)
        self.assertTrue(self.scheduler.is_held(a))
        self.assertEqual(self.scheduler.stats.held, 1)
        self.scheduler.deliver(b, b"y")
        self.assertTrue(b.reading)
        self.clock.turn()
        # 6 bytes left (≤ half the high water) once the first is taken.
        self.assertTrue(a.reading)
        self.assertFalse(self.scheduler.is_held(a))
        self.assertEqual((self.scheduler.stats.held, self.scheduler.stats.holds), (0, 1))

    def test_forgotten_tunnel_loses_what_waits(self) -> None:
        a, b = self.target("a"), self.target("b")
        for _ in range(3):
            self.scheduler.deliver(a, b"x")
        self.scheduler.deliver(a, b"lost1")
        self.scheduler.deliver(a, b"lost2-too-long")
        self.scheduler.deliver(b, b"kept")
        self.assertFalse(a.reading)
        self.scheduler.forget(a)
        self.assertFalse(self.scheduler.is_held(a))
        self.clock.turn()
        self.assertNotIn(("a", b"lost1"), self.log)
        self.assertEqual(self.log[-1], ("b", b"kept"))
        # Never resumed: the connection is gone.
        self.assertFalse(a.reading)
        self.assertEqual(self.scheduler.stats.queued_bytes, 0)

    def test_a_failing_message_does_not_stop_the_others(self) -> None:
        a, b = self.target("a"), self.target("b")
        a.fail = True
        for _ in range(3):
            self.scheduler.deliver(b, b"x")
        self.scheduler.deliver(a, b"bad")
        self.scheduler.deliver(b, b"after")
        self.clock.turn()
        self.assertEqual(self.log[-2:], [("a", b"bad"), ("b", b"after")])
        self.assertEqual(self.scheduler.stats.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_one_timer_per_turn(self) -> None:
        a = self.target("a", cost=0.001)
        for _ in range(10):
            self.scheduler.deliver(a, b"x")
        self.assertEqual(len(self.clock.pending), 1)

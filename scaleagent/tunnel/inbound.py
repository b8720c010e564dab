# -*- test-case-name: tests.test_tunnel_inbound -*-
"""
Bounded work per reactor turn for what arrives through the tunnels.

Everything Rancher sends down a tunnel is handled on the reactor thread: a
Connect starts a TLS handshake, a Data frame can carry a LIST that takes
milliseconds to render. Twisted reads every readable socket once per turn
and, left alone, handles all it read before timers run. When Rancher
restarts, or releases its controllers onto a thousand clusters at once,
each tunnel's read holds dozens of such requests: one turn then lasts
minutes, no tunnel sends its Ping, Rancher's 60 s read deadline closes them
all, and every reconnect brings the same burst back.

L{InboundScheduler} is shared by every tunnel of the process. A message is
handled at once while the current turn has spent less than its budget;
after that, messages wait in one FIFO queue that a zero-delay timer drains,
a budget's worth per turn, so timers (the heartbeat's Pings) and writes run
between slices. A tunnel with more than C{high_water} bytes waiting stops
being read (TCP pushes back on Rancher) until its backlog is worked off;
while it is held like that its silence is ours, not Rancher's, and does not
count against it (L{TunnelProtocol.last_received}).

Order is kept: once anything waits, every later message waits behind it,
so a stream's frames are never reordered. Each message is handed over with
how long it waited, so that work its sender has given up on can be shed
(L{TunnelProtocol.handle_message}).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Optional, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: CPU-bound work handled per reactor turn before the rest waits. Small
#: enough that Pings, watch events and writes keep flowing under a burst;
#: large enough that a quiet process handles everything at once.
BUDGET = 0.02

#: Bytes waiting for one tunnel before its socket stops being read.
HIGH_WATER = 64 * 1024


def _weight(payload: bytes) -> int:
    # An empty message still counts, so that a tunnel with messages waiting
    # always has an entry.
    return len(payload) + 1


class InboundTarget(Protocol):
    """What the scheduler needs of a tunnel."""

    def handle_message(self, payload: bytes, waited: float) -> None:
        """
        Hand one binary message to the tunnel's session; it arrived
        C{waited} seconds ago.
        """

    def pause_reading(self) -> None:
        """Stop reading the tunnel's socket."""

    def resume_reading(self) -> None:
        """Read the tunnel's socket again."""


class InboundStats:
    """
    Counters for metrics.

    @ivar queued: messages waiting now.
    @ivar queued_bytes: their payload bytes.
    @ivar deferred: messages that had to wait, since creation.
    @ivar slices: turns that drained the queue, since creation.
    @ivar held: tunnels not being read now.
    @ivar holds: times a tunnel stopped being read, since creation.
    @ivar errors: messages whose handling raised.
    """

    __slots__ = ("queued", "queued_bytes", "deferred", "slices", "held", "holds", "errors")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class InboundScheduler:
    """
    Hands the tunnels' binary messages to their sessions, at most about
    C{budget} seconds of work per reactor turn.

    @param clock: the reactor; only C{callLater(0, …)} is used, to get
        back control after the reactor's other work.
    @param budget: seconds of handling per turn (wall clock, measured with
        C{timer}).
    @param high_water: bytes waiting for one tunnel before it is held.
    @param timer: a monotonic clock in seconds (injectable for tests).
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        budget: float = BUDGET,
        high_water: int = HIGH_WATER,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._clock = clock
        self._budget = budget
        self._high_water = high_water
        self._timer = timer
        self._queue: deque[tuple[InboundTarget, bytes, float]] = deque()
        # Weight (L{_weight}) waiting per tunnel; a tunnel that is forgotten
        # loses its entry, and its messages still in the queue are skipped.
        self._waiting: dict[InboundTarget, int] = {}
        self._held: set[InboundTarget] = set()
        self._spent = 0.0
        self._next_turn: Optional[IDelayedCall] = None
        self.stats = InboundStats()

    def deliver(self, target: InboundTarget, payload: bytes) -> None:
        """
        C{target} received C{payload}: handle it now if this turn has
        budget left and nothing is waiting, otherwise queue it.
        """
        if not self._queue and self._spent < self._budget:
            self._handle(target, payload, 0.0)
            return
        self._queue.append((target, payload, self._timer()))
        waiting = self._waiting.get(target, 0) + _weight(payload)
        self._waiting[target] = waiting
        self.stats.deferred += 1
        self.stats.queued = len(self._queue)
        self.stats.queued_bytes += len(payload)
        if waiting > self._high_water and target not in self._held:
            self._held.add(target)
            self.stats.held = len(self._held)
            self.stats.holds += 1
            target.pause_reading()
        self._schedule()

    def is_held(self, target: InboundTarget) -> bool:
        """Whether C{target}'s socket is not being read because of its backlog."""
        return target in self._held

    def forget(self, target: InboundTarget) -> None:
        """
        C{target} is gone (connection lost): drop what waits for it. Its
        socket is not resumed.
        """
        self._waiting.pop(target, None)
        self._held.discard(target)
        self.stats.held = len(self._held)

    def _handle(self, target: InboundTarget, payload: bytes, waited: float) -> None:
        start = self._timer()
        try:
            target.handle_message(payload, waited)
        except Exception:
            # The session contains its own errors; this is a last resort so
            # that one tunnel cannot stop the queue for the others.
            self.stats.errors += 1
            self._log.failure("handling a tunnel message failed")
        finally:
            self._spent += self._timer() - start
            self._schedule()

    def _schedule(self) -> None:
        # One timer for the whole process: it starts the next turn's budget
        # and drains what waits.
        if self._next_turn is None:
            self._next_turn = self._clock.callLater(0, self._turn)

    def _turn(self) -> None:
        self._next_turn = None
        self._spent = 0.0
        if not self._queue:
            return
        self.stats.slices += 1
        queue = self._queue
        while queue:
            target, payload, queued_at = queue.popleft()
            self.stats.queued_bytes -= len(payload)
            waiting = self._waiting.get(target)
            if waiting is None:
                continue  # forgotten
            waiting -= _weight(payload)
            if waiting:
                self._waiting[target] = waiting
            else:
                del self._waiting[target]
            if target in self._held and waiting <= self._high_water // 2:
                self._held.discard(target)
                self.stats.held = len(self._held)
                target.resume_reading()
            self._handle(target, payload, self._timer() - queued_at)
            # Checked after, not before: at least one message per turn.
            if self._spent >= self._budget:
                break
        self.stats.queued = len(queue)
        if queue:
            self._schedule()

# -*- test-case-name: tests.test_tunnel_heartbeat -*-
"""
One timer that keeps every tunnel of the process alive.

The remotedialer client pings every 5 s with an I{empty} websocket Ping,
sends SyncConnections every 60 s, and gives up on a session after 60 s
without a Pong (agent-protocol §3.7, §3.8). autobahn's own auto-ping cannot
do this (it sends a random payload and only accepts a Pong echoing it, while
Rancher answers with an empty one), and one timer per tunnel would mean
20,000 timers. So each open tunnel registers with the process's
L{Heartbeat}, which runs one C{LoopingCall} ticking every second over a wheel
of five one-second slots: a tunnel sits in one slot and is visited every
five seconds, and each tick only visits a fifth of the tunnels.

On a visit a tunnel that has received nothing (no Pong, no message) for
L{Heartbeat.silence_limit} seconds is told it has expired and forgotten;
otherwise it is pinged, and every L{Heartbeat.sync_interval} seconds also
asked to send SyncConnections. Visits happen at slot granularity, so the
dead-peer check fires up to one ping interval after the limit.
"""

from __future__ import annotations

from typing import Optional, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

#: remotedialer's PingWriteInterval.
PING_INTERVAL = 5.0

#: remotedialer's SyncConnectionsInterval.
SYNC_INTERVAL = 60.0

#: remotedialer's PingWaitDuration: the client's read deadline.
SILENCE_LIMIT = 60.0


class HeartbeatTarget(Protocol):
    """
    What the heartbeat needs of an open tunnel.

    @ivar last_received: clock time at which anything (a Pong, a message, the
        handshake response) last arrived from Rancher.
    """

    last_received: float

    def send_ping(self) -> None:
        """Send a websocket Ping with an empty payload."""

    def send_sync_connections(self) -> None:
        """Have the session send SyncConnections."""

    def heartbeat_expired(self, silence: float) -> None:
        """
        Nothing arrived for C{silence} seconds: drop the connection. The
        target has already been unregistered.
        """


class HeartbeatStats:
    """
    Counters for metrics.

    @ivar registered: tunnels currently registered.
    @ivar pings_sent: Pings sent since creation.
    @ivar syncs_sent: SyncConnections requested since creation.
    @ivar expired: tunnels dropped for silence since creation.
    @ivar ticks: slots visited since creation.
    @ivar errors: targets that raised while being visited.
    """

    __slots__ = ("registered", "pings_sent", "syncs_sent", "expired", "ticks", "errors")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Heartbeat(Service):
    """
    The shared keepalive wheel; start and stop it with the daemon's services.

    @param clock: the reactor (or a C{task.Clock} in tests).
    @param ping_interval: seconds between Pings to one tunnel; also the
        length of the wheel.
    @param sync_interval: seconds between SyncConnections of one tunnel.
    @param silence_limit: seconds without anything received before a
        tunnel is dropped.
    @param slot_seconds: tick length; the wheel has
        C{ping_interval / slot_seconds} slots.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        ping_interval: float = PING_INTERVAL,
        sync_interval: float = SYNC_INTERVAL,
        silence_limit: float = SILENCE_LIMIT,
        slot_seconds: float = 1.0,
    ) -> None:
        if slot_seconds <= 0 or ping_interval < slot_seconds:
            raise ValueError("need 0 < slot_seconds <= ping_interval")
        self._clock = clock
        self.ping_interval = ping_interval
        self.sync_interval = sync_interval
        self.silence_limit = silence_limit
        self.slot_seconds = slot_seconds
        # Each slot maps a target to the clock time of its next
        # SyncConnections; dicts keep registration order, so visits are
        # deterministic.
        self._slots: list[dict[HeartbeatTarget, float]] = [
            {} for _ in range(max(1, round(ping_interval / slot_seconds)))
        ]
        self._slot_of: dict[HeartbeatTarget, int] = {}
        self._cursor = 0
        self._loop: Optional[LoopingCall] = None
        self.stats = HeartbeatStats()

    # -- registration -----------------------------------------------------

    def register(self, target: HeartbeatTarget) -> None:
        """
        Start keeping C{target} alive; its first Ping goes out within one
        ping interval, its first SyncConnections one sync interval from now.
        Registering twice is harmless.
        """
        if target in self._slot_of:
            return
        # The least loaded slot; on a tie the one visited last, so that a
        # tunnel that opens alone is first pinged a full interval later,
        # as the Go client does.
        order = [(self._cursor + offset) % len(self._slots) for offset in range(len(self._slots))]
        slot = min(reversed(order), key=lambda index: len(self._slots[index]))
        self._slots[slot][target] = self._clock.seconds() + self.sync_interval
        self._slot_of[target] = slot
        self.stats.registered = len(self._slot_of)

    def unregister(self, target: HeartbeatTarget) -> None:
        """Stop visiting C{target}; unknown targets are ignored."""
        slot = self._slot_of.pop(target, None)
        if slot is not None:
            del self._slots[slot][target]
            self.stats.registered = len(self._slot_of)

    def __bool__(self) -> bool:
        # An idle heartbeat is still a heartbeat: `heartbeat or default`
        # must not replace one that has no tunnels yet.
        return True

    def __contains__(self, target: object) -> bool:
        return target in self._slot_of

    def __len__(self) -> int:
        return len(self._slot_of)

    # -- service ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall.withCount(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.slot_seconds, now=False)

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        return None

    # -- the wheel --------------------------------------------------------

    def _tick(self, elapsed: int) -> None:
        # A busy reactor may skip ticks; LoopingCall then reports how many
        # intervals passed, and the slots they covered are visited now
        # (each at most once).
        for _ in range(min(elapsed, len(self._slots))):
            slot = self._slots[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._slots)
            self.stats.ticks += 1
            if slot:
                self._visit(slot)

    def _visit(self, slot: dict[HeartbeatTarget, float]) -> None:
        now = self._clock.seconds()
        for target, next_sync in list(slot.items()):
            if target not in slot:
                # Unregistered by an earlier target's callback.
                continue
            try:
                silence = now - target.last_received
                if silence >= self.silence_limit:
                    self.unregister(target)
                    self.stats.expired += 1
                    target.heartbeat_expired(silence)
                    continue
                target.send_ping()
                self.stats.pings_sent += 1
                if now >= next_sync and target in slot:
                    # Keep the cadence, but never try to catch up on
                    # intervals a stalled reactor missed. (The membership
                    # test: a Ping may have found the connection gone.)
                    slot[target] = max(next_sync + self.sync_interval, now)
                    self.stats.syncs_sent += 1
                    target.send_sync_connections()
            except Exception:
                # One broken tunnel must not stop the wheel for the others.
                self.stats.errors += 1
                self._log.failure("heartbeat: visiting {target!r} failed", target=target)

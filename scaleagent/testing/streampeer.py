# -*- test-case-name: tests.test_streampeer -*-
"""
The tunnel side of the stand-in's stream-test protocol, as a Twisted
protocol that can sit behind any transport: a remotedialer stream of our
own tunnel client (what the end-to-end tests route C{127.0.0.1:7777} to), a
TCP connection, or a C{StringTransport} in unit tests.

The protocol (C{tests/standin/streamtest.go} is the reference): the dialling
side writes a 17-byte header, C{op || N (uint64 BE) || seed (uint64 BE)},
where op is C{E} (echo), C{S} (source) or C{K} (sink), and
C{payload(seed, N)} is the first N bytes of
C{sha256(seed_be8 || 0_be8) || sha256(seed_be8 || 1_be8) || ...}.

  - B{echo}: every payload byte that arrives is written back (the header is
    not), and once N bytes are echoed the peer closes.
  - B{source}: the peer writes C{payload(seed, N)} and closes. It is a pull
    producer, so it writes only when the transport asks for more: a
    transport paused by flow control (remotedialer Pause, a full socket)
    simply stops asking.
  - B{sink}: the peer reads the N payload bytes, then writes their 32-byte
    SHA-256 and closes.

Closing is always C{loseConnection}: remotedialer has no half-close, and
the side that closes is the one with nothing more to read, so whatever was
written before the close must arrive before the end of the stream.

Flow control, both ways:

  - Writing: an echo registers itself as a push producer; when the
    transport pauses it (the dialling side paused the stream, or the
    websocket's socket is full) it stops I{reading}, so that it never
    buffers more than it was sent. A source is a pull producer (above).
  - Reading, the B{slow reader}: a L{SlowPolicy} may pick streams (by their
    header) to read slowly. Such a stream I{stalls} (pauses its transport)
    right after the header and asks its L{Gate} when to go on; reading
    resumes when the gate's Deferred fires. With a C{tail}, it stalls once
    more when no more than C{tail} payload bytes are left, so that the
    buffer behind it drains while the stream is still open: a remotedialer
    session that paused the sender must then send Resume, even when the
    sender had written everything before the Pause reached it. Nothing here
    waits on a timer: the gate decides, e.g. once the tunnel's session has
    sent Pause (or Resume) for the stream, or when a test releases a
    L{HeldGate}.

Every stream leaves a L{StreamRecord} with its factory: the header, the
bytes that went each way, whether the incoming bytes were exactly the
expected payload, the flow-control events and how the stream ended, so
that tests can assert bytes, ids and states on this side too.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Callable, Collection, Optional

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

#: Length of the header the dialling side writes first.
STREAM_HEADER_LEN = 17

#: Length of a sink's answer (a SHA-256 digest).
DIGEST_LEN = 32

#: Op byte -> op name, as the stand-in's control API names them.
OPS = {b"E": "echo", b"S": "source", b"K": "sink"}
_OP_BYTES = {name: byte for byte, name in OPS.items()}

#: Bytes a source hands its transport per request for more (the
#: remotedialer session cuts them into 32 KiB Data messages).
SOURCE_CHUNK = 64 * 1024

_BLOCK = hashlib.sha256().digest_size
_SEED = struct.Struct(">Q")


@dataclass(frozen=True)
class StreamHeader:
    """
    The header of one test stream.

    @ivar op: C{echo}, C{source} or C{sink}.
    @ivar length: N, the payload length.
    @ivar seed: the payload's seed.
    """

    op: str
    length: int
    seed: int

    @classmethod
    def parse(cls, data: bytes) -> "StreamHeader":
        """
        @raise ValueError: if C{data} is not a header.
        """
        if len(data) != STREAM_HEADER_LEN or data[:1] not in OPS:
            raise ValueError(f"not a stream-test header: {bytes(data[:STREAM_HEADER_LEN])!r}")
        length, seed = struct.unpack(">QQ", data[1:])
        return cls(OPS[data[:1]], length, seed)

    def encode(self) -> bytes:
        return _OP_BYTES[self.op] + struct.pack(">QQ", self.length, self.seed)


class Payload:
    """
    C{payload(seed, ·)} produced incrementally: C{read(n)} returns the next
    C{n} bytes.
    """

    def __init__(self, seed: int) -> None:
        self._seed = _SEED.pack(seed)
        self._counter = 0
        self._pending = b""

    def read(self, n: int) -> bytes:
        if n <= len(self._pending):
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        missing = n - len(self._pending)
        blocks = -(-missing // _BLOCK)
        seed, start = self._seed, self._counter
        pack, sha256 = _SEED.pack, hashlib.sha256
        generated = b"".join(
            [sha256(seed + pack(counter)).digest() for counter in range(start, start + blocks)]
        )
        self._counter += blocks
        data = self._pending + generated
        out, self._pending = data[:n], data[n:]
        return out


def payload(seed: int, length: int) -> bytes:
    """@return: C{payload(seed, length)}."""
    return Payload(seed).read(length)


def payload_digest(seed: int, length: int, chunk: int = 1 << 20) -> bytes:
    """@return: the SHA-256 of C{payload(seed, length)}, what a sink answers."""
    digest = hashlib.sha256()
    source = Payload(seed)
    for start in range(0, length, chunk):
        digest.update(source.read(min(chunk, length - start)))
    return digest.digest()


@dataclass
class StreamRecord:
    """
    What one stream did, on the peer's side.

    @ivar host: the transport's C{getHost()} (for a tunnelled stream a
        C{TunnelAddress}, which names the address and the connection id).
    @ivar header: the header, once it has arrived.
    @ivar received: payload bytes received (after the header).
    @ivar sent: bytes written.
    @ivar digest: SHA-256 of the payload received (echo, sink), once all of
        it has arrived.
    @ivar mismatch_at: offset of the first received byte that differs from
        C{payload(seed, ·)}, if any (only checked when verifying).
    @ivar error: a protocol violation the peer saw (a bad header, bytes
        beyond N, a failed gate).
    @ivar stalls: times the slow reader stalled (paused its transport and
        asked its gate).
    @ivar released: times its gate let it go on.
    @ivar write_pauses: times the transport paused an echo's writing.
    @ivar completed: the peer finished its part and closed the stream.
    @ivar end: how the stream ended: C{"EOF"} for a clean close (by either
        side), else the reason; L{None} while it is open.
    """

    host: Any = None
    header: Optional[StreamHeader] = None
    received: int = 0
    sent: int = 0
    digest: Optional[bytes] = None
    mismatch_at: Optional[int] = None
    error: Optional[str] = None
    stalls: int = 0
    released: int = 0
    write_pauses: int = 0
    completed: bool = False
    end: Optional[str] = None

    @property
    def ok(self) -> bool:
        """The peer did its part without fault and the stream closed cleanly."""
        return (
            self.completed and self.error is None and self.mismatch_at is None and self.end == "EOF"
        )


#: Decides when a slow reader may go on: called with the stalled
#: L{StreamPeer} (its C{record.stalls} says which stall); reading resumes when
#: the returned Deferred fires (at once for L{None}).
Gate = Callable[["StreamPeer"], Optional["Deferred[Any]"]]


@dataclass(frozen=True)
class SlowReading:
    """
    How one stream reads slowly.

    @ivar gate: asked at every stall when to go on.
    @ivar tail: if set, stall again once, when at most this many payload
        bytes are left to read (and some are).
    """

    gate: Gate
    tail: Optional[int] = None


#: Picks the streams that read slowly: header -> how, or L{None}.
SlowPolicy = Callable[[StreamHeader], Optional[SlowReading]]


def slow_reader(
    gate: Gate,
    ops: Collection[str] = ("sink", "echo"),
    min_length: int = 0,
    tail: Optional[int] = None,
) -> SlowPolicy:
    """
    A L{SlowPolicy}: streams of the given ops whose payload is at least
    C{min_length} bytes read slowly, released by C{gate}, with an optional
    C{tail} stall (see L{SlowReading}).
    """
    reading = SlowReading(gate, tail)

    def policy(header: StreamHeader) -> Optional[SlowReading]:
        if header.op in ops and header.length >= min_length:
            return reading
        return None

    return policy


class HeldGate:
    """
    A L{Gate} that holds every stream until the test releases it: streams
    stay open, paused, for as long as the test wants.

    @ivar held: the peers waiting, in arrival order.
    """

    def __init__(self) -> None:
        self.held: list[StreamPeer] = []
        self._releases: list[Deferred[None]] = []
        self._waiters: list[tuple[int, Deferred[list[StreamPeer]]]] = []
        self._released = False

    def __call__(self, peer: "StreamPeer") -> Optional[Deferred[None]]:
        self.held.append(peer)
        self._notify()
        if self._released:
            return None
        release: Deferred[None] = Deferred()
        self._releases.append(release)
        return release

    def when_held(self, count: int) -> Deferred[list["StreamPeer"]]:
        """@return: a Deferred firing with the peers once C{count} are held."""
        waiter: Deferred[list[StreamPeer]] = Deferred()
        self._waiters.append((count, waiter))
        self._notify()
        return waiter

    def release(self) -> None:
        """Let every held stream go on, and any later one pass at once."""
        self._released = True
        releases, self._releases = self._releases, []
        for release in releases:
            release.callback(None)

    def _notify(self) -> None:
        ready = [(n, d) for n, d in self._waiters if len(self.held) >= n]
        self._waiters = [(n, d) for n, d in self._waiters if len(self.held) < n]
        for _, waiter in ready:
            waiter.callback(list(self.held))


@implementer(IPullProducer)
class _SourceProducer:
    """Writes C{payload(seed, N)} a chunk at a time, when asked for more."""

    def __init__(self, peer: "StreamPeer", header: StreamHeader, chunk: int) -> None:
        self._peer = peer
        self._payload = Payload(header.seed)
        self._left = header.length
        self._chunk = chunk
        self._stopped = False

    def resumeProducing(self) -> None:
        if self._stopped or self._left <= 0:
            return
        size = min(self._chunk, self._left)
        self._left -= size
        self._peer._write(self._payload.read(size))
        if self._left == 0:
            self._stopped = True
            self._peer.transport.unregisterProducer()
            self._peer._finish()

    def stopProducing(self) -> None:
        self._stopped = True


@implementer(IPushProducer)
class StreamPeer(Protocol):
    """
    One stream of the stream-test protocol (see the module docstring).

    As a push producer it is registered, for echo streams only, on its own
    transport: C{pauseProducing} means "stop writing", which an echo obeys by
    no longer reading.

    @ivar record: the L{StreamRecord}.
    """

    _log = Logger()

    def __init__(
        self,
        record: StreamRecord,
        slow: Optional[SlowPolicy] = None,
        verify: bool = True,
        source_chunk: int = SOURCE_CHUNK,
        on_end: Optional[Callable[[StreamRecord], None]] = None,
    ) -> None:
        self.record = record
        self._slow = slow
        self._verify = verify
        self._source_chunk = source_chunk
        self._on_end = on_end
        self._head = b""
        self._expected: Optional[Payload] = None
        self._hash = hashlib.sha256()
        # Why reading is paused ("slow", "writes"); the transport is paused
        # while this is not empty.
        self._read_pauses: set[str] = set()
        self._producing_for_echo = False
        self._slow_reading: Optional[SlowReading] = None
        self._tail_stalled = False
        self._finished = False
        self._lost = False

    # -- connection -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.record.host = self.transport.getHost()

    def dataReceived(self, data: bytes) -> None:
        header = self.record.header
        if header is None:
            self._head += data
            if len(self._head) < STREAM_HEADER_LEN:
                return
            head, rest = self._head[:STREAM_HEADER_LEN], self._head[STREAM_HEADER_LEN:]
            self._head = b""
            try:
                header = StreamHeader.parse(head)
            except ValueError as e:
                self._violation(str(e))
                self.transport.abortConnection()
                return
            self._start(header)
            if rest:
                self._payload_received(rest)
            return
        self._payload_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if reason.check(ConnectionDone):
            self.record.end = "EOF"
        else:
            # The transport's own words (a remotedialer Error text), not
            # Twisted's sentence around them.
            args = getattr(reason.value, "args", ())
            self.record.end = (
                " ".join(str(arg) for arg in args) or reason.getErrorMessage() or "lost"
            )
        if self._on_end is not None:
            self._on_end(self.record)

    # -- the three ops ----------------------------------------------------------

    def _start(self, header: StreamHeader) -> None:
        self.record.header = header
        if self._verify:
            self._expected = Payload(header.seed)
        slow_reading = self._slow(header) if self._slow is not None else None
        if header.op == "echo" and header.length:
            self._producing_for_echo = True
            self.transport.registerProducer(self, True)
        elif header.op == "source":
            if header.length == 0:
                self._finish()
                return
            self.transport.registerProducer(
                _SourceProducer(self, header, self._source_chunk), False
            )
        elif header.length == 0:
            self._finish()
            return
        if slow_reading is not None:
            self._slow_reading = slow_reading
            self._stall()

    def _payload_received(self, data: bytes) -> None:
        header = self.record.header
        assert header is not None
        if header.op == "source" or self._finished:
            self._violation(f"{len(data)} unexpected bytes after the payload")
            return
        wanted = header.length - self.record.received
        chunk = data[:wanted] if len(data) > wanted else data
        if self._expected is not None:
            expected = self._expected.read(len(chunk))
            if chunk != expected and self.record.mismatch_at is None:
                offset = next(i for i, (a, b) in enumerate(zip(chunk, expected)) if a != b)
                self.record.mismatch_at = self.record.received + offset
        self._hash.update(chunk)
        self.record.received += len(chunk)
        if header.op == "echo":
            self._write(chunk)
        if self.record.received == header.length:
            self.record.digest = self._hash.digest()
            self._finish()
        elif self._tail_due():
            self._tail_stalled = True
            self._stall()
        if len(data) > len(chunk):
            self._violation(f"{len(data) - len(chunk)} unexpected bytes after the payload")

    def _write(self, data: bytes) -> None:
        self.record.sent += len(data)
        self.transport.write(data)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self.record.completed = True
        header = self.record.header
        assert header is not None
        if self._producing_for_echo:
            self._producing_for_echo = False
            self.transport.unregisterProducer()
        if header.op == "sink":
            if self.record.digest is None:
                self.record.digest = self._hash.digest()
            self._write(self.record.digest)
        self.transport.loseConnection()

    def _violation(self, text: str) -> None:
        if self.record.error is None:
            self.record.error = text
        self._log.warn("stream peer: {error}", error=text)

    # -- reading slowly -----------------------------------------------------------

    def _pause_reading(self, why: str) -> None:
        if not self._read_pauses and self._transport_usable():
            self.transport.pauseProducing()
        self._read_pauses.add(why)

    def _resume_reading(self, why: str) -> None:
        if why not in self._read_pauses:
            return
        self._read_pauses.discard(why)
        if not self._read_pauses and self._transport_usable():
            # May deliver what was held back at once, re-entering
            # dataReceived: nothing may follow this call.
            self.transport.resumeProducing()

    def _transport_usable(self) -> bool:
        # Once closed (by us or the other side) there is nothing left to
        # throttle, and some transports refuse to be paused or resumed.
        return not self._lost and not self._finished

    def _tail_due(self) -> bool:
        slow_reading, header = self._slow_reading, self.record.header
        if slow_reading is None or slow_reading.tail is None or header is None:
            return False
        # Only once the first stall is over: a transport that delivers while
        # paused must not stack stalls.
        return (
            not self._tail_stalled
            and "slow" not in self._read_pauses
            and header.length - self.record.received <= slow_reading.tail
        )

    def _stall(self) -> None:
        assert self._slow_reading is not None
        self.record.stalls += 1
        self._pause_reading("slow")
        released = maybeDeferred(self._slow_reading.gate, self)

        def go_on(result: object) -> None:
            self.record.released += 1
            self._resume_reading("slow")

        def gate_failed(failure: Failure) -> None:
            # Read on anyway, so the stream still ends and the test sees
            # the failure in the record instead of a hang.
            self._violation(f"slow-reader gate failed: {failure.getErrorMessage()}")
            self._resume_reading("slow")

        released.addCallbacks(go_on, gate_failed)

    # -- IPushProducer: the transport throttles an echo's writing --------------------

    def pauseProducing(self) -> None:
        self.record.write_pauses += 1
        self._pause_reading("writes")

    def resumeProducing(self) -> None:
        self._resume_reading("writes")

    def stopProducing(self) -> None:
        # connectionLost follows.
        self._producing_for_echo = False


class StreamPeerFactory(Factory):
    """
    Builds a L{StreamPeer} per stream and keeps their records.

    @param slow: which streams read slowly (L{slow_reader}, or L{None}).
    @param verify: check that incoming payload bytes are exactly
        C{payload(seed, ·)} (costs generating them).
    @param source_chunk: bytes a source writes per request for more.
    @ivar records: one L{StreamRecord} per stream, in arrival order.
    @ivar most_open: the most streams that were open at once.
    """

    noisy = False

    def __init__(
        self,
        slow: Optional[SlowPolicy] = None,
        verify: bool = True,
        source_chunk: int = SOURCE_CHUNK,
    ) -> None:
        self.slow = slow
        self.verify = verify
        self.source_chunk = source_chunk
        self.records: list[StreamRecord] = []
        self.most_open = 0
        self._open = 0
        self._waiters: list[tuple[int, Deferred[list[StreamRecord]]]] = []

    def buildProtocol(self, addr: Any) -> StreamPeer:
        record = StreamRecord(host=addr)
        self.records.append(record)
        peer = StreamPeer(record, self.slow, self.verify, self.source_chunk, self._ended)
        peer.factory = self
        self._open += 1
        self.most_open = max(self.most_open, self._open)
        return peer

    @property
    def ended(self) -> list[StreamRecord]:
        """The records of the streams that have ended."""
        return [record for record in self.records if record.end is not None]

    def when_ended(self, count: int) -> Deferred[list[StreamRecord]]:
        """
        @return: a Deferred firing with the ended records once at least
            C{count} streams have ended.
        """
        waiter: Deferred[list[StreamRecord]] = Deferred()
        self._waiters.append((count, waiter))
        self._ended(None)
        return waiter

    def _ended(self, record: Optional[StreamRecord]) -> None:
        if record is not None:
            self._open -= 1
        ended = self.ended
        ready = [(n, d) for n, d in self._waiters if len(ended) >= n]
        self._waiters = [(n, d) for n, d in self._waiters if len(ended) < n]
        for _, waiter in ready:
            waiter.callback(list(ended))

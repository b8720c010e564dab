# -*- test-case-name: tests.test_streampeer -*-
"""
Tests for L{scaleagent.testing.streampeer}: the Python side of the
stand-in's stream-test protocol, first on a C{StringTransport}, then behind
our own remotedialer L{Session} (through L{StreamRouter} and
L{StreamTransport}) on a C{Clock}, where its slow reader must make the
session send Pause and Resume, and its source must obey them.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import MAX_BUFFER, Session
from scaleagent.remotedialer.transport import StreamRouter
from scaleagent.testing.streampeer import (
    DIGEST_LEN,
    STREAM_HEADER_LEN,
    HeldGate,
    Payload,
    StreamHeader,
    StreamPeer,
    StreamPeerFactory,
    StreamRecord,
    payload,
    payload_digest,
    slow_reader,
)
from tests.standin import StreamPayload, parse_stream_header

ADDRESS = "127.0.0.1:7777"


def header(op: str, length: int, seed: int = 1) -> bytes:
    return StreamHeader(op, length, seed).encode()


class PayloadTests(SynchronousTestCase):
    """
    The payload generator agrees with the protocol's definition and with
    the harness's generator.
    """

    def test_definition(self) -> None:
        blocks = b"".join(
            hashlib.sha256(struct.pack(">QQ", 2**64 - 1, i)).digest() for i in range(3)
        )
        self.assertEqual(payload(2**64 - 1, 70), blocks[:70])

    def test_incremental_reads_match_the_harness(self) -> None:
        ours, theirs = Payload(42), StreamPayload(42)
        for size in [0, 1, 31, 32, 33, 5, 4096, 100_001, 7]:
            self.assertEqual(ours.read(size), theirs.read(size), size)

    def test_digest(self) -> None:
        self.assertEqual(
            payload_digest(9, 300_000, chunk=4096), hashlib.sha256(payload(9, 300_000)).digest()
        )
        self.assertEqual(payload_digest(9, 0), hashlib.sha256(b"").digest())


class HeaderTests(SynchronousTestCase):
    def test_round_trip_with_the_harness_parser(self) -> None:
        for op in ("echo", "source", "sink"):
            encoded = StreamHeader(op, 2**40, 2**63 + 1).encode()
            self.assertEqual(len(encoded), STREAM_HEADER_LEN)
            self.assertEqual(parse_stream_header(encoded), (op, 2**40, 2**63 + 1))
            self.assertEqual(StreamHeader.parse(encoded), StreamHeader(op, 2**40, 2**63 + 1))

    def test_invalid(self) -> None:
        self.assertRaises(ValueError, StreamHeader.parse, b"X" + bytes(16))
        self.assertRaises(ValueError, StreamHeader.parse, b"E" + bytes(15))


class PeerTestCase(SynchronousTestCase):
    def peer(
        self, factory: Optional[StreamPeerFactory] = None
    ) -> tuple[StreamPeer, StringTransport]:
        factory = factory or StreamPeerFactory()
        peer = factory.buildProtocol(None)
        transport = StringTransport()
        peer.makeConnection(transport)
        return peer, transport

    def end(self, peer: StreamPeer, reason: Optional[Failure] = None) -> StreamRecord:
        peer.connectionLost(reason or Failure(ConnectionDone()))
        return peer.record


class EchoTests(PeerTestCase):
    def test_echoes_the_payload_not_the_header_then_closes(self) -> None:
        peer, transport = self.peer()
        data = payload(3, 5000)
        wire = header("echo", 5000, 3) + data
        # The header arrives in pieces, the payload in uneven chunks.
        for start, stop in [(0, 5), (5, 17), (17, 18), (18, 4000), (4000, len(wire))]:
            peer.dataReceived(wire[start:stop])
        self.assertEqual(transport.value(), data)
        self.assertTrue(transport.disconnecting)
        # The backpressure producer is gone before the close.
        self.assertIsNone(transport.producer)
        record = self.end(peer)
        self.assertEqual(
            (record.header, record.received, record.sent, record.digest, record.ok),
            (StreamHeader("echo", 5000, 3), 5000, 5000, hashlib.sha256(data).digest(), True),
        )

    def test_does_not_close_early(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("echo", 10) + payload(1, 9))
        self.assertFalse(transport.disconnecting)
        self.assertEqual(peer.record.received, 9)

    def test_paused_writing_pauses_reading(self) -> None:
        """
        The echo is a streaming producer on its transport: when its writes
        are throttled it stops reading, so it never buffers more than it
        was sent.
        """
        peer, transport = self.peer()
        peer.dataReceived(header("echo", 100))
        self.assertIs(transport.producer, peer)
        self.assertTrue(transport.streaming)
        transport.producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        transport.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(peer.record.write_pauses, 1)

    def test_empty(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("echo", 0))
        self.assertEqual((transport.value(), transport.disconnecting), (b"", True))
        self.assertTrue(self.end(peer).ok)


class SourceTests(PeerTestCase):
    def test_writes_the_payload_when_asked_then_closes(self) -> None:
        peer, transport = self.peer(StreamPeerFactory(source_chunk=1000))
        peer.dataReceived(header("source", 2500, 77))
        # A pull producer: nothing is written until the transport asks.
        self.assertFalse(transport.streaming)
        self.assertEqual(transport.value(), b"")
        producer = transport.producer
        for expected in (1000, 2000, 2500):
            producer.resumeProducing()
            self.assertEqual(len(transport.value()), expected)
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), payload(77, 2500))
        record = self.end(peer)
        self.assertEqual((record.sent, record.received, record.ok), (2500, 0, True))

    def test_empty(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("source", 0))
        self.assertEqual(
            (transport.value(), transport.disconnecting, transport.producer), (b"", True, None)
        )

    def test_bytes_from_the_other_side_are_a_violation(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("source", 10) + b"?")
        self.assertEqual(peer.record.error, "1 unexpected bytes after the payload")
        self.assertFalse(self.end(peer).ok)


class SinkTests(PeerTestCase):
    def test_answers_the_digest_then_closes(self) -> None:
        peer, transport = self.peer()
        data = payload(5, 70_000)
        peer.dataReceived(header("sink", 70_000, 5) + data[:1])
        peer.dataReceived(data[1:])
        self.assertEqual(transport.value(), hashlib.sha256(data).digest())
        self.assertEqual(len(transport.value()), DIGEST_LEN)
        self.assertTrue(transport.disconnecting)
        record = self.end(peer)
        self.assertEqual((record.received, record.sent, record.ok), (70_000, DIGEST_LEN, True))

    def test_empty(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("sink", 0))
        self.assertEqual(transport.value(), hashlib.sha256(b"").digest())
        self.assertTrue(transport.disconnecting)

    def test_wrong_bytes_are_found(self) -> None:
        peer, transport = self.peer()
        data = bytearray(payload(1, 100))
        data[60] ^= 1
        peer.dataReceived(header("sink", 100) + bytes(data))
        record = self.end(peer)
        self.assertEqual(record.mismatch_at, 60)
        # It still answers (the digest of what it got), for the other side
        # to reject.
        self.assertEqual(transport.value(), hashlib.sha256(bytes(data)).digest())
        self.assertFalse(record.ok)

    def test_without_verification(self) -> None:
        peer, transport = self.peer(StreamPeerFactory(verify=False))
        peer.dataReceived(header("sink", 3) + b"abc")
        self.assertEqual(
            (peer.record.mismatch_at, transport.value()), (None, hashlib.sha256(b"abc").digest())
        )

    def test_extra_bytes_are_a_violation(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(header("sink", 2) + payload(1, 2) + b"xyz")
        self.assertEqual(peer.record.error, "3 unexpected bytes after the payload")


class ProtocolErrorTests(PeerTestCase):
    def test_bad_header_aborts(self) -> None:
        peer, transport = self.peer()
        peer.dataReceived(b"Z" + bytes(20))
        self.assertTrue(transport.disconnected)
        self.assertIn("not a stream-test header", peer.record.error or "")

    def test_lost_before_the_end(self) -> None:
        factory = StreamPeerFactory()
        ended = factory.when_ended(1)
        peer, _ = self.peer(factory)
        peer.dataReceived(header("sink", 10) + b"12345")
        self.assertNoResult(ended)
        record = self.end(peer, Failure(ConnectionLost("tunnel disconnect")))
        self.assertEqual(
            (record.end, record.completed, record.ok), ("tunnel disconnect", False, False)
        )
        self.assertEqual(self.successResultOf(ended), [record])

    def test_most_streams_open_at_once(self) -> None:
        factory = StreamPeerFactory()
        first, _ = self.peer(factory)
        second, _ = self.peer(factory)
        self.end(first)
        self.peer(factory)
        self.assertEqual((factory.most_open, len(factory.ended)), (2, 1))


class SlowReaderTests(PeerTestCase):
    def test_paused_after_the_header_until_the_gate_opens(self) -> None:
        gate = HeldGate()
        factory = StreamPeerFactory(slow=slow_reader(gate, ops=("sink",), min_length=10))
        held = gate.when_held(1)
        peer, transport = self.peer(factory)
        peer.dataReceived(header("sink", 10))
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(self.successResultOf(held), [peer])
        self.assertEqual((peer.record.stalls, peer.record.released), (1, 0))
        gate.release()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual((peer.record.stalls, peer.record.released), (1, 1))

    def test_policy_picks_streams(self) -> None:
        gate = HeldGate()
        factory = StreamPeerFactory(slow=slow_reader(gate, ops=("sink",), min_length=10))
        for wire in (header("sink", 9), header("echo", 100), header("source", 100)):
            peer, transport = self.peer(factory)
            peer.dataReceived(wire)
            self.assertEqual(transport.producerState, "producing", wire)
        self.assertEqual(gate.held, [])

    def test_released_gate_lets_later_streams_pass(self) -> None:
        gate = HeldGate()
        gate.release()
        peer, transport = self.peer(StreamPeerFactory(slow=slow_reader(gate)))
        peer.dataReceived(header("sink", 10))
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual((peer.record.stalls, peer.record.released), (1, 1))

    def test_slow_echo_keeps_reading_paused_while_writes_are(self) -> None:
        """
        Reading resumes only when neither the gate nor write backpressure
        holds it.
        """
        gate = HeldGate()
        peer, transport = self.peer(StreamPeerFactory(slow=slow_reader(gate)))
        peer.dataReceived(header("echo", 10))
        peer.pauseProducing()
        gate.release()
        self.assertEqual(transport.producerState, "paused")
        peer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_tail_stall(self) -> None:
        """
        With a tail, the reader stalls a second time once no more than the
        tail is left to read, and only once.
        """
        stalls: list[Deferred[None]] = []

        def gate(peer: StreamPeer) -> Deferred[None]:
            stalls.append(Deferred())
            return stalls[-1]

        peer, transport = self.peer(StreamPeerFactory(slow=slow_reader(gate, tail=100)))
        data = payload(1, 1000)
        peer.dataReceived(header("sink", 1000))
        self.assertEqual((len(stalls), transport.producerState), (1, "paused"))
        stalls[0].callback(None)
        peer.dataReceived(data[:850])
        self.assertEqual((len(stalls), transport.producerState), (1, "producing"))
        peer.dataReceived(data[850:900])
        self.assertEqual((len(stalls), transport.producerState), (2, "paused"))
        self.assertEqual(peer.record.stalls - peer.record.released, 1)
        stalls[1].callback(None)
        peer.dataReceived(data[900:950])
        peer.dataReceived(data[950:])
        self.assertEqual(len(stalls), 2)
        self.assertEqual(transport.value(), hashlib.sha256(data).digest())
        self.assertEqual((peer.record.stalls, peer.record.released), (2, 2))

    def test_failed_gate_is_recorded_and_reading_goes_on(self) -> None:
        def broken(peer: StreamPeer) -> Deferred[None]:
            return fail(RuntimeError("no such stream"))

        peer, transport = self.peer(StreamPeerFactory(slow=slow_reader(broken)))
        peer.dataReceived(header("sink", 10))
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(peer.record.error, "slow-reader gate failed: no such stream")


class BehindOurSessionTests(SynchronousTestCase):
    """
    The peer behind our own remotedialer session (router and stream
    transport), fed frames as the stand-in sends them, on a C{Clock}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.sent: list[frames.Message] = []
        self.gate = HeldGate()
        self.factory = StreamPeerFactory(
            slow=slow_reader(self.gate, ops=("sink",), min_length=MAX_BUFFER)
        )
        router = StreamRouter(
            lambda proto, address: self.factory if address == ADDRESS else None, self.clock
        )
        self.session = Session(lambda data: self.sent.append(frames.decode(data)), router)
        router.session = self.session

    def receive(self, message: frames.Message) -> None:
        self.session.receive(frames.encode(message, 1))

    def open(self, conn_id: int, op: str, length: int, seed: int = 1) -> None:
        self.receive(frames.Connect(conn_id, "tcp", ADDRESS))
        self.receive(frames.Data(conn_id, header(op, length, seed)))

    def sent_of(self, kind: type, conn_id: int) -> list[Any]:
        return [m for m in self.sent if isinstance(m, kind) and m.conn_id == conn_id]

    def data_sent(self, conn_id: int) -> bytes:
        return b"".join(m.data for m in self.sent_of(frames.Data, conn_id))

    def run_turns(self, limit: int = 1000) -> None:
        # The stream transport asks a pull producer for more once per
        # reactor turn.
        for _ in range(limit):
            if not self.clock.getDelayedCalls():
                return
            self.clock.advance(0)
        self.fail("the transport kept scheduling calls")

    def feed_until_paused(self, conn_id: int, data: bytes, start: int = 0) -> int:
        """
        Send C{data[start:]} in 64 KiB Data messages as the Go side does,
        stopping once our session has paused the stream (Go's writes then
        block); return where it stopped.
        """
        pauses = len(self.sent_of(frames.Pause, conn_id))
        chunk = 64 * 1024
        while start < len(data) and len(self.sent_of(frames.Pause, conn_id)) == pauses:
            self.receive(frames.Data(conn_id, data[start : start + chunk]))
            start += chunk
        return min(start, len(data))

    def test_slow_sink_makes_the_session_pause_and_resume(self) -> None:
        length = MAX_BUFFER + 512 * 1024
        data = payload(1, length)
        self.open(5, "sink", length)
        self.assertEqual([peer.record.host.conn_id for peer in self.gate.held], [5])
        stopped = self.feed_until_paused(5, data)
        # Nothing was read; past the session's buffer it paused the
        # stand-in, exactly once, before all of the payload was sent.
        self.assertEqual(self.factory.records[0].received, 0)
        self.assertEqual(len(self.sent_of(frames.Pause, 5)), 1)
        self.assertEqual(self.session.stats.pauses_sent, 1)
        self.assertGreater(stopped, MAX_BUFFER)
        self.assertLess(stopped, length)
        self.assertEqual(self.sent_of(frames.Resume, 5), [])

        self.gate.release()
        # Everything held back is delivered at once, the buffer is empty, so
        # the session resumes the stand-in, which sends the rest; the peer
        # answers with the digest and closes.
        self.assertEqual(self.factory.records[0].received, stopped)
        self.assertEqual(len(self.sent_of(frames.Resume, 5)), 1)
        self.feed_until_paused(5, data, stopped)
        self.assertEqual(self.data_sent(5), hashlib.sha256(data).digest())
        self.assertEqual([m.text for m in self.sent_of(frames.Error, 5)], ["EOF"])
        self.run_turns()
        record = self.factory.records[0]
        self.assertEqual(
            (record.received, record.ok, record.stalls, record.released), (length, True, 1, 1)
        )
        self.assertEqual(self.session.stats.pauses_sent, 1)

    def test_tail_stall_makes_the_session_resume_even_when_all_has_arrived(self) -> None:
        """
        When the sender wrote everything before our Pause reached it, the
        stream would complete in the very delivery that drains the buffer,
        and no Resume would be needed or sent. A tail stall keeps the
        stream open while the buffer drains, so the session sends Resume.
        """
        stalls: list[Deferred[None]] = []

        def gate(peer: StreamPeer) -> Deferred[None]:
            stalls.append(Deferred())
            return stalls[-1]

        self.factory.slow = slow_reader(gate, ops=("sink",), tail=128 * 1024)
        length = MAX_BUFFER + 512 * 1024
        data = payload(4, length)
        self.open(15, "sink", length, seed=4)
        for start in range(0, length, 64 * 1024):
            self.receive(frames.Data(15, data[start : start + 64 * 1024]))
        self.assertEqual((len(stalls), len(self.sent_of(frames.Pause, 15))), (1, 1))
        stalls[0].callback(None)
        record = self.factory.records[0]
        self.assertEqual(len(stalls), 2)
        self.assertGreaterEqual(length - record.received, 1)
        self.assertLessEqual(length - record.received, 128 * 1024)
        self.assertEqual(len(self.sent_of(frames.Resume, 15)), 1)
        self.assertEqual(self.sent_of(frames.Error, 15), [])
        stalls[1].callback(None)
        self.assertEqual(self.data_sent(15), hashlib.sha256(data).digest())
        self.assertEqual([m.text for m in self.sent_of(frames.Error, 15)], ["EOF"])
        self.run_turns()
        self.assertTrue(record.ok)

    def test_without_a_tail_no_resume_when_all_has_arrived(self) -> None:
        """
        The case the tail exists for: everything arrived before the reader
        caught up, so the stream ends in the delivery that drains the buffer
        and the session has no reason to send Resume.
        """
        length = MAX_BUFFER + 512 * 1024
        data = payload(1, length)
        self.open(17, "sink", length)
        for start in range(0, length, 64 * 1024):
            self.receive(frames.Data(17, data[start : start + 64 * 1024]))
        self.gate.release()
        self.assertEqual(len(self.sent_of(frames.Pause, 17)), 1)
        self.assertEqual(self.sent_of(frames.Resume, 17), [])
        self.assertEqual([m.text for m in self.sent_of(frames.Error, 17)], ["EOF"])

    def test_source_stops_while_paused_and_ends_with_eof(self) -> None:
        length = 10 * 64 * 1024 + 5
        self.open(7, "source", length, seed=3)
        self.clock.advance(0)
        self.clock.advance(0)
        before = len(self.data_sent(7))
        self.assertGreater(before, 0)
        self.receive(frames.Pause(7))
        self.run_turns()
        # Paused: the transport stops asking, nothing more is written, and
        # nothing is left scheduled.
        self.assertEqual(len(self.data_sent(7)), before)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.receive(frames.Resume(7))
        self.run_turns()
        self.assertEqual(self.data_sent(7), payload(3, length))
        # The close comes after the last byte.
        self.assertIsInstance(self.sent[-1], frames.Error)
        self.assertEqual((self.sent[-1].conn_id, self.sent[-1].text), (7, "EOF"))
        self.assertEqual(self.factory.records[0].end, "EOF")
        self.assertTrue(self.factory.records[0].ok)

    def test_echo_paused_by_the_peer_makes_the_session_pause_too(self) -> None:
        """
        An echo whose writes are paused stops reading, so what keeps coming
        piles up in our session until it pauses the other side in turn;
        once resumed, every byte is echoed in order.
        """
        length = MAX_BUFFER + 512 * 1024
        data = payload(2, length)
        self.open(9, "echo", length, seed=2)
        self.receive(frames.Data(9, data[:1000]))
        self.receive(frames.Pause(9))
        stopped = self.feed_until_paused(9, data, 1000)
        self.assertEqual(self.factory.records[0].write_pauses, 1)
        self.assertEqual(self.data_sent(9), data[:1000])
        self.assertEqual(len(self.sent_of(frames.Pause, 9)), 1)
        self.assertLess(stopped, length)
        self.receive(frames.Resume(9))
        self.assertEqual(self.data_sent(9), data[:stopped])
        self.assertEqual(len(self.sent_of(frames.Resume, 9)), 1)
        self.feed_until_paused(9, data, stopped)
        self.run_turns()
        self.assertEqual(self.data_sent(9), data)
        self.assertEqual([m.text for m in self.sent_of(frames.Error, 9)], ["EOF"])
        self.assertTrue(self.factory.records[0].ok)

    def test_close_by_the_other_side_before_the_end(self) -> None:
        self.open(11, "sink", 100)
        self.receive(frames.Data(11, payload(1, 10)))
        self.receive(frames.Error(11, "EOF"))
        self.run_turns()
        record = self.factory.records[0]
        self.assertEqual((record.end, record.completed, record.ok), ("EOF", False, False))

    def test_unknown_address_is_not_ours(self) -> None:
        self.receive(frames.Connect(13, "tcp", "10.0.0.1:1"))
        self.assertEqual(
            [m.text for m in self.sent_of(frames.Error, 13)],
            ["dial tcp 10.0.0.1:1: connect: connection refused"],
        )
        self.assertEqual(self.factory.records, [])

"""
Tests for L{scaleagent.remotedialer.session}: per-stream state, flow control
in both directions, and a session that survives anything a peer sends.
"""

from __future__ import annotations

import random
from typing import Optional

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import (
    MAX_BUFFER,
    MAX_DATA_PAYLOAD,
    RESUME_BELOW,
    ConnectRefused,
    Session,
)


class RecordingHandler:
    """A stream handler that records what the session does to it."""

    def __init__(self, events: list, conn_id: int) -> None:
        self.events = events
        self.conn_id = conn_id
        self.received = bytearray()

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.events.append(("data", self.conn_id, len(data)))

    def closed(self, reason: str) -> None:
        self.events.append(("closed", self.conn_id, reason))

    def pause_writing(self) -> None:
        self.events.append(("pause_writing", self.conn_id))

    def resume_writing(self) -> None:
        self.events.append(("resume_writing", self.conn_id))


class Peer:
    """
    Rancher's side, as far as a session test needs it: encodes what it
    sends, decodes what the session sends back.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.events: list = []
        self.handlers: dict[int, RecordingHandler] = {}
        self.refuse: set[str] = set()
        self.on_accept = None
        self.session = Session(self.sent.append, self.accept, label="test")

    def accept(self, connect: frames.Connect) -> RecordingHandler:
        if connect.address in self.refuse:
            raise ConnectRefused(f"dial tcp {connect.address}: connect: connection refused")
        handler = RecordingHandler(self.events, connect.conn_id)
        self.handlers[connect.conn_id] = handler
        if self.on_accept is not None:
            self.on_accept(connect)
        return handler

    def send(self, message: frames.Message) -> None:
        self.session.receive(frames.encode(message, 1))

    def replies(self) -> list[frames.Message]:
        messages = [frames.decode(frame) for frame in self.sent]
        del self.sent[:]
        return messages

    def connect(self, conn_id: int, address: str = "10.43.0.1:443") -> Optional[RecordingHandler]:
        self.send(frames.Connect(conn_id, "tcp", address))
        return self.handlers.get(conn_id)


def strip_ids(messages: list[frames.Message]) -> list[frames.Message]:
    """Message ids are never interpreted; compare without them."""
    import dataclasses

    return [dataclasses.replace(message, message_id=0) for message in messages]


class StreamLifecycleTests(SynchronousTestCase):
    def test_connect_then_data_both_ways(self) -> None:
        peer = Peer()
        handler = peer.connect(2)
        peer.send(frames.Data(2, b"hello"))
        self.assertEqual(bytes(handler.received), b"hello")
        peer.session.write(2, b"world")
        self.assertEqual(strip_ids(peer.replies()), [frames.Data(2, b"world")])
        self.assertEqual(peer.session.stream_ids(), [2])

    def test_large_writes_are_chunked(self) -> None:
        peer = Peer()
        peer.connect(2)
        payload = bytes(range(256)) * (MAX_DATA_PAYLOAD // 128)
        peer.session.write(2, payload)
        replies = peer.replies()
        self.assertEqual(len(replies), 2)
        self.assertTrue(all(len(m.data) <= MAX_DATA_PAYLOAD for m in replies))
        self.assertEqual(b"".join(m.data for m in replies), payload)

    def test_error_eof_closes_only_that_stream(self) -> None:
        """
        Error(EOF) from Rancher closes one stream, is answered with an
        Error as the Go library does, and leaves the others alone.
        """
        peer = Peer()
        peer.connect(2)
        peer.connect(3)
        peer.send(frames.Error(2, "EOF"))
        self.assertIn(("closed", 2, "EOF"), peer.events)
        self.assertEqual(strip_ids(peer.replies()), [frames.Error(2, "EOF")])
        self.assertEqual(peer.session.stream_ids(), [3])
        peer.send(frames.Data(3, b"still here"))
        self.assertEqual(bytes(peer.handlers[3].received), b"still here")

    def test_late_error_is_ignored(self) -> None:
        """Duplicate and late Errors are normal and never answered."""
        peer = Peer()
        peer.connect(2)
        peer.send(frames.Error(2, "EOF"))
        peer.replies()
        peer.send(frames.Error(2, "EOF"))
        peer.send(frames.Error(99, "use of closed network connection"))
        self.assertEqual(peer.replies(), [])
        self.assertEqual([e for e in peer.events if e[0] == "closed"], [("closed", 2, "EOF")])

    def test_local_close_sends_eof(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.session.close(2)
        self.assertEqual(strip_ids(peer.replies()), [frames.Error(2, "EOF")])
        self.assertEqual(peer.events[-1], ("closed", 2, "EOF"))
        peer.session.write(2, b"too late")
        self.assertEqual(peer.replies(), [])

    def test_abort_sends_error_text(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.session.abort(2, "connection reset by peer")
        self.assertEqual(
            strip_ids(peer.replies()), [frames.Error(2, "connection reset by peer")]
        )
        self.assertEqual(peer.events[-1], ("closed", 2, "connection reset by peer"))

    def test_data_for_unknown_stream(self) -> None:
        """Answered as the Go client answers it."""
        peer = Peer()
        peer.send(frames.Data(7, b"x"))
        self.assertEqual(
            strip_ids(peer.replies()), [frames.Error(7, "connection not found client/0/7")]
        )

    def test_refused_connect(self) -> None:
        peer = Peer()
        peer.refuse.add("10.0.0.9:22")
        peer.connect(2, "10.0.0.9:22")
        self.assertEqual(
            strip_ids(peer.replies()),
            [frames.Error(2, "dial tcp 10.0.0.9:22: connect: connection refused")],
        )
        self.assertEqual(peer.session.stream_ids(), [])
        self.assertEqual(peer.session.stats.streams_refused, 1)

    def test_overdue_connect_is_a_dial_timeout(self) -> None:
        peer = Peer()
        peer.connect(3)
        peer.replies()
        peer.session.receive(frames.encode(frames.Connect(2, "tcp", "10.43.0.1:443"), 1), overdue=True)
        peer.session.receive(frames.encode(frames.Data(2, b"ClientHello"), 2), overdue=True)
        # Not accepted at all; the Data that followed finds no stream, as
        # when the Go agent's dial failed.
        self.assertNotIn(2, peer.handlers)
        self.assertEqual(
            strip_ids(peer.replies()),
            [
                frames.Error(2, "dial tcp 10.43.0.1:443: i/o timeout"),
                frames.Error(2, "connection not found client/0/2"),
            ],
        )
        self.assertEqual(peer.session.stream_ids(), [3])
        self.assertEqual(peer.session.stats.streams_overdue, 1)
        # Overdue Data for a stream that is open is still delivered.
        peer.session.receive(frames.encode(frames.Data(3, b"late"), 3), overdue=True)
        self.assertEqual(bytes(peer.handlers[3].received), b"late")

    def test_accept_that_raises_refuses_only_that_stream(self) -> None:
        peer = Peer()

        def explode(connect: frames.Connect) -> None:
            raise RuntimeError("bug in a handler")

        peer.session = Session(peer.sent.append, explode, label="test")
        with capturedLogs() as events:
            peer.connect(2)
        self.assertEqual(strip_ids(peer.replies()), [frames.Error(2, "connection refused")])
        self.assertTrue(any(e.get("log_failure") for e in events))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_close_during_accept(self) -> None:
        """A handler may write and close while it is being accepted."""
        peer = Peer()

        def reply_and_close(connect: frames.Connect) -> None:
            peer.session.write(connect.conn_id, b"bye")
            peer.session.close(connect.conn_id)

        peer.on_accept = reply_and_close
        peer.connect(2)
        self.assertEqual(
            strip_ids(peer.replies()), [frames.Data(2, b"bye"), frames.Error(2, "EOF")]
        )
        self.assertEqual(peer.events, [("closed", 2, "EOF")])
        self.assertEqual(peer.session.stream_ids(), [])

    def test_data_arriving_during_accept_is_delivered(self) -> None:
        peer = Peer()

        def receive_more(connect: frames.Connect) -> None:
            peer.send(frames.Data(connect.conn_id, b"early"))

        peer.on_accept = receive_more
        handler = peer.connect(2)
        self.assertEqual(bytes(handler.received), b"early")

    def test_reused_conn_id_replaces_stream(self) -> None:
        peer = Peer()
        first = peer.connect(2)
        second = peer.connect(2)
        self.assertIsNot(first, second)
        self.assertIn(("closed", 2, "connection replaced"), peer.events)
        peer.send(frames.Data(2, b"x"))
        self.assertEqual(bytes(second.received), b"x")
        self.assertEqual(bytes(first.received), b"")

    def test_connection_lost(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.connect(3)
        peer.session.connection_lost()
        closed = sorted(e for e in peer.events if e[0] == "closed")
        self.assertEqual(closed, [("closed", 2, "tunnel disconnect"), ("closed", 3, "tunnel disconnect")])
        peer.session.write(2, b"x")
        peer.send(frames.Connect(4, "tcp", "10.43.0.1:443"))
        self.assertEqual(peer.replies(), [])


class SessionLevelTests(SynchronousTestCase):
    def test_sync_connections_lists_sorted_ids(self) -> None:
        peer = Peer()
        for conn_id in (5, 2, 9):
            peer.connect(conn_id)
        peer.session.send_sync_connections()
        self.assertEqual(strip_ids(peer.replies()), [frames.SyncConnections((2, 5, 9))])

    def test_sync_connections_from_peer_closes_unlisted(self) -> None:
        """
        Like the Go library: streams the peer no longer lists close without
        an Error being sent.
        """
        peer = Peer()
        for conn_id in (2, 3, 4):
            peer.connect(conn_id)
        peer.send(frames.SyncConnections((3,)))
        self.assertEqual(peer.session.stream_ids(), [3])
        self.assertEqual(peer.replies(), [])
        self.assertIn(("closed", 2, "sync from client"), peer.events)

    def test_peer_only_messages_ignored(self) -> None:
        peer = Peer()
        peer.connect(2)
        with capturedLogs() as events:
            peer.send(frames.AddClient("c-abcde/1"))
            peer.send(frames.RemoveClient("not-a-pair"))
            peer.send(frames.Unknown(2, 77, b"?"))
        self.assertEqual(peer.replies(), [])
        self.assertEqual(peer.session.stream_ids(), [2])
        self.assertEqual(len(events), 3)

    def test_text_message_dropped(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.session.receive_text("hello")
        self.assertEqual(peer.session.stream_ids(), [2])
        self.assertEqual(peer.session.stats.malformed, 1)


class FlowControlTests(SynchronousTestCase):
    def test_pause_from_peer_holds_writes(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.send(frames.Pause(2))
        self.assertEqual(peer.events[-1], ("pause_writing", 2))
        peer.session.write(2, b"held")
        self.assertEqual(peer.replies(), [])
        peer.send(frames.Resume(2))
        self.assertEqual(strip_ids(peer.replies()), [frames.Data(2, b"held")])
        self.assertEqual(peer.events[-1], ("resume_writing", 2))

    def test_close_waits_for_held_writes(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.send(frames.Pause(2))
        peer.session.write(2, b"last words")
        peer.session.close(2)
        self.assertEqual(peer.replies(), [])
        peer.send(frames.Resume(2))
        self.assertEqual(
            strip_ids(peer.replies()), [frames.Data(2, b"last words"), frames.Error(2, "EOF")]
        )

    def test_pause_before_accept_completes(self) -> None:
        """A Pause that races the handler still reaches it."""
        peer = Peer()
        peer.on_accept = lambda connect: peer.send(frames.Pause(connect.conn_id))
        peer.connect(2)
        self.assertIn(("pause_writing", 2), peer.events)

    def test_slow_reader_sends_pause_then_resume(self) -> None:
        """
        While the local consumer is paused, Data is buffered; past 2 MiB
        Rancher is told to Pause, once; when the consumer drains the buffer
        below 256 KiB, Resume.
        """
        peer = Peer()
        handler = peer.connect(2)
        peer.session.pause_reading(2)
        chunk = b"x" * 65536
        sent = 0
        while sent <= MAX_BUFFER + len(chunk):
            peer.send(frames.Data(2, chunk))
            sent += len(chunk)
        replies = strip_ids(peer.replies())
        self.assertEqual(replies, [frames.Pause(2)])
        self.assertEqual(bytes(handler.received), b"")

        # The consumer reads a little, then stops again: still paused.
        consumed = []

        def consume_some(data: bytes) -> None:
            RecordingHandler.data_received(handler, data)
            consumed.append(len(data))
            if len(consumed) == 4:
                peer.session.pause_reading(2)

        handler.data_received = consume_some
        peer.session.resume_reading(2)
        self.assertEqual(peer.replies(), [])
        self.assertEqual(len(consumed), 4)

        peer.session.resume_reading(2)
        self.assertEqual(strip_ids(peer.replies()), [frames.Resume(2)])
        self.assertEqual(len(handler.received), sent)
        self.assertEqual(peer.session.stats.pauses_sent, 1)
        self.assertEqual(peer.session.stats.resumes_sent, 1)

    def test_resume_sent_only_below_threshold(self) -> None:
        peer = Peer()
        handler = peer.connect(2)
        peer.session.pause_reading(2)
        big = b"y" * (MAX_BUFFER + 1)
        peer.send(frames.Data(2, big))
        self.assertEqual(strip_ids(peer.replies()), [frames.Pause(2)])
        # One more chunk than RESUME_BELOW left in the buffer after reading:
        # the session delivers whole chunks, so the whole buffer drains.
        peer.session.resume_reading(2)
        self.assertEqual(strip_ids(peer.replies()), [frames.Resume(2)])
        self.assertEqual(len(handler.received), MAX_BUFFER + 1)
        self.assertLess(0, RESUME_BELOW)

    def test_eof_after_buffered_data(self) -> None:
        """Half-close: data that arrived before Error(EOF) is delivered first."""
        peer = Peer()
        handler = peer.connect(2)
        peer.session.pause_reading(2)
        peer.send(frames.Data(2, b"all of "))
        peer.send(frames.Data(2, b"this"))
        peer.send(frames.Error(2, "EOF"))
        self.assertNotIn(("closed", 2, "EOF"), peer.events)
        peer.session.resume_reading(2)
        self.assertEqual(bytes(handler.received), b"all of this")
        self.assertEqual(peer.events[-1], ("closed", 2, "EOF"))

    def test_transport_level_pause(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.connect(3)
        peer.send(frames.Pause(3))
        del peer.events[:]
        peer.session.pause_all_writers()
        self.assertEqual(peer.events, [("pause_writing", 2)])
        peer.session.resume_all_writers()
        self.assertEqual(peer.events[-1], ("resume_writing", 2))


class MalformedFrameTests(SynchronousTestCase):
    def test_bad_connect_refused_with_error(self) -> None:
        peer = Peer()
        peer.connect(2)
        with capturedLogs() as events:
            peer.session.receive(bytes.fromhex("0a0604b0ea01") + b"no-slash")
        self.assertEqual(
            strip_ids(peer.replies()), [frames.Error(3, "failed to parse connect address")]
        )
        self.assertEqual(peer.session.stream_ids(), [2])
        self.assertEqual(len(events), 1)

    def test_malformed_frame_for_open_stream_closes_it(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.connect(3)
        # A header truncated after the connection id names stream 2.
        peer.session.receive(b"\x02\x04\x80")
        self.assertEqual(peer.session.stream_ids(), [3])
        self.assertEqual(peer.events[-1][0:2], ("closed", 2))
        self.assertEqual(strip_ids(peer.replies())[0].conn_id, 2)

    def test_unreadable_header_dropped(self) -> None:
        peer = Peer()
        peer.connect(2)
        peer.session.receive(b"\xff" * 11)
        self.assertEqual(peer.replies(), [])
        self.assertEqual(peer.session.stream_ids(), [2])
        self.assertEqual(peer.session.stats.malformed, 1)

    def test_fuzz_random_and_truncated_frames(self) -> None:
        """
        Random bytes and every truncation of valid frames never raise out of
        the session; streams the garbage does not name keep working.
        """
        rng = random.Random(20261130)
        valid = [
            frames.encode(message, rng.getrandbits(63))
            for message in [
                frames.Data(7, b"payload" * 20),
                frames.Connect(8, "tcp", "10.43.0.1:443"),
                frames.Error(7, "EOF"),
                frames.Pause(7),
                frames.Resume(7),
                frames.AddClient("c-x/1"),
            ]
        ]
        peer = Peer()
        survivor = peer.connect(2)
        for _ in range(3000):
            choice = rng.random()
            if choice < 0.4:
                frame = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
            elif choice < 0.8:
                frame = rng.choice(valid)
                frame = frame[: rng.randint(0, len(frame))]
            else:
                frame = bytearray(rng.choice(valid))
                frame[rng.randrange(len(frame))] = rng.getrandbits(8)
                frame = bytes(frame)
            # Garbage that names the survivor may legitimately close it, and
            # one that decodes as SyncConnections closes every stream it does
            # not list (Go semantics); skip those so the survivor can show
            # that nothing else disturbed it.
            try:
                decoded = frames.decode(frame)
                decoded_conn = decoded.conn_id
            except frames.FrameError as e:
                decoded, decoded_conn = None, e.conn_id
            if decoded_conn == 2 or isinstance(decoded, frames.SyncConnections):
                continue
            peer.session.receive(frame)
        peer.replies()
        peer.send(frames.Data(2, b"alive"))
        self.assertTrue(bytes(survivor.received).endswith(b"alive"))
        peer.session.write(2, b"reply")
        self.assertEqual(strip_ids(peer.replies()), [frames.Data(2, b"reply")])
        self.assertGreater(peer.session.stats.malformed, 0)

# -*- test-case-name: tests.test_remotedialer_session -*-
"""
The client side of one remotedialer session, without I/O or a clock.

A L{Session} is fed the websocket binary messages that arrive from Rancher
(L{Session.receive}) and hands the messages it wants to send to a C{send}
callable. It keeps one L{_Stream} per connection id that Rancher opened with
Connect, delivers that connection's Data to a L{StreamHandler}, and turns the
handler's writes and closes back into Data and Error messages.

Flow control works per connection and in both directions, as in the Go
library: when Rancher sends Pause the handler is told to stop writing (and
anything it writes anyway is held back until Resume); when the local consumer
stops reading, Data is buffered and, past L{MAX_BUFFER} bytes, Rancher is
sent Pause, then Resume once the consumer has drained the buffer below an
eighth of that. Unlike the Go library, the two directions keep two flags.

Nothing a peer sends can take the session down: a malformed message closes
the stream it names, or is dropped when it names none, and both are logged.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from typing import Callable, Iterable, Optional, Protocol

from twisted.logger import Logger

from . import frames

#: Receive buffer per connection before Pause is sent (Go: MaxBuffer, 2 MiB).
MAX_BUFFER = 2 * 1024 * 1024

#: Resume is sent once the buffer drains below this (Go: MaxBuffer / 8).
RESUME_BELOW = MAX_BUFFER // 8

#: Largest Data payload we send; matches what Go's io.Copy produces.
MAX_DATA_PAYLOAD = 32 * 1024

#: What the Go library calls its side of a session in "connection not found".
_CLIENT_KEY = "client"

# One id sequence per process, seeded randomly, as the Go library does.
_message_ids = itertools.count(random.SystemRandom().getrandbits(62))


def next_message_id() -> int:
    return next(_message_ids)


class StreamHandler(Protocol):
    """
    What a session drives for one connection.
    """

    def data_received(self, data: bytes) -> None:
        """Bytes that Rancher sent on this connection."""

    def closed(self, reason: str) -> None:
        """
        The connection is gone: C{"EOF"} for a graceful close by Rancher,
        otherwise the error text. Called exactly once.
        """

    def pause_writing(self) -> None:
        """Rancher asked us to stop sending on this connection."""

    def resume_writing(self) -> None:
        """Rancher may receive again."""


class ConnectRefused(Exception):
    """
    Raised by an accept callback to answer a Connect with an Error message,
    as the real agent does when its dial fails.
    """


class _Stream:
    """
    Per-connection state.

    @ivar handler: who gets this connection's bytes.
    @ivar inbox: Data held back while the local consumer is paused.
    @ivar inbox_size: total bytes in C{inbox}.
    @ivar reading_paused: the local consumer asked us to stop delivering.
    @ivar sent_pause: we have told Rancher to Pause and not yet to Resume.
    @ivar peer_paused: Rancher told us to Pause and not yet to Resume.
    @ivar outbox: writes held back while C{peer_paused}.
    @ivar pending_close: an Error from Rancher, to deliver once C{inbox} is.
    @ivar closing: our side asked to close once C{outbox} is flushed.
    """

    __slots__ = (
        "conn_id",
        "proto",
        "address",
        "handler",
        "inbox",
        "inbox_size",
        "reading_paused",
        "sent_pause",
        "peer_paused",
        "outbox",
        "pending_close",
        "closing",
        "delivering",
    )

    def __init__(self, conn_id: int, proto: str, address: str) -> None:
        self.conn_id = conn_id
        self.proto = proto
        self.address = address
        self.handler: Optional[StreamHandler] = None
        self.inbox: deque[bytes] = deque()
        self.inbox_size = 0
        self.reading_paused = False
        self.sent_pause = False
        self.peer_paused = False
        self.outbox: deque[bytes] = deque()
        self.pending_close: Optional[str] = None
        self.closing: Optional[str] = None
        self.delivering = False


class SessionStats:
    """Counters a session keeps for metrics and tests."""

    __slots__ = (
        "messages_received",
        "messages_sent",
        "bytes_received",
        "bytes_sent",
        "streams_opened",
        "streams_refused",
        "streams_overdue",
        "malformed",
        "pauses_sent",
        "resumes_sent",
        "pauses_received",
        "resumes_received",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Session:
    """
    Client side of one remotedialer session.

    @param send: called with the bytes of each websocket binary message to
        send, in order.
    @param accept: called with each L{frames.Connect}; returns the
        L{StreamHandler} for the new connection, or raises
        L{ConnectRefused} to answer with an Error. It may call back into the
        session (write, close) before returning.
    @param next_id: source of message ids.
    @param label: names the session in log events (never a secret).
    """

    _log = Logger()

    def __init__(
        self,
        send: Callable[[bytes], None],
        accept: Callable[[frames.Connect], StreamHandler],
        next_id: Callable[[], int] = next_message_id,
        label: str = "",
    ) -> None:
        self._send = send
        self._accept = accept
        self._next_id = next_id
        self.label = label
        self._streams: dict[int, _Stream] = {}
        self.stats = SessionStats()
        self._closed = False

    # -- introspection -------------------------------------------------

    def stream_ids(self) -> list[int]:
        """The connection ids currently open, sorted ascending."""
        return sorted(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def flow_state(self, conn_id: int) -> Optional[dict[str, object]]:
        """
        A stream's flow-control state, for tests and diagnostics:
        C{sent_pause} (we asked Rancher to pause), C{peer_paused} (Rancher
        asked us to), C{reading_paused} (the local consumer stopped),
        C{buffered} and C{held} (bytes waiting in either direction).
        """
        stream = self._streams.get(conn_id)
        if stream is None:
            return None
        return {
            "sent_pause": stream.sent_pause,
            "peer_paused": stream.peer_paused,
            "reading_paused": stream.reading_paused,
            "buffered": stream.inbox_size,
            "held": sum(len(chunk) for chunk in stream.outbox),
        }

    def stream_address(self, conn_id: int) -> Optional[tuple[str, str]]:
        stream = self._streams.get(conn_id)
        return None if stream is None else (stream.proto, stream.address)

    # -- from the websocket ----------------------------------------------

    def receive(self, frame: bytes, overdue: bool = False) -> None:
        """
        Handle the bytes of one binary websocket message from Rancher.

        @param overdue: the message waited so long that Rancher's dialer
            has given up on a stream it opens: a Connect is then answered
            the way the Go agent answers a dial that timed out, instead of
            starting work nobody waits for. Other messages are handled
            as usual.
        """
        if self._closed:
            return
        self.stats.messages_received += 1
        self.stats.bytes_received += len(frame)
        try:
            message = frames.decode(frame)
        except frames.FrameError as e:
            self._malformed(e)
            return
        if overdue and isinstance(message, frames.Connect):
            self.stats.streams_overdue += 1
            self._send_message(
                frames.Error(message.conn_id, f"dial {message.proto} {message.address}: i/o timeout")
            )
            return
        self._dispatch(message)

    def receive_text(self, text: object) -> None:
        """
        A text websocket message. The Go library ends the session on one; we
        only log and drop it, because nothing in it can name a stream.
        """
        self.stats.malformed += 1
        self._log.warn(
            "remotedialer {session}: dropped a text websocket message",
            session=self.label,
        )

    def _malformed(self, error: frames.FrameError) -> None:
        self.stats.malformed += 1
        conn_id = error.conn_id
        if not conn_id:
            self._log.warn(
                "remotedialer {session}: dropped malformed message: {reason}",
                session=self.label,
                reason=error.reason,
            )
            return
        self._log.warn(
            "remotedialer {session}: closing stream {conn_id} after a malformed "
            "message: {reason}",
            session=self.label,
            conn_id=conn_id,
            reason=error.reason,
        )
        stream = self._streams.pop(conn_id, None)
        # Tell Rancher either way: a Connect we could not parse would
        # otherwise leave its dial waiting.
        self._send_message(frames.Error(conn_id, error.reason))
        if stream is not None:
            self._finish(stream, error.reason)

    def _dispatch(self, message: frames.Message) -> None:
        if isinstance(message, frames.Data):
            self._on_data(message)
        elif isinstance(message, frames.Connect):
            self._on_connect(message)
        elif isinstance(message, frames.Error):
            self._on_error(message)
        elif isinstance(message, frames.Pause):
            self._on_pause(message.conn_id, True)
        elif isinstance(message, frames.Resume):
            self._on_pause(message.conn_id, False)
        elif isinstance(message, frames.SyncConnections):
            self._on_sync(message.conn_ids)
        else:
            # AddClient/RemoveClient only travel between Rancher replicas;
            # unknown types are ignored by every Go version.
            self._log.info(
                "remotedialer {session}: ignored {message_type} message",
                session=self.label,
                message_type=type(message).__name__,
            )

    def _on_connect(self, message: frames.Connect) -> None:
        conn_id = message.conn_id
        old = self._streams.pop(conn_id, None)
        if old is not None:
            self._log.warn(
                "remotedialer {session}: Connect for open stream {conn_id}; "
                "closing the old one",
                session=self.label,
                conn_id=conn_id,
            )
            self._finish(old, "connection replaced")
        # Registered before accepting, so a SyncConnections that races with
        # this Connect lists it, as the Go client does.
        stream = _Stream(conn_id, message.proto, message.address)
        self._streams[conn_id] = stream
        try:
            handler = self._accept(message)
        except ConnectRefused as e:
            self.stats.streams_refused += 1
            if self._streams.get(conn_id) is stream:
                del self._streams[conn_id]
                self._send_message(frames.Error(conn_id, str(e) or "connection refused"))
            return
        except Exception:
            self.stats.streams_refused += 1
            self._log.failure(
                "remotedialer {session}: accepting stream {conn_id} failed",
                session=self.label,
                conn_id=conn_id,
            )
            if self._streams.get(conn_id) is stream:
                del self._streams[conn_id]
                self._send_message(frames.Error(conn_id, "connection refused"))
            return
        self.stats.streams_opened += 1
        if self._streams.get(conn_id) is not stream:
            # The handler closed the stream while being accepted.
            handler.closed(stream.closing or "EOF")
            return
        stream.handler = handler
        if stream.peer_paused:
            handler.pause_writing()
        self._deliver(stream)

    def _on_data(self, message: frames.Data) -> None:
        stream = self._streams.get(message.conn_id)
        if stream is None:
            self._send_message(
                frames.Error(
                    message.conn_id,
                    f"connection not found {_CLIENT_KEY}/0/{message.conn_id}",
                )
            )
            return
        if not message.data or stream.pending_close is not None:
            return
        stream.inbox.append(message.data)
        stream.inbox_size += len(message.data)
        self._deliver(stream)
        if stream.inbox_size > MAX_BUFFER and not stream.sent_pause:
            stream.sent_pause = True
            self.stats.pauses_sent += 1
            self._send_message(frames.Pause(stream.conn_id))

    def _on_error(self, message: frames.Error) -> None:
        stream = self._streams.get(message.conn_id)
        if stream is None or stream.pending_close is not None:
            # Late and duplicate Errors are normal: the Go side sends one
            # from each end of its pipe.
            return
        # Like the Go library: answer with the same error, then close once
        # the consumer has read what arrived before it (no data is lost on a
        # graceful close). Until then the stream stays registered, so a
        # paused consumer can still resume and drain it.
        self._send_message(frames.Error(message.conn_id, message.text))
        stream.pending_close = message.text
        stream.closing = message.text
        stream.outbox.clear()
        self._deliver(stream)

    def _on_pause(self, conn_id: int, paused: bool) -> None:
        stream = self._streams.get(conn_id)
        if paused:
            self.stats.pauses_received += 1
        else:
            self.stats.resumes_received += 1
        if stream is None or stream.peer_paused == paused or stream.pending_close is not None:
            return
        stream.peer_paused = paused
        if stream.handler is None:
            return
        if paused:
            stream.handler.pause_writing()
        else:
            self._flush_outbox(stream)
            if conn_id in self._streams:
                stream.handler.resume_writing()

    def _on_sync(self, conn_ids: Iterable[int]) -> None:
        # The Go library closes, without sending Error, every connection the
        # peer no longer lists. Rancher never sends this to an agent.
        keep = set(conn_ids)
        for conn_id in [i for i in self._streams if i not in keep]:
            stream = self._streams.pop(conn_id)
            self._finish(stream, "sync from client")

    # -- delivery to the local handler -----------------------------------

    def _deliver(self, stream: _Stream) -> None:
        if stream.delivering or stream.handler is None:
            return
        stream.delivering = True
        try:
            while stream.inbox and not stream.reading_paused:
                chunk = stream.inbox.popleft()
                stream.inbox_size -= len(chunk)
                stream.handler.data_received(chunk)
            if (
                stream.sent_pause
                and stream.inbox_size < RESUME_BELOW
                and self._streams.get(stream.conn_id) is stream
            ):
                stream.sent_pause = False
                self.stats.resumes_sent += 1
                self._send_message(frames.Resume(stream.conn_id))
            if stream.pending_close is not None and not stream.inbox:
                if self._streams.get(stream.conn_id) is stream:
                    del self._streams[stream.conn_id]
                self._finish(stream, stream.pending_close)
        finally:
            stream.delivering = False

    def _finish(self, stream: _Stream, reason: str) -> None:
        stream.inbox.clear()
        stream.outbox.clear()
        stream.inbox_size = 0
        handler, stream.handler = stream.handler, None
        if handler is not None:
            handler.closed(reason)

    # -- from the local handler ------------------------------------------

    def write(self, conn_id: int, data: bytes) -> None:
        """
        Send bytes on a connection; held back while Rancher has it paused.
        Writes to a closed connection are dropped.
        """
        stream = self._streams.get(conn_id)
        if stream is None or stream.closing is not None or not data:
            return
        if stream.peer_paused:
            stream.outbox.append(bytes(data))
            return
        self._send_data(conn_id, data)

    def _send_data(self, conn_id: int, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), MAX_DATA_PAYLOAD):
            self._send_message(frames.Data(conn_id, bytes(view[start : start + MAX_DATA_PAYLOAD])))

    def _flush_outbox(self, stream: _Stream) -> None:
        while stream.outbox and not stream.peer_paused:
            self._send_data(stream.conn_id, stream.outbox.popleft())
        if not stream.outbox and stream.closing is not None:
            reason = stream.closing
            self._streams.pop(stream.conn_id, None)
            self._send_message(frames.Error(stream.conn_id, reason))
            self._finish(stream, reason)

    def close(self, conn_id: int, reason: str = "EOF") -> None:
        """
        Close a connection from our side: Error(C{reason}) goes to Rancher
        once any held-back writes are sent, then the handler is told.
        """
        stream = self._streams.get(conn_id)
        if stream is None or stream.closing is not None:
            return
        stream.closing = reason
        if stream.handler is None and not stream.outbox:
            # Closed from inside accept(); _on_connect finishes it.
            del self._streams[conn_id]
            self._send_message(frames.Error(conn_id, reason))
            return
        self._flush_outbox(stream)

    def abort(self, conn_id: int, reason: str = "connection reset by peer") -> None:
        """Close a connection at once, dropping held-back writes."""
        stream = self._streams.pop(conn_id, None)
        if stream is None:
            return
        self._send_message(frames.Error(conn_id, reason))
        if stream.handler is None:
            stream.closing = reason
            return
        self._finish(stream, reason)

    def pause_reading(self, conn_id: int) -> None:
        """The local consumer wants no more data for now."""
        stream = self._streams.get(conn_id)
        if stream is not None:
            stream.reading_paused = True

    def resume_reading(self, conn_id: int) -> None:
        """The local consumer is ready again; deliver what was held back."""
        stream = self._streams.get(conn_id)
        if stream is not None and stream.reading_paused:
            stream.reading_paused = False
            self._deliver(stream)

    # -- session level ---------------------------------------------------

    def pause_all_writers(self) -> None:
        """
        The websocket cannot take more for now (its transport's buffer is
        full): ask every stream's writer to stop.
        """
        for stream in list(self._streams.values()):
            if stream.handler is not None and not stream.peer_paused:
                stream.handler.pause_writing()

    def resume_all_writers(self) -> None:
        """The websocket drained: writers Rancher has not paused may go on."""
        for stream in list(self._streams.values()):
            if stream.handler is not None and not stream.peer_paused:
                stream.handler.resume_writing()

    def send_sync_connections(self) -> None:
        """Send the sorted list of open connection ids (every 60 s)."""
        self._send_message(frames.SyncConnections(tuple(self.stream_ids())))

    def connection_lost(self, reason: str = "tunnel disconnect") -> None:
        """
        The websocket is gone: every stream ends with C{reason}, and nothing
        more is sent or received.
        """
        self._closed = True
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            self._finish(stream, reason)

    def _send_message(self, message: frames.Message) -> None:
        if self._closed:
            return
        data = frames.encode(message, self._next_id())
        self.stats.messages_sent += 1
        self.stats.bytes_sent += len(data)
        self._send(data)

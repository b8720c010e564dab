# -*- test-case-name: tests.test_remotedialer_frames -*-
"""
The remotedialer wire format, without I/O: bytes of one websocket binary
message in, a message record out, and back.

Every message is ``varint(id) varint(connID) varint(type)``, then for Data
and Connect a legacy ``varint(deadline)`` that is always written as 15000 and
ignored on receipt, then a payload that runs to the end of the websocket
message. Varints are Go's ``binary.PutVarint``: zig-zag, then LEB128.

Decoding never raises anything but L{FrameError}. A frame whose header cannot
be read carries no usable connection id; a frame whose header is fine but
whose payload is not (a Connect without ``/``, a SyncConnections whose length
is not a multiple of eight) names the connection it concerns, so that the
session can close just that stream.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Optional, Union

#: What the Go library writes into the deadline field of Data and Connect.
LEGACY_DEADLINE_MS = 15000

#: The Go library reads at most this much of a Connect payload (v0.5+).
CONNECT_PAYLOAD_LIMIT = 266

#: ... and at most this much of Error, AddClient and RemoveClient payloads.
SHORT_PAYLOAD_LIMIT = 100

_MAX_VARINT_BYTES = 10
_UINT64_MASK = (1 << 64) - 1


class MessageType(enum.IntEnum):
    DATA = 1
    CONNECT = 2
    ERROR = 3
    ADD_CLIENT = 4
    REMOVE_CLIENT = 5
    PAUSE = 6
    RESUME = 7
    SYNC_CONNECTIONS = 8


class FrameError(Exception):
    """
    A websocket message that is not a well-formed remotedialer message.

    @ivar conn_id: the connection the bad message was for, when the header
        could be read, else L{None}.
    @ivar reason: what is wrong with it, for logs.
    """

    def __init__(self, reason: str, conn_id: Optional[int] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conn_id = conn_id


@dataclass(frozen=True)
class Data:
    conn_id: int
    data: bytes
    message_id: int = 0


@dataclass(frozen=True)
class Connect:
    conn_id: int
    proto: str
    address: str
    message_id: int = 0


@dataclass(frozen=True)
class Error:
    """
    End of a connection: ``text`` is ``"EOF"`` for a graceful close,
    anything else is an error the peer surfaces as a read error.
    """

    conn_id: int
    text: str
    message_id: int = 0

    @property
    def is_eof(self) -> bool:
        return self.text == "EOF"


@dataclass(frozen=True)
class AddClient:
    """Only sent between Rancher replicas; decoded so it can be ignored."""

    client: str
    message_id: int = 0
    conn_id: int = 0


@dataclass(frozen=True)
class RemoveClient:
    client: str
    message_id: int = 0
    conn_id: int = 0


@dataclass(frozen=True)
class Pause:
    conn_id: int
    message_id: int = 0


@dataclass(frozen=True)
class Resume:
    conn_id: int
    message_id: int = 0


@dataclass(frozen=True)
class SyncConnections:
    """The connection ids the client holds, sorted ascending."""

    conn_ids: tuple[int, ...]
    message_id: int = 0
    conn_id: int = 0


@dataclass(frozen=True)
class Unknown:
    """A type number this library does not know; every Go version ignores it."""

    conn_id: int
    type: int
    payload: bytes
    message_id: int = 0


Message = Union[
    Data, Connect, Error, AddClient, RemoveClient, Pause, Resume, SyncConnections, Unknown
]


def encode_varint(value: int) -> bytes:
    """
    Encode a signed 64-bit integer as Go's C{binary.PutVarint} does.
    """
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} does not fit in a signed 64-bit varint")
    unsigned = ((value << 1) ^ (value >> 63)) & _UINT64_MASK
    out = bytearray()
    while unsigned >= 0x80:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def decode_varint(buffer: bytes, offset: int) -> tuple[int, int]:
    """
    Decode one signed varint at C{offset}.

    @return: the value and the offset just past it.
    @raise ValueError: if the varint is truncated or longer than Go accepts.
    """
    unsigned = 0
    shift = 0
    for index in range(_MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        if index == _MAX_VARINT_BYTES - 1 and byte > 1:
            raise ValueError("varint overflows a 64-bit integer")
        unsigned |= (byte & 0x7F) << shift
        if byte < 0x80:
            value = (unsigned >> 1) ^ -(unsigned & 1)
            return value, position + 1
        shift += 7
    raise ValueError("varint overflows a 64-bit integer")


def _header(message_id: int, conn_id: int, message_type: int) -> bytes:
    header = encode_varint(message_id) + encode_varint(conn_id) + encode_varint(message_type)
    if message_type in (MessageType.DATA, MessageType.CONNECT):
        header += encode_varint(LEGACY_DEADLINE_MS)
    return header


def encode(message: Message, message_id: Optional[int] = None) -> bytes:
    """
    Serialise a message into the bytes of one websocket binary message.

    @param message_id: the id to write; defaults to the record's own
        C{message_id}. Receivers never interpret it.
    """
    if message_id is None:
        message_id = message.message_id
    if isinstance(message, Data):
        return _header(message_id, message.conn_id, MessageType.DATA) + message.data
    if isinstance(message, Connect):
        payload = f"{message.proto}/{message.address}".encode("ascii")
        return _header(message_id, message.conn_id, MessageType.CONNECT) + payload
    if isinstance(message, Error):
        return _header(message_id, message.conn_id, MessageType.ERROR) + message.text.encode(
            "utf-8"
        )
    if isinstance(message, AddClient):
        return _header(message_id, 0, MessageType.ADD_CLIENT) + message.client.encode("utf-8")
    if isinstance(message, RemoveClient):
        return _header(message_id, 0, MessageType.REMOVE_CLIENT) + message.client.encode(
            "utf-8"
        )
    if isinstance(message, Pause):
        return _header(message_id, message.conn_id, MessageType.PAUSE)
    if isinstance(message, Resume):
        return _header(message_id, message.conn_id, MessageType.RESUME)
    if isinstance(message, SyncConnections):
        payload = b"".join(
            struct.pack("<Q", conn_id & _UINT64_MASK) for conn_id in message.conn_ids
        )
        return _header(message_id, 0, MessageType.SYNC_CONNECTIONS) + payload
    if isinstance(message, Unknown):
        return _header(message_id, message.conn_id, message.type) + message.payload
    raise TypeError(f"not a remotedialer message: {message!r}")


def decode(frame: bytes) -> Message:
    """
    Parse the bytes of one websocket binary message.

    @raise FrameError: if it is not a well-formed message.
    """
    try:
        message_id, offset = decode_varint(frame, 0)
        conn_id, offset = decode_varint(frame, offset)
    except ValueError as e:
        raise FrameError(f"bad header: {e}") from None
    try:
        message_type, offset = decode_varint(frame, offset)
        if message_type in (MessageType.DATA, MessageType.CONNECT):
            _, offset = decode_varint(frame, offset)
    except ValueError as e:
        raise FrameError(f"bad header: {e}", conn_id) from None
    payload = frame[offset:]

    if message_type == MessageType.DATA:
        return Data(conn_id, payload, message_id)
    if message_type == MessageType.CONNECT:
        text = payload[:CONNECT_PAYLOAD_LIMIT]
        proto, slash, address = text.partition(b"/")
        if not slash:
            raise FrameError("failed to parse connect address", conn_id)
        try:
            return Connect(conn_id, proto.decode("ascii"), address.decode("ascii"), message_id)
        except UnicodeDecodeError:
            raise FrameError("connect address is not ASCII", conn_id) from None
    if message_type == MessageType.ERROR:
        text = payload[:SHORT_PAYLOAD_LIMIT].decode("utf-8", errors="replace")
        return Error(conn_id, text, message_id)
    if message_type == MessageType.ADD_CLIENT:
        return AddClient(
            payload[:SHORT_PAYLOAD_LIMIT].decode("utf-8", errors="replace"), message_id, conn_id
        )
    if message_type == MessageType.REMOVE_CLIENT:
        return RemoveClient(
            payload[:SHORT_PAYLOAD_LIMIT].decode("utf-8", errors="replace"), message_id, conn_id
        )
    if message_type == MessageType.PAUSE:
        return Pause(conn_id, message_id)
    if message_type == MessageType.RESUME:
        return Resume(conn_id, message_id)
    if message_type == MessageType.SYNC_CONNECTIONS:
        if len(payload) % 8:
            raise FrameError("sync connections payload is not a multiple of 8 bytes", conn_id)
        ids = tuple(
            # Go decodes the little-endian uint64 into an int64.
            value - (1 << 64) if value >= (1 << 63) else value
            for (value,) in struct.iter_unpack("<Q", payload)
        )
        return SyncConnections(ids, message_id, conn_id)
    return Unknown(conn_id, message_type, payload, message_id)

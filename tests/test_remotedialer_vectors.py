# -*- test-case-name: tests.test_remotedialer_vectors -*-
"""
The Python remotedialer codec against messages the Go library itself wrote.

C{standin vectors} runs a real remotedialer Server, a real client and a
peered second Server in one process, records every websocket message
between them and prints a selection with the fields the Go side knows
(see tests/standin/vectors.go). Every vector must decode to those fields
and re-encode to the very same bytes.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from scaleagent.remotedialer import frames
from tests.standin import run_standin

_RECORD_TYPES: dict[int, type] = {
    frames.MessageType.DATA: frames.Data,
    frames.MessageType.CONNECT: frames.Connect,
    frames.MessageType.ERROR: frames.Error,
    frames.MessageType.ADD_CLIENT: frames.AddClient,
    frames.MessageType.REMOVE_CLIENT: frames.RemoveClient,
    frames.MessageType.PAUSE: frames.Pause,
    frames.MessageType.RESUME: frames.Resume,
    frames.MessageType.SYNC_CONNECTIONS: frames.SyncConnections,
}

# One run of `standin vectors` (about a minute: it waits for the client's
# 60-second SyncConnections) serves every test of this module.
_result: Union[list[dict[str, Any]], Failure, None] = None
_waiters: Optional[list[Deferred[list[dict[str, Any]]]]] = None


async def _produce() -> list[dict[str, Any]]:
    out, err, code = await run_standin(["vectors"], timeout=600.0)
    if code != 0:
        raise AssertionError(
            f"standin vectors exited with {code}:\n" + err.decode(errors="replace")[-6000:]
        )
    vectors: list[dict[str, Any]] = json.loads(out)
    return vectors


def go_vectors() -> Deferred[list[dict[str, Any]]]:
    global _waiters
    if _result is not None:
        return defer.fail(_result) if isinstance(_result, Failure) else defer.succeed(_result)
    waiter: Deferred[list[dict[str, Any]]] = Deferred()
    if _waiters is None:
        _waiters = [waiter]
        defer.ensureDeferred(_produce()).addBoth(_produced)
    else:
        _waiters.append(waiter)
    return waiter


def _produced(result: Union[list[dict[str, Any]], Failure]) -> None:
    global _result, _waiters
    _result = result
    waiters, _waiters = _waiters or [], None
    for waiter in waiters:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)


def python_fields(message: frames.Message) -> dict[str, Any]:
    """The fields of a decoded record, named as the Go side names them."""
    fields: dict[str, Any] = {"id": message.message_id, "connID": message.conn_id}
    if isinstance(message, frames.Data):
        fields.update(type=1, payloadHex=message.data.hex())
    elif isinstance(message, frames.Connect):
        fields.update(type=2, proto=message.proto, address=message.address)
    elif isinstance(message, frames.Error):
        fields.update(type=3, text=message.text)
    elif isinstance(message, frames.AddClient):
        fields.update(type=4, client=message.client)
    elif isinstance(message, frames.RemoveClient):
        fields.update(type=5, client=message.client)
    elif isinstance(message, frames.Pause):
        fields.update(type=6)
    elif isinstance(message, frames.Resume):
        fields.update(type=7)
    elif isinstance(message, frames.SyncConnections):
        fields.update(type=8, ids=list(message.conn_ids))
    else:
        fields.update(type=message.type)
    return fields


def describe(vector: dict[str, Any]) -> str:
    return (
        f"vector seq {vector['seq']} ({vector['link']} {vector['direction']} {vector['type']}"
        f"{', ' + vector['note'] if vector.get('note') else ''})"
    )


class GoVectorTests(TestCase):
    """
    The codec against every vector of C{standin vectors}.
    """

    # Building the stand-in and waiting for SyncConnections take minutes.
    timeout = 900

    async def test_every_message_type_is_covered(self) -> None:
        """
        The vectors hold every message type, Data in both directions (empty
        and larger than 64 KiB), a clean and a failed close, Pause and
        Resume both ways, and the peer-only messages.
        """
        vectors = await go_vectors()
        seen = {(v["link"], v["direction"], v["type"]) for v in vectors}
        self.assertEqual(
            {v["type"] for v in vectors},
            {
                "Data",
                "Connect",
                "Error",
                "AddClient",
                "RemoveClient",
                "Pause",
                "Resume",
                "SyncConnections",
            },
        )
        for direction in ("server-to-client", "client-to-server"):
            for kind in ("Data", "Pause", "Resume", "Error"):
                self.assertIn(("agent", direction, kind), seen)
        self.assertIn(("agent", "client-to-server", "SyncConnections"), seen)
        data = [v for v in vectors if v["type"] == "Data"]
        self.assertTrue(any(v["fields"]["payloadHex"] == "" for v in data))
        self.assertTrue(any(len(v["fields"]["payloadHex"]) > 2 * 64 * 1024 for v in data))
        texts = {v["fields"]["text"] for v in vectors if v["type"] == "Error"}
        self.assertIn("EOF", texts)
        self.assertTrue(any(t.startswith("dial tcp 127.0.0.1:") for t in texts), texts)
        protos = {v["fields"]["proto"] for v in vectors if v["type"] == "Connect"}
        self.assertEqual(protos, {"tcp", "vectors-agent-2::tcp"})
        clients = {v["fields"]["client"] for v in vectors if v["type"] in ("AddClient", "RemoveClient")}
        self.assertTrue(any(c.startswith("vectors-agent-2/") for c in clients), clients)

    async def test_decode_yields_the_go_fields(self) -> None:
        """
        L{frames.decode} of every vector gives the record the Go side
        describes: same type, ids, payload, texts and id lists.
        """
        vectors = await go_vectors()
        problems = []
        for vector in vectors:
            try:
                message = frames.decode(bytes.fromhex(vector["hex"]))
            except frames.FrameError as e:
                problems.append(f"{describe(vector)}: decode failed: {e}")
                continue
            want_type = _RECORD_TYPES.get(vector["fields"]["type"])
            if want_type is not None and not isinstance(message, want_type):
                problems.append(f"{describe(vector)}: decoded as {type(message).__name__}")
            got = python_fields(message)
            for key, want in vector["fields"].items():
                if key == "deadline":
                    continue
                if got.get(key) != want:
                    problems.append(
                        f"{describe(vector)}: field {key}: Go {want!r}, Python {got.get(key)!r}"
                    )
        self.assertEqual(problems, [], "\n".join(problems))

    async def test_deadline_is_the_legacy_constant(self) -> None:
        """
        Go writes 15000 into the deadline field of every Data and Connect,
        which is what L{frames.encode} writes.
        """
        vectors = await go_vectors()
        deadlines = {v["fields"]["deadline"] for v in vectors if v["type"] in ("Data", "Connect")}
        self.assertEqual(deadlines, {frames.LEGACY_DEADLINE_MS})

    async def test_encode_reproduces_the_bytes(self) -> None:
        """
        Re-encoding every decoded vector gives back the exact bytes Go sent.
        """
        vectors = await go_vectors()
        problems = []
        for vector in vectors:
            raw = bytes.fromhex(vector["hex"])
            try:
                again = frames.encode(frames.decode(raw))
            except (frames.FrameError, ValueError, TypeError) as e:
                problems.append(f"{describe(vector)}: {type(e).__name__}: {e}")
                continue
            if again != raw:
                problems.append(
                    f"{describe(vector)}: re-encoded\n  {again.hex()[:200]}\n"
                    f"  Go sent\n  {raw.hex()[:200]}"
                )
        self.assertEqual(problems, [], "\n".join(problems))

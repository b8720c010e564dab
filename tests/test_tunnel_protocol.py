"""
Tests for L{scaleagent.tunnel.protocol}: our autobahn client protocol
talking to an autobahn server protocol (or a raw HTTP responder, for
refusals) in memory.

The in-memory Rancher helpers here are also used by the service tests.
"""

from __future__ import annotations

from typing import Any, Optional

import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from scaleagent.remotedialer import frames
from scaleagent.tunnel.heartbeat import Heartbeat
from scaleagent.tunnel.inbound import InboundScheduler
from scaleagent.tunnel.protocol import (
    MAX_MESSAGE_SIZE,
    OVERDUE_CONNECT,
    EndKind,
    TunnelEnd,
    TunnelProtocol,
    TunnelProtocolFactory,
    TunnelRequest,
    summarize_body,
    websocket_factory,
)
from scaleagent.tunnel.trust import RancherTrust

from .test_tunnel_trust import HOSTNAME, make_pki, tls_connected

TOKEN = "regtoken-bcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstvw"
PARAMS_HEADER = "eyJjbHVzdGVyIjp7fX0="


# -- in-memory Rancher -----------------------------------------------------------


class FakeRancher(WebSocketServerProtocol):
    """
    Rancher's end of a tunnel: records the upgrade request and every
    message, answers Pings unless told not to.
    """

    #: autobahn logs the request it receives, token and all, at debug
    #: level: not even Rancher's stand-in does that.
    log = txaio.make_logger(level="info")

    def __init__(self) -> None:
        super().__init__()
        self.request: Any = None
        self.messages: list[tuple[bytes, bool]] = []
        self.pings: list[bytes] = []
        self.answer_pings = True
        self.opened = False
        self.closed = False

    def onConnect(self, request: Any) -> None:
        self.request = request

    def onOpen(self) -> None:
        self.opened = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append((payload, isBinary))

    def onPing(self, payload: bytes) -> None:
        self.pings.append(payload)
        if self.answer_pings:
            # As Go's server: an empty Pong, not an echo.
            self.sendPong(b"")

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.closed = True

    def send(self, message: frames.Message) -> None:
        self.sendMessage(frames.encode(message, 7), isBinary=True)

    def frames_received(self) -> list[frames.Message]:
        return [frames.decode(payload) for payload, binary in self.messages if binary]

    def raw_request_headers(self) -> list[str]:
        head = self.http_request_data.decode("ascii")
        return [line for line in head.split("\r\n")[1:] if line]


def rancher_factory(clock: Clock) -> WebSocketServerFactory:
    factory = WebSocketServerFactory(reactor=clock)
    # autobahn's own timers would run on the global reactor.
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0, autoPingInterval=0)
    factory.protocol = FakeRancher
    return factory


class RawResponder(Protocol):
    """
    An HTTP server that answers the upgrade with fixed bytes, possibly in
    pieces, like Rancher's Go error writer.
    """

    def __init__(self, *pieces: bytes, close: bool = False) -> None:
        self.pieces = list(pieces)
        self.close = close
        self.request = b""

    def dataReceived(self, data: bytes) -> None:
        self.request += data
        if b"\r\n\r\n" in self.request and self.pieces:
            self.transport.write(self.pieces.pop(0))

    def send_next(self) -> None:
        self.transport.write(self.pieces.pop(0))
        if not self.pieces and self.close:
            self.transport.loseConnection()


def go_error_response(status: int, text: str, body: str) -> bytes:
    payload = body.encode()
    return (
        f"HTTP/1.1 {status} {text}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Date: Mon, 30 Nov 2026 06:00:00 GMT\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


class FakeOwner:
    """A tunnel service that records what its protocol reports."""

    label = "c-test/main"

    def __init__(self, request: Optional[TunnelRequest] = None, route: Any = None) -> None:
        self.next_request = request or TunnelRequest(
            HOSTNAME,
            443,
            "/v3/connect/register",
            {"X-API-Tunnel-Token": TOKEN, "X-API-Tunnel-Params": PARAMS_HEADER},
        )
        self.routes = route or {}
        self.events: list[tuple[Any, ...]] = []

    def tunnel_connecting(self, protocol: TunnelProtocol) -> None:
        self.events.append(("connecting",))

    def request_for_attempt(self) -> TunnelRequest:
        self.events.append(("request", self.next_request.resource))
        return self.next_request

    def route(self, proto: str, address: str) -> Any:
        self.events.append(("route", proto, address))
        return self.routes.get(address)

    def tunnel_opened(self, protocol: TunnelProtocol) -> None:
        self.events.append(("opened",))

    def tunnel_closed(self, protocol: TunnelProtocol, end: TunnelEnd) -> None:
        self.events.append(("closed", end))

    def ends(self) -> list[TunnelEnd]:
        return [event[1] for event in self.events if event[0] == "closed"]


def connect(
    client: Protocol, server: Protocol, clock: Clock, creator: Any = None
) -> IOPump:
    """Connect client and server in memory, through TLS if C{creator}."""
    if creator is not None:
        return tls_connected(creator, client, server, clock)[2]
    return connectedServerAndClient(lambda: server, lambda: client, greet=False, clock=clock)[2]


class EchoStream(Protocol):
    """A local service behind the tunnel: echoes, records its transport."""

    instances: list["EchoStream"] = []

    def connectionMade(self) -> None:
        EchoStream.instances.append(self)
        self.lost: Optional[Failure] = None

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason


@implementer(IPushProducer)
class RecordingProducer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


# -- tests ----------------------------------------------------------------------


class ProtocolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.heartbeat = Heartbeat(self.clock)
        self.heartbeat.startService()
        self.addCleanup(self.heartbeat.stopService)
        self.owner = FakeOwner(route={"10.43.0.1:443": Factory.forProtocol(EchoStream)})
        EchoStream.instances = []

    def client(self, inbound: Optional[InboundScheduler] = None) -> TunnelProtocol:
        factory = TunnelProtocolFactory(
            self.owner, self.heartbeat, self.clock, websocket_factory(self.clock), inbound=inbound
        )
        return factory.buildProtocol(None)

    def open_tunnel(
        self, creator: Any = None, inbound: Optional[InboundScheduler] = None
    ) -> tuple[TunnelProtocol, FakeRancher, IOPump]:
        client = self.client(inbound)
        server = rancher_factory(self.clock).buildProtocol(None)
        pump = connect(client, server, self.clock, creator)
        pump.flush()
        self.assertEqual(self.owner.events[-1], ("opened",))
        return client, server, pump


class HandshakeRequestTests(ProtocolTestCase):
    def test_path_and_headers(self) -> None:
        client, server, _ = self.open_tunnel()
        self.assertEqual(server.request.path, "/v3/connect/register")
        self.assertEqual(server.request.headers["x-api-tunnel-token"], TOKEN)
        self.assertEqual(server.request.headers["x-api-tunnel-params"], PARAMS_HEADER)
        names = sorted(line.split(":", 1)[0].lower() for line in server.raw_request_headers())
        # autobahn's fixed handshake headers plus ours; no User-Agent,
        # Origin, subprotocol or extension offer.
        self.assertEqual(
            names,
            sorted(
                [
                    "host",
                    "upgrade",
                    "connection",
                    "pragma",
                    "cache-control",
                    "sec-websocket-key",
                    "sec-websocket-version",
                    "x-api-tunnel-token",
                    "x-api-tunnel-params",
                ]
            ),
        )
        self.assertEqual(server.request.headers["host"], f"{HOSTNAME}:443")

    def test_request_asked_for_on_every_attempt(self) -> None:
        self.open_tunnel()
        self.owner.next_request = TunnelRequest(
            HOSTNAME, 8443, "/v3/connect", {"Authorization": "Bearer stv-cluster-" + TOKEN}
        )
        _, server, _ = self.open_tunnel()
        self.assertEqual(server.request.path, "/v3/connect")
        self.assertEqual(server.request.headers["authorization"], "Bearer stv-cluster-" + TOKEN)
        self.assertNotIn("x-api-tunnel-token", server.request.headers)
        self.assertEqual(server.request.headers["host"], f"{HOSTNAME}:8443")
        self.assertEqual([e for e in self.owner.events if e[0] == "request"], [("request", "/v3/connect/register"), ("request", "/v3/connect")])

    def test_ipv6_host_is_bracketed(self) -> None:
        self.owner.next_request = TunnelRequest("fd00::1", 443, "/v3/connect", {})
        _, server, _ = self.open_tunnel()
        self.assertEqual(server.request.headers["host"], "[fd00::1]:443")

    def test_over_tls(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        client, server, pump = self.open_tunnel(creator=trust.connection_creator(HOSTNAME))
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"over tls"))
        pump.flush()
        assert client.session is not None
        self.assertEqual(client.session.stream_ids(), [2])
        self.assertEqual([m.data for m in server.frames_received()], [b"over tls"])

    def test_nagle_is_off(self) -> None:
        # Without it the first answer on a new stream waits ~40 ms for the
        # peer's delayed ACK; Go's side never has Nagle on.
        class TCPTransport(StringTransport):
            nodelay = False

            def setTcpNoDelay(self, enabled: bool) -> None:
                self.nodelay = enabled

        transport = TCPTransport()
        client = self.client()
        client.makeConnection(transport)
        self.addCleanup(client.connectionLost, Failure(ConnectionDone()))
        self.assertTrue(transport.nodelay)
        self.assertIn(b"GET /v3/connect/register", transport.value())

    def test_options(self) -> None:
        options = websocket_factory(self.clock)
        self.assertEqual(options.perMessageCompressionOffers, [])
        self.assertEqual((options.autoPingInterval, options.autoPingTimeout), (0, 0))
        self.assertEqual(options.openHandshakeTimeout, 0)
        self.assertTrue(options.maskClientFrames)
        self.assertEqual(options.maxMessagePayloadSize, MAX_MESSAGE_SIZE)
        self.assertGreaterEqual(MAX_MESSAGE_SIZE, 4 * 1024 * 1024)


class MessageTests(ProtocolTestCase):
    def test_binary_messages_reach_the_session_and_back(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"hello"))
        pump.flush()
        self.assertIn(("route", "tcp", "10.43.0.1:443"), self.owner.events)
        received = server.frames_received()
        self.assertEqual([(type(m), m.conn_id) for m in received], [(frames.Data, 2)])
        self.assertEqual(received[0].data, b"hello")
        # Every message went out as binary (and masked, or autobahn's server
        # would have failed the connection).
        self.assertTrue(all(binary for _, binary in server.messages))
        self.assertFalse(server.closed)

    def test_unknown_address_refused_with_error(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.0.0.9:22"))
        pump.flush()
        [error] = server.frames_received()
        self.assertIsInstance(error, frames.Error)
        self.assertIn("connection refused", error.text)

    def test_text_message_goes_to_receive_text(self) -> None:
        client, server, pump = self.open_tunnel()
        server.sendMessage(b"hello", isBinary=False)
        pump.flush()
        assert client.session is not None
        self.assertEqual(client.session.stats.malformed, 1)
        self.assertEqual(client.session.stats.messages_received, 0)

    def test_large_message(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        big = b"x" * (3 * 1024 * 1024)
        server.send(frames.Data(2, big))
        pump.flush()
        echoed = b"".join(m.data for m in server.frames_received() if isinstance(m, frames.Data))
        self.assertEqual(len(echoed), len(big))

    def test_close_frame_ends_the_session(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        pump.flush()
        server.sendClose(1000)
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.CLOSED)
        self.assertTrue(end.was_open)
        self.assertIn("1000", end.message)
        # The streams learnt the tunnel is gone.
        [stream] = EchoStream.instances
        self.clock.advance(0)
        self.assertIsNotNone(stream.lost)

    def test_stream_writes_after_drop_are_ignored(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        pump.flush()
        client.heartbeat_expired(61)
        # Dropped, connectionLost not yet delivered: writes must not raise.
        EchoStream.instances[0].transport.write(b"late")
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.DEAD_PEER)
        self.assertEqual(server.frames_received(), [])

    def test_close_is_graceful_over_tls(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        client, server, pump = self.open_tunnel(creator=trust.connection_creator(HOSTNAME))
        client.close()
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.CLOSED)
        self.assertTrue(server.closed)
        self.assertNotIn(client, self.heartbeat)

    def test_connection_lost_after_open(self) -> None:
        client, server, pump = self.open_tunnel()
        server.transport.loseConnection()
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.CLOSED)
        self.assertTrue(end.was_open)
        self.assertNotIn(client, self.heartbeat)


class FlowControlTests(ProtocolTestCase):
    def test_full_socket_pauses_every_stream_writer(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Connect(3, "tcp", "10.43.0.1:443"))
        pump.flush()
        producers = []
        for stream in EchoStream.instances:
            producer = RecordingProducer()
            stream.transport.registerProducer(producer, True)
            producers.append(producer)
        socket_producer = client.transport.producer
        socket_producer.pauseProducing()
        self.assertEqual([p.events for p in producers], [["pause"], ["pause"]])
        socket_producer.resumeProducing()
        self.assertEqual([p.events for p in producers], [["pause", "resume"], ["pause", "resume"]])
        self.assertEqual(client.socket_pauses, 1)

    def test_stream_paused_by_rancher_stays_paused(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        pump.flush()
        producer = RecordingProducer()
        EchoStream.instances[0].transport.registerProducer(producer, True)
        server.send(frames.Pause(2))
        pump.flush()
        client.transport.producer.pauseProducing()
        client.transport.producer.resumeProducing()
        self.assertEqual(producer.events, ["pause"])


class HeartbeatIntegrationTests(ProtocolTestCase):
    def test_empty_pings_and_pongs(self) -> None:
        client, server, pump = self.open_tunnel()
        self.assertIn(client, self.heartbeat)
        for _ in range(10):
            self.clock.advance(1)
            pump.flush()
        self.assertEqual(server.pings, [b"", b""])
        self.assertEqual(client.last_received, self.clock.seconds() - (self.clock.seconds() % 5))

    def test_sync_connections_sent(self) -> None:
        client, server, pump = self.open_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        for _ in range(65):
            self.clock.advance(1)
            pump.flush()
        syncs = [m for m in server.frames_received() if isinstance(m, frames.SyncConnections)]
        self.assertEqual([s.conn_ids for s in syncs], [(2,)])

    def test_silent_rancher_is_dropped(self) -> None:
        client, server, pump = self.open_tunnel()
        server.answer_pings = False
        for _ in range(66):
            self.clock.advance(1)
            pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.DEAD_PEER)
        self.assertTrue(end.was_open)
        self.assertNotIn(client, self.heartbeat)

    def test_messages_count_as_life(self) -> None:
        client, server, pump = self.open_tunnel()
        server.answer_pings = False
        for second in range(120):
            self.clock.advance(1)
            if second % 10 == 0:
                server.send(frames.Pause(99))
            pump.flush()
        self.assertEqual(self.owner.ends(), [])


class RefusalTests(ProtocolTestCase):
    def refuse(self, responder: RawResponder) -> TunnelEnd:
        client = self.client()
        pump = connect(client, responder, self.clock)
        pump.flush()
        while responder.pieces and not self.owner.ends():
            responder.send_next()
            pump.flush()
        [end] = self.owner.ends()
        self.assertNotIn(("opened",), self.owner.events)
        return end

    def test_401_reported_with_body(self) -> None:
        end = self.refuse(RawResponder(go_error_response(401, "Unauthorized", "failed authentication")))
        self.assertEqual(end.kind, EndKind.REJECTED)
        self.assertEqual(end.status, 401)
        self.assertEqual(end.body, "failed authentication")
        self.assertEqual(end.message, "401 failed authentication")
        self.assertFalse(end.was_open)

    def test_400_body_arriving_later(self) -> None:
        response = go_error_response(400, "Bad Request", "cluster not found")
        head, _, body = response.partition(b"\r\n\r\n")
        end = self.refuse(RawResponder(head + b"\r\n\r\n", body[:4], body[4:]))
        self.assertEqual(end.message, "400 cluster not found")
        self.assertEqual(end.kind, EndKind.REJECTED)

    def test_chunked_body(self) -> None:
        response = (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\ncluster \r\n9\r\nnot found\r\n0\r\n\r\n"
        )
        end = self.refuse(RawResponder(response))
        self.assertEqual(end.body, "cluster not found")

    def test_body_until_close(self) -> None:
        end = self.refuse(
            RawResponder(b"HTTP/1.1 403 Forbidden\r\n\r\nnot ", b"allowed", close=True)
        )
        self.assertEqual(end.kind, EndKind.REJECTED)
        self.assertEqual(end.message, "403 not allowed")

    def test_other_status_is_a_refusal_with_summary(self) -> None:
        html = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
        response = (
            "HTTP/1.1 503 Service Temporarily Unavailable\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(html)}\r\n\r\n{html}"
        ).encode()
        end = self.refuse(RawResponder(response))
        self.assertEqual(end.kind, EndKind.REFUSED)
        self.assertEqual(end.status, 503)
        self.assertTrue(end.message.startswith("503 503 Service Temporarily Unavailable"))
        self.assertNotIn("<", end.message)

    def test_redirect_names_its_target(self) -> None:
        end = self.refuse(
            RawResponder(
                b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://rancher.test/v3/connect\r\n"
                b"Content-Length: 0\r\n\r\n"
            )
        )
        self.assertEqual(end.kind, EndKind.REFUSED)
        self.assertEqual(end.message, "301 Moved Permanently (redirect to https://rancher.test/v3/connect)")

    def test_empty_body_uses_reason_phrase(self) -> None:
        end = self.refuse(RawResponder(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
        self.assertEqual(end.message, "404 Not Found")

    def test_body_is_capped(self) -> None:
        body = "x" * 10000
        end = self.refuse(RawResponder(go_error_response(400, "Bad Request", body)))
        assert end.body is not None
        self.assertEqual(len(end.body), 4096)
        self.assertLess(len(end.message), 300)

    def test_not_a_websocket_answer(self) -> None:
        end = self.refuse(RawResponder(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"))
        self.assertEqual(end.kind, EndKind.PROTOCOL)

    def test_handshake_timeout(self) -> None:
        client = self.client()
        responder = RawResponder()
        pump = connect(client, responder, self.clock)
        pump.flush()
        self.clock.advance(9.9)
        pump.flush()
        self.assertEqual(self.owner.ends(), [])
        self.clock.advance(0.2)
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.TIMEOUT)
        self.assertIn("10 s", end.message)

    def test_refusal_body_that_never_ends(self) -> None:
        client = self.client()
        responder = RawResponder(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\ncluster not")
        pump = connect(client, responder, self.clock)
        pump.flush()
        self.assertEqual(self.owner.ends(), [])
        self.clock.advance(10)
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.message, "400 cluster not")

    def test_no_handshake_timer_left_after_open(self) -> None:
        self.open_tunnel()
        self.heartbeat.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tls_failure(self) -> None:
        client = self.client()
        server = rancher_factory(self.clock).buildProtocol(None)
        pump = connect(client, server, self.clock, creator=RancherTrust.system().connection_creator(HOSTNAME))
        pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.TLS)


class SecretsTests(ProtocolTestCase):
    def test_no_token_in_any_log_event(self) -> None:
        with capturedLogs() as events:
            client, server, pump = self.open_tunnel()
            server.send(frames.Connect(2, "tcp", "10.0.0.9:22"))
            server.transport.loseConnection()
            pump.flush()
            self.refuse_once()
        self.assertTrue(events)
        for event in events:
            text = (formatEvent(event) or "") + repr(event)
            self.assertNotIn(TOKEN, text)
            self.assertNotIn(PARAMS_HEADER, text)

    def test_no_token_with_txaio_at_debug(self) -> None:
        """
        autobahn logs the whole handshake request at debug level; that
        stays out of the log even when txaio's global level is debug.
        """
        level = txaio.get_global_log_level()
        txaio.set_global_log_level("debug")
        self.addCleanup(txaio.set_global_log_level, level)
        self.test_no_token_in_any_log_event()

    def refuse_once(self) -> None:
        client = self.client()
        pump = connect(client, RawResponder(go_error_response(401, "Unauthorized", "failed authentication")), self.clock)
        pump.flush()

    def test_request_repr_hides_headers(self) -> None:
        self.assertNotIn(TOKEN, repr(self.owner.next_request))


class SummaryTests(SynchronousTestCase):
    def test_whitespace_collapsed(self) -> None:
        self.assertEqual(summarize_body("  a\n\n b\t"), "a b")

    def test_cut(self) -> None:
        self.assertEqual(len(summarize_body("y" * 500, limit=50)), 50)


class InboundSchedulingTests(ProtocolTestCase):
    """
    With the process's L{InboundScheduler}, messages beyond a turn's budget
    wait; a tunnel with a backlog is not read, and not taken for dead.
    """

    def setUp(self) -> None:
        super().setUp()
        # Its own clock, so that advancing the heartbeat's does not drain
        # the queue; a budget of zero queues every message.
        self.turns = Clock()
        self.elapsed = 0.0
        self.inbound = InboundScheduler(
            self.turns, budget=0.0, high_water=64, timer=lambda: self.elapsed
        )

    def open_held_tunnel(self) -> tuple[TunnelProtocol, FakeRancher, IOPump, list[str]]:
        client, server, pump = self.open_tunnel(inbound=self.inbound)
        reading: list[str] = []
        client.transport.pauseProducing = lambda: reading.append("pause")  # type: ignore[method-assign]
        client.transport.resumeProducing = lambda: reading.append("resume")  # type: ignore[method-assign]
        return client, server, pump, reading

    def test_messages_wait_for_the_next_turn_in_order(self) -> None:
        client, server, pump, _ = self.open_held_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"one"))
        server.send(frames.Data(2, b"two"))
        pump.flush()
        self.assertEqual(EchoStream.instances, [])
        self.turns.advance(0)
        pump.flush()
        self.assertEqual([m.data for m in server.frames_received()], [b"one", b"two"])

    def test_backlog_stops_reading_and_is_not_silence(self) -> None:
        client, server, pump, reading = self.open_held_tunnel()
        server.answer_pings = False
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"x" * 100))
        pump.flush()
        self.assertEqual(reading, ["pause"])
        self.assertTrue(self.inbound.is_held(client))
        # Far beyond the 60 s silence limit: we are the ones not reading.
        for _ in range(90):
            self.clock.advance(1)
            pump.flush()
        self.assertEqual(self.owner.ends(), [])
        self.turns.advance(0)
        pump.flush()
        self.assertEqual(reading, ["pause", "resume"])
        self.assertEqual(
            [m.data for m in server.frames_received() if isinstance(m, frames.Data)], [b"x" * 100]
        )
        # Listening again, Rancher's silence counts from now on.
        for _ in range(30):
            self.clock.advance(1)
            pump.flush()
        self.assertEqual(self.owner.ends(), [])
        for _ in range(36):
            self.clock.advance(1)
            pump.flush()
        [end] = self.owner.ends()
        self.assertEqual(end.kind, EndKind.DEAD_PEER)

    def test_lost_connection_drops_its_backlog(self) -> None:
        client, server, pump, reading = self.open_held_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"x" * 100))
        pump.flush()
        client.transport.loseConnection()
        pump.flush()
        self.assertFalse(self.inbound.is_held(client))
        self.turns.advance(0)
        self.assertEqual(EchoStream.instances, [])
        self.assertEqual(reading, ["pause"])
        self.assertEqual(self.inbound.stats.queued_bytes, 0)

    def test_connect_that_waited_too_long_is_a_dial_timeout(self) -> None:
        client, server, pump, _ = self.open_held_tunnel()
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"hello"))
        pump.flush()
        self.elapsed += OVERDUE_CONNECT + 1
        server.send(frames.Connect(4, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(4, b"fresh"))
        pump.flush()
        self.turns.advance(0)
        pump.flush()
        replies = server.frames_received()
        self.assertEqual(
            [(type(m).__name__, m.conn_id) for m in replies],
            [("Error", 2), ("Error", 2), ("Data", 4)],
        )
        self.assertEqual(replies[0].text, "dial tcp 10.43.0.1:443: i/o timeout")
        self.assertEqual(replies[2].data, b"fresh")
        self.assertEqual(len(EchoStream.instances), 1)

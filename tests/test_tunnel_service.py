"""
Tests for L{scaleagent.tunnel.service}: a L{Tunnel} reconnecting through an
endpoint the test completes by hand, to the in-memory Rancher of
L{tests.test_tunnel_protocol}, on a L{Clock}.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.remotedialer import frames
from scaleagent.steve import SteveSite
from scaleagent.tunnel.heartbeat import Heartbeat
from scaleagent.tunnel.params import TunnelParams
from scaleagent.tunnel.protocol import EndKind
from scaleagent.tunnel.service import (
    Backoff,
    InvalidServerURL,
    RetryPolicy,
    Tunnel,
    TunnelKind,
    TunnelState,
    TunnelStatus,
    main_tunnel_spec,
    steve_tunnel_spec,
)
from scaleagent.tunnel.trust import RancherTrust

from .test_tunnel_protocol import (
    EchoStream,
    FakeRancher,
    RawResponder,
    connect,
    go_error_response,
    rancher_factory,
)
from .test_tunnel_trust import make_pki

TOKEN = "regtoken-bcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstvw"
SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.sa-token-secret"
PARAMS = TunnelParams("10.43.0.1:443", SA_TOKEN, "QUJD")
SECRETS = (TOKEN, SA_TOKEN, PARAMS.header_value())


class FakeEndpoints:
    """
    The injected endpoint factory: every connect waits until the test
    accepts it (connecting it in memory to a server protocol) or fails it.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.made: list[tuple[str, int, Any]] = []
        self.pending: list[tuple[Deferred[Any], IProtocolFactory]] = []
        self.cancelled = 0
        self.creator: Any = None

    def __call__(self, host: str, port: int, creator: Any) -> "FakeEndpoints":
        self.made.append((host, port, creator))
        self.creator = creator
        return self

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        def cancel(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancel)
        self.pending.append((d, factory))
        return d

    def accept(self, server: Protocol) -> IOPump:
        d, factory = self.pending.pop(0)
        client = factory.buildProtocol(None)
        pump = connect(client, server, self.clock, self.creator)
        # Real endpoints fire as soon as TCP is up, before any bytes move.
        d.callback(client)
        pump.flush()
        return pump

    def fail(self) -> None:
        d, _ = self.pending.pop(0)
        d.errback(Failure(ConnectionRefusedError("Connection refused")))


def fixed_random(*values: float) -> Any:
    cycle = itertools.cycle(values)
    return lambda: next(cycle)


class TunnelTestCase(SynchronousTestCase):
    server_url = "https://rancher.test:8443/rancher"

    def setUp(self) -> None:
        self.clock = Clock()
        self.heartbeat = Heartbeat(self.clock)
        self.heartbeat.startService()
        self.addCleanup(self.heartbeat.stopService)
        self.endpoints = FakeEndpoints(self.clock)
        self.statuses: list[TunnelStatus] = []
        self.trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        self.routes = {"10.43.0.1:443": Factory.forProtocol(EchoStream)}
        self.connections: list[tuple[Protocol, IOPump]] = []
        EchoStream.instances = []

    def common(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = dict(
            reactor=self.clock,
            heartbeat=self.heartbeat,
            trust=self.trust,
            endpoint_factory=self.endpoints,
            observer=self.statuses.append,
            retry_policy=RetryPolicy(random=fixed_random(0.5)),
        )
        options.update(overrides)
        return options

    def main_tunnel(self, **overrides: Any) -> Tunnel:
        tunnel = Tunnel.main(
            self.server_url,
            TOKEN,
            PARAMS,
            lambda proto, address: self.routes.get(address),
            label="c-test/main",
            **self.common(**overrides),
        )
        self.addCleanup(self.stop, tunnel)
        return tunnel

    def stop(self, tunnel: Tunnel) -> None:
        if tunnel.running:
            d = tunnel.stopService()
            # Let a closing connection finish.
            self.clock.advance(0)
            self.pending_pumps_flush()
            self.successResultOf(d)

    def pending_pumps_flush(self) -> None:
        for _, pump in self.connections:
            pump.flush()

    def rancher(self) -> FakeRancher:
        return rancher_factory(self.clock).buildProtocol(None)

    def accept(self, server: Protocol) -> IOPump:
        pump = self.endpoints.accept(server)
        self.connections.append((server, pump))
        return pump

    def last_server(self) -> Any:
        return self.connections[-1][0]

    def wait_for_next_attempt(self, tunnel: Tunnel) -> None:
        status = tunnel.status
        self.assertEqual(status.state, TunnelState.WAITING)
        assert status.next_attempt_at is not None
        before = len(self.endpoints.pending)
        self.clock.advance(status.next_attempt_at - self.clock.seconds())
        self.assertEqual(len(self.endpoints.pending), before + 1)

    def states(self) -> list[str]:
        return [status.state.value for status in self.statuses]


class MainTunnelTests(TunnelTestCase):
    def test_endpoint_and_tls_creator(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.assertEqual(self.endpoints.made, [("rancher.test", 8443, self.trust.connection_creator("rancher.test"))])

    def test_register_path_until_first_session(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.assertEqual(tunnel.status.url, "wss://rancher.test:8443/v3/connect/register")
        # A refused TCP connection: still /register next time.
        self.endpoints.fail()
        self.wait_for_next_attempt(tunnel)
        server = self.rancher()
        pump = self.accept(server)
        self.assertEqual(server.request.path, "/v3/connect/register")
        self.assertEqual(server.request.headers["x-api-tunnel-token"], TOKEN)
        self.assertEqual(server.request.headers["x-api-tunnel-params"], PARAMS.header_value())
        self.assertNotIn("authorization", server.request.headers)
        self.assertEqual(tunnel.state, TunnelState.CONNECTED)
        server.transport.loseConnection()
        pump.flush()
        self.wait_for_next_attempt(tunnel)
        server = self.rancher()
        self.accept(server)
        self.assertEqual(server.request.path, "/v3/connect")
        # Byte-identical params on the reconnect.
        self.assertEqual(server.request.headers["x-api-tunnel-params"], PARAMS.header_value())
        self.assertEqual(tunnel.status.url, "wss://rancher.test:8443/v3/connect")

    def test_registered_starts_with_connect(self) -> None:
        tunnel = self.main_tunnel(registered=True)
        tunnel.startService()
        server = self.rancher()
        self.accept(server)
        self.assertEqual(server.request.path, "/v3/connect")

    def test_streams_routed(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        server = self.rancher()
        pump = self.accept(server)
        server.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        server.send(frames.Data(2, b"GET /version"))
        server.send(frames.Connect(3, "tcp", "10.43.0.99:443"))
        pump.flush()
        received = server.frames_received()
        self.assertEqual(received[0], frames.Data(2, b"GET /version", received[0].message_id))
        self.assertIsInstance(received[1], frames.Error)
        self.assertEqual(received[1].conn_id, 3)
        stats = tunnel.session_stats()
        assert stats is not None
        self.assertEqual(stats["streams_opened"], 1)
        self.assertEqual(stats["streams_refused"], 1)

    def test_state_machine_and_observer(self) -> None:
        tunnel = self.main_tunnel()
        self.assertEqual(tunnel.state, TunnelState.STOPPED)
        tunnel.startService()
        self.accept(RawResponder(go_error_response(401, "Unauthorized", "failed authentication")))
        status = tunnel.status
        self.assertEqual(status.state, TunnelState.WAITING)
        self.assertEqual(status.last_error, "401 failed authentication")
        self.assertEqual(status.last_end, EndKind.REJECTED)
        self.assertIsNone(status.connected_since)
        self.wait_for_next_attempt(tunnel)
        self.clock.advance(0.5)
        pump = self.accept(self.rancher())
        status = tunnel.status
        self.assertEqual(status.state, TunnelState.CONNECTED)
        self.assertEqual(status.connected_since, self.clock.seconds())
        self.assertEqual((status.attempts, status.connect_count, status.reconnects), (2, 1, 0))
        # The last failure stays visible after recovery.
        self.assertEqual(status.last_error, "401 failed authentication")
        self.last_server().transport.loseConnection()
        pump.flush()
        self.wait_for_next_attempt(tunnel)
        self.accept(self.rancher())
        self.assertEqual(tunnel.status.reconnects, 1)
        self.stop(tunnel)
        self.assertEqual(
            self.states(),
            ["connecting", "waiting", "connecting", "connected", "waiting", "connecting", "connected", "stopped"],
        )
        self.assertTrue(all(s.label == "c-test/main" and s.kind is TunnelKind.MAIN for s in self.statuses))

    def test_broken_observer_does_not_break_the_tunnel(self) -> None:
        def observer(status: TunnelStatus) -> None:
            raise RuntimeError("observer bug")

        tunnel = self.main_tunnel(observer=observer)
        tunnel.startService()
        self.accept(self.rancher())
        self.assertEqual(tunnel.state, TunnelState.CONNECTED)
        self.stop(tunnel)
        self.assertEqual(tunnel.state, TunnelState.STOPPED)
        # connecting, connected, stopped
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)


class BackoffTests(TunnelTestCase):
    def delays_after_failures(self, tunnel: Tunnel, count: int, refuse: Optional[bytes] = None) -> list[float]:
        delays = []
        for _ in range(count):
            if refuse is None:
                self.endpoints.fail()
            else:
                self.accept(RawResponder(refuse))
            status = tunnel.status
            assert status.next_attempt_at is not None
            delays.append(status.next_attempt_at - self.clock.seconds())
            self.wait_for_next_attempt(tunnel)
        return delays

    def test_network_backoff_grows_with_jitter_within_bounds(self) -> None:
        jitters = [0.0, 0.99, 0.3, 0.7, 0.5, 0.1, 0.9, 0.4]
        tunnel = self.main_tunnel(retry_policy=RetryPolicy(random=fixed_random(*jitters)))
        tunnel.startService()
        delays = self.delays_after_failures(tunnel, 8)
        bases = [5, 10, 20, 40, 80, 120, 120, 120]
        for delay, base, jitter in zip(delays, bases, jitters):
            self.assertGreater(delay, base * 0.5)
            self.assertLessEqual(delay, base)
            self.assertAlmostEqual(delay, base * (1 - 0.5 * jitter))
        self.assertEqual(tunnel.status.consecutive_failures, 8)
        self.assertIn("Connection refused", tunnel.status.last_error or "")
        self.assertEqual(tunnel.status.last_end, EndKind.NETWORK)

    def test_jitter_spreads_tunnels(self) -> None:
        policy = RetryPolicy(random=fixed_random(0.1, 0.8))
        self.assertNotEqual(policy.delay(EndKind.NETWORK, 1), policy.delay(EndKind.NETWORK, 1))

    def test_rejections_back_off_longer(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        refusal = go_error_response(400, "Bad Request", "cluster not found")
        delays = self.delays_after_failures(tunnel, 3, refuse=refusal)
        # fixed jitter 0.5: 15, 30, 60 seconds times 0.75.
        self.assertEqual(delays, [11.25, 22.5, 45.0])
        network = RetryPolicy(random=fixed_random(0.5))
        self.assertGreater(delays[0], network.delay(EndKind.NETWORK, 1) * 2)

    def test_other_refusals_back_off_like_network_errors(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        delays = self.delays_after_failures(tunnel, 2, refuse=go_error_response(502, "Bad Gateway", "upstream"))
        self.assertEqual(delays, [3.75, 7.5])
        self.assertEqual(tunnel.status.last_end, EndKind.REFUSED)

    def test_untrusted_certificate_backs_off_longer(self) -> None:
        tunnel = self.main_tunnel(trust=RancherTrust.system())
        tunnel.startService()
        self.accept(self.rancher())
        status = tunnel.status
        self.assertEqual(status.last_end, EndKind.TLS)
        assert status.next_attempt_at is not None
        self.assertEqual(status.next_attempt_at - self.clock.seconds(), 11.25)

    def test_stable_session_resets_backoff(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.delays_after_failures(tunnel, 4)
        pump = self.accept(self.rancher())
        self.assertEqual(tunnel.status.consecutive_failures, 4)
        for _ in range(61):
            self.clock.advance(1)
            pump.flush()
        self.last_server().transport.loseConnection()
        pump.flush()
        status = tunnel.status
        self.assertEqual(status.consecutive_failures, 1)
        assert status.next_attempt_at is not None
        self.assertEqual(status.next_attempt_at - self.clock.seconds(), 3.75)
        self.assertEqual(status.last_end, EndKind.CLOSED)

    def test_short_session_does_not_reset_backoff(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.delays_after_failures(tunnel, 3)
        pump = self.accept(self.rancher())
        self.clock.advance(2)
        self.last_server().transport.loseConnection()
        pump.flush()
        status = tunnel.status
        self.assertEqual(status.consecutive_failures, 4)
        assert status.next_attempt_at is not None
        self.assertEqual(status.next_attempt_at - self.clock.seconds(), 30.0)

    def test_policy_validation(self) -> None:
        with self.assertRaises(ValueError):
            RetryPolicy(jitter=1.0)
        with self.assertRaises(ValueError):
            Backoff(0, 10)
        with self.assertRaises(ValueError):
            Backoff(10, 5)

    def test_never_zero(self) -> None:
        policy = RetryPolicy(jitter=0.99, random=lambda: 0.999999)
        self.assertGreater(policy.delay(EndKind.NETWORK, 1), 0)
        self.assertGreater(policy.delay(EndKind.NETWORK, 10**6), 0)


class LoggingTests(TunnelTestCase):
    def test_repeated_failures_logged_once_at_info(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        with capturedLogs() as events:
            for _ in range(3):
                self.endpoints.fail()
                self.wait_for_next_attempt(tunnel)
            self.accept(RawResponder(go_error_response(401, "Unauthorized", "failed authentication")))
        failures = [e for e in events if e.get("what") == "attempt failed"]
        self.assertEqual([e["log_level"].name for e in failures], ["info", "debug", "debug", "info"])
        self.assertEqual(failures[-1]["reason"], "401 failed authentication")


class StopTests(TunnelTestCase):
    def test_stop_while_waiting_cancels_the_retry(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.endpoints.fail()
        self.assertEqual(tunnel.state, TunnelState.WAITING)
        self.successResultOf(tunnel.stopService())
        self.assertEqual(tunnel.state, TunnelState.STOPPED)
        self.assertIsNone(tunnel.status.next_attempt_at)
        self.heartbeat.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertEqual(self.endpoints.pending, [])

    def test_stop_while_connecting_cancels_the_attempt(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.successResultOf(tunnel.stopService())
        self.assertEqual(self.endpoints.cancelled, 1)
        self.assertEqual(tunnel.state, TunnelState.STOPPED)
        self.assertIsNone(tunnel.status.last_error)
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoints.pending), 1)  # the cancelled one

    def test_stop_while_connected_closes(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        server = self.rancher()
        pump = self.accept(server)
        protocol = tunnel.protocol
        d = tunnel.stopService()
        pump.flush()
        self.successResultOf(d)
        self.assertEqual(tunnel.state, TunnelState.STOPPED)
        self.assertTrue(server.closed)
        self.assertNotIn(protocol, self.heartbeat)
        self.assertIsNone(tunnel.protocol)
        self.clock.advance(1000)
        self.assertEqual(self.endpoints.pending, [])

    def test_restart_before_the_old_connection_closed(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        old_server = self.rancher()
        pump = self.accept(old_server)
        stopping = tunnel.stopService()
        tunnel.startService()
        self.assertEqual(tunnel.state, TunnelState.CONNECTING)
        # Now the old connection finishes closing; it must not count as
        # a failure of the new run.
        pump.flush()
        self.successResultOf(stopping)
        self.assertTrue(old_server.closed)
        self.assertEqual(tunnel.state, TunnelState.CONNECTING)
        self.assertIsNone(tunnel.status.last_error)
        self.accept(self.rancher())
        self.assertEqual(tunnel.state, TunnelState.CONNECTED)
        self.assertEqual(tunnel.status.connect_count, 2)

    def test_restart_after_stop(self) -> None:
        tunnel = self.main_tunnel()
        tunnel.startService()
        self.successResultOf(tunnel.stopService())
        self.endpoints.pending.clear()
        tunnel.startService()
        self.accept(self.rancher())
        self.assertEqual(tunnel.state, TunnelState.CONNECTED)
        self.assertEqual(self.states(), ["connecting", "stopped", "connecting", "connected"])


class SteveTunnelTests(TunnelTestCase):
    def test_url_headers_and_ping(self) -> None:
        site = SteveSite(self.clock)
        tunnel = Tunnel.steve(self.server_url, TOKEN, site=site, label="c-test/steve", **self.common())
        self.addCleanup(self.stop, tunnel)
        tunnel.startService()
        self.assertEqual(tunnel.status.url, "wss://rancher.test:8443/rancher/v3/connect")
        server = self.rancher()
        pump = self.accept(server)
        self.assertEqual(server.request.path, "/rancher/v3/connect")
        self.assertEqual(server.request.headers["authorization"], f"Bearer stv-cluster-{TOKEN}")
        self.assertNotIn("x-api-tunnel-token", server.request.headers)
        self.assertNotIn("x-api-tunnel-params", server.request.headers)
        server.send(frames.Connect(2, "tcp", "not-used:80"))
        server.send(frames.Data(2, b"GET /ping HTTP/1.1\r\nHost: not-used\r\n\r\n"))
        self.clock.advance(0)
        pump.flush()
        received = server.frames_received()
        response = b"".join(m.data for m in received if isinstance(m, frames.Data))
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(response.endswith(b"\r\n\r\npong"))
        self.assertEqual([m.text for m in received if isinstance(m, frames.Error)], ["EOF"])
        self.assertEqual(site.stats.pings, 1)
        self.assertEqual(tunnel.status.kind, TunnelKind.STEVE)

    def test_steve_keeps_its_path_after_reconnect(self) -> None:
        tunnel = Tunnel.steve("https://rancher.test/", TOKEN, **self.common())
        self.addCleanup(self.stop, tunnel)
        tunnel.startService()
        self.endpoints.fail()
        self.wait_for_next_attempt(tunnel)
        server = self.rancher()
        self.accept(server)
        self.assertEqual(server.request.path, "/v3/connect")
        self.assertEqual(self.endpoints.made[0][:2], ("rancher.test", 443))


class SpecTests(SynchronousTestCase):
    def test_main_drops_path(self) -> None:
        spec = main_tunnel_spec("https://Rancher.Example.com/some/path/", TOKEN, PARAMS)
        self.assertEqual(spec.url(False), "wss://rancher.example.com/v3/connect/register")
        self.assertEqual(spec.url(True), "wss://rancher.example.com/v3/connect")

    def test_steve_keeps_path(self) -> None:
        spec = steve_tunnel_spec("https://rancher.example.com:444/some/path/", TOKEN)
        self.assertEqual(spec.url(), "wss://rancher.example.com:444/some/path/v3/connect")

    def test_ipv6(self) -> None:
        spec = main_tunnel_spec("https://[fd00::1]:8443", TOKEN, PARAMS)
        self.assertEqual((spec.host, spec.port), ("fd00::1", 8443))
        self.assertEqual(spec.url(), "wss://[fd00::1]:8443/v3/connect")

    def test_plain_http_for_test_servers(self) -> None:
        spec = steve_tunnel_spec("http://127.0.0.1:8080", TOKEN)
        self.assertFalse(spec.secure)
        self.assertEqual(spec.url(), "ws://127.0.0.1:8080/v3/connect")

    def test_invalid_urls(self) -> None:
        for url in ("rancher.example.com", "ftp://x", "https://", "https://x:notaport"):
            with self.assertRaises(InvalidServerURL):
                main_tunnel_spec(url, TOKEN, PARAMS)
        for token in ("", " tok", "tok\r\nX-Evil: 1"):
            with self.assertRaises(ValueError):
                steve_tunnel_spec("https://x", token)
            with self.assertRaises(ValueError):
                main_tunnel_spec("https://x", token, PARAMS)

    def test_no_secret_in_repr(self) -> None:
        for spec in (main_tunnel_spec("https://x", TOKEN, PARAMS), steve_tunnel_spec("https://x", TOKEN)):
            for secret in SECRETS:
                self.assertNotIn(secret, repr(spec))


class SecretsTests(TunnelTestCase):
    def test_no_token_in_any_log_event(self) -> None:
        with capturedLogs() as events:
            tunnel = self.main_tunnel()
            steve = Tunnel.steve(self.server_url, TOKEN, **self.common())
            self.addCleanup(self.stop, steve)
            tunnel.startService()
            self.accept(RawResponder(go_error_response(401, "Unauthorized", "failed authentication")))
            self.wait_for_next_attempt(tunnel)
            self.endpoints.fail()
            self.wait_for_next_attempt(tunnel)
            pump = self.accept(self.rancher())
            self.last_server().send(frames.Connect(2, "tcp", "10.43.0.1:443"))
            pump.flush()
            steve.startService()
            self.accept(self.rancher())
            self.stop(tunnel)
            self.stop(steve)
        self.assertTrue(events)
        for event in events:
            text = (formatEvent(event) or "") + repr(event)
            for secret in SECRETS:
                self.assertNotIn(secret, text)
        for status in self.statuses:
            for secret in SECRETS:
                self.assertNotIn(secret, repr(status))

    def test_no_token_with_txaio_at_debug(self) -> None:
        """
        Nor when txaio logs at debug level, where autobahn would show the
        handshake request with the main tunnel's token and the steve
        tunnel's Authorization header.
        """
        import txaio

        level = txaio.get_global_log_level()
        txaio.set_global_log_level("debug")
        self.addCleanup(txaio.set_global_log_level, level)
        self.test_no_token_in_any_log_event()

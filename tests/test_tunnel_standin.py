# -*- test-case-name: tests.test_tunnel_standin -*-
"""
scaleagent's own tunnel client (L{Tunnel}, its remotedialer session and the
shared L{Heartbeat}) against the Go stand-in, whose tunnels end in the real
remotedialer server: both tunnels over TLS trusting only the stand-in's CA,
byte round-trips of many concurrent streams with flow control both ways,
refused dials, the steve Connected check, server-side disconnects and
reconnects, refused credentials with jittered backoff, keepalive and
SyncConnections on the wire, and dead-peer detection behind a proxy that
goes silent.

Every wait is for observable state (the stand-in's control API, a tunnel's
status, a Deferred of the stream peer), never for a fixed time. Heartbeat
intervals and retry backoffs are injected, short, so that the module stays
fast; the production values are unit-tested in C{test_tunnel_heartbeat} and
C{test_tunnel_service}.

No log event of a test, and no line the stand-in logs, may contain the
registration token, the service-account token or the params header that
carries it; failure messages show fingerprints of them, never the values.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from scaleagent.identity import ClusterIdentity
from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import MAX_BUFFER
from scaleagent.steve import SteveSite
from scaleagent.testing.streampeer import (
    DIGEST_LEN,
    HeldGate,
    StreamHeader,
    StreamPeer,
    StreamPeerFactory,
    slow_reader,
)
from scaleagent.tunnel.heartbeat import Heartbeat
from scaleagent.tunnel.params import TunnelParams
from scaleagent.tunnel.protocol import EndKind
from scaleagent.tunnel.service import (
    Backoff,
    RetryPolicy,
    Tunnel,
    TunnelKind,
    TunnelState,
    TunnelStatus,
)
from scaleagent.tunnel.trust import RancherTrust
from tests.standin import LogWatch, StandinProcess, start_standin, wait_for

#: Where the stand-in's stream tests dial; our route sends it to the peer.
PEER_ADDRESS = "127.0.0.1:7777"

#: How our session answers a Connect nothing serves (as a failed dial).
REFUSAL = "dial tcp 10.9.8.7:6443: connect: connection refused"

#: What the simulated cluster announces as its API server.
API_ADDRESS = "10.43.0.1:443"

MiB = 1 << 20

#: Retries quick enough for a test, with the production jitter.
QUICK_RETRY = RetryPolicy(network=Backoff(0.05, 0.5), rejected=Backoff(0.1, 1.0))


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def live_session(view: dict[str, Any], kind: str) -> dict[str, Any]:
    """The one live session of a tunnel in a cluster view."""
    live = [s for s in view["tunnels"][kind]["sessions"] if s["live"]]
    assert len(live) == 1, f"{kind}: {len(live)} live sessions"
    return live[0]


def fingerprint(secret: str) -> str:
    """What a secret is shown as in a redacted view."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def redacted(view: dict[str, Any]) -> dict[str, Any]:
    """A cluster view with its tokens replaced by their fingerprints."""
    view = dict(view)
    view["tokens"] = [fingerprint(t["token"]) for t in view.get("tokens") or []]
    if view.get("params"):
        view["params"] = dict(view["params"], token=fingerprint(view["params"]["token"]))
    return view


def wire_count(wire: dict[str, Any], direction: str, message: str) -> int:
    """A remotedialer message count from the stand-in's tap (0 if none)."""
    return int(wire[direction]["messages"].get(message, 0))


def pause_sent(tunnel: Tunnel, conn_id: int) -> Optional[bool]:
    """
    Whether the tunnel's session has the stream paused (sent Pause and not
    yet Resume); L{None} once the stream or the session is gone.
    """
    protocol = tunnel.protocol
    session = protocol.session if protocol is not None else None
    state = session.flow_state(conn_id) if session is not None else None
    return None if state is None else bool(state["sent_pause"])


def record_sent_messages(tunnel: Tunnel) -> list[frames.Message]:
    """
    Decode every remotedialer message the tunnel's current websocket sends
    from now on (its session sends through C{sendMessage}).
    """
    protocol = tunnel.protocol
    assert protocol is not None
    sent: list[frames.Message] = []
    send = protocol.sendMessage

    def sendMessage(payload: bytes, isBinary: bool = False, *args: Any, **kwargs: Any) -> Any:
        if isBinary:
            sent.append(frames.decode(payload))
        return send(payload, isBinary, *args, **kwargs)

    protocol.sendMessage = sendMessage  # type: ignore[method-assign]
    return sent


def record_requests(tunnel: Tunnel, into: list[tuple[str, str]]) -> None:
    """
    Record the path and params header of every attempt of a main tunnel,
    as its protocol asks for them (once per attempt, just before sending).
    """
    ask = tunnel.request_for_attempt

    def request_for_attempt() -> Any:
        request = ask()
        into.append((request.resource, fingerprint(request.headers["X-API-Tunnel-Params"])))
        return request

    tunnel.request_for_attempt = request_for_attempt  # type: ignore[method-assign]


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """A L{RetryPolicy} that remembers every delay it computed."""

    delays: list[tuple[EndKind, int, float]] = field(
        default_factory=list, compare=False, repr=False
    )

    def delay(self, kind: EndKind, failures: int) -> float:
        value = super().delay(kind, failures)
        self.delays.append((kind, failures, value))
        return value


class _Draws:
    """A seeded source of jitter that remembers what it drew."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.drawn: list[float] = []

    def __call__(self) -> float:
        value = self._random.random()
        self.drawn.append(value)
        return value


class _ProxyServer(Protocol):
    """
    One proxied connection; while its factory has it frozen, bytes in both
    directions are dropped, so the peer behind it seems to have died
    without the connection closing.
    """

    def __init__(self, proxy: "SilenceProxy") -> None:
        self._proxy = proxy
        self.frozen = False
        self._upstream: Optional[Protocol] = None

    def connectionMade(self) -> None:
        self._proxy.connections.append(self)
        self.transport.pauseProducing()
        endpoint = TCP4ClientEndpoint(_reactor(), self._proxy.host, self._proxy.port)
        connecting = connectProtocol(endpoint, _ProxyClient(self))
        connecting.addCallbacks(self._connected, lambda failure: self.transport.loseConnection())

    def _connected(self, upstream: Protocol) -> None:
        self._upstream = upstream
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if not self.frozen and self._upstream is not None:
            self._upstream.transport.write(data)

    def from_upstream(self, data: bytes) -> None:
        if not self.frozen:
            self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._upstream is not None:
            self._upstream.transport.loseConnection()


class _ProxyClient(Protocol):
    def __init__(self, server: _ProxyServer) -> None:
        self._server = server

    def dataReceived(self, data: bytes) -> None:
        self._server.from_upstream(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._server.transport.loseConnection()


class SilenceProxy(Factory):
    """A TCP proxy to the stand-in whose connections can be made silent."""

    noisy = False

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.connections: list[_ProxyServer] = []

    def buildProtocol(self, addr: Any) -> _ProxyServer:
        return _ProxyServer(self)

    def abort_all(self) -> None:
        for connection in self.connections:
            if connection.transport.connected:
                connection.transport.abortConnection()

    def freeze_all(self) -> int:
        """Silence every connection open now; later ones flow normally."""
        for connection in self.connections:
            connection.frozen = True
        return len(self.connections)


@dataclass
class Rig:
    """One stand-in cluster and our tunnels to it."""

    standin: StandinProcess
    cluster_id: str
    token: str
    params: TunnelParams
    heartbeat: Heartbeat
    peer: StreamPeerFactory
    site: SteveSite
    statuses: dict[TunnelKind, list[tuple[float, TunnelStatus]]]
    #: The heartbeat's tick count whenever a tunnel opened a session.
    ticks_at_open: dict[TunnelKind, list[int]] = field(default_factory=dict)
    #: Each main-tunnel attempt's path and params header (as a fingerprint).
    main_requests: list[tuple[str, str]] = field(default_factory=list)
    proxy: Optional[SilenceProxy] = None
    main: Optional[Tunnel] = None
    steve: Optional[Tunnel] = None

    def view(self) -> Deferred[dict[str, Any]]:
        """
        The stand-in's view of the cluster, without secrets: it ends up in
        failure messages (L{wait_for} shows the last value it saw).
        """
        return self.standin.cluster(self.cluster_id).addCallback(redacted)

    def states(self, kind: TunnelKind) -> list[TunnelState]:
        return [status.state for _, status in self.statuses[kind]]


class TunnelStandinTests(TestCase):
    """
    L{Tunnel} (main and steve) against C{standin serve}.
    """

    # The first test of a process may build the stand-in from cold (minutes);
    # every wait below has its own, much shorter, limit.
    timeout = 600

    def setUp(self) -> None:
        self.reactor = _reactor()
        self.secrets: list[str] = []
        self.standins: list[StandinProcess] = []
        # The check runs after everything (tunnels stopping included) has
        # logged: see LogWatch.
        self.addCleanup(self.assert_no_secret_logged)
        self.logs = LogWatch(self)
        self.events = self.logs.events

    def assert_no_secret_logged(self) -> None:
        if not self.secrets:
            # No cluster was made (the stand-in could not start, or the
            # test was skipped without a Go toolchain): nothing to leak.
            return
        self.assertTrue(self.events)
        self.assertEqual(self.logs.secret_leaks(self.secrets, self.standins), [])

    # -- building blocks -----------------------------------------------------------

    def start_heartbeat(self, running: bool = True, **intervals: float) -> Heartbeat:
        heartbeat = Heartbeat(self.reactor, **intervals)
        if running:
            heartbeat.startService()
        self.addCleanup(heartbeat.stopService)
        return heartbeat

    async def rig(
        self,
        *standin_args: str,
        heartbeat: Optional[Heartbeat] = None,
        peer: Optional[StreamPeerFactory] = None,
        main: bool = True,
        steve: bool = True,
        via_proxy: bool = False,
        token: Optional[str] = None,
        retry_policy: Callable[[TunnelKind], RetryPolicy] = lambda kind: QUICK_RETRY,
    ) -> Rig:
        """
        Start a stand-in with one cluster and our tunnel(s) to it, with
        realistic params from a generated cluster identity; with
        C{via_proxy}, the tunnels go through a L{SilenceProxy}.
        """
        standin = await start_standin(self, *(standin_args or ("--ping-interval", "0")))
        self.standins.append(standin)
        cluster = await standin.create_cluster()
        identity = ClusterIdentity.generate(API_ADDRESS, cluster["id"], datetime.now(timezone.utc))
        identity.ensure_cattle_account()
        params = identity.tunnel_params()
        token = token or cluster["token"]
        self.secrets += [cluster["token"], token, params.token, params.header_value()]
        rig = Rig(
            standin=standin,
            cluster_id=cluster["id"],
            token=token,
            params=params,
            # (A Heartbeat with no tunnels is falsy: it has a length.)
            heartbeat=heartbeat if heartbeat is not None else self.start_heartbeat(),
            peer=peer if peer is not None else StreamPeerFactory(),
            site=SteveSite(self.reactor),
            statuses={TunnelKind.MAIN: [], TunnelKind.STEVE: []},
            ticks_at_open={TunnelKind.MAIN: [], TunnelKind.STEVE: []},
        )

        def observer(status: TunnelStatus) -> None:
            rig.statuses[status.kind].append((self.reactor.seconds(), status))
            if status.state is TunnelState.CONNECTED:
                # Called in the turn the session registered with the wheel.
                rig.ticks_at_open[status.kind].append(rig.heartbeat.stats.ticks)

        common: dict[str, Any] = dict(
            reactor=self.reactor,
            heartbeat=rig.heartbeat,
            trust=RancherTrust.with_ca(standin.cacerts),
            observer=observer,
        )
        url = standin.url
        if via_proxy:
            target = urlsplit(standin.url)
            rig.proxy = SilenceProxy(target.hostname or "127.0.0.1", target.port or 443)
            port = self.reactor.listenTCP(0, rig.proxy, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            self.addCleanup(rig.proxy.abort_all)
            # The stand-in's certificate names 127.0.0.1, whatever the port.
            url = f"https://127.0.0.1:{port.getHost().port}"
        if main:
            rig.main = Tunnel.main(
                url,
                token,
                params,
                lambda proto, address: (
                    rig.peer if (proto, address) == ("tcp", PEER_ADDRESS) else None
                ),
                label=f"{rig.cluster_id}/main",
                retry_policy=retry_policy(TunnelKind.MAIN),
                **common,
            )
            record_requests(rig.main, rig.main_requests)
            self.run_tunnel(rig.main)
        if steve:
            rig.steve = Tunnel.steve(
                url,
                token,
                rig.site,
                label=f"{rig.cluster_id}/steve",
                retry_policy=retry_policy(TunnelKind.STEVE),
                **common,
            )
            self.run_tunnel(rig.steve)
        return rig

    def run_tunnel(self, tunnel: Tunnel) -> None:
        tunnel.startService()
        self.addCleanup(tunnel.stopService)

    async def connected(self, rig: Rig, sessions: int = 1) -> dict[str, Any]:
        """
        Wait until our tunnels are connected (their C{sessions}-th session)
        and the stand-in holds exactly one live session per tunnel.
        """
        tunnels = [t for t in (rig.main, rig.steve) if t is not None]
        await wait_for(
            lambda: [(t.state, t.status.connect_count) for t in tunnels],
            until=lambda states: all(s == (TunnelState.CONNECTED, sessions) for s in states),
            what=f"session {sessions} of our tunnels",
        )
        kinds = [t.spec.kind.value for t in tunnels]
        return await wait_for(
            rig.view,
            until=lambda v: all(
                v["tunnels"][k]["live"] == 1 and v["tunnels"][k]["connects"] == sessions
                for k in kinds
            ),
            what="the stand-in to see our sessions",
        )

    # -- 1. both tunnels ----------------------------------------------------------------

    async def test_both_tunnels_connect_trusting_the_standin_ca(self) -> None:
        """
        Main and steve tunnels connect over TLS verified against the
        stand-in's CA; the stand-in decodes exactly our params; the main
        tunnel registered on C{/v3/connect/register}, steve used
        C{/v3/connect}.
        """
        rig = await self.rig()
        view = await self.connected(rig)
        assert rig.main is not None and rig.steve is not None
        self.assertEqual(
            view["params"],
            {
                "address": API_ADDRESS,
                "token": fingerprint(rig.params.token),
                "caCert": rig.params.ca_cert_b64,
            },
        )
        self.assertEqual(view["paramsChanges"], 0)
        main, steve = view["tunnels"]["main"], view["tunnels"]["steve"]
        self.assertEqual(
            (main["connects"], main["registerConnects"], main["lastPath"], main["rejected"]),
            (1, 1, "/v3/connect/register", 0),
        )
        self.assertEqual(
            (steve["connects"], steve["registerConnects"], steve["lastPath"], steve["rejected"]),
            (1, 0, "/v3/connect", 0),
        )
        self.assertEqual(live_session(view, "main")["path"], "/v3/connect/register")
        self.assertEqual(
            rig.main_requests,
            [("/v3/connect/register", fingerprint(rig.params.header_value()))],
        )
        self.assertEqual(live_session(view, "steve")["path"], "/v3/connect")
        for tunnel, path in ((rig.main, "/v3/connect/register"), (rig.steve, "/v3/connect")):
            status = tunnel.status
            self.assertEqual(
                (
                    status.state,
                    status.url,
                    status.attempts,
                    status.connect_count,
                    status.last_error,
                ),
                (TunnelState.CONNECTED, rig.standin.ws_url(path), 1, 1, None),
            )
            self.assertEqual(
                rig.states(tunnel.spec.kind), [TunnelState.CONNECTING, TunnelState.CONNECTED]
            )

    # -- 2. streams ------------------------------------------------------------------------

    async def test_concurrent_streams_with_flow_control_both_ways(self) -> None:
        """
        24 concurrent echo, source and sink streams, over 16 MiB in all,
        through the main tunnel to the Python peer: every byte, digest and
        end of stream is right on both sides, and Pause/Resume went both
        ways: the stand-in paused and resumed our large sources (it reads
        nothing until it has paused them), and our session paused and
        resumed the stand-in's large sinks (our peer reads nothing until the
        session has sent Pause, and stalls again before the last 128 KiB
        until it has sent Resume, so that Resume is due even when the
        stand-in had written everything before the Pause reached it).
        """

        def gate(peer: StreamPeer) -> Deferred[Optional[bool]]:
            conn_id = peer.record.host.conn_id
            # First stall, after the header: until our session has paused
            # the stand-in. Second, before the last 128 KiB: until it has
            # resumed it (see SlowReading.tail).
            wanted = peer.record.stalls == 1
            return wait_for(
                lambda: pause_sent(rig.main, conn_id),  # type: ignore[arg-type]
                until=lambda state: state is None or state == wanted,
                interval=0.01,
                what=f"our session to {'pause' if wanted else 'resume'} stream {conn_id}",
            )

        peer = StreamPeerFactory(
            slow=slow_reader(gate, ops=("sink",), min_length=MAX_BUFFER + 1, tail=128 * 1024)
        )
        rig = await self.rig(peer=peer, steve=False)
        await self.connected(rig)
        assert rig.main is not None

        large = (
            [{"op": "source", "bytes": 3 * MiB}] * 2
            + [{"op": "sink", "bytes": 3 * MiB}] * 2
            + [{"op": "echo", "bytes": 2 * MiB}] * 2
            + [{"op": "echo", "bytes": MiB}] * 2
            + [{"op": "source", "bytes": MiB}, {"op": "sink", "bytes": MiB}]
        )
        small = (
            [{"op": "echo", "bytes": n} for n in (0, 1, 4095, 4097, 70_000, 300_001)]
            + [{"op": "source", "bytes": n} for n in (0, 1, 32_769, 100_000)]
            + [{"op": "sink", "bytes": n} for n in (0, 1, 12_345, 65_536)]
        )
        tests = [dict(test, seed=1000 + index) for index, test in enumerate(large + small)]
        self.assertEqual(len(tests), 24)

        answer = await rig.standin.streams(
            rig.cluster_id, PEER_ADDRESS, tests, concurrency=len(tests)
        )
        records = await peer.when_ended(len(tests)).addTimeout(30, self.reactor)

        self.assertTrue(answer["ok"], [r for r in answer["results"] if not r["ok"]])
        self.assertGreaterEqual(answer["totalBytes"], 16 * MiB)
        # All dialled at once: at least the ten large streams overlapped.
        self.assertGreaterEqual(peer.most_open, len(large))
        by_conn = {record.host.conn_id: record for record in records}
        self.assertEqual(len(by_conn), len(tests))
        self.assertEqual(sorted(by_conn), sorted(r["connId"] for r in answer["results"]))
        for test, result in zip(tests, answer["results"]):
            op, n, seed = test["op"], test["bytes"], test["seed"]
            # The stand-in: what it read and wrote, then our EOF, after
            # all data (it requires EOF right after the N-th byte).
            self.assertTrue(result["tracked"], result)
            self.assertEqual(result["errorsReceived"], ["EOF"], result)
            expected_go = {"echo": (n, n), "source": (0, n), "sink": (n, DIGEST_LEN)}[op]
            self.assertEqual((result["bytesWritten"], result["bytesRead"]), expected_go, result)
            # The peer: the same stream, by connection id.
            record = by_conn[result["connId"]]
            expected_py = {"echo": (n, n), "source": (0, n), "sink": (n, DIGEST_LEN)}[op]
            self.assertEqual(record.header, StreamHeader(op, n, seed))
            self.assertEqual(record.host.address, PEER_ADDRESS)
            self.assertEqual((record.received, record.sent), expected_py, record)
            self.assertTrue(record.ok, record)
            # Flow control, per stream, as the stand-in's tap saw it.
            if op == "source" and n > MAX_BUFFER:
                self.assertGreaterEqual(
                    (result["pausesSent"], result["resumesSent"]), (1, 1), result
                )
            if op == "sink" and n > MAX_BUFFER:
                self.assertEqual((record.stalls, record.released), (2, 2), record)
                self.assertGreaterEqual(result["pausesReceived"], 1, result)
                self.assertGreaterEqual(result["resumesReceived"], 1, result)

        # Our session's totals agree with what crossed the wire.
        stats = rig.main.session_stats()
        assert stats is not None
        self.assertGreaterEqual(stats["pauses_sent"], 2)
        self.assertGreaterEqual(stats["resumes_sent"], 2)
        self.assertGreaterEqual(stats["pauses_received"], 2)
        self.assertGreaterEqual(stats["resumes_received"], 2)
        self.assertEqual(
            (stats["streams_opened"], stats["streams_refused"], stats["malformed"]), (24, 0, 0)
        )
        view = await wait_for(
            rig.view,
            until=lambda v: (
                wire_count(live_session(v, "main")["wire"], "in", "Pause"),
                wire_count(live_session(v, "main")["wire"], "in", "Resume"),
                wire_count(live_session(v, "main")["wire"], "out", "Pause"),
                wire_count(live_session(v, "main")["wire"], "out", "Resume"),
            )
            == (
                stats["pauses_sent"],
                stats["resumes_sent"],
                stats["pauses_received"],
                stats["resumes_received"],
            ),
            what="the stand-in's Pause/Resume counts to match our session's",
        )
        wire = live_session(view, "main")["wire"]
        self.assertEqual(wire_count(wire, "out", "Connect"), 24)
        self.assertEqual(wire_count(wire, "in", "Error"), 24)
        # One session all along: nothing reconnected.
        self.assertEqual(
            (rig.main.status.connect_count, view["tunnels"]["main"]["connects"]), (1, 1)
        )

    # -- 3. refused dial ---------------------------------------------------------------------

    async def test_unknown_address_is_refused_without_harm(self) -> None:
        """
        A stream to an address nothing serves is answered with an Error
        naming a refused dial, as the real agent's failed dial is; the
        session goes on serving other streams.
        """
        rig = await self.rig(steve=False)
        await self.connected(rig)
        assert rig.main is not None
        sent = record_sent_messages(rig.main)
        refused = await rig.standin.streams(
            rig.cluster_id, "10.9.8.7:6443", [{"op": "echo", "bytes": 1000}]
        )
        result = refused["results"][0]
        self.assertFalse(result["ok"], result)
        self.assertEqual(rig.peer.records, [])
        # Our session answered the Connect with the refusal, then each of
        # the stand-in's writes that were already under way as the Go client
        # answers Data for a connection it does not have.
        conn_id = result["connId"]
        texts = [m.text for m in sent if isinstance(m, frames.Error) and m.conn_id == conn_id]
        self.assertEqual(texts[0], REFUSAL)
        self.assertLessEqual(set(texts[1:]), {f"connection not found client/0/{conn_id}"})
        # The stand-in saw them, in order, up to when it took its snapshot
        # (its tap keeps eight, and may miss the first: it learns of a
        # connection only once its Connect has been written, and our answer
        # can be quicker than that).
        seen = result["errorsReceived"]
        self.assertIn(seen, (texts[: len(seen)], texts[1 : 1 + len(seen)]))
        # Its connection failed: with our text when it was reading, or as a
        # closed pipe when it was still writing the header.
        self.assertTrue(
            REFUSAL in result["error"] or "closed pipe" in result["error"], result["error"]
        )

        after = await rig.standin.streams(
            rig.cluster_id, PEER_ADDRESS, [{"op": "echo", "bytes": 70_000}]
        )
        self.assertTrue(after["ok"], after)
        stats = rig.main.session_stats()
        assert stats is not None
        self.assertEqual((stats["streams_refused"], stats["streams_opened"]), (1, 1))
        self.assertEqual(
            (rig.main.state, rig.main.status.connect_count), (TunnelState.CONNECTED, 1)
        )
        view = await wait_for(
            rig.view,
            until=lambda v: wire_count(live_session(v, "main")["wire"], "in", "Error")
            == sum(isinstance(m, frames.Error) for m in sent),
            what="the stand-in to count every Error we sent",
        )
        self.assertEqual(view["tunnels"]["main"]["connects"], 1)

    # -- 4. steve -------------------------------------------------------------------------------

    async def test_steve_answers_the_connected_check_and_404s_the_rest(self) -> None:
        """
        The stand-in's periodic C{GET /ping} through the steve tunnel (as
        Rancher's clusterconnected controller, here every 100 ms) gets 200
        C{pong}; any other path gets 404.
        """
        rig = await self.rig("--ping-interval", "100ms", main=False)
        await self.connected(rig)
        view = await wait_for(
            rig.view,
            until=lambda v: v["ping"]["ok"] >= 3,
            what="three successful Connected checks",
        )
        ping = view["ping"]
        self.assertEqual(
            (
                ping["connected"],
                ping["lastStatus"],
                ping["lastBody"],
                ping["lastError"],
                ping["failed"],
            ),
            (True, 200, "pong", "", 0),
        )
        answer = await rig.standin.steve(rig.cluster_id, "/v1/management.cattle.io.clusters")
        self.assertEqual((answer["status"], answer["body"]), (404, "404 page not found\n"))
        # As Go's net/http answers it: no Server header.
        self.assertEqual(answer["headers"]["Content-Type"], ["text/plain; charset=utf-8"])
        self.assertNotIn("Server", answer["headers"])
        self.assertGreaterEqual(rig.site.stats.pings, 3)
        self.assertEqual(rig.site.stats.not_found, 1)

    # -- 5. reconnect -----------------------------------------------------------------------------

    async def test_reconnect_after_server_side_disconnect(self) -> None:
        """
        When the stand-in closes both tunnels, each goes to waiting, then
        reconnects; the main tunnel now uses C{/v3/connect}, with
        byte-identical params (the stand-in counts no change).
        """
        rig = await self.rig()
        await self.connected(rig)
        assert rig.main is not None and rig.steve is not None
        self.assertEqual(await rig.standin.disconnect(rig.cluster_id, "both"), {"closed": 2})
        view = await self.connected(rig, sessions=2)

        main = view["tunnels"]["main"]
        self.assertEqual(
            (main["connects"], main["disconnects"], main["registerConnects"], main["lastPath"]),
            (2, 1, 1, "/v3/connect"),
        )
        self.assertEqual(view["tunnels"]["steve"]["lastPath"], "/v3/connect")
        self.assertEqual(view["paramsChanges"], 0)
        self.assertEqual(view["params"]["token"], fingerprint(rig.params.token))
        # Registered once, then /v3/connect, with byte-identical params.
        sent = fingerprint(rig.params.header_value())
        self.assertEqual(rig.main_requests, [("/v3/connect/register", sent), ("/v3/connect", sent)])
        for kind in ("main", "steve"):
            ended = [s for s in view["tunnels"][kind]["sessions"] if not s["live"]]
            self.assertEqual([s["endReason"] for s in ended], ["closed by stand-in"])
        for tunnel, url in ((rig.main, "/v3/connect"), (rig.steve, "/v3/connect")):
            status = tunnel.status
            self.assertEqual(
                rig.states(tunnel.spec.kind),
                [
                    TunnelState.CONNECTING,
                    TunnelState.CONNECTED,
                    TunnelState.WAITING,
                    TunnelState.CONNECTING,
                    TunnelState.CONNECTED,
                ],
            )
            self.assertEqual(
                (status.reconnects, status.url, status.last_end, status.last_error),
                (1, rig.standin.ws_url(url), EndKind.CLOSED, "Rancher closed the connection"),
            )
        # The new session carries streams.
        answer = await rig.standin.streams(
            rig.cluster_id, PEER_ADDRESS, [{"op": "echo", "bytes": 70_000}]
        )
        self.assertTrue(answer["ok"], answer)

    # -- 6. refused credentials -------------------------------------------------------------------

    async def test_wrong_token_backs_off_with_jitter(self) -> None:
        """
        With a token the stand-in does not know, the main tunnel is refused
        with C{400 cluster not found} and steve with C{401 failed
        authentication}; each status shows exactly that, every retry waits
        its jittered, growing backoff (never earlier), and no token is
        logged.
        """
        policies = {
            kind: RecordingPolicy(
                network=Backoff(0.05, 0.4),
                rejected=Backoff(0.1, 0.8),
                jitter=0.5,
                random=_Draws(seed),
            )
            for seed, kind in enumerate(TunnelKind)
        }
        wrong = "wrongtokenbcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstv"
        rig = await self.rig(token=wrong, retry_policy=lambda kind: policies[kind])
        assert rig.main is not None and rig.steve is not None
        tunnels = {TunnelKind.MAIN: rig.main, TunnelKind.STEVE: rig.steve}
        # Five failures: delays 0.1, 0.2, 0.4, 0.8 (capped), 0.8, jittered.
        await wait_for(
            lambda: [t.status.consecutive_failures for t in tunnels.values()],
            until=lambda counts: min(counts) >= 5,
            what="five refused attempts per tunnel",
        )
        for tunnel in tunnels.values():
            await tunnel.stopService()
        rejections = (await rig.standin.control("GET", "/standin/rejections"))["rejections"]
        expected = {
            TunnelKind.MAIN: ("400 cluster not found", 400, "/v3/connect/register"),
            TunnelKind.STEVE: ("401 failed authentication", 401, "/v3/connect"),
        }
        for kind, tunnel in tunnels.items():
            message, code, path = expected[kind]
            observed = rig.statuses[kind]
            states = [status.state for _, status in observed]
            # Attempt, refusal, wait; again and again; never connected, and
            # never an attempt that did not wait first.
            self.assertEqual(states[-1], TunnelState.STOPPED)
            self.assertEqual(
                states[:-1],
                [
                    TunnelState.WAITING if i % 2 else TunnelState.CONNECTING
                    for i in range(len(states) - 1)
                ],
            )
            waits = [(at, status) for at, status in observed if status.state is TunnelState.WAITING]
            for _, status in waits:
                self.assertEqual((status.last_error, status.last_end), (message, EndKind.REJECTED))
                self.assertEqual(status.url, rig.standin.ws_url(path))
            # The delays: base * (1 - 0.5 * draw), within (base / 2, base],
            # strictly growing until the cap.
            policy = policies[kind]
            draws = policy.random.drawn  # type: ignore[attr-defined]
            self.assertEqual(len(policy.delays), len(waits))
            for index, (end_kind, failures, delay) in enumerate(policy.delays):
                base = min(0.1 * 2**index, 0.8)
                self.assertEqual((end_kind, failures), (EndKind.REJECTED, index + 1))
                self.assertAlmostEqual(delay, base * (1 - 0.5 * draws[index]))
                self.assertTrue(base / 2 < delay <= base, (index, delay))
            growing = [delay for _, _, delay in policy.delays[:4]]
            self.assertEqual(growing, sorted(set(growing)))
            # Each wait announced its next attempt, and no attempt came
            # earlier (the tunnel never spins).
            attempts_at = [at for at, status in observed if status.state is TunnelState.CONNECTING]
            for (_, wait), attempt_at in zip(waits, attempts_at[1:]):
                assert wait.next_attempt_at is not None
                self.assertGreaterEqual(attempt_at, wait.next_attempt_at - 1e-3)
            # Every attempt reached the stand-in and was refused there; there
            # were no others.
            refused_here = [r for r in rejections if (r["code"], r["path"]) == (code, path)]
            self.assertIn(len(refused_here), {len(waits), len(attempts_at)})
            self.assertEqual({r["error"] for r in refused_here}, {message.split(" ", 1)[1]})
            self.assertEqual(tunnel.status.attempts, len(attempts_at))
            self.assertIn(len(attempts_at) - len(waits), {0, 1})
            # Logged once at info, repeats only at debug.
            infos = [
                e
                for e in self.events
                if e.get("label") == tunnel.label
                and e.get("log_level") is LogLevel.info
                and "attempt failed" in (formatEvent(e) or "")
            ]
            self.assertEqual(len(infos), 1)
        view = await rig.view()
        self.assertEqual(
            (view["tunnels"]["main"]["connects"], view["tunnels"]["steve"]["connects"]), (0, 0)
        )
        self.assertIsNone(view["params"])

    # -- 7. keepalive ----------------------------------------------------------------------------

    async def test_pings_pongs_and_sync_connections_on_the_wire(self) -> None:
        """
        With short heartbeat intervals: the stand-in's tap sees our empty
        Pings and answers each with a Pong, exactly as many as our heartbeat
        sent, once per wheel revolution per tunnel; and SyncConnections
        carrying the sorted ids of the streams open at the time.
        """
        # The wheel starts turning only once the streams below are open: a
        # SyncConnections that crossed a Connect on the wire would make the
        # server close the new stream (remotedialer closes every connection
        # the client's list lacks), which real Rancher risks every 60 s but a
        # test must not.
        heartbeat = self.start_heartbeat(
            running=False,
            ping_interval=0.2,
            slot_seconds=0.05,
            sync_interval=1.0,
            silence_limit=30.0,
        )
        slots = 4
        gate = HeldGate()
        rig = await self.rig(
            heartbeat=heartbeat, peer=StreamPeerFactory(slow=slow_reader(gate, ops=("sink",)))
        )
        assert rig.main is not None and rig.steve is not None
        await self.connected(rig)

        # Streams held open by the peer (it reads nothing until released).
        running = rig.standin.streams(
            rig.cluster_id, PEER_ADDRESS, [{"op": "sink", "bytes": 65_536}] * 3, concurrency=3
        )
        held = await gate.when_held(3).addTimeout(30, self.reactor)
        ids = sorted(peer.record.host.conn_id for peer in held)
        session = rig.main.protocol.session  # type: ignore[union-attr]
        self.assertEqual(session.stream_ids(), ids)
        self.assertEqual((len(heartbeat), heartbeat.stats.ticks), (2, 0))
        heartbeat.startService()

        view = await wait_for(
            rig.view,
            until=lambda v: live_session(v, "main")["wire"]["lastSyncConnections"] == ids
            and wire_count(live_session(v, "main")["wire"], "in", "SyncConnections") >= 2,
            what="SyncConnections listing the held streams",
        )
        syncs_before = wire_count(live_session(view, "main")["wire"], "in", "SyncConnections")
        gate.release()
        answer = await running
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(sorted(r["connId"] for r in answer["results"]), ids)
        await rig.peer.when_ended(3).addTimeout(30, self.reactor)
        self.assertEqual(session.stream_ids(), [])
        await wait_for(
            rig.view,
            until=lambda v: live_session(v, "main")["wire"]["lastSyncConnections"] == []
            and wire_count(live_session(v, "main")["wire"], "in", "SyncConnections") > syncs_before,
            what="a SyncConnections listing no stream",
        )
        await wait_for(
            rig.view,
            until=lambda v: all(
                live_session(v, k)["wire"]["in"]["pings"] >= 5 for k in ("main", "steve")
            ),
            what="five Pings on each tunnel",
        )

        # Stop the wheel, then account for every Ping and SyncConnections.
        await defer.maybeDeferred(heartbeat.stopService)
        stats = heartbeat.stats
        view = await wait_for(
            rig.view,
            until=lambda v: sum(
                live_session(v, k)["wire"]["in"]["pings"] for k in ("main", "steve")
            )
            == stats.pings_sent
            and sum(live_session(v, k)["wire"]["out"]["pongs"] for k in ("main", "steve"))
            == stats.pings_sent,
            what="the stand-in to have seen and answered every Ping",
        )
        self.assertEqual(
            sum(
                wire_count(live_session(view, k)["wire"], "in", "SyncConnections")
                for k in ("main", "steve")
            ),
            stats.syncs_sent,
        )
        self.assertEqual((stats.expired, stats.errors), (0, 0))
        for kind in ("main", "steve"):
            wire = live_session(view, kind)["wire"]
            # The stand-in never pings us (Rancher does not); we never
            # answer anything.
            self.assertEqual((wire["out"]["pings"], wire["in"]["pongs"]), (0, 0))
            # One Ping per revolution of the wheel since the tunnel opened.
            (opened,) = rig.ticks_at_open[TunnelKind(kind)]
            revolutions = (stats.ticks - opened) / slots
            self.assertLessEqual(
                abs(wire["in"]["pings"] - revolutions), 1, (kind, wire["in"], revolutions)
            )

    # -- 8. dead peer --------------------------------------------------------------------------

    async def test_silent_peer_is_dropped_and_the_tunnel_reconnects(self) -> None:
        """
        Behind a proxy that stops forwarding (the connection stays open,
        nothing arrives), the heartbeat gives up on the session after its
        silence limit and the tunnel reconnects, on C{/v3/connect}, with
        the same params.
        """
        heartbeat = self.start_heartbeat(
            ping_interval=0.2, slot_seconds=0.1, sync_interval=60.0, silence_limit=2.0
        )
        rig = await self.rig(heartbeat=heartbeat, steve=False, via_proxy=True)
        assert rig.main is not None and rig.proxy is not None
        await self.connected(rig)
        await wait_for(
            rig.view,
            until=lambda v: live_session(v, "main")["wire"]["out"]["pongs"] >= 2,
            what="Pongs through the proxy",
        )
        protocol = rig.main.protocol
        assert protocol is not None
        self.assertEqual(rig.proxy.freeze_all(), 1)
        view = await self.connected(rig, sessions=2)

        status = rig.main.status
        waits = [
            (at, s) for at, s in rig.statuses[TunnelKind.MAIN] if s.state is TunnelState.WAITING
        ]
        self.assertEqual(len(waits), 1)
        dropped_at, wait = waits[0]
        self.assertEqual(wait.last_end, EndKind.DEAD_PEER)
        # Never before the silence limit: nothing was heard for 2 s.
        self.assertGreaterEqual(dropped_at, protocol.last_received + 2.0)
        self.assertRegex(wait.last_error or "", r"^nothing received from Rancher for \d+ s$")
        self.assertEqual((status.state, status.reconnects), (TunnelState.CONNECTED, 1))
        self.assertEqual(heartbeat.stats.expired, 1)
        main = view["tunnels"]["main"]
        self.assertEqual((main["registerConnects"], main["lastPath"]), (1, "/v3/connect"))
        self.assertEqual(view["paramsChanges"], 0)
        sent = fingerprint(rig.params.header_value())
        self.assertEqual(rig.main_requests, [("/v3/connect/register", sent), ("/v3/connect", sent)])
        self.assertEqual(len(rig.proxy.connections), 2)

# -*- test-case-name: tests.test_tunnel_service -*-
"""
One agent tunnel to Rancher, kept up for as long as the service runs.

A L{Tunnel} is a C{Service} around C{ClientService}: it connects, lets a
L{TunnelProtocol} carry the remotedialer session, and after any failure or
disconnect waits a jittered, capped exponential backoff before the next
attempt. The wait depends on why the last attempt failed: credentials or
params Rancher rejected (400, 401, 403) and untrusted certificates back off
much longer than network errors, and a session that stayed up for
C{stable_after} seconds starts the backoff afresh.

There are two kinds (agent-protocol §2.4, §2.8):

  - B{main}: C{wss://<host[:port]>/v3/connect/register} (a path in the
    server URL is dropped, as the agent does), C{/v3/connect} once a session
    has succeeded; headers C{X-API-Tunnel-Token} and C{X-API-Tunnel-Params};
    streams go wherever the caller's C{route} sends them.
  - B{steve}: C{wss://<host[:port]>[/<path>]/v3/connect} (the path is
    kept); header C{Authorization: Bearer stv-cluster-<token>}; every stream
    is served by L{scaleagent.steve}.

The tunnel's state is a small explicit machine (see L{TunnelState} and
L{_TRANSITIONS}); an observer is called with a L{TunnelStatus} whenever the
state changes.
"""

from __future__ import annotations

import enum
import random
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..steve import SteveSite
from .heartbeat import Heartbeat
from .inbound import InboundScheduler
from .params import TunnelParams
from .protocol import (
    HANDSHAKE_TIMEOUT,
    EndKind,
    TunnelEnd,
    TunnelProtocol,
    TunnelProtocolFactory,
    TunnelRequest,
    describe_failure,
    websocket_factory,
)
from .trust import RancherTrust

#: TCP connect timeout of the default endpoint; the Go dialer's handshake
#: timeout is 10 s, the steve tunnel's dial timeout 5 s.
CONNECT_TIMEOUT = 10.0

#: A session that lasted this long resets the backoff.
STABLE_AFTER = 60.0

MAIN_REGISTER_PATH = "/v3/connect/register"
CONNECT_PATH = "/v3/connect"
STEVE_TOKEN_PREFIX = "stv-cluster-"

#: Creates the endpoint for (host, port, TLS creator or None for plain).
EndpointFactory = Callable[[str, int, Optional[IOpenSSLClientConnectionCreator]], IStreamClientEndpoint]

#: Routes a stream Rancher opens: (proto, address) -> factory or None.
Route = Callable[[str, str], Optional[IProtocolFactory]]


class TunnelKind(enum.Enum):
    MAIN = "main"
    STEVE = "steve"


class TunnelState(enum.Enum):
    """
    Where a L{Tunnel} is.

      - C{stopped}: the service is not running (initial state).
      - C{connecting}: an attempt is under way (TCP, TLS, HTTP upgrade).
      - C{connected}: the websocket is open and the session runs.
      - C{waiting}: the last attempt failed or the session ended; the next
        attempt is due at L{TunnelStatus.next_attempt_at}.
    """

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"


_S = TunnelState

#: (state, event) -> next state. Events: start/stop (the service), attempt
#: (an attempt begins), opened (handshake done), failed (an attempt
#: failed), lost (an open session ended). Anything missing is a bug.
_TRANSITIONS: dict[tuple[TunnelState, str], TunnelState] = {
    (_S.STOPPED, "start"): _S.CONNECTING,
    (_S.CONNECTING, "attempt"): _S.CONNECTING,
    (_S.WAITING, "attempt"): _S.CONNECTING,
    (_S.CONNECTING, "opened"): _S.CONNECTED,
    (_S.CONNECTING, "failed"): _S.WAITING,
    (_S.CONNECTED, "lost"): _S.WAITING,
    (_S.STOPPED, "stop"): _S.STOPPED,
    (_S.CONNECTING, "stop"): _S.STOPPED,
    (_S.CONNECTED, "stop"): _S.STOPPED,
    (_S.WAITING, "stop"): _S.STOPPED,
    # Connections and attempts wind down after a stop; nothing changes.
    (_S.STOPPED, "failed"): _S.STOPPED,
    (_S.STOPPED, "lost"): _S.STOPPED,
}


class InvalidServerURL(ValueError):
    """The Rancher server URL cannot be used for a tunnel."""


@dataclass(frozen=True)
class TunnelSpec:
    """
    Where and how one tunnel connects.

    @ivar kind: main or steve.
    @ivar secure: C{wss} (C{https} server URL) rather than C{ws}.
    @ivar host: host name or IP address, without brackets.
    @ivar port: TCP port.
    @ivar first_path: request path until a session has succeeded.
    @ivar path: request path after that.
    @ivar headers: the credentials; never part of C{repr}.
    """

    kind: TunnelKind
    secure: bool
    host: str
    port: int
    first_path: str
    path: str
    headers: Mapping[str, str] = field(repr=False)

    def url(self, registered: bool = True) -> str:
        """@return: the websocket URL (no credentials in it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{'wss' if self.secure else 'ws'}://{netloc}{self.path if registered else self.first_path}"


def _split_server_url(server_url: str) -> tuple[bool, str, int, str]:
    try:
        parts = urlsplit(server_url.strip())
        port = parts.port
    except ValueError as e:
        raise InvalidServerURL(f"invalid server URL: {e}") from None
    scheme = parts.scheme.lower()
    # Rancher is always https; http (and ws/wss spellings) are accepted so
    # that test servers without TLS can be used.
    if scheme in ("https", "wss"):
        secure = True
    elif scheme in ("http", "ws"):
        secure = False
    else:
        raise InvalidServerURL(f"server URL must be https:// (got {scheme or 'no'} scheme)")
    host = parts.hostname
    if not host:
        raise InvalidServerURL("server URL has no host")
    if port is None:
        port = 443 if secure else 80
    return secure, host, port, parts.path.rstrip("/")


def _check_token(token: str) -> None:
    # It goes into an HTTP header as is.
    if not token or token != token.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        raise ValueError("the registration token is empty or not a valid header value")


def main_tunnel_spec(server_url: str, token: str, params: TunnelParams) -> TunnelSpec:
    """
    The main tunnel of a cluster.

    @param server_url: the Rancher server URL; its path is dropped, as the
        agent does.
    @param token: the cluster registration token.
    @param params: the cluster's API server for Rancher.
    """
    _check_token(token)
    secure, host, port, _ = _split_server_url(server_url)
    return TunnelSpec(
        TunnelKind.MAIN,
        secure,
        host,
        port,
        MAIN_REGISTER_PATH,
        CONNECT_PATH,
        {"X-API-Tunnel-Token": token, "X-API-Tunnel-Params": params.header_value()},
    )


def steve_tunnel_spec(server_url: str, token: str) -> TunnelSpec:
    """
    The steve aggregation tunnel of a cluster.

    @param server_url: the Rancher server URL; its path is kept, as steve's
        client does.
    @param token: the cluster registration token (without the
        C{stv-cluster-} prefix).
    """
    _check_token(token)
    secure, host, port, path = _split_server_url(server_url)
    return TunnelSpec(
        TunnelKind.STEVE,
        secure,
        host,
        port,
        path + CONNECT_PATH,
        path + CONNECT_PATH,
        {"Authorization": f"Bearer {STEVE_TOKEN_PREFIX}{token}"},
    )


@dataclass(frozen=True)
class Backoff:
    """
    Capped exponential backoff: C{initial * factor ** (failures - 1)}, at
    most C{maximum} seconds.
    """

    initial: float
    maximum: float
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum) or self.factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")

    def base(self, failures: int) -> float:
        exponent = min(max(failures, 1) - 1, 64)
        return min(self.initial * self.factor**exponent, self.maximum)


#: End kinds that mean "this will not fix itself soon".
LONG_BACKOFF_KINDS = frozenset({EndKind.REJECTED, EndKind.TLS})


@dataclass(frozen=True)
class RetryPolicy:
    """
    How long a tunnel waits before its next attempt.

    The delay is L{Backoff.base} for the consecutive failure count, with up
    to C{jitter} of it taken off at random, so it lies in
    C{(base * (1 - jitter), base]}: never zero, never above the cap, and
    tunnels that failed together do not come back together.

    @ivar network: backoff after network errors, timeouts, other refusals
        and lost sessions.
    @ivar rejected: backoff after 400/401/403 and TLS trust failures.
    @ivar jitter: fraction of the delay that is random, in C{[0, 1)}.
    @ivar random: source of uniform numbers in C{[0, 1)}.
    """

    network: Backoff = Backoff(5.0, 120.0)
    rejected: Backoff = Backoff(15.0, 600.0)
    jitter: float = 0.5
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, kind: EndKind, failures: int) -> float:
        """
        @param kind: why the last attempt failed.
        @param failures: consecutive failures, at least 1.
        @return: seconds to wait.
        """
        backoff = self.rejected if kind in LONG_BACKOFF_KINDS else self.network
        return backoff.base(failures) * (1.0 - self.jitter * self.random())


@dataclass(frozen=True)
class TunnelStatus:
    """
    A snapshot of a tunnel, for observers and the control API.

    @ivar label: which tunnel (e.g. C{c-abcde/main}).
    @ivar kind: main or steve.
    @ivar state: the L{TunnelState}.
    @ivar url: the websocket URL of the current (or next) attempt.
    @ivar last_error: the most recent failure, safe to show (status and
        Rancher's text, or the network error); kept after recovery.
    @ivar last_end: the L{EndKind} of that failure.
    @ivar connected_since: clock time the current session opened.
    @ivar next_attempt_at: while waiting, clock time of the next attempt.
    @ivar attempts: attempts started.
    @ivar connect_count: sessions opened.
    @ivar consecutive_failures: failures since the last stable session.
    """

    label: str
    kind: TunnelKind
    state: TunnelState
    url: str
    last_error: Optional[str] = None
    last_end: Optional[EndKind] = None
    connected_since: Optional[float] = None
    next_attempt_at: Optional[float] = None
    attempts: int = 0
    connect_count: int = 0
    consecutive_failures: int = 0

    @property
    def reconnects(self) -> int:
        """Sessions opened after the first."""
        return max(0, self.connect_count - 1)


def default_endpoint_factory(reactor: Any, connect_timeout: float = CONNECT_TIMEOUT) -> EndpointFactory:
    """
    @param reactor: the reactor.
    @return: an L{EndpointFactory} making C{HostnameEndpoint}s, wrapped in
        TLS when a creator is given.
    """

    def make(
        host: str, port: int, creator: Optional[IOpenSSLClientConnectionCreator]
    ) -> IStreamClientEndpoint:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=connect_timeout)
        return endpoint if creator is None else wrapClientTLS(creator, endpoint)

    return make


_system_trust: Optional[RancherTrust] = None


def _shared_system_trust() -> RancherTrust:
    global _system_trust
    if _system_trust is None:
        _system_trust = RancherTrust.system()
    return _system_trust


_websocket_options: "weakref.WeakKeyDictionary[Any, WebSocketClientFactory]" = (
    weakref.WeakKeyDictionary()
)


def _shared_websocket_options(reactor: Any) -> WebSocketClientFactory:
    options = _websocket_options.get(reactor)
    if options is None:
        options = _websocket_options[reactor] = websocket_factory(reactor)
    return options


@implementer(IStreamClientEndpoint)
class _AttemptEndpoint:
    """
    Tells the tunnel when an attempt starts and why a connect failed (which
    C{ClientService} does not report), around the real endpoint.
    """

    def __init__(self, tunnel: "Tunnel", endpoint: IStreamClientEndpoint) -> None:
        self._tunnel = tunnel
        self._endpoint = endpoint

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self._tunnel._attempt_started()
        connecting = self._endpoint.connect(factory)
        connecting.addErrback(self._tunnel._attempt_failed)
        return connecting

    def __repr__(self) -> str:
        return f"<endpoint of tunnel {self._tunnel.label}>"


class Tunnel(Service):
    """
    One main or steve tunnel, reconnecting until stopped.

    Build it with L{Tunnel.main} or L{Tunnel.steve}.

    @param spec: where and how to connect (L{main_tunnel_spec},
        L{steve_tunnel_spec}).
    @param route: which protocol factory serves each stream Rancher opens.
    @param reactor: the reactor (clock and, by default, TCP).
    @param heartbeat: the process's running L{Heartbeat}.
    @param trust: how to verify Rancher's certificate (C{wss} only);
        defaults to the platform's roots.
    @param endpoint_factory: makes the endpoint for (host, port, creator);
        defaults to L{default_endpoint_factory}.
    @param websocket_options: the shared autobahn factory
        (L{websocket_factory}); one per reactor by default.
    @param retry_policy: the L{RetryPolicy}.
    @param observer: called with a L{TunnelStatus} after every state change.
    @param label: names the tunnel in logs and status (never a secret).
    @param registered: for a main tunnel, use C{/v3/connect} from the start.
    @param handshake_timeout: seconds for TCP+TLS+upgrade.
    @param stable_after: seconds a session must last to reset the backoff.
    @param inbound: the process's L{InboundScheduler}, if any.
    """

    _log = Logger()

    def __init__(
        self,
        spec: TunnelSpec,
        route: Route,
        *,
        reactor: Any,
        heartbeat: Heartbeat,
        trust: Optional[RancherTrust] = None,
        endpoint_factory: Optional[EndpointFactory] = None,
        websocket_options: Optional[WebSocketClientFactory] = None,
        retry_policy: Optional[RetryPolicy] = None,
        observer: Optional[Callable[[TunnelStatus], None]] = None,
        label: str = "",
        registered: bool = False,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        stable_after: float = STABLE_AFTER,
        inbound: Optional[InboundScheduler] = None,
    ) -> None:
        self.spec = spec
        self.label = label or f"{spec.kind.value}@{spec.host}"
        self._route = route
        self._clock: IReactorTime = reactor
        self._retry_policy = retry_policy or RetryPolicy()
        self._observer = observer
        self._registered = registered or spec.first_path == spec.path
        self._stable_after = stable_after
        self._stopping = False
        # The connection of the current run, before and after its
        # handshake; reports from any other (one still closing after a
        # stop and restart) are ignored.
        self._connecting: Optional[TunnelProtocol] = None
        self._protocol: Optional[TunnelProtocol] = None
        self._next_delay: Optional[float] = None
        self._status = TunnelStatus(
            self.label, spec.kind, TunnelState.STOPPED, spec.url(self._registered)
        )
        creator = None
        if spec.secure:
            creator = (trust or _shared_system_trust()).connection_creator(spec.host)
        make_endpoint = endpoint_factory or default_endpoint_factory(reactor)
        endpoint = _AttemptEndpoint(self, make_endpoint(spec.host, spec.port, creator))
        factory = TunnelProtocolFactory(
            self,
            heartbeat,
            self._clock,
            websocket_options or _shared_websocket_options(reactor),
            handshake_timeout,
            inbound,
        )
        self._client_service = ClientService(
            endpoint, factory, retryPolicy=self._retry_delay, clock=self._clock
        )

    @classmethod
    def main(
        cls,
        server_url: str,
        token: str,
        params: TunnelParams,
        route: Route,
        **kwargs: Any,
    ) -> "Tunnel":
        """
        The main tunnel of a cluster.

        @param server_url: the Rancher server URL.
        @param token: the cluster registration token.
        @param params: what Rancher should know about the cluster's API.
        @param route: serves the streams Rancher opens (unknown addresses:
            return L{None}, and Rancher gets a refused dial).
        @param kwargs: as for L{Tunnel}.
        """
        return cls(main_tunnel_spec(server_url, token, params), route, **kwargs)

    @classmethod
    def steve(
        cls,
        server_url: str,
        token: str,
        site: Optional[SteveSite] = None,
        **kwargs: Any,
    ) -> "Tunnel":
        """
        The steve tunnel of a cluster: every stream, whatever its address,
        is served by C{site}.

        @param server_url: the Rancher server URL.
        @param token: the cluster registration token.
        @param site: the L{SteveSite} (may be shared); a new one by default.
        @param kwargs: as for L{Tunnel}.
        """
        if site is None:
            site = SteveSite(kwargs["reactor"])
        return cls(steve_tunnel_spec(server_url, token), lambda proto, address: site, **kwargs)

    # -- observation ---------------------------------------------------------

    @property
    def status(self) -> TunnelStatus:
        """The current L{TunnelStatus}."""
        return self._status

    @property
    def state(self) -> TunnelState:
        return self._status.state

    @property
    def protocol(self) -> Optional[TunnelProtocol]:
        """The open websocket, if any."""
        return self._protocol

    def session_stats(self) -> Optional[dict[str, int]]:
        """Counters of the current session, or L{None} when not connected."""
        protocol = self._protocol
        if protocol is None or protocol.session is None:
            return None
        return protocol.session.stats.as_dict()

    def _transition(self, event: str, **changes: Any) -> None:
        old = self._status
        new_state = _TRANSITIONS.get((old.state, event))
        if new_state is None:
            raise RuntimeError(f"tunnel {self.label}: no transition for {event!r} in {old.state.value}")
        self._status = replace(old, state=new_state, **changes)
        if new_state is not old.state and self._observer is not None:
            try:
                self._observer(self._status)
            except Exception:
                self._log.failure("tunnel {label}: observer failed", label=self.label)

    # -- service ---------------------------------------------------------------

    def startService(self) -> None:
        if self.running:
            return
        super().startService()
        self._stopping = False
        self._transition("start", next_attempt_at=None)
        self._client_service.startService()

    def stopService(self) -> Deferred[None]:
        if not self.running:
            return succeed(None)
        super().stopService()
        self._stopping = True
        self._transition("stop", next_attempt_at=None, connected_since=None)
        protocol, self._protocol, self._connecting = self._protocol, None, None
        stopped = self._client_service.stopService()
        # After ClientService has noted the stop (so that the disconnect
        # does not schedule a retry): close the websocket ourselves, since
        # ClientService's bare loseConnection() would wait for our socket
        # producer to unregister.
        if protocol is not None:
            protocol.close()

        def done(result: Any) -> Any:
            self._stopping = False
            return result

        return stopped.addBoth(done)

    # -- attempts (from the endpoint) ---------------------------------------------

    def _attempt_started(self) -> None:
        self._transition(
            "attempt",
            attempts=self._status.attempts + 1,
            next_attempt_at=None,
            url=self.spec.url(self._registered),
        )
        self._log.debug("tunnel {label}: connecting to {url}", label=self.label, url=self._status.url)

    def _attempt_failed(self, failure: Failure) -> Failure:
        if self._stopping or failure.check(CancelledError):
            return failure
        kind, message = describe_failure(failure)
        self._failed("failed", TunnelEnd(kind, f"cannot connect: {message}"))
        return failure

    def _retry_delay(self, failed_attempts: int) -> float:
        # ClientService counts failures its own way (a refused handshake
        # is a successful TCP connection to it), so the delay computed when
        # the failure was seen is used instead of its count.
        delay, self._next_delay = self._next_delay, None
        if delay is None:
            delay = self._retry_policy.delay(EndKind.NETWORK, max(1, self._status.consecutive_failures))
        return delay

    def _failed(self, event: str, end: TunnelEnd) -> None:
        failures = self._status.consecutive_failures + 1
        delay = self._retry_policy.delay(end.kind, failures)
        self._next_delay = delay
        repeated = event == "failed" and end.message == self._status.last_error
        self._transition(
            event,
            last_error=end.message,
            last_end=end.kind,
            connected_since=None,
            consecutive_failures=failures,
            next_attempt_at=self._clock.seconds() + delay,
        )
        # During an outage thousands of tunnels fail the same way on every
        # attempt: say so once, then only when something changes.
        emit = self._log.debug if repeated else self._log.info
        emit(
            "tunnel {label}: {what}: {reason}; next attempt in {delay:.1f} s",
            label=self.label,
            what="session ended" if event == "lost" else "attempt failed",
            reason=end.message,
            delay=delay,
        )

    # -- TunnelOwner: what the protocol calls ------------------------------------

    def request_for_attempt(self) -> TunnelRequest:
        path = self.spec.path if self._registered else self.spec.first_path
        return TunnelRequest(self.spec.host, self.spec.port, path, self.spec.headers)

    def route(self, proto: str, address: str) -> Optional[IProtocolFactory]:
        return self._route(proto, address)

    def tunnel_connecting(self, protocol: TunnelProtocol) -> None:
        self._connecting = protocol

    def tunnel_opened(self, protocol: TunnelProtocol) -> None:
        if protocol is not self._connecting:
            # Opened after a stop (the stop could not reach it yet).
            protocol.close()
            return
        self._connecting = None
        self._protocol = protocol
        self._registered = True
        self._transition(
            "opened",
            connected_since=protocol.opened_at,
            connect_count=self._status.connect_count + 1,
        )
        self._log.info("tunnel {label}: connected to {url}", label=self.label, url=self._status.url)

    def tunnel_closed(self, protocol: TunnelProtocol, end: TunnelEnd) -> None:
        if protocol is self._protocol:
            self._protocol = None
        elif protocol is self._connecting:
            self._connecting = None
        else:
            return
        if self._stopping or not self.running:
            return
        if end.was_open:
            opened_at = protocol.opened_at or self._clock.seconds()
            if self._clock.seconds() - opened_at >= self._stable_after:
                self._status = replace(self._status, consecutive_failures=0)
            self._failed("lost", end)
        else:
            self._failed("failed", end)

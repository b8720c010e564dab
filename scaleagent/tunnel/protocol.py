# -*- test-case-name: tests.test_tunnel_protocol -*-
"""
The websocket of one tunnel: a thin autobahn adapter around a remotedialer
L{Session}.

L{TunnelProtocol} asks its owner for the request on every attempt (path and
headers), turns websocket binary messages into L{Session.receive} and the
session's output into binary messages, keeps the shared L{Heartbeat}
informed, and tells its owner how the connection ended as a L{TunnelEnd}
(including the status and body of a handshake Rancher refused, which
autobahn alone reduces to a generic reason). Everything else (retries,
state, which streams go where) belongs to the owner.

autobahn's timers run on the global reactor, not on the one we are given,
so all of them are switched off: the handshake timeout is kept here on the
injected clock, pings come from the L{Heartbeat}, and a closing handshake is
never waited for (Go peers just close the socket).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol

import txaio
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol, parseHttpHeader
from autobahn.websocket.types import ConnectingRequest
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..remotedialer.session import Session
from ..remotedialer.transport import StreamRouter
from .heartbeat import Heartbeat
from .inbound import InboundScheduler

#: The Go client's handshake timeout (remotedialer HandshakeTimeout).
HANDSHAKE_TIMEOUT = 10.0

#: Largest websocket message (and frame) accepted. remotedialer sets no
#: limit; Go writes one message per Write call, in practice at most a TLS
#: record or an io.Copy buffer (32 KiB), but a single large Write from
#: Rancher (a request body) is legitimate, so the cap is generous.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

#: Seconds a Connect may wait for the reactor (L{InboundScheduler}) before
#: it is answered as a dial that timed out. Rancher's Go HTTP clients give a
#: new connection 10 s for its TLS handshake, and the ClientHello waits in
#: the same queue: past this, the handshake would be work for nobody.
OVERDUE_CONNECT = 5.0

#: How much of a refusal's body is kept.
MAX_REFUSAL_BODY = 4096

#: How much of the handshake response head is buffered before giving up.
MAX_RESPONSE_HEAD = 64 * 1024

#: Statuses with which Rancher's tunnel authorizer rejects credentials or
#: params (agent-protocol §3.12); retrying them soon is pointless.
REJECTION_STATUSES = frozenset({400, 401, 403})


class EndKind(enum.Enum):
    """Why a tunnel connection ended."""

    #: Rancher answered the handshake with 400, 401 or 403.
    REJECTED = "rejected"
    #: Rancher (or a proxy) answered with another non-101 status.
    REFUSED = "refused"
    #: TLS failed: certificate not trusted or not valid for the host.
    TLS = "tls"
    #: TCP, TLS and the HTTP upgrade did not finish within the timeout.
    TIMEOUT = "timeout"
    #: The answer was not a valid websocket handshake.
    PROTOCOL = "protocol"
    #: The connection failed or was lost before the handshake finished.
    NETWORK = "network"
    #: Nothing arrived from Rancher for too long (heartbeat).
    DEAD_PEER = "dead_peer"
    #: An open session ended (Rancher closed it, or the network failed).
    CLOSED = "closed"


@dataclass(frozen=True)
class TunnelEnd:
    """
    How one connection attempt or session ended.

    @ivar kind: the L{EndKind}.
    @ivar message: what happened, safe to show a user (never a secret):
        e.g. C{"401 failed authentication"}.
    @ivar was_open: the websocket handshake had succeeded.
    @ivar status: the HTTP status of a refused handshake.
    @ivar body: the text Rancher sent with it (at most L{MAX_REFUSAL_BODY}
        bytes, decoded).
    """

    kind: EndKind
    message: str
    was_open: bool = False
    status: Optional[int] = None
    body: Optional[str] = None


@dataclass(frozen=True)
class TunnelRequest:
    """
    The HTTP request of one websocket attempt.

    @ivar host: host name or IP address (IPv6 without brackets).
    @ivar port: TCP port, for the C{Host} header.
    @ivar resource: path (and query) to request.
    @ivar headers: extra headers; they carry credentials, so they are never
        part of C{repr}.
    """

    host: str
    port: int
    resource: str
    headers: Mapping[str, str] = field(repr=False, default_factory=dict)


class TunnelOwner(Protocol):
    """What a L{TunnelProtocol} reports to (the tunnel service)."""

    label: str

    def tunnel_connecting(self, protocol: "TunnelProtocol") -> None:
        """A connection is up and its handshake starts now."""

    def request_for_attempt(self) -> TunnelRequest:
        """The request to send now (called once per attempt)."""

    def route(self, proto: str, address: str) -> Optional[IProtocolFactory]:
        """The factory serving a stream Rancher opens, or L{None}."""

    def tunnel_opened(self, protocol: "TunnelProtocol") -> None:
        """The handshake succeeded; C{protocol.session} is live."""

    def tunnel_closed(self, protocol: "TunnelProtocol", end: TunnelEnd) -> None:
        """The connection is gone (called exactly once per connection)."""


@implementer(IPushProducer)
class _SocketWriters:
    """
    Registered on the websocket's transport: when the socket's send buffer
    is full, every stream stops producing until it drains.
    """

    def __init__(self, protocol: "TunnelProtocol", session: Session) -> None:
        self._protocol = protocol
        self._session = session
        self.paused = False

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self._protocol.socket_pauses += 1
            self._session.pause_all_writers()

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self._session.resume_all_writers()

    def stopProducing(self) -> None:
        # connectionLost follows and ends the session.
        pass


_TAGS = re.compile(r"<[^>]*>")


def summarize_body(body: str, content_type: str = "", limit: int = 200) -> str:
    """
    One line of a refusal's body for messages: tags of an HTML error page
    removed, whitespace collapsed, cut at C{limit} characters.
    """
    if "html" in content_type.lower() or body.lstrip().startswith("<"):
        body = _TAGS.sub(" ", body)
    text = " ".join(body.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _status_code(status_line: bytes) -> Optional[int]:
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """
    Decode as much of a chunked body as has arrived.

    @return: the body so far, and whether the last chunk was seen.
    """
    body = b""
    position = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return body, False
        size_text = data[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return body, True
        if size == 0:
            return body, True
        start = line_end + 2
        chunk = data[start : start + size]
        body += chunk
        if len(chunk) < size:
            return body, False
        position = start + size + 2


def describe_failure(reason: Failure) -> tuple[EndKind, str]:
    """
    Classify why a connection was lost or could not be made.

    @param reason: the failure from C{connectionLost} or from an endpoint.
    @return: the kind and a message safe to show a user.
    """
    if reason.check(VerificationError):
        return EndKind.TLS, "TLS: the server certificate is not valid for this host name"
    if reason.check(SSL.Error):
        detail = _openssl_reasons(reason.value)
        return EndKind.TLS, f"TLS handshake failed: {detail}" if detail else "TLS handshake failed"
    message = reason.getErrorMessage().strip() or type(reason.value).__name__
    return EndKind.NETWORK, message


def _openssl_reasons(error: BaseException) -> str:
    reasons = []
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(item, tuple) and item:
            reasons.append(str(item[-1]))
    return ", ".join(reason for reason in reasons if reason)


class TunnelProtocol(WebSocketClientProtocol):
    """
    One websocket to Rancher carrying one remotedialer session.

    @ivar session: the L{Session}, once the handshake succeeded.
    @ivar last_received: clock time of the last thing received (for the
        heartbeat); while the L{InboundScheduler} holds the socket unread,
        always now.
    @ivar opened_at: clock time of the successful handshake, or L{None}.
    @ivar socket_pauses: how often the socket's buffer filled up.
    """

    #: autobahn logs the handshake request at debug level, headers and all:
    #: the registration token. This logger stays at info whatever txaio's
    #: global level is set to, so that line is never emitted.
    log = txaio.make_logger(level="info")

    def __init__(
        self,
        owner: TunnelOwner,
        heartbeat: Heartbeat,
        clock: IReactorTime,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        inbound: Optional[InboundScheduler] = None,
    ) -> None:
        super().__init__()
        self._owner = owner
        self._inbound = inbound
        self._heartbeat = heartbeat
        self._clock = clock
        self._handshake_timeout = handshake_timeout
        self._handshake_timer: Optional[IDelayedCall] = None
        self.session: Optional[Session] = None
        self._last_received = clock.seconds()
        self.opened_at: Optional[float] = None
        self.socket_pauses = 0
        # A refused handshake: (status, reason phrase, headers) once the
        # head has arrived, while its body is being collected.
        self._refusal: Optional[tuple[int, str, dict[str, str]]] = None
        # Decided here (timeout, dead peer, refusal, close frame) before the
        # connection is dropped; otherwise derived from connectionLost.
        self._end: Optional[TunnelEnd] = None
        self._reported = False

    @property
    def last_received(self) -> float:
        if self._inbound is not None and self._inbound.is_held(self):
            # Rancher is not silent; we are not listening.
            return self._clock.seconds()
        return self._last_received

    @last_received.setter
    def last_received(self, when: float) -> None:
        self._last_received = when

    # -- connection life cycle ---------------------------------------------

    def connectionMade(self) -> None:
        # Covers TLS and the HTTP upgrade, like Go's HandshakeTimeout.
        self._handshake_timer = self._clock.callLater(
            self._handshake_timeout, self._handshake_timed_out
        )
        self._owner.tunnel_connecting(self)
        # Go's net package disables Nagle on every TCP connection. autobahn
        # means to as well, but reads tcpNoDelay before it copies the factory
        # options and swallows the error, so without this the first answer on
        # a new stream waits for the peer's delayed ACK (~40 ms).
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass  # not a TCP transport (tests, UNIX sockets)
        super().connectionMade()

    def onConnecting(self, transport_details: Any) -> ConnectingRequest:
        request = self._owner.request_for_attempt()
        host = f"[{request.host}]" if ":" in request.host else request.host
        return ConnectingRequest(
            host=host,
            port=request.port,
            resource=request.resource,
            headers=dict(request.headers),
            # Nothing but what the Go agent sends: no User-Agent, Origin,
            # subprotocols or extensions.
            useragent=None,
            origin=None,
            protocols=[],
        )

    def onOpen(self) -> None:
        self._cancel_handshake_timer()
        now = self._clock.seconds()
        self.opened_at = now
        self.last_received = now
        router = StreamRouter(self._owner.route, self._clock, label=self._owner.label)
        session = Session(self._send_frame, router, label=self._owner.label)
        router.session = session
        self.session = session
        self.transport.registerProducer(_SocketWriters(self, session), True)
        self._heartbeat.register(self)
        self._owner.tunnel_opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.last_received = self._clock.seconds()
        if self.session is None:
            return
        if isBinary:
            if self._inbound is None:
                self.session.receive(payload)
            else:
                self._inbound.deliver(self, payload)
        else:
            self.session.receive_text(payload)

    # -- InboundTarget ------------------------------------------------------

    def handle_message(self, payload: bytes, waited: float) -> None:
        if self.session is not None and not self._reported:
            self.session.receive(payload, overdue=waited > OVERDUE_CONNECT)

    def pause_reading(self) -> None:
        self.transport.pauseProducing()

    def resume_reading(self) -> None:
        # Silence is counted from here: what was unread was not Rancher's.
        self._last_received = self._clock.seconds()
        self.transport.resumeProducing()

    def onPong(self, payload: bytes) -> None:
        self.last_received = self._clock.seconds()

    def onPing(self, payload: bytes) -> None:
        # Rancher never pings, but a Ping is proof of life too.
        self.last_received = self._clock.seconds()
        super().onPing(payload)

    def onCloseFrame(self, code: Optional[int], reasonRaw: Optional[bytes]) -> Any:
        result = super().onCloseFrame(code, reasonRaw)
        if self.state == WebSocketProtocol.STATE_CLOSING and not self.closedByMe:
            # autobahn replied and would now wait for the server to drop
            # the TCP connection; the session is over either way.
            if self._end is None:
                self._end = TunnelEnd(
                    EndKind.CLOSED,
                    f"Rancher closed the websocket (code {code})",
                    was_open=True,
                )
            self.dropConnection(abort=True)
        return result

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_handshake_timer()
        self._heartbeat.unregister(self)
        if self._inbound is not None:
            self._inbound.forget(self)
        try:
            super().connectionLost(reason)
        finally:
            self._report(reason)

    def _report(self, reason: Failure) -> None:
        if self._reported:
            return
        self._reported = True
        end = self._end or self._end_from(reason)
        if self.session is not None:
            self.session.connection_lost("tunnel disconnect")
        self._owner.tunnel_closed(self, end)

    def _end_from(self, reason: Failure) -> TunnelEnd:
        if self._refusal is not None:
            # The connection closed while the body was being read: that
            # was the end of the body.
            return self._refusal_end()
        if self.session is not None:
            if reason.check(ConnectionDone):
                return TunnelEnd(EndKind.CLOSED, "Rancher closed the connection", was_open=True)
            kind, message = describe_failure(reason)
            return TunnelEnd(EndKind.CLOSED, f"connection lost: {message}", was_open=True)
        kind, message = describe_failure(reason)
        if kind is EndKind.TLS:
            return TunnelEnd(kind, message)
        if self.droppedByMe and self.wasNotCleanReason:
            # autobahn rejected the handshake answer.
            return TunnelEnd(EndKind.PROTOCOL, f"invalid websocket handshake: {self.wasNotCleanReason}")
        return TunnelEnd(EndKind.NETWORK, f"connection lost during the handshake: {message}")

    def _cancel_handshake_timer(self) -> None:
        timer, self._handshake_timer = self._handshake_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self.session is not None:
            return
        if self._refusal is not None:
            # A refusal whose body never ended: report what arrived.
            self._end = self._refusal_end()
        else:
            self._end = TunnelEnd(
                EndKind.TIMEOUT,
                f"no websocket handshake within {self._handshake_timeout:g} s",
            )
        self._drop()

    def _drop(self) -> None:
        if self.state != WebSocketProtocol.STATE_CLOSED:
            self.dropConnection(abort=True)
        else:
            self.transport.abortConnection()

    # -- the handshake answer --------------------------------------------------

    def processHandshake(self) -> Any:
        if self._refusal is None:
            head_end = self.data.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.data) > MAX_RESPONSE_HEAD:
                    return self.failHandshake("response head too large")
                return None
            status = _status_code(self.data.split(b"\r\n", 1)[0])
            if status is None or status == 101:
                # autobahn checks the rest of a proper upgrade answer.
                return super().processHandshake()
            status_line, headers, _ = parseHttpHeader(self.data[: head_end + 4])
            reason_phrase = status_line.split(None, 2)[2] if status_line.count(" ") >= 2 else ""
            self._refusal = (status, reason_phrase.strip(), headers)
            self.data = self.data[head_end + 4 :]
        self._collect_refusal_body()
        return None

    def _collect_refusal_body(self) -> None:
        assert self._refusal is not None
        headers = self._refusal[2]
        complete = len(self.data) >= MAX_REFUSAL_BODY
        if "chunked" in headers.get("transfer-encoding", "").lower():
            _, done = _dechunk(self.data)
            complete = complete or done
        elif "content-length" in headers:
            try:
                complete = complete or len(self.data) >= int(headers["content-length"])
            except ValueError:
                complete = True
        # Otherwise the body ends when the connection does (_end_from).
        if complete and self._end is None:
            self._end = self._refusal_end()
            self.failHandshake(self._end.message)

    def _refusal_end(self) -> TunnelEnd:
        assert self._refusal is not None
        status, reason_phrase, headers = self._refusal
        raw = self.data
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raw = _dechunk(raw)[0]
        elif headers.get("content-length", "").strip().isdigit():
            raw = raw[: int(headers["content-length"])]
        body = raw[:MAX_REFUSAL_BODY].decode("utf-8", "replace")
        summary = summarize_body(body, headers.get("content-type", "")) or reason_phrase
        if 300 <= status < 400 and headers.get("location"):
            # A wrong server URL (http instead of https, a missing path).
            summary = f"{summary} (redirect to {headers['location'][:200]})".strip()
        kind = EndKind.REJECTED if status in REJECTION_STATUSES else EndKind.REFUSED
        return TunnelEnd(kind, f"{status} {summary}".strip(), status=status, body=body)

    # -- what the session and the heartbeat call ------------------------------------

    def _send_frame(self, data: bytes) -> None:
        # Between dropping the connection and connectionLost, streams may
        # still write; autobahn would raise Disconnected into them.
        if self.state == WebSocketProtocol.STATE_OPEN:
            self.sendMessage(data, isBinary=True)

    def send_ping(self) -> None:
        """Heartbeat: a Ping with an empty payload, as the Go client sends."""
        self.sendPing()

    def send_sync_connections(self) -> None:
        """Heartbeat: have the session list its open streams."""
        if self.session is not None:
            self.session.send_sync_connections()

    def heartbeat_expired(self, silence: float) -> None:
        """Heartbeat: nothing arrived for C{silence} seconds; give up."""
        if self._end is None:
            self._end = TunnelEnd(
                EndKind.DEAD_PEER,
                f"nothing received from Rancher for {silence:.0f} s",
                was_open=self.session is not None,
            )
        self._drop()

    def abort(self, end: TunnelEnd) -> None:
        """
        Drop the connection now and report C{end} as the reason.
        """
        if self._end is None:
            self._end = end
        self._drop()

    def close(self) -> None:
        """
        Close the connection gracefully (TLS close_notify), e.g. on shutdown.

        The socket producer is unregistered first: a TLS transport does not
        shut down while a producer is registered, so a bare
        C{transport.loseConnection()} would never finish.
        """
        if self._end is None:
            self._end = TunnelEnd(EndKind.CLOSED, "closed by the agent", was_open=self.session is not None)
        self._cancel_handshake_timer()
        self._heartbeat.unregister(self)
        if self.state != WebSocketProtocol.STATE_CLOSED:
            # remotedialer has no close handshake; ending it this way is the
            # normal, clean end (autobahn would warn about every tunnel).
            self.wasClean = True
            self.dropConnection(abort=False)


def websocket_factory(reactor: IReactorTime) -> WebSocketClientFactory:
    """
    The autobahn settings every tunnel shares (one factory per process is
    enough: protocols only read their options from it).

    @param reactor: the reactor.
    @return: a configured C{WebSocketClientFactory}; it is never connected
        itself, L{TunnelProtocolFactory} lends it to each protocol.
    """
    factory = WebSocketClientFactory(reactor=reactor)
    factory.setProtocolOptions(
        perMessageCompressionOffers=[],
        # autobahn's timers run on the global reactor (see module doc).
        autoPingInterval=0,
        autoPingTimeout=0,
        openHandshakeTimeout=0,
        closeHandshakeTimeout=0,
        serverConnectionDropTimeout=0,
        maxFramePayloadSize=MAX_MESSAGE_SIZE,
        maxMessagePayloadSize=MAX_MESSAGE_SIZE,
        maskClientFrames=True,
        applyMask=True,
        autoFragmentSize=0,
        failByDrop=True,
        tcpNoDelay=True,
    )
    factory.noisy = False
    return factory


class TunnelProtocolFactory(Factory):
    """
    Builds the L{TunnelProtocol}s of one tunnel.

    @param owner: the tunnel (L{TunnelOwner}).
    @param heartbeat: the process's L{Heartbeat}.
    @param clock: the reactor.
    @param websocket_options: the shared factory from L{websocket_factory}.
    @param handshake_timeout: seconds for TCP+TLS+upgrade.
    @param inbound: the process's L{InboundScheduler}; without one, messages
        are handled as they arrive.
    """

    noisy = False

    def __init__(
        self,
        owner: TunnelOwner,
        heartbeat: Heartbeat,
        clock: IReactorTime,
        websocket_options: WebSocketClientFactory,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        inbound: Optional[InboundScheduler] = None,
    ) -> None:
        self._owner = owner
        self._heartbeat = heartbeat
        self._clock = clock
        self._websocket_options = websocket_options
        self._handshake_timeout = handshake_timeout
        self._inbound = inbound

    def buildProtocol(self, addr: Any) -> TunnelProtocol:
        protocol = TunnelProtocol(
            self._owner, self._heartbeat, self._clock, self._handshake_timeout, self._inbound
        )
        # autobahn protocols read their options (and client/server role)
        # from .factory.
        protocol.factory = self._websocket_options
        return protocol

# -*- test-case-name: tests.test_remotedialer_transport -*-
"""
One tunnelled connection as a Twisted transport, so that any protocol (an
HTTP channel, a TLS layer wrapping one) can be attached to a remotedialer
stream exactly as to a TCP connection, without a socket.

L{StreamTransport} is the L{StreamHandler} the session drives and the
C{ITransport} the protocol sees. It is also a push producer (the protocol may
pause delivery of incoming bytes) and a consumer (the protocol may register a
producer, which is paused while Rancher has the stream paused).
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from . import frames
from .session import ConnectRefused, Session


@implementer(IAddress)
class TunnelAddress:
    """
    The address of either end of a tunnelled connection.

    @ivar proto: C{tcp} (what Rancher asked for).
    @ivar address: C{host:port} Rancher dialled.
    @ivar conn_id: the remotedialer connection id.
    @ivar label: which tunnel (for logs), e.g. the cluster name.
    """

    def __init__(self, proto: str, address: str, conn_id: int, label: str = "") -> None:
        self.proto = proto
        self.address = address
        self.conn_id = conn_id
        self.label = label

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0] or self.address

    @property
    def port(self) -> int:
        port = self.address.rpartition(":")[2]
        return int(port) if port.isdigit() else 0

    def __repr__(self) -> str:
        return f"TunnelAddress({self.proto}/{self.address} #{self.conn_id} {self.label})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TunnelAddress) and (
            self.proto,
            self.address,
            self.conn_id,
            self.label,
        ) == (other.proto, other.address, other.conn_id, other.label)

    def __hash__(self) -> int:
        return hash((self.proto, self.address, self.conn_id, self.label))


@implementer(ITransport, IPushProducer, IConsumer)
class StreamTransport:
    """
    Transport for one remotedialer connection.

    @ivar disconnecting: C{loseConnection} was called.
    @ivar disconnected: the protocol has been told the connection is lost.
    """

    _log = Logger()

    def __init__(
        self,
        session: Session,
        conn_id: int,
        peer: TunnelAddress,
        host: TunnelAddress,
        clock: IReactorTime,
    ) -> None:
        self._session = session
        self.conn_id = conn_id
        self._peer = peer
        self._host = host
        self._clock = clock
        self._protocol: Optional[IProtocol] = None
        self._producer: Optional[IPushProducer] = None
        self._producer_streaming = True
        self._peer_paused = False
        self._pull_scheduled = False
        self.disconnecting = False
        self.disconnected = False

    def attach(self, protocol: IProtocol) -> None:
        """Connect C{protocol} to this transport (C{makeConnection})."""
        self._protocol = protocol
        protocol.makeConnection(self)

    # -- StreamHandler: driven by the session ------------------------------

    def data_received(self, data: bytes) -> None:
        if self._protocol is not None and not self.disconnected:
            self._protocol.dataReceived(data)

    def closed(self, reason: str) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.disconnecting = True
        if reason == "EOF":
            failure = Failure(ConnectionDone("remotedialer stream closed"))
        else:
            failure = Failure(ConnectionLost(reason))
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        protocol = self._protocol
        if protocol is not None:
            # Never re-entrantly from inside write()/loseConnection(): that
            # is not what a protocol expects of a transport.
            self._clock.callLater(0, protocol.connectionLost, failure)

    def pause_writing(self) -> None:
        self._peer_paused = True
        if self._producer is not None and self._producer_streaming:
            self._producer.pauseProducing()

    def resume_writing(self) -> None:
        self._peer_paused = False
        if self._producer is not None:
            if self._producer_streaming:
                self._producer.resumeProducing()
            else:
                self._schedule_pull()

    # -- ITransport ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            self._session.write(self.conn_id, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.disconnecting:
            return
        self.disconnecting = True
        self._session.close(self.conn_id, "EOF")

    def abortConnection(self) -> None:
        if self.disconnected:
            return
        self.disconnecting = True
        self._session.abort(self.conn_id)

    def getPeer(self) -> TunnelAddress:
        return self._peer

    # twisted.web's HTTPChannel tunes these on TCP transports; a tunnelled
    # stream has no socket of its own, so they are accepted and ignored.
    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def getHost(self) -> TunnelAddress:
        return self._host

    # -- IPushProducer: the protocol throttles what we deliver -------------------

    def pauseProducing(self) -> None:
        self._session.pause_reading(self.conn_id)

    def resumeProducing(self) -> None:
        self._session.resume_reading(self.conn_id)

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- IConsumer: Rancher throttles what the protocol writes ------------------

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer = producer
        self._producer_streaming = streaming
        if not streaming:
            # Pull producers are asked for data until they unregister.
            self._schedule_pull()
        elif self._peer_paused:
            producer.pauseProducing()

    def _schedule_pull(self) -> None:
        # One pending pull at a time: a Pause and Resume in the same turn
        # must not start a second chain asking the producer twice a turn.
        if not self._pull_scheduled:
            self._pull_scheduled = True
            self._clock.callLater(0, self._pull)

    def _pull(self) -> None:
        # A pull producer is asked for more each turn until it unregisters;
        # while Rancher has the stream paused it is simply not asked.
        self._pull_scheduled = False
        producer = self._producer
        if producer is None or self._producer_streaming or self.disconnected:
            return
        if not self._peer_paused:
            producer.resumeProducing()
            self._schedule_pull()

    def unregisterProducer(self) -> None:
        self._producer = None


class StreamRouter:
    """
    The accept callback of a session: picks a protocol factory for each
    Connect by (proto, address) and attaches it to a new L{StreamTransport}.

    @param route: returns the factory that serves a (proto, address), or
        L{None}; a Connect nothing serves is answered as a failed dial is.
    """

    _log = Logger()

    def __init__(
        self,
        route: Callable[[str, str], Optional[IProtocolFactory]],
        clock: IReactorTime,
        label: str = "",
    ) -> None:
        self._route = route
        self._clock = clock
        self.label = label
        self.session: Optional[Session] = None

    def __call__(self, connect: frames.Connect) -> StreamTransport:
        assert self.session is not None, "StreamRouter.session must be set"
        factory = self._route(connect.proto, connect.address)
        if factory is None:
            raise ConnectRefused(
                f"dial {connect.proto} {connect.address}: connect: connection refused"
            )
        peer = TunnelAddress(connect.proto, "rancher:0", connect.conn_id, self.label)
        host = TunnelAddress(connect.proto, connect.address, connect.conn_id, self.label)
        protocol = factory.buildProtocol(host)
        if protocol is None:
            raise ConnectRefused(
                f"dial {connect.proto} {connect.address}: connect: connection refused"
            )
        transport = StreamTransport(self.session, connect.conn_id, peer, host, self._clock)
        transport.attach(protocol)
        return transport

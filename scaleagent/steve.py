# -*- test-case-name: tests.test_steve -*-
"""
The HTTP server behind the steve tunnel: what Rancher's requests to
C{stv-cluster-<id>} reach.

Rancher checks every 15 s that C{GET /ping} through this tunnel answers 200
(that is what makes a cluster C{Connected}, agent-protocol §4.1); anything
else it sends here is the cluster's steve API, which is not simulated yet
and answers 404. Like the real embedded steve, keep-alives are off: every
response says C{Connection: close} and the stream is closed after it.

Thousands of pings a minute arrive here, so requests are counted, not logged,
unless asked for.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http import HTTPChannel, Request
from twisted.web.resource import Resource
from twisted.web.server import Site


class SteveStats:
    """
    Counters for metrics.

    @ivar requests: requests answered.
    @ivar pings: C{GET /ping} answered with pong.
    @ivar not_found: requests answered with 404.
    """

    __slots__ = ("requests", "pings", "not_found")

    def __init__(self) -> None:
        self.requests = 0
        self.pings = 0
        self.not_found = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class SteveResource(Resource):
    """
    The steve surface: C{/ping} and, for now, nothing else.
    """

    isLeaf = True

    def __init__(self, stats: SteveStats) -> None:
        super().__init__()
        self._stats = stats

    def render(self, request: Request) -> bytes:
        # Go's net/http sends no Server header; twisted.web always adds one.
        request.responseHeaders.removeHeader(b"server")
        # Rancher's health check sends GET; HEAD is answered the same way
        # (twisted.web drops the body).
        if request.path == b"/ping" and request.method in (b"GET", b"HEAD"):
            self._stats.pings += 1
            request.setHeader(b"content-type", b"text/plain")
            return b"pong"
        self._stats.not_found += 1
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"


class _OneRequestChannel(HTTPChannel):
    """
    An HTTP/1.1 channel that serves one request and then closes, as steve's
    server with keep-alives disabled does.
    """

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        return False


class SteveSite(Site):
    """
    A C{Site} for L{StreamRouter} routes: its C{buildProtocol} gives each
    tunnelled stream its own one-request HTTP channel.

    @param clock: the reactor, for the channel's idle timeout.
    @param log_requests: emit one log event per request (off by default).
    @param timeout: idle timeout of a stream that never sends a request.
    @ivar stats: the L{SteveStats}.
    """

    protocol = _OneRequestChannel
    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        log_requests: bool = False,
        timeout: Optional[float] = 60.0,
    ) -> None:
        self.stats = SteveStats()
        super().__init__(SteveResource(self.stats), timeout=timeout, reactor=clock)
        self.log_requests = log_requests
        self.noisy = False

    def log(self, request: Request) -> None:
        self.stats.requests += 1
        if self.log_requests:
            # The path only: queries are not ours to log.
            self._log.info(
                "steve: {method} {path} -> {code}",
                method=request.method.decode("ascii", "replace"),
                path=request.path.decode("ascii", "replace"),
                code=request.code,
            )

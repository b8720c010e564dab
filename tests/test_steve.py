"""
Tests for L{scaleagent.steve}: Rancher's requests over the steve tunnel,
fed as remotedialer frames through a real L{Session} and L{StreamRouter}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import Session
from scaleagent.remotedialer.transport import StreamRouter
from scaleagent.steve import SteveSite

# What Go's net/http client sends for Rancher's health check.
PING_REQUEST = (
    b"GET /ping HTTP/1.1\r\n"
    b"Host: not-used\r\n"
    b"User-Agent: Go-http-client/1.1\r\n"
    b"Accept-Encoding: gzip\r\n"
    b"\r\n"
)


class SteveOverTunnelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.site = SteveSite(self.clock)
        self.sent: list[frames.Message] = []
        router = StreamRouter(lambda proto, address: self.site, self.clock, label="c-test/steve")
        self.session = Session(lambda data: self.sent.append(frames.decode(data)), router, label="c-test/steve")
        router.session = self.session

    def rancher_sends(self, *messages: frames.Message) -> None:
        for message in messages:
            self.session.receive(frames.encode(message, 1))
        # Stream transports report connectionLost on the next turn.
        self.clock.advance(0)

    def response_to(self, request: bytes, conn_id: int = 2, address: str = "not-used:80") -> bytes:
        self.rancher_sends(
            frames.Connect(conn_id, "tcp", address),
            frames.Data(conn_id, request),
        )
        return b"".join(m.data for m in self.sent if isinstance(m, frames.Data) and m.conn_id == conn_id)

    def errors_for(self, conn_id: int) -> list[str]:
        return [m.text for m in self.sent if isinstance(m, frames.Error) and m.conn_id == conn_id]

    def test_ping_answers_pong_then_closes(self) -> None:
        response = self.response_to(PING_REQUEST)
        head, _, body = response.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 200 OK")
        headers = {k.lower(): v for k, v in (line.split(b": ", 1) for line in lines[1:])}
        self.assertEqual(headers[b"content-type"], b"text/plain")
        self.assertEqual(headers[b"connection"], b"close")
        self.assertEqual(headers[b"content-length"], b"4")
        self.assertEqual(body, b"pong")
        # The stream is closed after the one response: Error(EOF) to Rancher.
        self.assertEqual(self.errors_for(2), ["EOF"])
        self.assertEqual(self.session.stream_ids(), [])
        self.assertEqual(self.site.stats.pings, 1)
        self.assertEqual(self.site.stats.requests, 1)

    def test_any_address_is_served(self) -> None:
        """Rancher's steve proxy dials 127.0.0.1:6080; same server."""
        response = self.response_to(PING_REQUEST, address="127.0.0.1:6080")
        self.assertTrue(response.endswith(b"\r\n\r\npong"))

    def test_other_paths_are_404_and_close(self) -> None:
        response = self.response_to(
            b"GET /v1/schemas HTTP/1.1\r\nHost: 127.0.0.1:6080\r\nImpersonate-User: admin\r\n\r\n"
        )
        self.assertTrue(response.startswith(b"HTTP/1.1 404 "))
        self.assertIn(b"\r\nconnection: close\r\n", response.lower())
        self.assertEqual(self.errors_for(2), ["EOF"])
        self.assertEqual(self.site.stats.not_found, 1)

    def test_post_to_ping_is_404(self) -> None:
        response = self.response_to(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 404 "))

    def test_second_request_on_the_stream_is_not_served(self) -> None:
        response = self.response_to(PING_REQUEST + PING_REQUEST)
        self.assertEqual(response.count(b"HTTP/1.1 200 OK"), 1)
        self.assertEqual(self.site.stats.requests, 1)

    def test_concurrent_streams(self) -> None:
        self.rancher_sends(
            frames.Connect(2, "tcp", "not-used:80"),
            frames.Connect(3, "tcp", "not-used:80"),
            frames.Data(3, PING_REQUEST),
            frames.Data(2, PING_REQUEST),
        )
        self.assertEqual(self.errors_for(2), ["EOF"])
        self.assertEqual(self.errors_for(3), ["EOF"])
        self.assertEqual(self.site.stats.pings, 2)

    def test_request_split_across_frames(self) -> None:
        self.rancher_sends(frames.Connect(2, "tcp", "not-used:80"))
        for index in range(0, len(PING_REQUEST), 7):
            self.rancher_sends(frames.Data(2, PING_REQUEST[index : index + 7]))
        data = b"".join(m.data for m in self.sent if isinstance(m, frames.Data))
        self.assertTrue(data.endswith(b"pong"))

    def test_no_request_logging_by_default(self) -> None:
        with capturedLogs() as events:
            self.response_to(PING_REQUEST)
        self.assertEqual([e for e in events if "steve:" in e.get("log_format", "")], [])
        self.assertEqual(self.site.stats.requests, 1)

    def test_request_logging_on_request(self) -> None:
        self.site.log_requests = True
        with capturedLogs() as events:
            self.response_to(PING_REQUEST)
        logged = [e for e in events if "steve:" in e.get("log_format", "")]
        self.assertEqual(len(logged), 1)
        self.assertEqual((logged[0]["method"], logged[0]["path"], logged[0]["code"]), ("GET", "/ping", 200))

    def test_idle_stream_times_out_on_the_given_clock(self) -> None:
        self.rancher_sends(frames.Connect(2, "tcp", "not-used:80"))
        self.assertEqual(self.session.stream_ids(), [2])
        self.clock.advance(61)
        self.assertEqual(self.session.stream_ids(), [])
        self.assertEqual(len(self.errors_for(2)), 1)

"""
Tests for L{scaleagent.remotedialer.transport}: ordinary Twisted protocols —
including TLS wrapping HTTP — served on remotedialer streams.
"""

from __future__ import annotations

import datetime
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import Session
from scaleagent.remotedialer.transport import StreamRouter, StreamTransport, TunnelAddress


class Echo(Protocol):
    lost: Optional[Failure] = None

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


@implementer(IPushProducer)
class RecordingProducer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class Harness:
    """A session whose streams are routed by address to protocol factories."""

    def __init__(self, routes: dict[str, Factory]) -> None:
        self.clock = Clock()
        self.sent: list[frames.Message] = []
        self.protocols: list[Protocol] = []
        self.router = StreamRouter(lambda proto, address: routes.get(address), self.clock, "c1")
        self.session = Session(lambda data: self.sent.append(frames.decode(data)), self.router)
        self.router.session = self.session

    def send(self, message: frames.Message) -> None:
        self.session.receive(frames.encode(message, 1))

    def take(self) -> list[frames.Message]:
        sent, self.sent = self.sent, []
        return sent


class StreamTransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.echoes: list[Echo] = []

        def build(address: TunnelAddress) -> Echo:
            echo = Echo()
            self.echoes.append(echo)
            return echo

        factory = Factory.forProtocol(Echo)
        factory.buildProtocol = build
        self.harness = Harness({"10.43.0.1:443": factory})

    def test_interfaces(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        transport = self.echoes[0].transport
        self.assertIsInstance(transport, StreamTransport)
        from twisted.internet.interfaces import IConsumer, ITransport

        verifyObject(ITransport, transport)
        verifyObject(IPushProducer, transport)
        verifyObject(IConsumer, transport)
        self.assertEqual(transport.getHost().address, "10.43.0.1:443")
        self.assertEqual(transport.getHost().port, 443)
        self.assertEqual(transport.getHost().conn_id, 2)

    def test_echo(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        self.harness.send(frames.Data(2, b"ping"))
        self.assertEqual(
            [(m.conn_id, m.data) for m in self.harness.take()], [(2, b"ping")]
        )

    def test_unrouted_address_refused(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.0.0.1:80"))
        (reply,) = self.harness.take()
        self.assertEqual(reply.text, "dial tcp 10.0.0.1:80: connect: connection refused")
        self.assertEqual(self.echoes, [])

    def test_lose_connection(self) -> None:
        """connectionLost comes later, not from inside loseConnection."""
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        echo = self.echoes[0]
        echo.transport.loseConnection()
        self.assertIsNone(echo.lost)
        self.assertEqual([type(m) for m in self.harness.take()], [frames.Error])
        self.harness.clock.advance(0)
        echo.lost.trap(ConnectionDone)
        echo.transport.write(b"ignored")
        self.assertEqual(self.harness.take(), [])

    def test_peer_error_is_connection_lost(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        echo = self.echoes[0]
        self.harness.send(frames.Error(2, "context canceled"))
        self.harness.clock.advance(0)
        echo.lost.trap(ConnectionLost)
        self.assertIn("context canceled", str(echo.lost.value))

    def test_abort(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        echo = self.echoes[0]
        echo.transport.abortConnection()
        (reply,) = self.harness.take()
        self.assertEqual(reply.text, "connection reset by peer")
        self.harness.clock.advance(0)
        echo.lost.trap(ConnectionLost)

    def test_peer_pause_pauses_registered_producer(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        producer = RecordingProducer()
        transport = self.echoes[0].transport
        transport.registerProducer(producer, True)
        self.harness.send(frames.Pause(2))
        self.harness.send(frames.Resume(2))
        self.assertEqual(producer.calls, ["pause", "resume"])
        transport.unregisterProducer()
        self.harness.send(frames.Pause(2))
        self.assertEqual(producer.calls, ["pause", "resume"])

    def test_producer_registered_while_paused_starts_paused(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        self.harness.send(frames.Pause(2))
        producer = RecordingProducer()
        self.echoes[0].transport.registerProducer(producer, True)
        self.assertEqual(producer.calls, ["pause"])

    def test_protocol_pauses_delivery(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        transport = self.echoes[0].transport
        transport.pauseProducing()
        self.harness.send(frames.Data(2, b"later"))
        self.assertEqual(self.harness.take(), [])
        transport.resumeProducing()
        self.assertEqual([m.data for m in self.harness.take()], [b"later"])

    def test_producer_stopped_when_stream_closes(self) -> None:
        self.harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        producer = RecordingProducer()
        self.echoes[0].transport.registerProducer(producer, True)
        self.harness.send(frames.Error(2, "EOF"))
        self.assertEqual(producer.calls, ["stop"])


class PullProducerTests(SynchronousTestCase):
    def test_pause_and_resume_in_one_turn_pull_once_per_turn(self) -> None:
        """
        A pull producer is asked once per reactor turn, even when Rancher
        paused and resumed the stream in between.
        """
        asked: list[int] = []

        @implementer(IPullProducer)
        class Producer:
            def resumeProducing(self) -> None:
                asked.append(1)

            def stopProducing(self) -> None:
                pass

        class Registers(Protocol):
            def connectionMade(self) -> None:
                self.transport.registerProducer(Producer(), False)

        factory = Factory.forProtocol(Registers)
        harness = Harness({"x:1": factory})
        for message in (frames.Connect(1, "tcp", "x:1"), frames.Pause(1), frames.Resume(1)):
            harness.send(message)
        # Run exactly the calls due now, once (one reactor turn).
        for call in list(harness.clock.getDelayedCalls()):
            harness.clock.calls.remove(call)
            call.func(*call.args, **call.kw)
        self.assertEqual(len(asked), 1)
        self.assertEqual(len(harness.clock.getDelayedCalls()), 1)


def make_certificate() -> tuple[ssl.PrivateCertificate, ssl.Certificate]:
    """A self-signed ECDSA certificate with an IP SAN, like a k3s server's."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3s")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("10.43.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        ssl.PrivateCertificate.loadPEM(certificate_pem + key_pem),
        ssl.Certificate.loadPEM(certificate_pem),
    )


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello through the tunnel"


class TLSOverStreamTests(SynchronousTestCase):
    """
    TLS terminated on a stream, with HTTP inside, as the synthetic API does:
    a TLS client that trusts only the certificate and verifies the IP SAN
    gets the HTTP answer.
    """

    def test_https_request(self) -> None:
        server_certificate, trusted = make_certificate()
        server_factory = TLSMemoryBIOFactory(
            server_certificate.options(), False, Site(Hello()), clock=Clock()
        )
        harness = Harness({"10.43.0.1:443": server_factory})

        received = bytearray()

        class Client(Protocol):
            def connectionMade(self) -> None:
                self.transport.write(
                    b"GET / HTTP/1.1\r\nHost: 10.43.0.1\r\nConnection: close\r\n\r\n"
                )

            def dataReceived(self, data: bytes) -> None:
                received.extend(data)

        client_factory = TLSMemoryBIOFactory(
            ssl.optionsForClientTLS("10.43.0.1", trustRoot=trusted),
            True,
            Factory.forProtocol(Client),
            clock=harness.clock,
        )
        client = client_factory.buildProtocol(None)

        class ClientTransport:
            """Carries the client's bytes as Data frames on stream 2."""

            disconnecting = False

            def write(self, data: bytes) -> None:
                harness.send(frames.Data(2, data))

            def writeSequence(self, data) -> None:
                self.write(b"".join(data))

            def loseConnection(self) -> None:
                self.disconnecting = True

            def getPeer(self):
                return None

            def getHost(self):
                return None

            def registerProducer(self, producer, streaming) -> None:
                pass

            def unregisterProducer(self) -> None:
                pass

        harness.send(frames.Connect(2, "tcp", "10.43.0.1:443"))
        client.makeConnection(ClientTransport())
        for _ in range(50):
            harness.clock.advance(0)
            for message in harness.take():
                if isinstance(message, frames.Data):
                    client.dataReceived(message.data)
        self.assertIn(b"HTTP/1.1 200 OK", bytes(received))
        self.assertIn(b"hello through the tunnel", bytes(received))

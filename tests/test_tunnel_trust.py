"""
Tests for L{scaleagent.tunnel.trust}: the CA checksum, the download of
C{cacerts}, and real TLS handshakes in memory against a server whose
certificate a test CA signed.

The certificate helpers here are also used by the protocol and service
tests.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from functools import lru_cache
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from service_identity import VerificationError
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from scaleagent.tunnel.protocol import EndKind, describe_failure
from scaleagent.tunnel.trust import (
    ChecksumMismatch,
    RancherTrust,
    TrustError,
    TrustRegistry,
    cacerts_checksum,
    cacerts_url,
    fetch_cacerts,
    load_ca_certificates,
    resolve_trust,
    unverified_http_client,
    unverified_https_policy,
)

HOSTNAME = "rancher.test"


# -- test PKI ----------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@lru_cache(maxsize=None)
def make_pki(common_name: str = "scaleagent test CA", hostname: str = HOSTNAME) -> dict[str, bytes]:
    """
    A CA and a server certificate it signed for C{hostname} and 127.0.0.1.

    @return: C{ca_pem}, C{server_cert_pem}, C{server_key_pem}.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return {
        "ca_pem": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server_cert_pem": server_cert.public_bytes(serialization.Encoding.PEM),
        "server_key_pem": _key_pem(server_key),
    }


@implementer(IOpenSSLServerConnectionCreator)
class _ServerTLS:
    """
    A TLS server presenting the test certificate. Built on a pyOpenSSL
    context directly: Twisted's CertificateOptions still passes pyOpenSSL
    certificate objects, which pyOpenSSL deprecates.
    """

    def __init__(self, pki: dict[str, bytes]) -> None:
        self._context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self._context.use_certificate(x509.load_pem_x509_certificate(pki["server_cert_pem"]))
        self._context.use_privatekey(serialization.load_pem_private_key(pki["server_key_pem"], None))

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def server_tls_options(pki: Optional[dict[str, bytes]] = None) -> IOpenSSLServerConnectionCreator:
    """TLS server side presenting the test server certificate."""
    return _ServerTLS(pki or make_pki())


class _Given(Factory):
    """Hands out one protocol as it is (keeping its own C{.factory})."""

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


def tls_connected(
    client_creator: IOpenSSLClientConnectionCreator,
    client_protocol: Protocol,
    server_protocol: Protocol,
    clock: Clock,
    server_options: Optional[IOpenSSLServerConnectionCreator] = None,
) -> tuple[TLSMemoryBIOProtocol, TLSMemoryBIOProtocol, IOPump]:
    """
    Connect two protocols through TLS in memory; pump to move bytes.
    """
    client_factory = TLSMemoryBIOFactory(client_creator, True, _Given(client_protocol), clock=clock)
    server_factory = TLSMemoryBIOFactory(
        server_options or server_tls_options(), False, _Given(server_protocol), clock=clock
    )
    client, server, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        greet=False,
        clock=clock,
    )
    return client, server, pump


@implementer(IHandshakeListener)
class _Recorder(Protocol):
    def __init__(self) -> None:
        self.handshook = False
        self.received = b""
        self.lost: Optional[Failure] = None

    def handshakeCompleted(self) -> None:
        self.handshook = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason


# -- tests ---------------------------------------------------------------------


class ChecksumTests(SynchronousTestCase):
    def test_appends_newline(self) -> None:
        # sha256(b"abc\n"), what `sha256sum` prints for a file written by jq.
        expected = "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb"
        self.assertEqual(cacerts_checksum("abc"), expected)

    def test_keeps_existing_newline(self) -> None:
        self.assertEqual(cacerts_checksum("abc\n"), cacerts_checksum("abc"))

    def test_empty(self) -> None:
        self.assertEqual(cacerts_checksum(""), "")

    def test_cacerts_url_keeps_path(self) -> None:
        self.assertEqual(
            cacerts_url("https://r.example/rancher/"),
            "https://r.example/rancher/v3/settings/cacerts",
        )


class HandshakeTests(SynchronousTestCase):
    """
    Real TLS handshakes in memory.
    """

    def handshake(self, trust: RancherTrust, hostname: str = HOSTNAME) -> tuple[_Recorder, _Recorder, TLSMemoryBIOProtocol]:
        clock = Clock()
        client, server = _Recorder(), _Recorder()
        client_tls, server_tls, pump = tls_connected(
            trust.connection_creator(hostname), client, server, clock
        )
        client_tls.write(b"hello")
        pump.flush()
        return client, server, server_tls

    def test_trusted_with_the_right_ca(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        client, server, _ = self.handshake(trust)
        self.assertTrue(client.handshook)
        self.assertEqual(server.received, b"hello")

    def test_unknown_ca_rejected(self) -> None:
        client, server, _ = self.handshake(RancherTrust.system())
        self.assertFalse(client.handshook)
        self.assertEqual(server.received, b"")
        assert client.lost is not None
        self.assertTrue(client.lost.check(SSL.Error))
        kind, message = describe_failure(client.lost)
        self.assertEqual(kind, EndKind.TLS)
        self.assertIn("certificate verify failed", message)

    def test_other_ca_rejected(self) -> None:
        other = make_pki("another CA")["ca_pem"].decode()
        client, server, _ = self.handshake(RancherTrust.with_ca(other))
        self.assertFalse(client.handshook)
        self.assertEqual(server.received, b"")

    def test_hostname_mismatch_rejected(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        client, server, _ = self.handshake(trust, hostname="other.test")
        self.assertFalse(client.handshook)
        self.assertEqual(server.received, b"")
        assert client.lost is not None
        self.assertTrue(client.lost.check(VerificationError))
        self.assertEqual(describe_failure(client.lost)[0], EndKind.TLS)

    def test_ip_address_verified_against_ip_san(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        client, server, _ = self.handshake(trust, hostname="127.0.0.1")
        self.assertTrue(client.handshook)
        client, server, _ = self.handshake(trust, hostname="127.0.0.2")
        self.assertFalse(client.handshook)

    def test_insecure_accepts_anything_and_sends_sni(self) -> None:
        client, server, server_tls = self.handshake(RancherTrust.insecure())
        self.assertTrue(client.handshook)
        self.assertEqual(server.received, b"hello")
        self.assertEqual(server_tls.getHandle().get_servername(), HOSTNAME.encode())

    def test_one_context_per_host(self) -> None:
        """
        Thousands of tunnels share one creator and one SSL context.
        """
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        creator = trust.connection_creator(HOSTNAME)
        self.assertIs(trust.connection_creator(HOSTNAME), creator)
        clock = Clock()
        contexts = []
        for _ in range(2):
            client_tls, _, pump = tls_connected(creator, _Recorder(), _Recorder(), clock)
            pump.flush()
            contexts.append(client_tls.getHandle().get_context())
        self.assertIs(contexts[0], contexts[1])

    def test_https_policy_shares_creators(self) -> None:
        trust = RancherTrust.with_ca(make_pki()["ca_pem"].decode())
        policy = trust.https_policy()
        self.assertIs(policy.creatorForNetloc(HOSTNAME.encode(), 443), trust.connection_creator(HOSTNAME))

    def test_with_ca_requires_a_certificate(self) -> None:
        with self.assertRaises(TrustError):
            RancherTrust.with_ca("not a certificate")
        with self.assertRaises(TrustError):
            RancherTrust.with_ca("")

    def test_load_several_certificates(self) -> None:
        bundle = (make_pki()["ca_pem"] + make_pki("another CA")["ca_pem"]).decode()
        self.assertEqual(len(load_ca_certificates(bundle)), 2)

    def test_unverified_policy(self) -> None:
        creator = unverified_https_policy().creatorForNetloc(HOSTNAME.encode(), 443)
        clock = Clock()
        client, server = _Recorder(), _Recorder()
        _, _, pump = tls_connected(creator, client, server, clock)
        pump.flush()
        self.assertTrue(client.handshook)


class UnverifiedClientTests(SynchronousTestCase):
    def test_connects_to_the_server(self) -> None:
        reactor = MemoryReactorClock()
        client = unverified_http_client(reactor)
        client.get("https://rancher.test:8443/v3/settings/cacerts")
        # The memory reactor resolves every name to 127.0.0.1.
        [(host, port, factory, _, _)] = reactor.tcpClients
        self.assertEqual(port, 8443)


class _CACertsResource(Resource):
    isLeaf = True

    def __init__(self, value: Optional[str], code: int = 200) -> None:
        super().__init__()
        self.value = value
        self.code = code
        self.requests: list[bytes] = []

    def render_GET(self, request: Request) -> bytes:
        self.requests.append(request.path)
        request.setResponseCode(self.code)
        if self.code != 200:
            return b"nope"
        return json.dumps({"id": "cacerts", "type": "setting", "value": self.value}).encode()


class ResolveTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ca = make_pki()["ca_pem"].decode()
        self.resource = _CACertsResource(self.ca)
        self.http = StubTreq(self.resource)

    def resolve(self, *args: Any, **kwargs: Any) -> Deferred[RancherTrust]:
        d = Deferred.fromCoroutine(resolve_trust(self.http, *args, **kwargs))
        self.http.flush()
        return d

    def test_matching_checksum_adds_the_ca(self) -> None:
        trust = self.successResultOf(
            self.resolve("https://rancher.test/base", cacerts_checksum(self.ca).upper())
        )
        self.assertEqual(trust.mode, "system+ca")
        self.assertEqual(trust.ca_pem, self.ca)
        self.assertEqual(self.resource.requests, [b"/base/v3/settings/cacerts"])

    def test_mismatch_is_a_clear_error(self) -> None:
        wrong = "0" * 64
        failure = self.failureResultOf(self.resolve("https://rancher.test", wrong), ChecksumMismatch)
        message = str(failure.value)
        self.assertIn(wrong, message)
        self.assertIn(cacerts_checksum(self.ca), message)
        self.assertIn("https://rancher.test/v3/settings/cacerts", message)

    def test_no_checksum_means_system_roots_without_download(self) -> None:
        trust = self.successResultOf(self.resolve("https://rancher.test", ""))
        self.assertEqual(trust.mode, "system")
        self.assertEqual(self.resource.requests, [])

    def test_insecure_only_on_request(self) -> None:
        trust = self.successResultOf(self.resolve("https://rancher.test", "abc", insecure=True))
        self.assertEqual(trust.mode, "insecure")
        self.assertFalse(trust.verifies)
        self.assertEqual(self.resource.requests, [])

    def test_error_status(self) -> None:
        self.resource.code = 503
        failure = self.failureResultOf(self.resolve("https://rancher.test", "ab"), TrustError)
        self.assertIn("503", str(failure.value))

    def test_empty_value(self) -> None:
        self.resource.value = ""
        self.failureResultOf(self.resolve("https://rancher.test", "ab"), TrustError)

    def test_fetch_requires_string_value(self) -> None:
        self.resource.value = None
        d = Deferred.fromCoroutine(fetch_cacerts(self.http, "https://rancher.test"))
        self.http.flush()
        self.failureResultOf(d, TrustError)


class RegistryTests(SynchronousTestCase):
    def test_resolved_once_and_shared(self) -> None:
        ca = make_pki()["ca_pem"].decode()
        resource = _CACertsResource(ca)
        http = StubTreq(resource)
        registry = TrustRegistry(http)
        first = registry.trust_for("https://rancher.test/", cacerts_checksum(ca))
        second = registry.trust_for("https://rancher.test", cacerts_checksum(ca))
        http.flush()
        trust = self.successResultOf(first)
        self.assertIs(self.successResultOf(second), trust)
        self.assertIs(self.successResultOf(registry.trust_for("https://rancher.test", cacerts_checksum(ca))), trust)
        self.assertEqual(len(resource.requests), 1)

    def test_failures_are_not_remembered(self) -> None:
        ca = make_pki()["ca_pem"].decode()
        resource = _CACertsResource(ca, code=500)
        http = StubTreq(resource)
        registry = TrustRegistry(http)
        d = registry.trust_for("https://rancher.test", cacerts_checksum(ca))
        http.flush()
        self.failureResultOf(d, TrustError)
        resource.code = 200
        d = registry.trust_for("https://rancher.test", cacerts_checksum(ca))
        http.flush()
        self.assertEqual(self.successResultOf(d).mode, "system+ca")
        self.assertEqual(len(resource.requests), 2)

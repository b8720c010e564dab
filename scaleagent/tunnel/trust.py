# -*- test-case-name: tests.test_tunnel_trust -*-
"""
How the tunnels decide whether to trust Rancher's TLS certificate, as the
real agent does it.

The agent's container trusts the platform's root store; when the import
manifest carries C{CATTLE_CA_CHECKSUM}, its entrypoint first downloads
C{<server>/v3/settings/cacerts} I{without} verification, checks that the
SHA-256 of the value (plus a newline) equals the checksum, and adds that CA
to the store (agent-protocol §2.1, §2.3). L{resolve_trust} does the same and
returns a L{RancherTrust}; L{RancherTrust} hands out the TLS connection
creators for autobahn's endpoints and a policy for treq, with hostname
verification.

TLS contexts are expensive (the system store alone is megabytes) and
thousands of tunnels talk to the same server, so a L{RancherTrust} builds one
context per host name and every tunnel to that host shares it;
L{TrustRegistry} makes sure a process resolves each (server, checksum,
insecure) once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional
from urllib.parse import urlsplit

from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet._sslverify import IOpenSSLTrustRoot  # public via CertificateOptions(trustRoot=)
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

#: Where the agent's entrypoint reads the CA from (unauthenticated).
CACERTS_PATH = "/v3/settings/cacerts"


def cacerts_checksum(value: str) -> str:
    """
    The checksum Rancher puts into C{CATTLE_CA_CHECKSUM}.

    @param value: the C{cacerts} setting.
    @return: lowercase hex SHA-256 of C{value} followed by a newline unless
        it already ends with one; C{""} for an empty value.
    """
    if not value:
        return ""
    if not value.endswith("\n"):
        value += "\n"
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TrustError(Exception):
    """
    The CA Rancher publishes cannot be trusted; the message says why and is
    safe to show to a user.
    """


class ChecksumMismatch(TrustError):
    """
    The C{cacerts} setting does not match C{CATTLE_CA_CHECKSUM} (the real
    agent exits at this point).
    """


def load_ca_certificates(pem: str) -> list[X509]:
    """
    Parse the C{cacerts} value: one or more PEM certificates.

    @param pem: the PEM text.
    @return: the certificates, for an OpenSSL trust store.
    @raise TrustError: if it holds no parsable certificate (the agent's
        entrypoint runs C{openssl x509} on it and gives up).
    """
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError as e:
        raise TrustError(f"the cacerts setting is not a PEM certificate: {e}") from None
    return [X509.from_cryptography(certificate) for certificate in certificates]


def cacerts_url(server_url: str) -> str:
    """
    @param server_url: the Rancher server URL as the manifest gives it
        (C{CATTLE_SERVER}); a path in it is kept, as the entrypoint does.
    @return: the URL of the C{cacerts} setting.
    """
    return server_url.rstrip("/") + CACERTS_PATH


async def fetch_cacerts(http_client: Any, server_url: str) -> str:
    """
    Read the C{cacerts} setting, like the agent's entrypoint.

    @param http_client: a treq C{HTTPClient} (or the C{treq} module, or
        C{StubTreq}) that does B{not} verify certificates: the point of the
        download is to learn which CA to verify against.
    @param server_url: the Rancher server URL.
    @return: (a coroutine that returns) the setting's C{value}.
    @raise TrustError: on a non-200 answer or a body without a string
        C{value}.
    """
    url = cacerts_url(server_url)
    response = await http_client.get(url, headers={"Accept": ["application/json"]})
    body = await response.content()
    if response.code != 200:
        raise TrustError(f"GET {url} answered {response.code}")
    try:
        document = json.loads(body)
    except ValueError:
        raise TrustError(f"GET {url} did not answer JSON") from None
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, str):
        raise TrustError(f"GET {url} answered no string 'value'")
    return value


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    """
    TLS towards one host without verifying anything: the insecure option,
    and the download of C{cacerts} (C{curl --insecure} in the entrypoint).
    Still sends SNI, so that an ingress picks the right certificate.
    """

    def __init__(self, options: CertificateOptions, hostname: str) -> None:
        self._options = options
        self._server_name: Optional[bytes] = None
        if hostname and not _is_ip_address(hostname):
            self._server_name = hostname.encode("idna")

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._server_name is not None:
            connection.set_tlsext_host_name(self._server_name)
        return connection


def _is_ip_address(host: str) -> bool:
    return isIPAddress(host) or isIPv6Address(host)


@implementer(IOpenSSLTrustRoot)
class _SystemAndAuthorities:
    """
    The platform's roots plus the C{cacerts} CA, like the agent's container
    with the CA written into C{SSL_CERT_DIR}.

    Twisted only offers "the platform" or "exactly these", so this combines
    two of its own trust roots; it implements Twisted's (privately named)
    C{IOpenSSLTrustRoot} method by delegating to them.
    """

    def __init__(self, *roots: Any) -> None:
        self._roots = roots

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        for root in self._roots:
            root._addCACertsToContext(context)


class RancherTrust:
    """
    A decision about Rancher's certificate, and the TLS objects built from it.

    Make one with L{system}, L{with_ca} or L{insecure} (or through
    L{resolve_trust}) and share it: every call of L{connection_creator} for
    the same host returns the same creator, which holds the one SSL context
    all tunnels to that host use.

    @ivar mode: C{"system"}, C{"system+ca"} or C{"insecure"}.
    @ivar ca_pem: the extra CA in PEM for C{"system+ca"}, else C{None}.
    """

    def __init__(self, mode: str, ca_pem: Optional[str] = None) -> None:
        if mode not in ("system", "system+ca", "insecure"):
            raise ValueError(f"unknown trust mode {mode!r}")
        self.mode = mode
        self.ca_pem = ca_pem
        self._trust_root: Any = None
        if mode == "system":
            self._trust_root = platformTrust()
        elif mode == "system+ca":
            if not ca_pem:
                raise TrustError("no CA certificate given")
            authorities = [Certificate(certificate) for certificate in load_ca_certificates(ca_pem)]
            self._trust_root = _SystemAndAuthorities(
                platformTrust(), trustRootFromCertificates(authorities)
            )
        self._unverified_options: Optional[CertificateOptions] = None
        self._creators: dict[str, IOpenSSLClientConnectionCreator] = {}

    @classmethod
    def system(cls) -> "RancherTrust":
        """Trust the platform's root store only (no checksum given)."""
        return cls("system")

    @classmethod
    def with_ca(cls, ca_pem: str) -> "RancherTrust":
        """
        Trust the platform's roots and the given CA (the verified
        C{cacerts} setting).

        @raise TrustError: if C{ca_pem} holds no certificate.
        """
        return cls("system+ca", ca_pem)

    @classmethod
    def insecure(cls) -> "RancherTrust":
        """Verify nothing. Only on explicit request."""
        return cls("insecure")

    @property
    def verifies(self) -> bool:
        return self.mode != "insecure"

    def connection_creator(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """
        The TLS connection creator for connections to C{hostname}, shared by
        every caller.

        @param hostname: the host part of the server URL (DNS name or IP
            address, without brackets); the certificate must match it.
        @return: an C{IOpenSSLClientConnectionCreator}.
        """
        creator = self._creators.get(hostname)
        if creator is None:
            if self._trust_root is None:
                if self._unverified_options is None:
                    self._unverified_options = CertificateOptions(verify=False)
                creator = _UnverifiedCreator(self._unverified_options, hostname)
            else:
                # optionsForClientTLS builds one CertificateOptions, whose
                # context is created once and reused for every connection.
                creator = optionsForClientTLS(hostname, trustRoot=self._trust_root)
            self._creators[hostname] = creator
        return creator

    def https_policy(self) -> IPolicyForHTTPS:
        """
        @return: a policy for C{twisted.web.client.Agent} (and so treq)
            that applies this trust, sharing this object's contexts.
        """
        return _TrustPolicy(self)

    def __repr__(self) -> str:
        return f"RancherTrust({self.mode})"


@implementer(IPolicyForHTTPS)
class _TrustPolicy:
    def __init__(self, trust: RancherTrust) -> None:
        self._trust = trust

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return self._trust.connection_creator(hostname.decode("idna"))


def unverified_https_policy() -> IPolicyForHTTPS:
    """
    @return: a policy for an HTTP agent that verifies nothing, for reading
        C{cacerts} before it is known (the entrypoint uses C{curl --insecure}).
    """
    return _TrustPolicy(RancherTrust.insecure())


def unverified_http_client(reactor: Any) -> HTTPClient:
    """
    @param reactor: the reactor.
    @return: a treq client for L{fetch_cacerts} / L{TrustRegistry} that does
        not verify certificates and keeps no connections open.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    return HTTPClient(Agent(reactor, contextFactory=unverified_https_policy(), pool=pool))


async def resolve_trust(
    http_client: Any,
    server_url: str,
    checksum: str = "",
    insecure: bool = False,
) -> RancherTrust:
    """
    Decide how to trust Rancher, as the agent does.

    @param http_client: a non-verifying treq client, used only when a
        checksum is given (see L{fetch_cacerts}).
    @param server_url: the Rancher server URL.
    @param checksum: C{CATTLE_CA_CHECKSUM} from the import manifest; empty
        means "trust the platform's roots".
    @param insecure: skip all verification (explicit opt-in).
    @return: (a coroutine that returns) the L{RancherTrust}.
    @raise ChecksumMismatch: if the published CA does not match.
    @raise TrustError: if it cannot be read or parsed.
    """
    if insecure:
        return RancherTrust.insecure()
    checksum = checksum.strip().lower()
    if not checksum:
        return RancherTrust.system()
    value = await fetch_cacerts(http_client, server_url)
    if not value:
        raise TrustError(f"{cacerts_url(server_url)} is empty but a CA checksum was given")
    actual = cacerts_checksum(value)
    if actual != checksum:
        raise ChecksumMismatch(
            f"the CA published at {cacerts_url(server_url)} has checksum {actual}, "
            f"not the expected {checksum}"
        )
    return RancherTrust.with_ca(value)


class TrustRegistry:
    """
    One L{RancherTrust} per (server, checksum, insecure) for the process, so
    that thousands of clusters of one server share one download and one
    context. Failures are not remembered: the next caller tries again.

    @param http_client: a non-verifying treq client for L{fetch_cacerts}.
    """

    def __init__(self, http_client: Any) -> None:
        self._http_client = http_client
        self._resolved: dict[tuple[str, str, bool], RancherTrust] = {}
        self._pending: dict[tuple[str, str, bool], list[Deferred[RancherTrust]]] = {}

    def trust_for(
        self, server_url: str, checksum: str = "", insecure: bool = False
    ) -> Deferred[RancherTrust]:
        """
        @return: a Deferred that fires with the shared L{RancherTrust}, or
            fails as L{resolve_trust} does.
        """
        parts = urlsplit(server_url)
        key = (f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", checksum.strip().lower(), insecure)
        known = self._resolved.get(key)
        if known is not None:
            return succeed(known)
        waiting: Deferred[RancherTrust] = Deferred()
        if key in self._pending:
            self._pending[key].append(waiting)
            return waiting
        self._pending[key] = [waiting]
        resolving = Deferred.fromCoroutine(
            resolve_trust(self._http_client, server_url, checksum, insecure)
        )

        def done(result: Any) -> None:
            waiters = self._pending.pop(key)
            if isinstance(result, RancherTrust):
                self._resolved[key] = result
            for waiter in waiters:
                waiter.callback(result)

        resolving.addBoth(done)
        return waiting

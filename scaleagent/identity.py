# -*- test-case-name: tests.test_identity -*-
"""
The cryptographic identity of one simulated cluster: its CA, the API serving
certificate, the service-account signing key, and the tokens signed with it.

A real cluster agent announces, in its tunnel params, the API address
(C{KUBERNETES_SERVICE_HOST:PORT}), the CA from the C{kube-root-ca.crt}
ConfigMap and the token of the C{cattle-system/cattle} ServiceAccount.
Rancher then opens TLS through the tunnel to that address, verifies the
serving certificate against that CA (Go C{crypto/tls}; for an IP address it
sends no SNI and checks an IP SAN) and authenticates with that token. Any
change in those params makes Rancher rewrite its token Secret and restart
every controller for the cluster, so everything here is generated once,
persisted through L{ClusterIdentity.to_dict}, and restored byte for byte.

What is generated mirrors k3s (and its C{dynamiclistener}): ECDSA P-256
keys, a self-signed C{k3s-server-ca@<unix time>} CA valid ten years, a
serving certificate C{CN=k3s, O=k3s} with the usual in-cluster SANs, and a
P-256 service-account key, so tokens are ES256 JWTs laid out as
kube-apiserver lays them out.

Memory matters: ten thousand identities live in one process. An identity
holds only PEM bytes until something needs a parsed key; the TLS context is
built on the first stream and then kept.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Optional, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from scaleagent.tunnel.params import TunnelParams

#: The C{iss} of the tokens the token controller writes into
#: C{kubernetes.io/service-account-token} Secrets.
LEGACY_ISSUER = "kubernetes/serviceaccount"

#: The C{iss} of TokenRequest tokens; k3s passes this as
#: C{--service-account-issuer}.
BOUND_ISSUER = "https://kubernetes.default.svc.cluster.local"

#: k3s's C{--api-audiences}: what a TokenRequest without audiences gets,
#: and what a bound token must name to authenticate against the API.
API_AUDIENCES: tuple[str, ...] = ("https://kubernetes.default.svc.cluster.local", "k3s")

#: The ServiceAccount whose token the agent announces in the tunnel params.
CATTLE_NAMESPACE = "cattle-system"
CATTLE_SERVICE_ACCOUNT = "cattle"

#: k3s's CA lifetime (C{dynamiclistener}'s C{NewSelfSignedCACert}).
CA_VALIDITY = timedelta(days=365 * 10)

#: How long the serving certificate is valid. k3s issues it for one year
#: and renews it in place; a renewal here would change nothing Rancher
#: checks, but a scale test left running for more than a year must not
#: start failing TLS, so the certificate simply lives as long as its CA.
SERVING_VALIDITY = CA_VALIDITY

#: How far before its creation a CA's validity starts.
CLOCK_SKEW_ALLOWANCE = timedelta(hours=1)

#: The DNS SANs every k3s API serving certificate carries.
SERVING_DNS_NAMES: tuple[str, ...] = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)

#: The IP SANs besides the announced address.
SERVING_IP_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "::1")

#: go-jose's C{DefaultLeeway}, which kube-apiserver applies to C{exp},
#: C{nbf} and C{iat}.
TOKEN_LEEWAY_SECONDS = 60

#: Tokens longer than this are not even parsed; real ones are about 1 KiB.
MAXIMUM_TOKEN_LENGTH = 16 * 1024

#: The alphabet of Kubernetes' C{generateName} suffixes
#: (C{k8s.io/apimachinery/pkg/util/rand}).
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_NAME_LENGTH = 5

#: TLS 1.2 suites for an ECDSA certificate, as Go's server prefers them;
#: TLS 1.3 suites are OpenSSL's defaults, which match Go's.
_TLS12_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305"
)

#: How many verified tokens each identity remembers. Rancher authenticates
#: almost every request with the one announced token; impersonation adds a
#: token per Rancher user who browses the cluster. A small bound keeps ten
#: thousand identities cheap while the steady state always hits.
_VERIFIED_TOKEN_CACHE_SIZE = 8

_BASE64URL = re.compile(r"\A[A-Za-z0-9_-]+\Z")

_FORMAT_VERSION = 1


class IdentityError(ValueError):
    """
    A persisted identity that cannot be used, or an unusable argument.
    """


def split_host_port(address: str) -> tuple[str, int]:
    """
    Split an API address as the agent announces it, C{host:port}.

    IPv6 hosts must be bracketed (C{[fd00::1]:443}); a bare IPv6 address is
    ambiguous and rejected.

    @param address: e.g. C{10.43.0.1:443} or C{kubernetes.example:6443}.
    @return: the host (without brackets) and the port.
    @raise ValueError: if C{address} is not C{host:port} with a valid host
        and a port between 1 and 65535.
    """
    if address.startswith("["):
        closing = address.find("]")
        if closing < 0 or address[closing + 1 : closing + 2] != ":":
            raise ValueError(f"not host:port: {address!r}")
        host, port_text = address[1:closing], address[closing + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address in brackets: {address!r}") from None
    else:
        host, separator, port_text = address.rpartition(":")
        if not separator or not host:
            raise ValueError(f"not host:port: {address!r}")
        if ":" in host:
            raise ValueError(f"an IPv6 host must be in brackets: {address!r}")
        if not _is_ip_address(host) and not _is_dns_name(host):
            raise ValueError(f"not an IP address or DNS name: {host!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"not a port number: {port_text!r}")
    return host, int(port_text)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_DNS_LABEL = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z", re.IGNORECASE)


def _is_dns_name(text: str) -> bool:
    return len(text) <= 253 and all(_DNS_LABEL.match(label) for label in text.split("."))


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unbase64url(segment: str) -> bytes:
    if not _BASE64URL.match(segment):
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _go_json(value: Any) -> bytes:
    """
    Serialise like Go's C{encoding/json} does for a map: keys sorted, no
    spaces, UTF-8, and C{<}, C{>}, C{&}, U+2028 and U+2029 escaped.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for character, escaped in _GO_JSON_ESCAPES:
        text = text.replace(character, escaped)
    return text.encode("utf-8")


_GO_JSON_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _epoch_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise IdentityError("timestamps must be timezone-aware")
    # go-jose's NumericDate truncates to whole seconds.
    return int(moment.timestamp())


def _generate_name_suffix() -> str:
    return "".join(
        secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(_GENERATE_NAME_LENGTH)
    )


def _key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """
    The C{kid} kube-apiserver puts in token headers: unpadded base64url of
    the SHA-256 of the DER SubjectPublicKeyInfo.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _base64url(hashlib.sha256(der).digest())


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # SEC1 ("EC PRIVATE KEY"), the form k3s writes its keys in.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise IdentityError("expected an ECDSA P-256 private key")
    return key


@dataclass(frozen=True)
class CattleAccount:
    """
    The C{cattle-system/cattle} ServiceAccount whose legacy token the tunnel
    params announce, and the token Secret that holds it.

    The simulated cluster must serve a ServiceAccount with this uid and a
    C{kubernetes.io/service-account-token} Secret with this name and token,
    or the token would not authenticate (a legacy token is only valid while
    its Secret exists).

    @ivar namespace: C{cattle-system}.
    @ivar service_account: C{cattle}.
    @ivar service_account_uid: the ServiceAccount's C{metadata.uid}.
    @ivar secret_name: C{cattle-token-xxxxx}.
    @ivar token: the JWT in the Secret's C{data.token}.
    """

    namespace: str
    service_account: str
    service_account_uid: str
    secret_name: str
    token: str = ""

    def __repr__(self) -> str:
        # The token is a credential: keep it out of reprs and therefore logs.
        return (
            f"CattleAccount(namespace={self.namespace!r}, "
            f"service_account={self.service_account!r}, "
            f"service_account_uid={self.service_account_uid!r}, "
            f"secret_name={self.secret_name!r})"
        )


@dataclass(frozen=True)
class BoundObject:
    """
    The object a TokenRequest token is bound to; the token stops being
    valid when that object is gone.

    @ivar kind: C{Pod}, C{Secret} or C{Node}.
    @ivar name: its name.
    @ivar uid: its C{metadata.uid}.
    """

    kind: str
    name: str
    uid: str

    def __post_init__(self) -> None:
        if self.kind not in _BOUND_OBJECT_CLAIMS:
            raise IdentityError(f"tokens cannot be bound to a {self.kind}")


_BOUND_OBJECT_CLAIMS = {"Pod": "pod", "Secret": "secret", "Node": "node"}


@dataclass(frozen=True, slots=True)
class Claims:
    """
    What a verified service-account token says.

    The signature, issuer, audience and validity period have been checked;
    that the ServiceAccount (by name and uid) and the legacy token's Secret
    or the bound object still exist is for the API layer to check, as
    kube-apiserver's validators do.

    @ivar issuer: L{LEGACY_ISSUER} or L{BOUND_ISSUER}.
    @ivar subject: C{system:serviceaccount:<namespace>:<name>}.
    @ivar namespace: the ServiceAccount's namespace.
    @ivar service_account_name: its name.
    @ivar service_account_uid: its uid when the token was minted.
    @ivar secret_name: for a legacy token, the Secret holding it.
    @ivar bound_object: for a bound token, what it is bound to, if anything.
    @ivar audiences: the C{aud} claim; empty for legacy tokens.
    @ivar issued_at: C{iat}, seconds since the epoch.
    @ivar not_before: C{nbf}.
    @ivar expires_at: C{exp}; L{None} for legacy tokens.
    @ivar token_id: C{jti}.
    """

    issuer: str
    subject: str
    namespace: str
    service_account_name: str
    service_account_uid: str
    secret_name: Optional[str] = None
    bound_object: Optional[BoundObject] = None
    audiences: tuple[str, ...] = ()
    issued_at: Optional[int] = None
    not_before: Optional[int] = None
    expires_at: Optional[int] = None
    token_id: Optional[str] = None

    @property
    def legacy(self) -> bool:
        return self.issuer == LEGACY_ISSUER

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account_name}"

    @property
    def groups(self) -> tuple[str, ...]:
        """
        The ServiceAccount groups; the authenticator adds
        C{system:authenticated} on top, as kube-apiserver's does.
        """
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}")

    @property
    def extra(self) -> dict[str, tuple[str, ...]]:
        """
        The user extras kube-apiserver derives from a bound token.
        """
        extra: dict[str, tuple[str, ...]] = {}
        if self.bound_object is not None and self.bound_object.kind == "Pod":
            extra["authentication.kubernetes.io/pod-name"] = (self.bound_object.name,)
            extra["authentication.kubernetes.io/pod-uid"] = (self.bound_object.uid,)
        if self.bound_object is not None and self.bound_object.kind == "Node":
            extra["authentication.kubernetes.io/node-name"] = (self.bound_object.name,)
            extra["authentication.kubernetes.io/node-uid"] = (self.bound_object.uid,)
        if self.token_id is not None:
            extra["authentication.kubernetes.io/credential-id"] = (f"JTI={self.token_id}",)
        return extra

    def valid_at(self, now_seconds: float) -> bool:
        """
        Whether C{exp}, C{nbf} and C{iat} admit C{now_seconds}, with
        go-jose's leeway.
        """
        if self.expires_at is not None and now_seconds - TOKEN_LEEWAY_SECONDS > self.expires_at:
            return False
        if self.not_before is not None and now_seconds + TOKEN_LEEWAY_SECONDS < self.not_before:
            return False
        if self.issued_at is not None and now_seconds + TOKEN_LEEWAY_SECONDS < self.issued_at:
            return False
        return True


def _select_http11(connection: SSL.Connection, offered: list[bytes]) -> bytes:
    # Rancher offers only http/1.1. A client that offers ALPN without it is
    # refused, as Go's server refuses a client with no protocol in common.
    if b"http/1.1" in offered:
        return b"http/1.1"
    return b""


@implementer(IOpenSSLServerConnectionCreator)
class ServingContext:
    """
    The server side of a cluster's TLS streams, for
    L{twisted.protocols.tls.TLSMemoryBIOFactory}C{(serving_context, False,
    site, clock=clock)}.

    @ivar context: the configured L{SSL.Context}; configuration is finished,
        so it must not be changed.
    """

    __slots__ = ("context",)

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """
        A fresh server connection; L{TLSMemoryBIOFactory} puts it in accept
        state and attaches the protocol.
        """
        return SSL.Connection(self.context, None)


def build_server_context(
    certificate_chain: Sequence[x509.Certificate],
    private_key: ec.EllipticCurvePrivateKey,
    maximum_tls_version: Optional[int] = None,
) -> SSL.Context:
    """
    Configure a server L{SSL.Context} the way Rancher's client expects a
    kube-apiserver to answer.

    @param certificate_chain: the serving certificate, then its issuers.
    @param private_key: the serving certificate's key.
    @param maximum_tls_version: e.g. C{SSL.TLS1_2_VERSION} to trade TLS 1.3
        (what a real API server negotiates) for less memory per idle stream;
        L{None} allows TLS 1.3.
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    if maximum_tls_version is not None:
        context.set_max_proto_version(maximum_tls_version)
    context.set_options(
        SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE
    )
    # Thousands of TLS streams sit idle inside the tunnels; releasing the
    # read and write buffers between records is what keeps them cheap.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    # client-go keeps no session cache, so resumption never happens; a
    # server-side cache would only accumulate sessions per context.
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_cipher_list(_TLS12_CIPHERS)
    leaf, *issuers = certificate_chain
    context.use_certificate(leaf)
    context.use_privatekey(private_key)
    for issuer in issuers:
        context.add_extra_chain_cert(issuer)
    context.check_privatekey()
    context.set_alpn_select_callback(_select_http11)
    return context


class ClusterIdentity:
    """
    One simulated cluster's CA, API serving certificate, service-account
    key and announced token.

    Build one with L{generate}, persist it with L{to_dict} and restore it
    with L{from_dict}; a restored identity announces byte-identical tunnel
    params.

    @ivar address: the API address the agent announces, C{host:port}.
    @ivar cluster_name: the simulated cluster it belongs to (for logs).
    @ivar cattle_account: the announced ServiceAccount token and its Secret.
    """

    __slots__ = (
        "address",
        "cluster_name",
        "cattle_account",
        "_ca_certificate_pem",
        "_ca_key_pem",
        "_serving_certificate_pem",
        "_serving_key_pem",
        "_service_account_key_pem",
        "_verifying_key",
        "_token_header",
        "_serving_context",
        "_serving_context_maximum",
        "_verified_tokens",
    )

    _log = Logger()

    def __init__(
        self,
        address: str,
        cluster_name: str,
        ca_certificate_pem: bytes,
        ca_key_pem: bytes,
        serving_certificate_pem: bytes,
        serving_key_pem: bytes,
        service_account_key_pem: bytes,
        cattle_account: Optional[CattleAccount] = None,
    ) -> None:
        """
        Use L{generate} or L{from_dict}; this only stores what it is given.
        """
        self.address = address
        self.cluster_name = cluster_name
        self.cattle_account = cattle_account
        self._ca_certificate_pem = ca_certificate_pem
        self._ca_key_pem = ca_key_pem
        self._serving_certificate_pem = serving_certificate_pem
        self._serving_key_pem = serving_key_pem
        self._service_account_key_pem = service_account_key_pem
        self._verifying_key: Optional[ec.EllipticCurvePublicKey] = None
        self._token_header: Optional[str] = None
        self._serving_context: Optional[ServingContext] = None
        self._serving_context_maximum: Optional[int] = None
        self._verified_tokens: dict[bytes, Claims] = {}

    def __repr__(self) -> str:
        return f"<ClusterIdentity {self.cluster_name!r} {self.address}>"

    # Construction and persistence

    @classmethod
    def generate(cls, address: str, cluster_name: str, now: datetime) -> ClusterIdentity:
        """
        Make a new identity as a fresh k3s server would, including the
        announced C{cattle} ServiceAccount token.

        @param address: the API address to announce, e.g. C{10.43.0.1:443}.
        @param cluster_name: the simulated cluster's name.
        @param now: the creation time (timezone-aware); the CA is named
            after it, as k3s names its CA.
        @raise ValueError: if C{address} is not a valid C{host:port}.
        """
        split_host_port(address)
        created = _epoch_seconds(now)
        # k3s starts validity at creation. A simulated cluster is dialled
        # seconds after it is made, possibly by a Rancher whose clock runs
        # a little behind this host's, so validity starts earlier.
        not_before = datetime.fromtimestamp(created, timezone.utc) - CLOCK_SKEW_ALLOWANCE
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"k3s-server-ca@{created}")]
        )
        ca_certificate = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            # k3s uses serial 0, which RFC 5280 forbids and cryptography
            # refuses; nothing checks CA serials, so a random one it is.
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + CLOCK_SKEW_ALLOWANCE + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving_certificate = _issue_serving_certificate(
            address, serving_key.public_key(), ca_certificate, ca_key
        )
        identity = cls(
            address=address,
            cluster_name=cluster_name,
            ca_certificate_pem=ca_certificate.public_bytes(serialization.Encoding.PEM),
            ca_key_pem=_private_key_pem(ca_key),
            serving_certificate_pem=serving_certificate.public_bytes(serialization.Encoding.PEM),
            serving_key_pem=_private_key_pem(serving_key),
            service_account_key_pem=_private_key_pem(ec.generate_private_key(ec.SECP256R1())),
        )
        identity.ensure_cattle_account()
        return identity

    def with_address(self, address: str, now: datetime) -> ClusterIdentity:
        """
        The same cluster announcing another API address: same CA, keys and
        tokens, and a serving certificate reissued for the new address.

        Changing the address changes the tunnel params, so Rancher restarts
        its controllers for the cluster once; use it only when the operator
        really changed the address.
        """
        split_host_port(address)
        ca_certificate = x509.load_pem_x509_certificate(self._ca_certificate_pem)
        ca_key = _load_private_key(self._ca_key_pem)
        serving_key = _load_private_key(self._serving_key_pem)
        certificate = _issue_serving_certificate(
            address, serving_key.public_key(), ca_certificate, ca_key, now=now
        )
        return type(self)(
            address=address,
            cluster_name=self.cluster_name,
            ca_certificate_pem=self._ca_certificate_pem,
            ca_key_pem=self._ca_key_pem,
            serving_certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            serving_key_pem=self._serving_key_pem,
            service_account_key_pem=self._service_account_key_pem,
            cattle_account=self.cattle_account,
        )

    def to_dict(self) -> dict[str, Any]:
        """
        Everything needed to restore this identity, JSON-serialisable (PEM
        as text). It contains private keys and a token: store it with
        owner-only permissions.
        """
        result: dict[str, Any] = {
            "format": _FORMAT_VERSION,
            "address": self.address,
            "clusterName": self.cluster_name,
            "caCertificate": self._ca_certificate_pem.decode("ascii"),
            "caKey": self._ca_key_pem.decode("ascii"),
            "servingCertificate": self._serving_certificate_pem.decode("ascii"),
            "servingKey": self._serving_key_pem.decode("ascii"),
            "serviceAccountKey": self._service_account_key_pem.decode("ascii"),
        }
        if self.cattle_account is not None:
            account = self.cattle_account
            result["cattleAccount"] = {
                "namespace": account.namespace,
                "serviceAccount": account.service_account,
                "serviceAccountUID": account.service_account_uid,
                "secretName": account.secret_name,
                "token": account.token,
            }
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterIdentity:
        """
        Restore an identity saved by L{to_dict}.

        Only the structure is checked here; keys and certificates are parsed
        when first used, so loading ten thousand identities stays fast.
        Call L{validate} to parse everything at once.

        @raise IdentityError: naming the missing or malformed field.
        """
        if not isinstance(data, Mapping):
            raise IdentityError("identity: expected a mapping")
        if data.get("format") != _FORMAT_VERSION:
            raise IdentityError(f"identity: unsupported format {data.get('format')!r}")

        def text(mapping: Mapping[str, Any], key: str, where: str = "identity") -> str:
            value = mapping.get(key)
            if not isinstance(value, str) or not value:
                raise IdentityError(f"{where}: {key}: missing or not a string")
            return value

        def pem(key: str, kind: str) -> bytes:
            value = text(data, key)
            if not value.startswith(f"-----BEGIN {kind}-----"):
                raise IdentityError(f"identity: {key}: not a PEM {kind.lower()}")
            return value.encode("ascii")

        address = text(data, "address")
        try:
            split_host_port(address)
        except ValueError as error:
            raise IdentityError(f"identity: address: {error}") from None
        cattle_account = None
        if "cattleAccount" in data:
            account = data["cattleAccount"]
            if not isinstance(account, Mapping):
                raise IdentityError("identity: cattleAccount: expected a mapping")
            where = "identity: cattleAccount"
            cattle_account = CattleAccount(
                namespace=text(account, "namespace", where),
                service_account=text(account, "serviceAccount", where),
                service_account_uid=text(account, "serviceAccountUID", where),
                secret_name=text(account, "secretName", where),
                token=text(account, "token", where),
            )
        return cls(
            address=address,
            cluster_name=text(data, "clusterName"),
            ca_certificate_pem=pem("caCertificate", "CERTIFICATE"),
            ca_key_pem=pem("caKey", "EC PRIVATE KEY"),
            serving_certificate_pem=pem("servingCertificate", "CERTIFICATE"),
            serving_key_pem=pem("servingKey", "EC PRIVATE KEY"),
            service_account_key_pem=pem("serviceAccountKey", "EC PRIVATE KEY"),
            cattle_account=cattle_account,
        )

    def validate(self) -> None:
        """
        Parse every key and certificate and check that they belong together.

        @raise IdentityError: if anything is unusable.
        """
        try:
            ca_certificate = x509.load_pem_x509_certificate(self._ca_certificate_pem)
            serving_certificate = x509.load_pem_x509_certificate(self._serving_certificate_pem)
            ca_key = _load_private_key(self._ca_key_pem)
            serving_key = _load_private_key(self._serving_key_pem)
            _load_private_key(self._service_account_key_pem)
        except (ValueError, TypeError) as error:
            raise IdentityError(f"identity: {error}") from None
        if ca_certificate.public_key() != ca_key.public_key():
            raise IdentityError("identity: the CA key does not match the CA certificate")
        if serving_certificate.public_key() != serving_key.public_key():
            raise IdentityError("identity: the serving key does not match its certificate")
        try:
            serving_certificate.verify_directly_issued_by(ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise IdentityError(
                "identity: the serving certificate is not issued by the CA"
            ) from None

    # What the tunnel announces

    @property
    def ca_pem(self) -> bytes:
        """
        The CA certificate, PEM: the C{kube-root-ca.crt} ConfigMap's
        C{ca.crt} and the C{ca.crt} of token Secrets.
        """
        return self._ca_certificate_pem

    @property
    def ca_cert_b64(self) -> str:
        """
        The params' C{caCert}: standard base64, padded, of L{ca_pem}.
        """
        return base64.b64encode(self._ca_certificate_pem).decode("ascii")

    @property
    def serving_certificate_pem(self) -> bytes:
        return self._serving_certificate_pem

    def tunnel_params(self) -> TunnelParams:
        """
        What the main tunnel announces for this cluster: the address, the
        CA and the C{cattle} token, as the agent builds them.

        @raise IdentityError: if the identity has no announced token yet.
        """
        if self.cattle_account is None:
            raise IdentityError("identity has no cattle account; call ensure_cattle_account")
        # The agent trims the token it reads from the Secret.
        return TunnelParams(
            address=self.address,
            token=self.cattle_account.token.strip(),
            ca_cert_b64=self.ca_cert_b64,
        )

    def ensure_cattle_account(self) -> CattleAccount:
        """
        Create, once, the C{cattle-system/cattle} ServiceAccount identity
        and its legacy token that the tunnel params announce; afterwards
        return the stored one unchanged.
        """
        if self.cattle_account is None:
            service_account_uid = str(uuid.uuid4())
            secret_name = f"cattle-token-{_generate_name_suffix()}"
            token = self.mint_legacy_token(
                CATTLE_NAMESPACE, CATTLE_SERVICE_ACCOUNT, service_account_uid, secret_name
            )
            self.cattle_account = CattleAccount(
                namespace=CATTLE_NAMESPACE,
                service_account=CATTLE_SERVICE_ACCOUNT,
                service_account_uid=service_account_uid,
                secret_name=secret_name,
                token=token,
            )
        return self.cattle_account

    # TLS

    def server_context(self, maximum_tls_version: Optional[int] = None) -> ServingContext:
        """
        The server-side TLS configuration for this cluster's API streams:
        TLS 1.2 or later, ALPN C{http/1.1} only, released idle buffers, and
        the chain k3s serves (serving certificate, then CA).

        Built on first use and kept; about 27 KB per cluster (measured with
        OpenSSL 4.0, chain and key included).

        @param maximum_tls_version: see L{build_server_context}.
        """
        if (
            self._serving_context is None
            or self._serving_context_maximum != maximum_tls_version
        ):
            certificates = [
                x509.load_pem_x509_certificate(self._serving_certificate_pem),
                x509.load_pem_x509_certificate(self._ca_certificate_pem),
            ]
            context = build_server_context(
                certificates, _load_private_key(self._serving_key_pem), maximum_tls_version
            )
            self._serving_context = ServingContext(context)
            self._log.debug(
                "built the TLS context of cluster {cluster}", cluster=self.cluster_name
            )
            self._serving_context_maximum = maximum_tls_version
        return self._serving_context

    # Tokens

    def json_web_key_set(self) -> dict[str, list[dict[str, str]]]:
        """
        The document kube-apiserver serves at C{/openid/v1/jwks}: the public
        half of the service-account key, for relying parties that verify
        this cluster's tokens themselves.
        """
        numbers = self._public_key().public_numbers()
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "EC",
                    "kid": self.key_id,
                    "crv": "P-256",
                    "alg": "ES256",
                    "x": _base64url(numbers.x.to_bytes(32, "big")),
                    "y": _base64url(numbers.y.to_bytes(32, "big")),
                }
            ]
        }

    @property
    def key_id(self) -> str:
        """
        The C{kid} of this cluster's service-account key.
        """
        return _key_id(self._public_key())

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        # Not kept: a parsed key costs about 2 KB, ten thousand clusters
        # mint rarely, and parsing takes some 25 microseconds.
        return _load_private_key(self._service_account_key_pem)

    def _public_key(self) -> ec.EllipticCurvePublicKey:
        # Kept: every request's token is checked against it.
        if self._verifying_key is None:
            self._verifying_key = self._private_key().public_key()
        return self._verifying_key

    def _sign(self, claims: Mapping[str, Any]) -> str:
        private_key = self._private_key()
        if self._token_header is None:
            key_id = _key_id(private_key.public_key())
            self._token_header = _base64url(_go_json({"alg": "ES256", "kid": key_id}))
        signing_input = f"{self._token_header}.{_base64url(_go_json(claims))}"
        signature = private_key.sign(
            signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())
        )
        r, s = decode_dss_signature(signature)
        # JWS wants the raw 32-byte r and s, not the DER sequence.
        return f"{signing_input}.{_base64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def mint_legacy_token(
        self,
        namespace: str,
        service_account: str,
        service_account_uid: str,
        secret_name: str,
    ) -> str:
        """
        The token kube-controller-manager's token controller writes into a
        C{kubernetes.io/service-account-token} Secret. It never expires; it
        is valid while the Secret and the ServiceAccount exist.
        """
        return self._sign(
            {
                "iss": LEGACY_ISSUER,
                "kubernetes.io/serviceaccount/namespace": namespace,
                "kubernetes.io/serviceaccount/secret.name": secret_name,
                "kubernetes.io/serviceaccount/service-account.name": service_account,
                "kubernetes.io/serviceaccount/service-account.uid": service_account_uid,
                "sub": f"system:serviceaccount:{namespace}:{service_account}",
            }
        )

    def mint_bound_token(
        self,
        namespace: str,
        service_account: str,
        service_account_uid: str,
        audiences: Iterable[str],
        expiration_seconds: int,
        bound_object: Optional[BoundObject] = None,
        *,
        now: datetime,
    ) -> tuple[str, datetime]:
        """
        The token a TokenRequest (C{POST .../serviceaccounts/<name>/token})
        returns.

        Checking C{spec} (at least 600 seconds, audiences defaulting to
        L{API_AUDIENCES}) is the API layer's job, as it is
        kube-apiserver's REST storage's.

        @param audiences: the C{aud} claim.
        @param expiration_seconds: lifetime from C{now}.
        @param bound_object: the Pod, Secret or Node the token is bound to.
        @param now: the issue time (timezone-aware).
        @return: the token and its expiry, for C{status.expirationTimestamp}.
        """
        if expiration_seconds <= 0:
            raise IdentityError("expiration_seconds must be positive")
        issued = _epoch_seconds(now)
        expiry = issued + int(expiration_seconds)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": service_account_uid},
        }
        if bound_object is not None:
            private[_BOUND_OBJECT_CLAIMS[bound_object.kind]] = {
                "name": bound_object.name,
                "uid": bound_object.uid,
            }
        token = self._sign(
            {
                "aud": list(audiences),
                "exp": expiry,
                "iat": issued,
                "iss": BOUND_ISSUER,
                # kube-apiserver adds jti from 1.29 (ServiceAccountTokenJTI);
                # older templates get it too, which no client can tell.
                "jti": str(uuid.uuid4()),
                "kubernetes.io": private,
                "nbf": issued,
                "sub": f"system:serviceaccount:{namespace}:{service_account}",
            }
        )
        return token, datetime.fromtimestamp(expiry, timezone.utc)

    def verify_token(self, token: str, now: datetime) -> Optional[Claims]:
        """
        Authenticate a bearer token as this cluster's API server would.

        Checks the ES256 signature against this cluster's key (so another
        cluster's token fails), the issuer, for bound tokens an audience in
        L{API_AUDIENCES}, and the validity period. Recently verified tokens
        are remembered, so the steady state costs a hash and a dictionary
        lookup rather than an ECDSA verification.

        @param token: the bearer token, without C{Bearer }.
        @param now: the current time (timezone-aware).
        @return: the claims, or L{None} if the token does not authenticate.
        """
        if len(token) > MAXIMUM_TOKEN_LENGTH:
            return None
        try:
            encoded = token.encode("ascii")
        except UnicodeEncodeError:
            return None
        digest = hashlib.sha256(encoded).digest()
        claims = self._verified_tokens.get(digest)
        if claims is None:
            claims = self._verify_signed_claims(token)
            if claims is None:
                return None
            if len(self._verified_tokens) >= _VERIFIED_TOKEN_CACHE_SIZE:
                # Dictionaries keep insertion order: drop the oldest.
                del self._verified_tokens[next(iter(self._verified_tokens))]
            self._verified_tokens[digest] = claims
        if not claims.valid_at(now.timestamp()):
            return None
        return claims

    def _verify_signed_claims(self, token: str) -> Optional[Claims]:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header_segment, payload_segment, signature_segment = parts
        try:
            header = json.loads(_unbase64url(header_segment))
            signature = _unbase64url(signature_segment)
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            return None
        # kube-apiserver picks keys by kid when there is one; a token
        # without kid is tried against every key, here the only one.
        if "kid" in header and header["kid"] != self.key_id:
            return None
        if len(signature) != 64:
            return None
        der_signature = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self._public_key().verify(
                der_signature,
                f"{header_segment}.{payload_segment}".encode("ascii"),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            return None
        try:
            payload = json.loads(_unbase64url(payload_segment))
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        try:
            return _claims_from_payload(payload)
        except (KeyError, TypeError, ValueError):
            return None


def _issue_serving_certificate(
    address: str,
    public_key: ec.EllipticCurvePublicKey,
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: Optional[datetime] = None,
) -> x509.Certificate:
    """
    The API serving certificate as k3s's C{dynamiclistener} issues it:
    C{CN=k3s, O=k3s}, valid from the CA's start, server authentication.
    """
    host, _ = split_host_port(address)
    dns_names = list(SERVING_DNS_NAMES)
    ip_addresses = [ipaddress.ip_address(text) for text in SERVING_IP_ADDRESSES]
    if _is_ip_address(host):
        announced = ipaddress.ip_address(host)
        if announced not in ip_addresses:
            ip_addresses.insert(0, announced)
    elif host.lower() not in dns_names:
        dns_names.insert(0, host.lower())
    not_before = ca_certificate.not_valid_before_utc
    not_after = ca_certificate.not_valid_after_utc
    if now is not None:
        # A reissue keeps the original start but may not outlive the CA.
        not_after = min(not_after, now.astimezone(timezone.utc) + SERVING_VALIDITY)
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "k3s"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "k3s"),
                ]
            )
        )
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in dns_names]
                + [x509.IPAddress(address) for address in ip_addresses]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _optional_int(payload: Mapping[str, Any], key: str) -> Optional[int]:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is not a number")
    return int(value)


def _claims_from_payload(payload: Mapping[str, Any]) -> Optional[Claims]:
    """
    Interpret verified claims; L{None} for an issuer or audience this
    cluster does not accept.

    @raise ValueError: (or L{KeyError}, L{TypeError}) for malformed claims.
    """
    issuer = payload.get("iss")
    if issuer == LEGACY_ISSUER:
        prefix = "kubernetes.io/serviceaccount/"
        namespace = _string(payload[prefix + "namespace"])
        name = _string(payload[prefix + "service-account.name"])
        return Claims(
            issuer=LEGACY_ISSUER,
            subject=_string(payload["sub"]),
            namespace=namespace,
            service_account_name=name,
            service_account_uid=_string(payload[prefix + "service-account.uid"]),
            secret_name=_string(payload[prefix + "secret.name"]),
        )
    if issuer != BOUND_ISSUER:
        return None
    audience = payload.get("aud")
    audiences: tuple[str, ...]
    if isinstance(audience, str):
        audiences = (audience,)
    elif isinstance(audience, list) and all(isinstance(item, str) for item in audience):
        audiences = tuple(audience)
    else:
        return None
    if not set(audiences) & set(API_AUDIENCES):
        return None
    expires_at = _optional_int(payload, "exp")
    if expires_at is None:
        # Every bound token kube-apiserver issues expires; one that does
        # not was not made by it.
        return None
    private = payload["kubernetes.io"]
    service_account = private["serviceaccount"]
    bound_object = None
    for kind, claim in _BOUND_OBJECT_CLAIMS.items():
        reference = private.get(claim)
        # A pod-bound token may also name the pod's node; the pod wins.
        if reference is not None and bound_object is None:
            bound_object = BoundObject(kind, _string(reference["name"]), _string(reference["uid"]))
    token_id = payload.get("jti")
    return Claims(
        issuer=BOUND_ISSUER,
        subject=_string(payload["sub"]),
        namespace=_string(private["namespace"]),
        service_account_name=_string(service_account["name"]),
        service_account_uid=_string(service_account["uid"]),
        bound_object=bound_object,
        audiences=audiences,
        issued_at=_optional_int(payload, "iat"),
        not_before=_optional_int(payload, "nbf"),
        expires_at=expires_at,
        token_id=token_id if isinstance(token_id, str) else None,
    )


__all__ = [
    "API_AUDIENCES",
    "BOUND_ISSUER",
    "BoundObject",
    "CATTLE_NAMESPACE",
    "CATTLE_SERVICE_ACCOUNT",
    "CattleAccount",
    "Claims",
    "ClusterIdentity",
    "IdentityError",
    "LEGACY_ISSUER",
    "ServingContext",
    "build_server_context",
    "split_host_port",
]

"""
Tests for L{scaleagent.identity}.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import ssl
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLServerConnectionCreator
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase
from service_identity import VerificationError as ServiceIdentityError
from zope.interface import implementer
from zope.interface.verify import verifyObject

from scaleagent.identity import (
    API_AUDIENCES,
    BOUND_ISSUER,
    LEGACY_ISSUER,
    BoundObject,
    ClusterIdentity,
    IdentityError,
    ServingContext,
    split_host_port,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
ADDRESS = "10.43.0.1:443"

# Generating keys costs a few milliseconds; the tests share two identities
# and make new ones only where generation itself is under test.
_IDENTITY = ClusterIdentity.generate(ADDRESS, "cluster-one", NOW)
_OTHER_IDENTITY = ClusterIdentity.generate(ADDRESS, "cluster-two", NOW)


def _segment(token: str, index: int) -> bytes:
    segment = token.split(".")[index]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _resign(identity: ClusterIdentity, header: dict, payload: dict) -> str:
    """
    Sign arbitrary claims with C{identity}'s key, independently of the code
    under test, to build tokens it would never mint.
    """

    def encode(value: dict) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    key = serialization.load_pem_private_key(
        identity.to_dict()["serviceAccountKey"].encode(), None
    )
    signing_input = f"{encode(header)}.{encode(payload)}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"{signing_input}.{signature.rstrip(b'=').decode()}"


class SplitHostPortTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(split_host_port("10.43.0.1:443"), ("10.43.0.1", 443))
        self.assertEqual(split_host_port("[fd00::1]:6443"), ("fd00::1", 6443))
        self.assertEqual(split_host_port("api.example.com:443"), ("api.example.com", 443))

    def test_rejected(self) -> None:
        for address in [
            "10.43.0.1",
            "fd00::1:443",
            "[fd00::1]443",
            "[nothex]:443",
            "10.43.0.1:0",
            "10.43.0.1:65536",
            "10.43.0.1:https",
            ":443",
            "bad_host!:443",
        ]:
            with self.subTest(address=address):
                self.assertRaises(ValueError, split_host_port, address)


class CertificateTests(SynchronousTestCase):
    """
    The CA and serving certificate look like k3s's and verify as Rancher
    verifies them.
    """

    def setUp(self) -> None:
        self.ca = x509.load_pem_x509_certificate(_IDENTITY.ca_pem)
        self.leaf = x509.load_pem_x509_certificate(_IDENTITY.serving_certificate_pem)

    def test_ca(self) -> None:
        """
        The CA is a self-signed P-256 CA named like k3s's, valid ten years
        from the generation time.
        """
        common_name = self.ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.assertEqual(common_name, f"k3s-server-ca@{int(NOW.timestamp())}")
        self.assertEqual(self.ca.issuer, self.ca.subject)
        self.assertIsInstance(self.ca.public_key(), ec.EllipticCurvePublicKey)
        self.assertIsInstance(self.ca.public_key().curve, ec.SECP256R1)
        constraints = self.ca.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(constraints.critical)
        self.assertTrue(constraints.value.ca)
        usage = self.ca.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.key_cert_sign)
        # Validity starts an hour early, in case Rancher's clock is behind.
        self.assertEqual(self.ca.not_valid_before_utc, NOW - timedelta(hours=1))
        self.assertEqual(self.ca.not_valid_after_utc, NOW + timedelta(days=3650))
        self.ca.verify_directly_issued_by(self.ca)

    def test_serving_certificate(self) -> None:
        """
        The serving certificate is C{CN=k3s, O=k3s}, for server
        authentication, with k3s's SANs plus the announced address as an IP
        SAN, signed by the CA and valid as long as it.
        """
        self.assertEqual(self.leaf.subject.rfc4514_string(), "CN=k3s,O=k3s")
        self.assertEqual(self.leaf.issuer, self.ca.subject)
        self.leaf.verify_directly_issued_by(self.ca)
        names = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(
            names.get_values_for_type(x509.DNSName),
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "localhost",
            ],
        )
        self.assertEqual(
            names.get_values_for_type(x509.IPAddress),
            [
                ipaddress.ip_address("10.43.0.1"),
                ipaddress.ip_address("127.0.0.1"),
                ipaddress.ip_address("::1"),
            ],
        )
        usage = self.leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(usage), [ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertIsInstance(self.leaf.public_key().curve, ec.SECP256R1)
        self.assertEqual(self.leaf.not_valid_after_utc, self.ca.not_valid_after_utc)

    def test_policy_verification(self) -> None:
        """
        An RFC 5280 path validation trusting only the CA accepts the chain
        for the announced IP and the in-cluster names, and nothing else.
        """
        store = Store([self.ca])
        for name in [
            x509.IPAddress(ipaddress.ip_address("10.43.0.1")),
            x509.DNSName("kubernetes.default.svc"),
        ]:
            verifier = PolicyBuilder().store(store).time(NOW).build_server_verifier(name)
            chain = verifier.verify(self.leaf, [self.ca])
            self.assertEqual(chain, [self.leaf, self.ca])
        wrong = PolicyBuilder().store(store).time(NOW).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address("10.43.0.2"))
        )
        self.assertRaises(VerificationError, wrong.verify, self.leaf, [self.ca])
        other_ca = x509.load_pem_x509_certificate(_OTHER_IDENTITY.ca_pem)
        foreign = PolicyBuilder().store(Store([other_ca])).time(NOW).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address("10.43.0.1"))
        )
        self.assertRaises(VerificationError, foreign.verify, self.leaf, [self.ca])

    def test_dns_address(self) -> None:
        """
        An address with a host name gets a DNS SAN for it.
        """
        identity = ClusterIdentity.generate("api.example.com:6443", "named", NOW)
        leaf = x509.load_pem_x509_certificate(identity.serving_certificate_pem)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName)[0], "api.example.com")
        self.assertNotIn(
            ipaddress.ip_address("10.43.0.1"), names.get_values_for_type(x509.IPAddress)
        )

    def test_valid_despite_clock_skew(self) -> None:
        """
        A client whose clock is a few minutes behind still accepts a chain
        made just now.
        """
        verifier = (
            PolicyBuilder()
            .store(Store([self.ca]))
            .time(NOW - timedelta(minutes=10))
            .build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.43.0.1")))
        )
        verifier.verify(self.leaf, [self.ca])

    def test_bad_address(self) -> None:
        self.assertRaises(ValueError, ClusterIdentity.generate, "10.43.0.1", "bad", NOW)

    def test_naive_time_refused(self) -> None:
        self.assertRaises(
            IdentityError, ClusterIdentity.generate, ADDRESS, "naive", datetime(2025, 1, 1)
        )

    def test_with_address(self) -> None:
        """
        Moving to another address keeps the CA and tokens and reissues the
        serving certificate for the new address.
        """
        moved = _IDENTITY.with_address("10.96.0.1:443", NOW + timedelta(days=1))
        self.assertEqual(moved.ca_pem, _IDENTITY.ca_pem)
        self.assertEqual(moved.cattle_account, _IDENTITY.cattle_account)
        moved.validate()
        leaf = x509.load_pem_x509_certificate(moved.serving_certificate_pem)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertIn(ipaddress.ip_address("10.96.0.1"), names.get_values_for_type(x509.IPAddress))
        self.assertEqual(moved.tunnel_params().address, "10.96.0.1:443")


class PersistenceTests(SynchronousTestCase):
    """
    An identity survives a round trip through JSON unchanged, so the tunnel
    params stay byte-identical across restarts.
    """

    def test_round_trip(self) -> None:
        restored = ClusterIdentity.from_dict(json.loads(json.dumps(_IDENTITY.to_dict())))
        restored.validate()
        self.assertEqual(restored.to_dict(), _IDENTITY.to_dict())
        self.assertEqual(
            restored.tunnel_params().header_value(), _IDENTITY.tunnel_params().header_value()
        )
        self.assertEqual(restored.cattle_account, _IDENTITY.cattle_account)
        self.assertEqual(restored.key_id, _IDENTITY.key_id)
        # Tokens minted before the restart still authenticate after it.
        self.assertIsNotNone(restored.verify_token(_IDENTITY.cattle_account.token, NOW))

    def test_missing_field(self) -> None:
        for key in ["address", "caCertificate", "serviceAccountKey", "clusterName"]:
            data = _IDENTITY.to_dict()
            del data[key]
            with self.subTest(key=key):
                error = self.assertRaises(IdentityError, ClusterIdentity.from_dict, data)
                self.assertIn(key, str(error))

    def test_malformed_fields(self) -> None:
        data = _IDENTITY.to_dict()
        data["servingKey"] = "not a key"
        error = self.assertRaises(IdentityError, ClusterIdentity.from_dict, data)
        self.assertIn("servingKey", str(error))
        data = _IDENTITY.to_dict()
        data["cattleAccount"]["token"] = 7
        error = self.assertRaises(IdentityError, ClusterIdentity.from_dict, data)
        self.assertIn("cattleAccount: token", str(error))
        data = _IDENTITY.to_dict()
        data["format"] = 99
        self.assertRaises(IdentityError, ClusterIdentity.from_dict, data)
        self.assertRaises(IdentityError, ClusterIdentity.from_dict, ["not", "a", "mapping"])

    def test_validate_mismatched_keys(self) -> None:
        """
        L{ClusterIdentity.validate} notices keys and certificates from
        different identities.
        """
        data = _IDENTITY.to_dict()
        data["servingKey"] = _OTHER_IDENTITY.to_dict()["servingKey"]
        self.assertRaises(IdentityError, ClusterIdentity.from_dict(data).validate)
        data = _IDENTITY.to_dict()
        data["caCertificate"] = _OTHER_IDENTITY.to_dict()["caCertificate"]
        self.assertRaises(IdentityError, ClusterIdentity.from_dict(data).validate)

    def test_repr_has_no_secrets(self) -> None:
        token = _IDENTITY.cattle_account.token
        self.assertNotIn(token, repr(_IDENTITY))
        self.assertNotIn(token, repr(_IDENTITY.cattle_account))


class TunnelParamsTests(SynchronousTestCase):
    def test_params(self) -> None:
        """
        The params are what the agent sends: the address, the base64 of the
        CA PEM, and the cattle token, as Go marshals a map.
        """
        self.assertEqual(base64.b64decode(_IDENTITY.ca_cert_b64), _IDENTITY.ca_pem)
        self.assertTrue(_IDENTITY.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----\n"))
        header = base64.b64decode(_IDENTITY.tunnel_params().header_value(), validate=True)
        expected = (
            '{"cluster":{"address":"10.43.0.1:443","caCert":"%s","token":"%s"}}'
            % (_IDENTITY.ca_cert_b64, _IDENTITY.cattle_account.token)
        ).encode()
        self.assertEqual(header, expected)

    def test_cattle_account(self) -> None:
        """
        The announced token is a legacy token of C{cattle-system/cattle}
        stored in a C{cattle-token-xxxxx} Secret; asking again returns the
        same account.
        """
        account = _IDENTITY.ensure_cattle_account()
        self.assertIs(_IDENTITY.ensure_cattle_account(), account)
        self.assertEqual((account.namespace, account.service_account), ("cattle-system", "cattle"))
        self.assertRegex(account.secret_name, r"\Acattle-token-[bcdfghjklmnpqrstvwxz2456789]{5}\Z")
        self.assertRegex(account.service_account_uid, r"\A[0-9a-f-]{36}\Z")
        claims = _IDENTITY.verify_token(account.token, NOW)
        self.assertEqual(claims.secret_name, account.secret_name)
        self.assertEqual(claims.service_account_uid, account.service_account_uid)
        self.assertEqual(claims.username, "system:serviceaccount:cattle-system:cattle")


class TokenFormatTests(SynchronousTestCase):
    """
    Tokens are laid out byte for byte as kube-apiserver lays them out.
    """

    def test_json_web_key_set(self) -> None:
        """
        The published key verifies the tokens and carries their kid.
        """
        (key,) = _IDENTITY.json_web_key_set()["keys"]
        self.assertEqual(
            {name: key[name] for name in ["use", "kty", "crv", "alg", "kid"]},
            {"use": "sig", "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": _IDENTITY.key_id},
        )

        def number(text: str) -> int:
            return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

        public_key = ec.EllipticCurvePublicNumbers(
            number(key["x"]), number(key["y"]), ec.SECP256R1()
        ).public_key()
        token = _IDENTITY.cattle_account.token
        signature = _segment(token, 2)
        public_key.verify(
            encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            ),
            token.rsplit(".", 1)[0].encode(),
            ec.ECDSA(hashes.SHA256()),
        )
        self.assertIn(f'"kid":"{key["kid"]}"'.encode(), _segment(token, 0))

    def test_legacy_layout(self) -> None:
        token = _IDENTITY.mint_legacy_token("default", "builder", "uid-1", "builder-token-abcde")
        public_key = serialization.load_pem_private_key(
            _IDENTITY.to_dict()["serviceAccountKey"].encode(), None
        ).public_key()
        spki = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode()
        self.assertEqual(_segment(token, 0), b'{"alg":"ES256","kid":"%s"}' % kid.encode())
        self.assertEqual(
            _segment(token, 1),
            b'{"iss":"kubernetes/serviceaccount",'
            b'"kubernetes.io/serviceaccount/namespace":"default",'
            b'"kubernetes.io/serviceaccount/secret.name":"builder-token-abcde",'
            b'"kubernetes.io/serviceaccount/service-account.name":"builder",'
            b'"kubernetes.io/serviceaccount/service-account.uid":"uid-1",'
            b'"sub":"system:serviceaccount:default:builder"}',
        )
        self.assertNotIn("=", token)
        # The signature is JWS's raw r||s, checked here without the code
        # under test.
        signature = _segment(token, 2)
        self.assertEqual(len(signature), 64)
        signing_input = token.rsplit(".", 1)[0].encode()
        public_key.verify(
            encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            ),
            signing_input,
            ec.ECDSA(hashes.SHA256()),
        )

    def test_bound_layout(self) -> None:
        token, expiry = _IDENTITY.mint_bound_token(
            "cattle-impersonation-system",
            "cattle-impersonation-u-abc",
            "uid-2",
            ["https://kubernetes.default.svc.cluster.local"],
            600,
            BoundObject("Secret", "cattle-impersonation-u-abc-token-x", "uid-3"),
            now=NOW,
        )
        issued = int(NOW.timestamp())
        self.assertEqual(expiry, NOW + timedelta(seconds=600))
        payload = json.loads(_segment(token, 1))
        self.assertRegex(payload.pop("jti"), r"\A[0-9a-f-]{36}\Z")
        self.assertEqual(
            payload,
            {
                "aud": ["https://kubernetes.default.svc.cluster.local"],
                "exp": issued + 600,
                "iat": issued,
                "iss": "https://kubernetes.default.svc.cluster.local",
                "kubernetes.io": {
                    "namespace": "cattle-impersonation-system",
                    "secret": {"name": "cattle-impersonation-u-abc-token-x", "uid": "uid-3"},
                    "serviceaccount": {"name": "cattle-impersonation-u-abc", "uid": "uid-2"},
                },
                "nbf": issued,
                "sub": (
                    "system:serviceaccount:cattle-impersonation-system:"
                    "cattle-impersonation-u-abc"
                ),
            },
        )
        # Keys are sorted at every level, as Go writes a map.
        raw = _segment(token, 1).decode()
        self.assertLess(raw.index('"aud"'), raw.index('"exp"'))
        self.assertLess(raw.index('"secret"'), raw.index('"serviceaccount"'))

    def test_bad_arguments(self) -> None:
        self.assertRaises(
            IdentityError,
            _IDENTITY.mint_bound_token,
            "default",
            "sa",
            "uid",
            list(API_AUDIENCES),
            0,
            now=NOW,
        )
        self.assertRaises(IdentityError, BoundObject, "Deployment", "name", "uid")


class VerifyTokenTests(SynchronousTestCase):
    def mint(self, **overrides):
        arguments = dict(
            namespace="default",
            service_account="sa",
            service_account_uid="sa-uid",
            audiences=list(API_AUDIENCES),
            expiration_seconds=3600,
            bound_object=BoundObject("Pod", "web-0", "pod-uid"),
            now=NOW,
        )
        arguments.update(overrides)
        return _IDENTITY.mint_bound_token(**arguments)[0]

    def test_bound_claims(self) -> None:
        claims = _IDENTITY.verify_token(self.mint(), NOW)
        self.assertEqual(claims.issuer, BOUND_ISSUER)
        self.assertFalse(claims.legacy)
        self.assertEqual(claims.username, "system:serviceaccount:default:sa")
        self.assertEqual(
            claims.groups, ("system:serviceaccounts", "system:serviceaccounts:default")
        )
        self.assertEqual(claims.bound_object, BoundObject("Pod", "web-0", "pod-uid"))
        self.assertEqual(claims.audiences, API_AUDIENCES)
        self.assertEqual(claims.expires_at, int(NOW.timestamp()) + 3600)
        self.assertEqual(claims.extra["authentication.kubernetes.io/pod-name"], ("web-0",))
        self.assertEqual(
            claims.extra["authentication.kubernetes.io/credential-id"], (f"JTI={claims.token_id}",)
        )

    def test_legacy_claims(self) -> None:
        token = _IDENTITY.mint_legacy_token("ns", "robot", "robot-uid", "robot-token-zzzzz")
        claims = _IDENTITY.verify_token(token, NOW + timedelta(days=3650))
        self.assertEqual(claims.issuer, LEGACY_ISSUER)
        self.assertTrue(claims.legacy)
        self.assertEqual(claims.secret_name, "robot-token-zzzzz")
        self.assertEqual(claims.service_account_uid, "robot-uid")
        self.assertIsNone(claims.expires_at)
        self.assertEqual(claims.extra, {})

    def test_expiry(self) -> None:
        """
        A bound token is valid until C{exp} plus go-jose's one-minute
        leeway, and not before C{nbf} minus it.
        """
        token = self.mint(expiration_seconds=600)
        self.assertIsNotNone(_IDENTITY.verify_token(token, NOW + timedelta(seconds=659)))
        self.assertIsNone(_IDENTITY.verify_token(token, NOW + timedelta(seconds=661)))
        self.assertIsNone(_IDENTITY.verify_token(token, NOW - timedelta(seconds=61)))
        self.assertIsNotNone(_IDENTITY.verify_token(token, NOW - timedelta(seconds=59)))

    def test_audience(self) -> None:
        """
        A bound token for another audience does not authenticate to the API.
        """
        self.assertIsNone(_IDENTITY.verify_token(self.mint(audiences=["vault"]), NOW))
        self.assertIsNotNone(_IDENTITY.verify_token(self.mint(audiences=["vault", "k3s"]), NOW))

    def test_wrong_cluster(self) -> None:
        self.assertIsNone(_OTHER_IDENTITY.verify_token(self.mint(), NOW))
        self.assertIsNone(_OTHER_IDENTITY.verify_token(_IDENTITY.cattle_account.token, NOW))

    def test_tampered(self) -> None:
        token = _IDENTITY.cattle_account.token
        header, payload, signature = token.split(".")
        claims = json.loads(_segment(token, 1))
        claims["kubernetes.io/serviceaccount/service-account.name"] = "admin"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        self.assertIsNone(_IDENTITY.verify_token(f"{header}.{forged}.{signature}", NOW))
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        self.assertIsNone(_IDENTITY.verify_token(f"{header}.{payload}.{flipped}", NOW))
        # A signature from another cluster's key under this cluster's kid.
        other = _OTHER_IDENTITY.cattle_account.token.split(".")[2]
        self.assertIsNone(_IDENTITY.verify_token(f"{header}.{payload}.{other}", NOW))

    def test_malformed(self) -> None:
        token = _IDENTITY.cattle_account.token
        header, payload, signature = token.split(".")
        for candidate in [
            "",
            "not-a-jwt",
            f"{header}.{payload}",
            f"{header}.{payload}.{signature}.extra",
            f"{header}.{payload}.{signature}=",
            f"{header}.{payload}.{signature[:-4]}",
            f"{header}.{payload}.é{signature}",
            "a" * 20000,
        ]:
            with self.subTest(candidate=candidate[:30]):
                self.assertIsNone(_IDENTITY.verify_token(candidate, NOW))

    def test_header_checks(self) -> None:
        """
        Only ES256 with this key's kid (or none) is accepted; issuers other
        than the two Kubernetes ones are not, even when correctly signed.
        """
        payload = json.loads(_segment(_IDENTITY.cattle_account.token, 1))
        good = _resign(_IDENTITY, {"alg": "ES256"}, payload)
        self.assertIsNotNone(_IDENTITY.verify_token(good, NOW))
        for header in [{"alg": "none"}, {"alg": "ES256", "kid": "someone-else"}, {"alg": "HS256"}]:
            with self.subTest(header=header):
                self.assertIsNone(_IDENTITY.verify_token(_resign(_IDENTITY, header, payload), NOW))
        payload["iss"] = "https://evil.example"
        forged = _resign(_IDENTITY, {"alg": "ES256"}, payload)
        self.assertIsNone(_IDENTITY.verify_token(forged, NOW))

    def test_bound_token_without_expiry(self) -> None:
        payload = json.loads(_segment(self.mint(), 1))
        del payload["exp"]
        forged = _resign(_IDENTITY, {"alg": "ES256"}, payload)
        self.assertIsNone(_IDENTITY.verify_token(forged, NOW))

    def test_cache(self) -> None:
        """
        A token verified once is not verified cryptographically again until
        enough other tokens push it out of the cache; its expiry is still
        checked on every use.
        """
        identity = ClusterIdentity.from_dict(_IDENTITY.to_dict())
        verifications = []
        original = ClusterIdentity._verify_signed_claims

        def counting(self, token):
            verifications.append(token)
            return original(self, token)

        self.patch(ClusterIdentity, "_verify_signed_claims", counting)
        token = identity.mint_bound_token(
            "default", "sa", "uid", list(API_AUDIENCES), 600, now=NOW
        )[0]
        self.assertIsNotNone(identity.verify_token(token, NOW))
        self.assertIsNotNone(identity.verify_token(token, NOW))
        self.assertEqual(len(verifications), 1)
        self.assertIsNone(identity.verify_token(token, NOW + timedelta(hours=1)))
        self.assertEqual(len(verifications), 1)
        # Invalid tokens are not cached.
        identity.verify_token("x.y.z", NOW)
        identity.verify_token("x.y.z", NOW)
        self.assertEqual(len(verifications), 3)
        for index in range(8):
            identity.verify_token(
                identity.mint_legacy_token("default", f"sa{index}", "uid", "secret"), NOW
            )
        identity.verify_token(token, NOW)
        self.assertEqual(verifications.count(token), 2)


@implementer(IHandshakeListener)
class _Recorder(Protocol):
    """
    Records what arrives and whether the handshake finished.
    """

    def __init__(self) -> None:
        self.received = b""
        self.handshaken = False
        self.lost = None

    def handshakeCompleted(self) -> None:
        self.handshaken = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost = reason


class _Handshake:
    """
    A TLS handshake between a Twisted client and an identity's server
    context through an in-memory pump, with one message each way once it
    succeeds.

    @ivar client: the client's TLS protocol.
    @ivar server: the server's TLS protocol.
    @ivar client_application: what ran on top of the client's TLS.
    @ivar server_application: what ran on top of the server's TLS.
    """

    def __init__(self, identity, client_options, maximum_tls_version=None):
        clock = Clock()
        self.client_application = _Recorder()
        self.server_application = _Recorder()
        server_factory = TLSMemoryBIOFactory(
            identity.server_context(maximum_tls_version),
            isClient=False,
            wrappedFactory=ServerFactory.forProtocol(lambda: self.server_application),
            clock=clock,
        )
        client_factory = TLSMemoryBIOFactory(
            client_options,
            isClient=True,
            wrappedFactory=ClientFactory.forProtocol(lambda: self.client_application),
            clock=clock,
        )
        self.client, self.server, pump = connectedServerAndClient(
            lambda: server_factory.buildProtocol(None),
            lambda: client_factory.buildProtocol(None),
            greet=False,
            clock=clock,
        )
        pump.flush()
        if self.client_application.handshaken:
            self.client.write(b"GET /version HTTP/1.1\r\n\r\n")
            self.server.write(b"HTTP/1.1 200 OK\r\n\r\n")
            pump.flush()


class TLSTests(SynchronousTestCase):
    """
    Rancher's view: a client that trusts only the cluster CA, verifies the
    IP SAN, sends no SNI and offers only http/1.1.
    """

    def client_options(self, identity=_IDENTITY, host="10.43.0.1", protocols=(b"http/1.1",)):
        return optionsForClientTLS(
            host,
            trustRoot=Certificate.loadPEM(identity.ca_pem),
            acceptableProtocols=list(protocols),
        )

    def test_handshake(self) -> None:
        handshake = _Handshake(_IDENTITY, self.client_options())
        self.assertTrue(handshake.client_application.handshaken)
        self.assertTrue(handshake.server_application.handshaken)
        self.assertEqual(
            handshake.server_application.received, b"GET /version HTTP/1.1\r\n\r\n"
        )
        self.assertEqual(handshake.client_application.received, b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertEqual(handshake.client.negotiatedProtocol, b"http/1.1")
        self.assertEqual(handshake.server.negotiatedProtocol, b"http/1.1")
        connection = handshake.client._tlsConnection
        self.assertEqual(connection.get_protocol_version_name(), "TLSv1.3")
        # The server sends the chain k3s sends: its certificate, then the CA.
        chain = [certificate.to_cryptography() for certificate in connection.get_peer_cert_chain()]
        self.assertEqual(
            [certificate.public_bytes(serialization.Encoding.PEM) for certificate in chain],
            [_IDENTITY.serving_certificate_pem, _IDENTITY.ca_pem],
        )
        # Go sends no SNI for an IP address, and neither does this client.
        self.assertIsNone(handshake.server._tlsConnection.get_servername())

    def test_tls12(self) -> None:
        """
        The context can be capped at TLS 1.2 to save memory per stream.
        """
        identity = ClusterIdentity.from_dict(_IDENTITY.to_dict())
        handshake = _Handshake(identity, self.client_options(), SSL.TLS1_2_VERSION)
        self.assertTrue(handshake.client_application.handshaken)
        connection = handshake.client._tlsConnection
        self.assertEqual(connection.get_protocol_version_name(), "TLSv1.2")
        self.assertEqual(connection.get_cipher_name(), "ECDHE-ECDSA-AES128-GCM-SHA256")

    def test_wrong_ca(self) -> None:
        handshake = _Handshake(_IDENTITY, self.client_options(identity=_OTHER_IDENTITY))
        self.assertFalse(handshake.client_application.handshaken)
        self.assertFalse(handshake.server_application.handshaken)
        handshake.client_application.lost.trap(SSL.Error)

    def test_wrong_address(self) -> None:
        handshake = _Handshake(_IDENTITY, self.client_options(host="10.43.0.2"))
        self.assertFalse(handshake.client_application.handshaken)
        handshake.client_application.lost.trap(ServiceIdentityError)

    def test_h2_only_client_refused(self) -> None:
        """
        Like Go's server, a client whose ALPN offer has nothing in common
        with C{http/1.1} is refused rather than served HTTP/2.
        """
        handshake = _Handshake(_IDENTITY, self.client_options(protocols=(b"h2",)))
        self.assertFalse(handshake.client_application.handshaken)
        self.assertFalse(handshake.server_application.handshaken)
        handshake.client_application.lost.trap(SSL.Error)

    def test_python_ssl_client(self) -> None:
        """
        OpenSSL's own verification through Python's C{ssl} module (check
        of the IP SAN by X509_VERIFY_PARAM, no SNI for an IP) accepts the
        chain.
        """
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.load_verify_locations(cadata=_IDENTITY.ca_pem.decode())
        client_context.set_alpn_protocols(["http/1.1"])
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = client_context.wrap_bio(incoming, outgoing, server_hostname="10.43.0.1")
        server = SSL.Connection(_IDENTITY.server_context().context, None)
        server.set_accept_state()
        for _ in range(10):
            try:
                client.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            server.bio_write(outgoing.read())
            try:
                server.do_handshake()
            except SSL.WantReadError:
                pass
            while True:
                try:
                    incoming.write(server.bio_read(65536))
                except SSL.WantReadError:
                    break
        else:
            self.fail("handshake did not finish")
        self.assertEqual(client.selected_alpn_protocol(), "http/1.1")
        self.assertEqual(
            client.getpeercert()["subject"],
            ((("organizationName", "k3s"),), (("commonName", "k3s"),)),
        )

    def test_context_properties(self) -> None:
        """
        The context is built once per cluster, provides the interface
        L{TLSMemoryBIOFactory} wants, releases idle buffers and keeps no
        session cache.
        """
        identity = ClusterIdentity.from_dict(_IDENTITY.to_dict())
        serving = identity.server_context()
        self.assertIs(identity.server_context(), serving)
        self.assertIsInstance(serving, ServingContext)
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, serving))
        self.assertTrue(serving.context.set_mode(0) & SSL.MODE_RELEASE_BUFFERS)
        self.assertEqual(serving.context.get_session_cache_mode(), SSL.SESS_CACHE_OFF)
        capped = identity.server_context(SSL.TLS1_2_VERSION)
        self.assertIsNot(capped, serving)

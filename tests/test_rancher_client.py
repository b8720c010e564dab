"""
Tests for L{scaleagent.rancher.client} against the in-memory
L{FakeRancher}, served through treq's C{StubTreq}.
"""

from __future__ import annotations

from typing import Any, Coroutine

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from scaleagent.rancher.client import (
    ClusterRef,
    RancherClient,
    RancherError,
    RetryPolicy,
    manifest_url_secrets,
)
from scaleagent.rancher.manifest import parse_import_manifest
from scaleagent.testing.fake_rancher import FakeRancher

API_TOKEN = "token-abcde:s3cr3tvalue"


class ClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.rancher = FakeRancher(api_token=API_TOKEN)
        self.stub = StubTreq(self.rancher.app.resource())
        self.clock = Clock()
        self.client = self.make_client(API_TOKEN)

    def make_client(self, token: str) -> RancherClient:
        return RancherClient(
            "https://rancher.test/",
            token,
            self.stub,
            self.clock,
            instance_id="instance-1",
            poll_interval=1.0,
            poll_attempts=5,
        )

    def drive(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Drive a client call to completion, advancing the clock for polls."""
        result: Deferred = ensureDeferred(coroutine)
        for _ in range(20):
            self.stub.flush()
            if result.called:
                break
            self.clock.advance(1.0)
        return self.successResultOf(result)

    def drive_failure(self, coroutine: Coroutine[Any, Any, Any]) -> RancherError:
        result: Deferred = ensureDeferred(coroutine)
        for _ in range(20):
            self.stub.flush()
            if result.called:
                break
            self.clock.advance(1.0)
        return self.failureResultOf(result, RancherError).value

    def test_import_flow_v1(self) -> None:
        """
        Create as the UI does, wait for the management id, get the token and
        the manifest, and read the agent settings out of it.
        """
        ref = self.drive(self.client.create_imported_cluster("sim-1"))
        self.assertEqual(ref.api, "v1")
        self.assertTrue(ref.id.startswith("c-m-"))
        created = self.rancher.v1_clusters["sim-1"]
        self.assertEqual(created["metadata"]["namespace"], "fleet-default")
        self.assertEqual(created["metadata"]["annotations"]["scaleagent.io/owner"], "instance-1")

        token = self.drive(self.client.registration_token(ref.id))
        self.assertEqual(token.token, self.rancher.tokens[ref.id]["token"])
        self.assertNotIn(token.token, repr(token))

        manifest = self.drive(self.client.import_manifest(token.manifest_url))
        settings = parse_import_manifest(manifest)
        self.assertEqual(settings.token, token.token)
        self.assertEqual(settings.server_url, "https://rancher.test")
        # The manifest is fetched without the API token, like kubectl would.
        self.assertEqual(self.rancher.requests[-1][0], "GET")

    def test_not_found_just_after_the_create_is_polled_again(self) -> None:
        # Steve reads from a cache that sees the create a moment later.
        self.rancher.cache_lag = 2
        ref = self.drive(self.client.create_imported_cluster("sim-lag"))
        self.assertTrue(ref.id.startswith("c-m-"))
        self.assertEqual(len(self.rancher.v1_clusters), 1)

    def test_cluster_that_never_appears_is_an_error(self) -> None:
        self.rancher.cache_lag = 100
        error = self.drive_failure(self.client.create_imported_cluster("sim-gone"))
        self.assertEqual(error.kind, "not-found")

    def test_v3_fallback(self) -> None:
        self.rancher.provisioning_v2 = False
        ref = self.drive(self.client.create_imported_cluster("sim-2"))
        self.assertEqual(ref.api, "v3")
        self.assertTrue(ref.id.startswith("c-"))
        self.assertIn(ref.id, self.rancher.v3_clusters)

    def test_adopts_own_leftover(self) -> None:
        """A create interrupted before its id was saved is adopted, not duplicated."""
        first = self.drive(self.client.create_imported_cluster("sim-3"))
        again = self.drive(self.client.create_imported_cluster("sim-3"))
        self.assertEqual(first, again)
        self.assertEqual(len(self.rancher.v1_clusters), 1)

    def test_name_taken_by_someone_else(self) -> None:
        self.drive(self.client.create_imported_cluster("taken"))
        self.rancher.v1_clusters["taken"]["metadata"]["annotations"]["scaleagent.io/owner"] = "other"
        error = self.drive_failure(self.client.create_imported_cluster("taken"))
        self.assertEqual(error.kind, "conflict")
        self.assertEqual(error.retry, RetryPolicy.NEVER)
        self.assertIn("already exists", str(error))

    def test_wrong_token(self) -> None:
        client = self.make_client("token-wrong:nope")
        error = self.drive_failure(client.create_imported_cluster("sim-4"))
        self.assertEqual((error.kind, error.status, error.retry), ("unauthorized", 401, RetryPolicy.SLOW))
        self.assertIn("must authenticate", str(error))
        self.assertNotIn("nope", str(error))
        self.assertEqual(self.rancher.v1_clusters, {})

    def test_server_error_is_retryable(self) -> None:
        self.rancher.fail_next = [503]
        error = self.drive_failure(self.client.create_imported_cluster("sim-5"))
        self.assertEqual((error.kind, error.retry), ("server-error", RetryPolicy.BACKOFF))
        self.assertIn("503", str(error))

    def test_not_json(self) -> None:
        """An HTML page (a proxy, a wrong URL) is a clear error, not a crash."""

        class HTMLClient:
            def request(self, *args, **kwargs):
                return self_stub.request("GET", "https://rancher.test/v3/import/x_y.yaml")

        self_stub = self.stub
        client = RancherClient("https://rancher.test", API_TOKEN, HTMLClient(), self.clock, "i")
        error = self.drive_failure(client.get_cluster("c-abcde"))
        self.assertEqual(error.kind, "bad-response")

    def test_unreachable(self) -> None:
        class Refusing:
            def request(self, *args, **kwargs) -> Deferred:
                return fail(Failure(ConnectionRefusedError("connection refused")))

        client = RancherClient("https://rancher.test", API_TOKEN, Refusing(), self.clock, "i")
        error = self.drive_failure(client.create_imported_cluster("sim-6"))
        self.assertEqual((error.kind, error.retry), ("network", RetryPolicy.BACKOFF))
        self.assertIn("cannot reach Rancher", str(error))

    def test_token_created_when_missing(self) -> None:
        ref = self.drive(self.client.create_imported_cluster("sim-7"))
        del self.rancher.tokens[ref.id]
        token = self.drive(self.client.registration_token(ref.id))
        self.assertEqual(token.cluster_id, ref.id)
        self.assertIn(("POST", "/v3/clusterregistrationtokens"), self.rancher.requests)

    def test_delete(self) -> None:
        ref = self.drive(self.client.create_imported_cluster("sim-8"))
        self.drive(self.client.delete_cluster(ref))
        self.assertEqual(self.rancher.v1_clusters, {})
        # Deleting again is not an error.
        self.drive(self.client.delete_cluster(ref))
        self.drive(self.client.delete_cluster(ClusterRef("c-gone1", "gone", "v3")))

    def test_cacerts_unauthenticated(self) -> None:
        self.rancher.cacerts = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
        client = self.make_client("token-wrong:nope")
        self.assertEqual(self.drive(client.cacerts()), self.rancher.cacerts)


REGISTRATION_TOKEN = "kq2xv7bnd9fzt4wm6hcrp8lsj5gy3a0eukq2xv7bnd9fzt4wm6hcrp8"
MANIFEST_URL = f"https://rancher.test/v3/import/{REGISTRATION_TOKEN}_c-m-abcd1234.yaml"


class _ImportAnswer(Resource):
    """Answers every request with C{status}, C{headers} and C{body}."""

    isLeaf = True

    def __init__(self, status: int, body: bytes = b"", headers: dict[bytes, bytes] = {}) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.headers = headers

    def render(self, request: Any) -> bytes:
        request.setResponseCode(self.status)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


class ManifestURLSecretTests(SynchronousTestCase):
    """
    The import manifest URL is C{/v3/import/<token>_<cluster id>.yaml}:
    whatever goes wrong downloading it, the error (which ends up in the
    cluster's reason, the log and the control API) does not contain the
    registration token.
    """

    def error_for(self, http: Any) -> RancherError:
        client = RancherClient("https://rancher.test", API_TOKEN, http, Clock(), "i")
        result: Deferred = ensureDeferred(client.import_manifest(MANIFEST_URL))
        flush = getattr(http, "flush", None)
        if flush is not None:
            flush()
        error = self.failureResultOf(result, RancherError).value
        self.assertNotIn(REGISTRATION_TOKEN, str(error))
        self.assertNotIn(REGISTRATION_TOKEN[:16], str(error))
        self.assertIn("downloading the import manifest", str(error))
        return error

    def test_secrets_of_the_url(self) -> None:
        self.assertEqual(
            manifest_url_secrets(MANIFEST_URL),
            (
                f"{REGISTRATION_TOKEN}_c-m-abcd1234.yaml",
                f"{REGISTRATION_TOKEN}_c-m-abcd1234",
                REGISTRATION_TOKEN,
            ),
        )
        self.assertEqual(manifest_url_secrets("https://rancher.test/"), ())

    def test_redirect_without_location(self) -> None:
        # Twisted's RedirectWithNoLocation names the URL it requested.
        error = self.error_for(StubTreq(_ImportAnswer(302)))
        self.assertEqual(error.kind, "network")
        self.assertIn("No location header field", str(error))

    def test_redirect_loop(self) -> None:
        # InfiniteRedirection names the last URL of the loop.
        error = self.error_for(StubTreq(_ImportAnswer(302, headers={b"location": MANIFEST_URL.encode()})))
        self.assertIn("Infinite redirection", str(error))

    def test_error_page_echoing_the_url(self) -> None:
        # Cut at 200 characters, the echo would end inside the token.
        body = ("x" * 140 + f" GET {MANIFEST_URL} not found").encode()
        error = self.error_for(StubTreq(_ImportAnswer(404, body)))
        self.assertEqual(error.kind, "not-found")
        json_body = f'{{"message": "no token {REGISTRATION_TOKEN}"}}'.encode()
        error = self.error_for(StubTreq(_ImportAnswer(500, json_body)))
        self.assertIn("no token <redacted>", str(error))

    def test_unexpected_exception(self) -> None:
        class Broken:
            def request(self, method: str, url: str, **kwargs: Any) -> Deferred:
                return fail(ValueError(f"cannot use {url}"))

        error = self.error_for(Broken())
        self.assertIn("cannot use https://rancher.test/v3/import/<redacted>", str(error))

    def test_network_errors(self) -> None:
        # Whatever the message of a connection error holds.
        class Refusing:
            def request(self, method: str, url: str, **kwargs: Any) -> Deferred:
                return fail(Failure(ConnectionRefusedError(url)))

        error = self.error_for(Refusing())
        self.assertIn("cannot reach Rancher", str(error))

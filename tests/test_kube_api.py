"""
Tests for L{scaleagent.kube.api} and L{scaleagent.kube.cluster}: the
synthetic Kubernetes API end to end in memory, through treq's C{StubTreq}
(and, where a connection's life matters, a real HTTP channel over a
C{StringTransport}), and once through the whole stack Rancher reaches it
by: a remotedialer session, TLS verified against the cluster CA, HTTP/1.1.

The helpers at the top (a cluster from the default template, tokens, a
protobuf encoder, an HTTP connection) are shared with
C{test_kube_watchstream} and C{test_kube_replay}.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from twisted.internet import ssl
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web._newclient import HTTP11ClientProtocol, Request as ClientRequest
from treq.testing import StubTreq

from scaleagent.identity import API_AUDIENCES, ClusterIdentity
from scaleagent.kube import _protofields
from scaleagent.kube.api import MAX_REQUEST_BODY_BYTES, KubeAPI, parse_go_duration
from scaleagent.kube.cluster import KubeCluster
from scaleagent.kube.protobuf import PROTOBUF_MAGIC
from scaleagent.kube.resources import BUILTIN_REGISTRY
from scaleagent.kube.template import ClusterContext, ClusterTemplate
from scaleagent.remotedialer import frames
from scaleagent.remotedialer.session import Session
from scaleagent.remotedialer.transport import StreamRouter

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "cluster_templates" / "k3s-v1.28.yaml"

#: 2025-06-15T15:06:40Z: tests run at a fixed, realistic time.
START = 1_750_000_000.0

ADDRESS = "10.43.0.1:443"

SERVICE_ACCOUNTS = BUILTIN_REGISTRY.lookup("", "v1", "serviceaccounts")
SECRETS = BUILTIN_REGISTRY.lookup("", "v1", "secrets")
CONFIG_MAPS = BUILTIN_REGISTRY.lookup("", "v1", "configmaps")
NAMESPACES = BUILTIN_REGISTRY.lookup("", "v1", "namespaces")
PODS = BUILTIN_REGISTRY.lookup("", "v1", "pods")

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PROTOBUF_ACCEPT = "application/vnd.kubernetes.protobuf, application/json"


# -- clusters and credentials ----------------------------------------------------

_template: Optional[ClusterTemplate] = None
_identity: Optional[ClusterIdentity] = None


def default_template() -> ClusterTemplate:
    """The bundled default template, parsed once per test run."""
    global _template
    if _template is None:
        _template = ClusterTemplate.load(DEFAULT_TEMPLATE)
    return _template


def shared_identity() -> ClusterIdentity:
    """
    One identity for every test cluster: key generation is the slow part,
    and the tests that need another cluster's keys make their own.
    """
    global _identity
    if _identity is None:
        _identity = ClusterIdentity.generate(ADDRESS, "c-test", datetime.fromtimestamp(START, timezone.utc))
    return _identity


def new_cluster(
    clock: Optional[Clock] = None,
    identity: Optional[ClusterIdentity] = None,
    name: str = "c-test",
) -> KubeCluster:
    """A cluster from the default template, at L{START} on C{clock}."""
    if clock is None:
        clock = Clock()
    if clock.seconds() < START:
        clock.advance(START - clock.seconds())
    context = ClusterContext(name, f"seed-{name}", datetime.fromtimestamp(START - 86400, timezone.utc))
    return KubeCluster.create(default_template(), context, identity or shared_identity(), clock)


def add_account(cluster: KubeCluster, namespace: str = "kube-system", name: str = "tester") -> str:
    """
    Make a ServiceAccount and its legacy token Secret, as the token
    controller would, and return the token.
    """
    store = cluster.store
    account = store.create(SERVICE_ACCOUNTS, namespace, {"metadata": {"name": name}})
    uid = account["metadata"]["uid"]
    secret_name = f"{name}-token"
    token = cluster.identity.mint_legacy_token(namespace, name, uid, secret_name)
    store.create(
        SECRETS,
        namespace,
        {
            "metadata": {
                "name": secret_name,
                "annotations": {
                    "kubernetes.io/service-account.name": name,
                    "kubernetes.io/service-account.uid": uid,
                },
            },
            "type": "kubernetes.io/service-account-token",
            "data": {"token": base64.b64encode(token.encode()).decode()},
        },
    )
    return token


# -- protobuf bodies ------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + payload


def _length_delimited(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _encode_value(type_name: str, value: Any, number: int) -> bytes:
    if type_name == "string":
        return _length_delimited(number, value.encode("utf-8"))
    if type_name == "bytes":
        return _length_delimited(number, base64.b64decode(value))
    if type_name in ("int64", "int32", "uint64", "uint32"):
        return _field(number, 0, _varint(int(value)))
    if type_name == "bool":
        return _field(number, 0, _varint(1 if value else 0))
    if type_name == "double":
        return _field(number, 1, struct.pack("<d", value))
    if type_name.startswith("map<"):
        key_type, _, value_type = type_name[4:-1].partition(",")
        out = b""
        for key in sorted(value):
            entry = _encode_value(key_type, key, 1) + _encode_value(value_type, value[key], 2)
            out += _length_delimited(number, entry)
        return out
    return _length_delimited(number, encode_message(type_name, value))


def encode_message(name: str, value: Any) -> bytes:
    """
    A protobuf message from its JSON form, by the generated field tables
    (the subset of forms the tests send: objects, strings, maps, numbers,
    booleans and times).
    """
    form, fields = _protofields.MESSAGES[name]
    if form == "time":
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return _field(1, 0, _varint(int(moment.timestamp())))
    out = b""
    for number, json_name, type_name, flags in fields:
        if number == 0 or json_name not in value or value[json_name] is None:
            continue
        item = value[json_name]
        if "r" in flags:
            for element in item:
                out += _encode_value(type_name, element, number)
        else:
            out += _encode_value(type_name, item, number)
    return out


def encode_protobuf(obj: dict) -> bytes:
    """A Kubernetes protobuf request body, as client-go's typed clients send."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    group, _, version = api_version.rpartition("/")
    message = _protofields.KINDS.get((group, version, kind)) or _protofields.UNVERSIONED_KINDS[kind]
    type_meta = _length_delimited(1, api_version.encode()) + _length_delimited(2, kind.encode())
    raw = encode_message(message, obj)
    return PROTOBUF_MAGIC + _length_delimited(1, type_meta) + _length_delimited(2, raw)


# -- HTTP clients ------------------------------------------------------------------


class Answer:
    """A response: code, headers, body and the body as JSON."""

    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode() if values else None

    def headers_named(self, name: str) -> list[str]:
        return [value.decode() for value in self.headers.getRawHeaders(name.encode()) or ()]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.code} {self.body[:200]!r}>"


class Client:
    """Synchronous requests to a cluster's API through C{StubTreq}."""

    def __init__(self, cluster: KubeCluster, token: Optional[str]) -> None:
        self.cluster = cluster
        self.token = token
        self.stub = StubTreq(KubeAPI(cluster))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: Optional[str] = None,
        accept: Optional[str] = None,
        headers: Optional[dict] = None,
        token: Any = "",
    ) -> Answer:
        request_headers: dict[str, Any] = {}
        token = self.token if token == "" else token
        if token is not None:
            request_headers["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            request_headers["Content-Type"] = content_type
        if accept is not None:
            request_headers["Accept"] = accept
        request_headers.update(headers or {})
        results: list = []
        deferred = self.stub.request(
            method, "https://10.43.0.1" + path, headers=request_headers, data=body, allow_redirects=False
        )

        def collect(response: Any) -> Any:
            return response.content().addCallback(
                lambda content: results.append(Answer(response.code, response.headers, content))
            )

        deferred.addCallback(collect)
        deferred.addErrback(results.append)
        self.stub.flush()
        (result,) = results
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def get(self, path: str, **options: Any) -> Answer:
        return self.request("GET", path, **options)

    def post(self, path: str, body: Any, **options: Any) -> Answer:
        return self.request("POST", path, body, **options)

    def put(self, path: str, body: Any, **options: Any) -> Answer:
        return self.request("PUT", path, body, **options)

    def patch(self, path: str, body: Any, content_type: str, **options: Any) -> Answer:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.request("PATCH", path, body, content_type=content_type, **options)

    def delete(self, path: str, body: Any = None, **options: Any) -> Answer:
        return self.request("DELETE", path, body, **options)


class Connection:
    """
    One HTTP/1.1 connection to a cluster's site over a C{StringTransport}:
    requests are written as bytes and responses (chunked or not) parsed
    from what the server wrote, so keep-alive and streaming can be seen.
    """

    def __init__(self, cluster: KubeCluster, token: Optional[str]) -> None:
        self.token = token
        self.transport = StringTransport()
        self.channel = cluster.site.buildProtocol(None)
        self.channel.makeConnection(self.transport)
        self._consumed = 0

    def send(
        self, method: str, path: str, body: bytes = b"", headers: Optional[dict] = None
    ) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: 10.43.0.1:443"]
        if self.token is not None:
            lines.append(f"Authorization: Bearer {self.token}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def output(self) -> bytes:
        """Everything the server wrote since the last L{read}."""
        return self.transport.value()[self._consumed:]

    def read(self) -> tuple[int, dict[str, str], bytes, bool]:
        """
        Parse one response from what the server wrote: its status, headers
        (lower-case names), body so far (chunks joined) and whether it is
        complete; a complete response is consumed.
        """
        data = self.output()
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            raise AssertionError(f"no complete response head in {data[:200]!r}")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        code = int(status_line.split(" ")[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        consumed = len(head) + 4
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            complete = False
            position = 0
            while True:
                line_end = rest.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = int(rest[position:line_end], 16)
                if size == 0:
                    if rest[line_end + 2 : line_end + 4] == b"\r\n":
                        complete = True
                        position = line_end + 4
                    break
                chunk_end = line_end + 2 + size
                if len(rest) < chunk_end + 2:
                    break
                body += rest[line_end + 2 : chunk_end]
                position = chunk_end + 2
            if complete:
                self._consumed += consumed + position
            return code, headers, body, complete
        length = int(headers.get("content-length", "0"))
        body = rest[:length]
        complete = len(body) == length
        if complete:
            self._consumed += consumed + length
        return code, headers, body, complete

    def events(self) -> list[dict]:
        """The watch events in the current (streaming) response."""
        _, _, body, _ = self.read()
        return [json.loads(line) for line in body.splitlines() if line]

    def close(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone("client went away")))


# -- tests --------------------------------------------------------------------------


class APITestCase(SynchronousTestCase):
    """A fresh cluster and an authenticated client per test."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.cluster = new_cluster(self.clock)
        self.token = add_account(self.cluster)
        self.client = Client(self.cluster, self.token)

    def create_namespace(self, name: str) -> dict:
        answer = self.client.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.assertEqual(answer.code, 201, answer)
        return answer.json

    def configmap(self, name: str, namespace: str = "default", **fields: Any) -> dict:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **fields.pop("metadata", {})}}
        obj.update(fields)
        answer = self.client.post(f"/api/v1/namespaces/{namespace}/configmaps", obj)
        self.assertEqual(answer.code, 201, answer)
        return answer.json


class NonResourceTests(APITestCase):
    def test_version_is_public(self) -> None:
        """
        /version answers without credentials with the template's version,
        indented as the apiserver writes it; a wrong token is 401 even
        there.
        """
        answer = self.client.get("/version", token=None)
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("Content-Type"), "application/json")
        self.assertEqual(answer.json["gitVersion"], "v1.28.15")
        self.assertTrue(answer.body.startswith(b'{\n  "major": "1"'))
        refused = self.client.get("/version", token="not-a-token")
        self.assertEqual(refused.code, 401)
        self.assertEqual(
            refused.json,
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
        )

    def test_health(self) -> None:
        for path in ("/readyz?timeout=45s", "/healthz", "/livez"):
            answer = self.client.get(path, accept="application/json, */*")
            self.assertEqual((answer.code, answer.body), (200, b"ok"), path)
            self.assertEqual(answer.header("Content-Type"), "text/plain; charset=utf-8")
        verbose = self.client.get("/readyz?verbose", token=None)
        lines = verbose.body.decode().splitlines()
        self.assertEqual(lines[0], "[+]ping ok")
        self.assertIn("[+]informer-sync ok", lines)
        self.assertEqual(lines[-1], "readyz check passed")
        self.assertEqual(self.client.get("/readyz/etcd").body, b"ok")
        self.assertEqual(self.client.get("/readyz/nothing").code, 404)

    def test_unauthenticated_resources(self) -> None:
        """k3s runs without anonymous access: resources need a token."""
        answer = self.client.get("/api/v1/namespaces/kube-system", token=None)
        self.assertEqual(answer.code, 401)
        self.assertEqual(answer.json["reason"], "Unauthorized")

    def test_openid(self) -> None:
        configuration = self.client.get("/.well-known/openid-configuration", token=None)
        self.assertEqual(configuration.code, 200)
        self.assertEqual(configuration.json["issuer"], "https://kubernetes.default.svc.cluster.local")
        self.assertEqual(configuration.json["jwks_uri"], f"https://{ADDRESS}/openid/v1/jwks")
        keys = self.client.get("/openid/v1/jwks", token=None)
        self.assertEqual(keys.header("Content-Type"), "application/jwk-set+json")
        self.assertEqual(keys.json, self.cluster.identity.json_web_key_set())

    def test_common_headers(self) -> None:
        answer = self.client.get("/api/v1/namespaces/kube-system")
        self.assertEqual(answer.header("Cache-Control"), "no-cache, private")
        self.assertEqual(len(answer.header("Audit-Id") or ""), 36)
        echoed = self.client.get("/version", headers={"Audit-ID": "given-by-client"})
        self.assertEqual(echoed.header("Audit-Id"), "given-by-client")
        self.assertIsNone(answer.header("Server"))

    def test_root(self) -> None:
        paths = self.client.get("/").json["paths"]
        self.assertIn("/apis/apps/v1", paths)
        self.assertIn("/version", paths)
        self.assertEqual(paths, sorted(paths))


class DiscoveryTests(APITestCase):
    def test_legacy(self) -> None:
        api = self.client.get("/api")
        self.assertEqual(api.json["kind"], "APIVersions")
        self.assertEqual(api.json["versions"], ["v1"])
        self.assertEqual(api.json["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.11:6443")
        groups = self.client.get("/apis").json
        self.assertEqual(groups["kind"], "APIGroupList")
        self.assertEqual(groups["groups"][0]["name"], "apiregistration.k8s.io")
        core = self.client.get("/api/v1").json
        names = {entry["name"] for entry in core["resources"]}
        self.assertTrue({"namespaces", "serviceaccounts/token", "pods/log", "namespaces/finalize"} <= names)
        apps = self.client.get("/apis/apps/v1").json
        self.assertEqual(apps["groupVersion"], "apps/v1")
        self.assertEqual(self.client.get("/apis/apps").json["kind"], "APIGroup")

    def test_aggregated(self) -> None:
        """
        client-go's Accept gets aggregated discovery, v2 preferred, with the
        matching Content-Type, an ETag that answers 304, and Vary.
        """
        accept = (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        )
        answer = self.client.get("/apis", accept=accept)
        self.assertEqual(answer.header("Content-Type"), "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        self.assertEqual(answer.json["kind"], "APIGroupDiscoveryList")
        self.assertEqual(answer.header("Vary"), "Accept")
        etag = answer.header("ETag")
        cached = self.client.get("/apis", accept=accept, headers={"If-None-Match": etag})
        self.assertEqual((cached.code, cached.body), (304, b""))
        beta = self.client.get(
            "/api", accept="application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        )
        self.assertEqual(beta.json["apiVersion"], "apidiscovery.k8s.io/v2beta1")
        self.assertEqual(beta.header("Content-Type"), "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")

    def test_unknown(self) -> None:
        # No API group claims these: the end of kube-apiserver's handler
        # chain (Go's http.NotFound) answers.
        for path in ("/apis/k3s.cattle.io/v1", "/apis/nothing.test", "/apis/nothing.test/v1/things", "/nothing"):
            for method in ("GET", "POST"):
                answer = self.client.request(method, path, {} if method == "POST" else None)
                self.assertEqual(answer.code, 404, (method, path))
                self.assertEqual(answer.header("Content-Type"), "text/plain; charset=utf-8", path)
                self.assertEqual(answer.body, b"404 page not found\n", (method, path))
        # Known API groups answer a Status for what they do not serve.
        for path in ("/apis/apps/v9", "/api/v2", "/api/v1/ksnothings", "/apis/apps/v1/ksnothings"):
            answer = self.client.get(path)
            self.assertEqual(answer.code, 404, path)
            self.assertEqual(
                answer.json,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "the server could not find the requested resource",
                    "reason": "NotFound",
                    "details": {},
                    "code": 404,
                },
            )

    def test_openapi_v3(self) -> None:
        root = self.client.get("/openapi/v3", accept="application/json, */*")
        self.assertEqual(root.code, 200)
        url = root.json["paths"]["apis/apps/v1"]["serverRelativeURL"]
        self.assertIn("?hash=", url)
        document = self.client.get(url, accept="application/json")
        self.assertEqual(document.code, 200)
        self.assertEqual(document.header("Cache-Control"), "public, immutable")
        patch = document.json["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        self.assertEqual(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment")
        moved = self.client.get("/openapi/v3/apis/apps/v1?hash=0000", accept="application/json")
        self.assertEqual(moved.code, 301)
        self.assertEqual(moved.header("Location"), url)
        self.assertEqual(self.client.get("/openapi/v3/apis/nothing/v1").code, 404)

    def test_openapi_v2(self) -> None:
        """Only JSON: the protobuf-only Accept kubectl's fallback sends is 406."""
        refused = self.client.get("/openapi/v2", accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
        self.assertEqual((refused.code, refused.body), (406, b""))
        document = self.client.get("/openapi/v2", accept="application/json")
        self.assertEqual(document.code, 200)
        self.assertIn("io.k8s.api.apps.v1.Deployment", document.json["definitions"])


class ReadTests(APITestCase):
    def test_get(self) -> None:
        answer = self.client.get("/api/v1/namespaces/kube-system?timeout=5s", accept="application/vnd.kubernetes.protobuf,application/json")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("Content-Type"), "application/json")
        self.assertEqual((answer.json["kind"], answer.json["apiVersion"]), ("Namespace", "v1"))
        missing = self.client.get("/api/v1/namespaces/default/configmaps/missing")
        self.assertEqual(missing.code, 404)
        self.assertEqual(missing.json["message"], 'configmaps "missing" not found')
        self.assertEqual(missing.json["details"], {"name": "missing", "kind": "configmaps"})

    def test_bad_timeout(self) -> None:
        answer = self.client.get("/api/v1/namespaces/kube-system?timeout=soon")
        self.assertEqual(answer.code, 400)
        self.assertEqual(
            answer.json["message"], 'invalid timeout specified in the request URL - time: invalid duration "soon"'
        )

    def test_list_and_pagination(self) -> None:
        first = self.client.get("/api/v1/nodes?limit=1").json
        self.assertEqual(first["kind"], "NodeList")
        self.assertEqual(len(first["items"]), 1)
        token = first["metadata"]["continue"]
        self.assertEqual(first["metadata"]["remainingItemCount"], 1)
        second = self.client.get("/api/v1/nodes?limit=1&continue=" + token).json
        self.assertNotEqual(first["items"][0]["metadata"]["name"], second["items"][0]["metadata"]["name"])
        self.assertNotIn("continue", second["metadata"])
        empty = self.client.get("/api/v1/namespaces/empty/configmaps").json
        self.assertEqual(empty["items"], [])

    def test_selectors(self) -> None:
        pods = self.client.get("/api/v1/pods?labelSelector=k8s-app%3Dkube-dns").json["items"]
        self.assertEqual({pod["metadata"]["labels"]["k8s-app"] for pod in pods}, {"kube-dns"})
        windows = self.client.get("/api/v1/nodes?labelSelector=kubernetes.io%2Fos%3Dwindows&limit=1").json
        self.assertEqual(windows["items"], [])
        self.configmap("picked")
        selected = self.client.get(
            "/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault,metadata.name%3Dpicked"
        ).json["items"]
        self.assertEqual([item["metadata"]["name"] for item in selected], ["picked"])
        by_type = self.client.get("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fservice-account-token").json
        self.assertTrue(by_type["items"])

    def test_selector_errors(self) -> None:
        bad = self.client.get("/api/v1/namespaces/default/configmaps?labelSelector=a%3D%3Db%3D%3Dc")
        self.assertEqual((bad.code, bad.json["reason"]), (400, "BadRequest"))
        unsupported = self.client.get("/api/v1/configmaps?fieldSelector=spec.foo%3Dbar")
        self.assertEqual(unsupported.code, 400)
        self.assertEqual(
            unsupported.json["message"],
            '"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"',
        )
        pods = self.client.get("/api/v1/pods?fieldSelector=spec.foo%3Dbar")
        self.assertEqual(pods.json["message"], "field label not supported: spec.foo")
        on_node = self.client.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnowhere")
        self.assertEqual(on_node.json["items"], [])

    def test_all_namespaces_path_is_read_only(self) -> None:
        answer = self.client.post("/api/v1/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        self.assertEqual(answer.code, 405)
        self.assertEqual(self.client.get("/api/v1/configmaps/x").code, 404)
        self.assertEqual(self.client.get("/api/v1/namespaces/default/nodes").code, 404)

    def test_resource_version_too_large(self) -> None:
        answer = self.client.get("/api/v1/namespaces/default/configmaps?resourceVersion=999999999")
        self.assertEqual(answer.code, 504)
        self.assertEqual(answer.json["details"]["causes"][0]["reason"], "ResourceVersionTooLarge")
        self.assertEqual(answer.header("Retry-After"), "1")

    def test_sendinitialevents_on_list(self) -> None:
        answer = self.client.get("/api/v1/namespaces/default/configmaps?sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=")
        self.assertEqual(answer.code, 422)
        # Every cause ValidateListOptions finds, in its order.
        self.assertEqual(
            [(cause["field"], cause["message"]) for cause in answer.json["details"]["causes"]],
            [
                (
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ),
                ("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for list"),
            ],
        )


class ContentNegotiationTests(APITestCase):
    def test_table(self) -> None:
        answer = self.client.get("/api/v1/namespaces/kube-system/pods", accept=TABLE + ",application/json")
        self.assertEqual(answer.header("Content-Type"), "application/json")
        table = answer.json
        self.assertEqual((table["kind"], table["apiVersion"]), ("Table", "meta.k8s.io/v1"))
        self.assertEqual(table["columnDefinitions"][0]["name"], "Name")
        self.assertEqual(table["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        full = self.client.get("/api/v1/namespaces/kube-system/pods?includeObject=Object", accept=TABLE).json
        self.assertEqual(full["rows"][0]["object"]["kind"], "Pod")
        single = self.client.get("/api/v1/nodes/c-test-server-1", accept=TABLE).json
        self.assertEqual(len(single["rows"]), 1)
        invalid = self.client.get("/api/v1/nodes?includeObject=All", accept=TABLE)
        self.assertEqual(invalid.code, 400)

    def test_partial_object_metadata(self) -> None:
        listed = self.client.get(
            "/api/v1/namespaces", accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        ).json
        self.assertEqual(listed["kind"], "PartialObjectMetadataList")
        self.assertEqual(set(listed["items"][0]), {"kind", "apiVersion", "metadata"})
        one = self.client.get(
            "/api/v1/namespaces/default", accept="application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
        ).json
        self.assertEqual(one["metadata"]["name"], "default")
        wrong = self.client.get("/api/v1/namespaces", accept="application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
        self.assertEqual(wrong.code, 406)

    def test_protobuf_only_is_not_acceptable(self) -> None:
        answer = self.client.get("/api/v1/namespaces/default", accept="application/vnd.kubernetes.protobuf")
        self.assertEqual(answer.code, 406)
        self.assertEqual(
            answer.json["message"],
            "only the following media types are accepted: application/json, application/yaml, "
            "application/vnd.kubernetes.protobuf",
        )

    def test_yaml(self) -> None:
        answer = self.client.get("/api/v1/namespaces/default", accept="application/yaml")
        self.assertEqual(answer.header("Content-Type"), "application/yaml")
        self.assertIn(b"kind: Namespace", answer.body)

    def test_pretty(self) -> None:
        answer = self.client.get("/api/v1/namespaces/default?pretty=true")
        self.assertTrue(answer.body.startswith(b'{\n  "apiVersion"') or answer.body.startswith(b'{\n  "kind"'))


class WriteTests(APITestCase):
    def test_create(self) -> None:
        created = self.configmap("one", data={"a": "1"})
        self.assertEqual(created["metadata"]["namespace"], "default")
        self.assertTrue(created["metadata"]["uid"])
        again = self.client.post("/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}})
        self.assertEqual((again.code, again.json["reason"]), (409, "AlreadyExists"))
        nowhere = self.client.post("/api/v1/namespaces/nowhere/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        self.assertEqual((nowhere.code, nowhere.json["message"]), (404, 'namespaces "nowhere" not found'))

    def test_generate_name(self) -> None:
        created = self.client.post(
            "/api/v1/namespaces/default/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "cattle-token-"}},
        ).json
        self.assertRegex(created["metadata"]["name"], r"^cattle-token-[bcdfghjklmnpqrstvwxz2456789]{5}$")

    def test_dry_run(self) -> None:
        answer = self.client.post(
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}},
        )
        self.assertEqual(answer.code, 201)
        self.assertEqual(self.client.get("/api/v1/namespaces/default/configmaps/dry").code, 404)
        wrong = self.client.post(
            "/api/v1/namespaces/default/configmaps?dryRun=Some",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}},
        )
        self.assertEqual(wrong.code, 422)
        self.assertIn('CreateOptions.meta.k8s.io "" is invalid', wrong.json["message"])

    def test_field_validation(self) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv"}, "data": {"a": "1"}, "bogus": 1}
        strict = self.client.post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict", body)
        self.assertEqual(strict.code, 400)
        self.assertEqual(
            strict.json["message"],
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"',
        )
        warned = self.client.post("/api/v1/namespaces/default/configmaps?fieldValidation=Warn", body)
        self.assertEqual(warned.code, 201)
        self.assertEqual(warned.headers_named("Warning"), ['299 - "unknown field \\"bogus\\""'])
        self.assertNotIn("bogus", warned.json)
        body["metadata"]["name"] = "fv2"
        ignored = self.client.post("/api/v1/namespaces/default/configmaps?fieldValidation=Ignore", body)
        self.assertEqual(ignored.headers_named("Warning"), [])
        self.assertNotIn("bogus", ignored.json)
        invalid = self.client.post("/api/v1/namespaces/default/configmaps?fieldValidation=Loose", body)
        self.assertEqual(invalid.code, 422)
        duplicate = self.client.post(
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d"}}',
            content_type="application/json",
        )
        self.assertEqual(duplicate.code, 400)
        self.assertIn('duplicate field "name"', duplicate.json["message"])

    def test_update_conflict(self) -> None:
        created = self.configmap("u", data={"a": "1"})
        updated = self.client.put("/api/v1/namespaces/default/configmaps/u", {**created, "data": {"a": "2"}})
        self.assertEqual(updated.code, 200)
        self.assertNotEqual(updated.json["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"])
        stale = self.client.put("/api/v1/namespaces/default/configmaps/u", {**created, "data": {"a": "3"}})
        self.assertEqual((stale.code, stale.json["reason"]), (409, "Conflict"))
        mismatch = self.client.put("/api/v1/namespaces/default/configmaps/other", {**created})
        self.assertEqual(mismatch.code, 400)

    def test_namespace_put_keeps_finalizers(self) -> None:
        """What Rancher's namespace-auth handler does, and its 409 retry."""
        namespace = self.client.get("/api/v1/namespaces/default").json
        changed = json.loads(json.dumps(namespace))
        changed["metadata"]["finalizers"] = ["controller.cattle.io/namespace-auth"]
        changed["metadata"].setdefault("annotations", {})["field.cattle.io/projectId"] = "c-x:p-y"
        answer = self.client.put("/api/v1/namespaces/default", changed)
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json["metadata"]["finalizers"], ["controller.cattle.io/namespace-auth"])
        self.assertEqual(self.client.put("/api/v1/namespaces/default", changed).code, 409)

    def test_status_subresource(self) -> None:
        deployment = self.client.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns").json
        deployment["status"] = {**deployment.get("status", {}), "observedGeneration": 99}
        deployment["spec"] = {**deployment["spec"], "replicas": 5}
        answer = self.client.put("/apis/apps/v1/namespaces/kube-system/deployments/coredns/status", deployment)
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.json["status"]["observedGeneration"], 99)
        self.assertNotEqual(answer.json["spec"]["replicas"], 5)
        status = self.client.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns/status").json
        self.assertEqual(status["kind"], "Deployment")

    def test_scale(self) -> None:
        scale = self.client.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale").json
        self.assertEqual((scale["kind"], scale["apiVersion"]), ("Scale", "autoscaling/v1"))
        self.assertEqual(scale["status"]["selector"], "k8s-app=kube-dns")
        scale["spec"]["replicas"] = 3
        updated = self.client.put("/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale", scale)
        self.assertEqual(updated.json["spec"]["replicas"], 3)
        deployment = self.client.get("/apis/apps/v1/namespaces/kube-system/deployments/coredns").json
        self.assertEqual(deployment["spec"]["replicas"], 3)
        patched = self.client.patch(
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale",
            {"spec": {"replicas": 2}},
            "application/merge-patch+json",
        )
        self.assertEqual(patched.json["spec"]["replicas"], 2)

    def test_body_limit(self) -> None:
        """
        A body over the limit is not kept and is answered 413 (on the
        cluster's own site, which bounds bodies as they arrive, and behind
        any other).
        """
        body = json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": "x" * MAX_REQUEST_BODY_BYTES}}
        ).encode()
        answer = self.client.post("/api/v1/namespaces/default/configmaps", body, content_type="application/json")
        self.assertEqual(answer.code, 413)
        self.assertEqual(answer.json["message"], f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}")
        connection = Connection(self.cluster, self.token)
        connection.send("POST", "/api/v1/namespaces/default/configmaps", body, {"Content-Type": "application/json"})
        code, _, response, complete = connection.read()
        self.assertEqual((code, complete), (413, True))
        self.assertEqual(json.loads(response)["reason"], "RequestEntityTooLarge")

    def test_yaml_body(self) -> None:
        body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  when: 2024-01-01T00:00:00Z\n"
        answer = self.client.post("/api/v1/namespaces/default/configmaps", body, content_type="application/yaml")
        self.assertEqual(answer.code, 201, answer)
        self.assertEqual(answer.json["data"]["when"], "2024-01-01T00:00:00Z")

    def test_unsupported_body(self) -> None:
        answer = self.client.post("/api/v1/namespaces/default/configmaps", b"x", content_type="text/plain")
        self.assertEqual((answer.code, answer.json["reason"]), (415, "UnsupportedMediaType"))


class PatchTests(APITestCase):
    def test_merge_and_json_patch(self) -> None:
        self.configmap("p", data={"a": "1"})
        merged = self.client.patch("/api/v1/namespaces/default/configmaps/p", {"data": {"b": "2"}}, "application/merge-patch+json")
        self.assertEqual(merged.json["data"], {"a": "1", "b": "2"})
        patched = self.client.patch(
            "/api/v1/namespaces/default/configmaps/p",
            [{"op": "remove", "path": "/data/a"}, {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}],
            "application/json-patch+json",
        )
        self.assertEqual(patched.json["data"], {"b": "2"})
        self.assertEqual(patched.json["metadata"]["labels"], {"x": "y"})
        failed = self.client.patch(
            "/api/v1/namespaces/default/configmaps/p", [{"op": "test", "path": "/data/b", "value": "3"}], "application/json-patch+json"
        )
        self.assertEqual((failed.code, failed.json["reason"]), (422, "Invalid"))
        stale = self.client.patch(
            "/api/v1/namespaces/default/configmaps/p", {"metadata": {"resourceVersion": "1"}}, "application/merge-patch+json"
        )
        self.assertEqual(stale.code, 409)
        missing = self.client.patch("/api/v1/namespaces/default/configmaps/nope", {}, "application/merge-patch+json")
        self.assertEqual(missing.code, 404)

    def test_strategic_merge(self) -> None:
        """Containers and env merge by name, as kubectl apply relies on."""
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "coredns", "env": [{"name": "ADDED", "value": "1"}], "image": "coredns:2"}
                        ]
                    }
                }
            }
        }
        answer = self.client.patch(
            "/apis/apps/v1/namespaces/kube-system/deployments/coredns?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
            patch,
            "application/strategic-merge-patch+json",
        )
        self.assertEqual(answer.code, 200, answer)
        containers = answer.json["spec"]["template"]["spec"]["containers"]
        self.assertEqual(len(containers), 1)
        self.assertEqual(containers[0]["image"], "coredns:2")
        self.assertEqual(containers[0]["env"], [{"name": "ADDED", "value": "1"}])
        self.assertIn("args", containers[0])
        self.assertEqual(answer.json["metadata"]["generation"], 2)

    def test_unsupported_patch_type(self) -> None:
        answer = self.client.patch("/api/v1/namespaces/default", {}, "text/plain")
        self.assertEqual(answer.code, 415)
        self.assertEqual(answer.json["message"], "415: Unsupported Media Type")

    def test_apply(self) -> None:
        """Server-side apply, approximated: creates, then merges."""
        applied = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
        created = self.client.patch(
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=test", applied, "application/apply-patch+yaml"
        )
        self.assertEqual(created.code, 201, created)
        again = self.client.patch(
            "/api/v1/namespaces/default/configmaps/applied?fieldManager=test",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  b: '2'\n",
            "application/apply-patch+yaml",
        )
        self.assertEqual(again.code, 200)
        self.assertEqual(again.json["data"], {"a": "1", "b": "2"})
        unmanaged = self.client.patch("/api/v1/namespaces/default/configmaps/applied", applied, "application/apply-patch+yaml")
        self.assertEqual(unmanaged.code, 422)
        self.assertIn("fieldManager: Required value", unmanaged.json["message"])

    def test_custom_resources(self) -> None:
        """A CRD created through the API is served; strategic merge is 415."""
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.test"},
            "spec": {
                "group": "example.test",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
                    }
                ],
            },
        }
        self.assertEqual(self.client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).code, 201)
        self.assertEqual(self.client.get("/apis/example.test/v1").code, 200)
        widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
        self.assertEqual(self.client.post("/apis/example.test/v1/namespaces/default/widgets", widget).code, 201)
        smp = self.client.patch(
            "/apis/example.test/v1/namespaces/default/widgets/w", {"spec": {"size": 2}}, "application/strategic-merge-patch+json"
        )
        self.assertEqual(smp.code, 415)
        self.assertEqual(
            smp.json["message"],
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
        merged = self.client.patch(
            "/apis/example.test/v1/namespaces/default/widgets/w", {"spec": {"size": 2}}, "application/merge-patch+json"
        )
        self.assertEqual(merged.json["spec"]["size"], 2)
        strict = self.client.post(
            "/apis/example.test/v1/namespaces/default/widgets?fieldValidation=Strict",
            {**widget, "metadata": {"name": "w2"}, "spec": {"size": 1, "color": "red"}},
        )
        self.assertEqual(strict.code, 400)
        self.assertIn('unknown field "spec.color"', strict.json["message"])


class DeleteTests(APITestCase):
    def test_finalizers(self) -> None:
        self.configmap("f", metadata={"finalizers": ["example.test/hold"]})
        answer = self.client.delete("/api/v1/namespaces/default/configmaps/f")
        self.assertEqual(answer.code, 200)
        self.assertTrue(answer.json["metadata"]["deletionTimestamp"])
        held = self.client.get("/api/v1/namespaces/default/configmaps/f").json
        released = self.client.put("/api/v1/namespaces/default/configmaps/f", {**held, "metadata": {**held["metadata"], "finalizers": []}})
        self.assertEqual(released.code, 200)
        self.assertEqual(self.client.get("/api/v1/namespaces/default/configmaps/f").code, 404)

    def test_delete_options(self) -> None:
        created = self.configmap("d")
        wrong = self.client.delete(
            "/api/v1/namespaces/default/configmaps/d",
            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-it"}},
        )
        self.assertEqual((wrong.code, wrong.json["reason"]), (409, "Conflict"))
        invalid = self.client.delete("/api/v1/namespaces/default/configmaps/d?propagationPolicy=Sometimes")
        self.assertEqual(invalid.code, 422)
        answer = self.client.delete(
            "/api/v1/namespaces/default/configmaps/d?gracePeriodSeconds=0",
            {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background", "preconditions": {"uid": created["metadata"]["uid"]}},
        )
        self.assertEqual(answer.code, 200)
        self.assertEqual(
            answer.json,
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": "d", "kind": "configmaps", "uid": created["metadata"]["uid"]}},
        )

    def test_protobuf_delete_options(self) -> None:
        """Rancher's typed client deletes Secrets with a protobuf body."""
        created = self.client.post(
            "/api/v1/namespaces/default/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gone"}}
        ).json
        body = encode_protobuf(
            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": created["metadata"]["uid"]}, "propagationPolicy": "Background"}
        )
        answer = self.client.delete(
            "/api/v1/namespaces/default/secrets/gone?timeout=10s", body, headers={"Content-Type": "application/vnd.kubernetes.protobuf"}
        )
        self.assertEqual(answer.code, 200, answer)
        self.assertEqual(self.client.get("/api/v1/namespaces/default/secrets/gone").code, 404)

    def test_delete_collection(self) -> None:
        self.configmap("c1", metadata={"labels": {"group": "x"}})
        self.configmap("c2", metadata={"labels": {"group": "x"}})
        self.configmap("c3")
        answer = self.client.delete("/api/v1/namespaces/default/configmaps?labelSelector=group%3Dx")
        self.assertEqual(answer.json["kind"], "ConfigMapList")
        self.assertEqual(sorted(item["metadata"]["name"] for item in answer.json["items"]), ["c1", "c2"])
        left = [item["metadata"]["name"] for item in self.client.get("/api/v1/namespaces/default/configmaps").json["items"]]
        self.assertIn("c3", left)
        self.assertNotIn("c1", left)
        self.assertEqual(self.client.delete("/api/v1/namespaces").code, 405)

    def test_namespace_termination(self) -> None:
        self.create_namespace("doomed")
        # Content that cannot go yet keeps the namespace terminating.
        self.configmap("held", "doomed", metadata={"finalizers": ["example.test/hold"]})
        answer = self.client.delete("/api/v1/namespaces/doomed")
        self.assertEqual(answer.json["status"]["phase"], "Terminating")
        refused = self.client.post("/api/v1/namespaces/doomed/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
        self.assertEqual((refused.code, refused.json["reason"]), (403, "Forbidden"))
        self.assertEqual(refused.json["details"]["causes"][0]["reason"], "NamespaceTerminating")
        immortal = self.client.delete("/api/v1/namespaces/kube-system")
        self.assertEqual(immortal.code, 403)

    def test_namespace_finalize(self) -> None:
        self.create_namespace("finalized")
        self.configmap("held", "finalized", metadata={"finalizers": ["example.test/hold"]})
        self.client.delete("/api/v1/namespaces/finalized")
        namespace = self.client.get("/api/v1/namespaces/finalized").json
        namespace["spec"]["finalizers"] = []
        answer = self.client.put("/api/v1/namespaces/finalized/finalize", namespace)
        self.assertEqual(answer.code, 200, answer)
        self.assertEqual(self.client.get("/api/v1/namespaces/finalized").code, 404)


class ProtobufTests(APITestCase):
    def test_create_secret(self) -> None:
        """Rancher's impersonation token Secret, as its typed client sends it."""
        self.create_namespace("cattle-impersonation-system")
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "generateName": "cattle-impersonation-u-abc-token-",
                "namespace": "cattle-impersonation-system",
                "annotations": {"kubernetes.io/service-account.name": "cattle-impersonation-u-abc"},
            },
            "data": {"extra": base64.b64encode(b"\x00\xff").decode()},
            "type": "kubernetes.io/service-account-token",
        }
        answer = self.client.post(
            "/api/v1/namespaces/cattle-impersonation-system/secrets?timeout=10s",
            encode_protobuf(secret),
            content_type="application/vnd.kubernetes.protobuf",
            accept="application/vnd.kubernetes.protobuf,application/json",
        )
        self.assertEqual(answer.code, 201, answer)
        created = answer.json
        self.assertTrue(created["metadata"]["name"].startswith("cattle-impersonation-u-abc-token-"))
        self.assertEqual(created["type"], "kubernetes.io/service-account-token")
        self.assertEqual(created["data"]["extra"], secret["data"]["extra"])

    def test_kind_must_match(self) -> None:
        body = encode_protobuf({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
        answer = self.client.post("/api/v1/namespaces/default/configmaps", body, content_type="application/vnd.kubernetes.protobuf")
        self.assertEqual((answer.code, answer.json["reason"]), (400, "BadRequest"))
        broken = self.client.post("/api/v1/namespaces/default/secrets", b"k8s\x00\x0a\xff", content_type="application/vnd.kubernetes.protobuf")
        self.assertEqual(broken.code, 400)

    def test_update_service_account(self) -> None:
        account = self.client.get("/api/v1/namespaces/kube-system/serviceaccounts/tester").json
        account["metadata"]["annotations"] = {"rancher.io/service-account.secret-ref": "kube-system/tester-token"}
        answer = self.client.put(
            "/api/v1/namespaces/kube-system/serviceaccounts/tester", encode_protobuf(account), content_type="application/vnd.kubernetes.protobuf"
        )
        self.assertEqual(answer.code, 200, answer)
        self.assertEqual(answer.json["metadata"]["annotations"], account["metadata"]["annotations"])
        stale = self.client.put(
            "/api/v1/namespaces/kube-system/serviceaccounts/tester", encode_protobuf(account), content_type="application/vnd.kubernetes.protobuf"
        )
        self.assertEqual(stale.code, 409)


class DefaultingTests(APITestCase):
    """Writes are answered as the real server stores them: decoded, defaulted."""

    def deployment(self, name: str) -> dict:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "env": [{"name": "E", "value": ""}]}]},
                },
            },
        }

    def test_json_and_protobuf_alike(self) -> None:
        """
        A Deployment written as JSON (kubectl) and as protobuf (client-go's
        typed client) is stored with the same defaults.
        """
        path = "/apis/apps/v1/namespaces/default/deployments"
        from_json = self.client.post(path, self.deployment("a"))
        from_protobuf = self.client.post(
            path, encode_protobuf(self.deployment("b")), content_type="application/vnd.kubernetes.protobuf"
        )
        self.assertEqual((from_json.code, from_protobuf.code), (201, 201))

        def spec(answer: Any) -> dict:
            body = answer.json["spec"]
            template = body["template"]
            template["metadata"]["labels"] = {}
            body["selector"] = {}
            return body

        self.assertEqual(spec(from_json), spec(from_protobuf))
        created = from_json.json["spec"]
        self.assertEqual(
            (created["replicas"], created["revisionHistoryLimit"], created["progressDeadlineSeconds"]), (1, 10, 600)
        )
        (container,) = created["template"]["spec"]["containers"]
        self.assertEqual(container["env"], [{"name": "E"}])
        self.assertEqual(container["imagePullPolicy"], "IfNotPresent")
        self.assertEqual(from_json.json["status"], {})

    def test_service_gets_a_cluster_ip(self) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        answer = self.client.post("/api/v1/namespaces/default/services", service)
        self.assertEqual(answer.code, 201, answer)
        spec = answer.json["spec"]
        self.assertTrue(spec["clusterIP"].startswith("10.43."), spec)
        self.assertEqual(spec["clusterIPs"], [spec["clusterIP"]])
        self.assertEqual((spec["type"], spec["sessionAffinity"]), ("ClusterIP", "None"))
        self.assertEqual(spec["ports"], [{"protocol": "TCP", "port": 80, "targetPort": 8080}])
        # The address stays with the object.
        read = self.client.get("/api/v1/namespaces/default/services/web").json
        self.assertEqual(read["spec"]["clusterIP"], spec["clusterIP"])


class AuthenticationTests(APITestCase):
    def test_announced_token(self) -> None:
        """
        With the controllers' bootstrap, the token the tunnel params
        announce authenticates as cattle-system/cattle.
        """
        if self.cluster.controllers is None:
            raise SkipTest("the controllers are not installed")
        token = self.cluster.identity.tunnel_params().token
        review = self.client.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            token=token,
        )
        self.assertEqual(review.code, 201)
        self.assertEqual(review.json["status"]["userInfo"]["username"], "system:serviceaccount:cattle-system:cattle")

    def test_token_secret_filled_in_create_response(self) -> None:
        """
        Rancher's impersonation Secret gets its token in the create
        response, and that token authenticates.
        """
        if self.cluster.controllers is None:
            raise SkipTest("the controllers are not installed")
        self.client.post(
            "/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "imp"}}
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"generateName": "imp-token-", "annotations": {"kubernetes.io/service-account.name": "imp"}},
            "type": "kubernetes.io/service-account-token",
        }
        created = self.client.post(
            "/api/v1/namespaces/default/secrets", encode_protobuf(secret), content_type="application/vnd.kubernetes.protobuf"
        )
        self.assertEqual(created.code, 201, created)
        token = base64.b64decode(created.json["data"]["token"]).decode()
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 200)

    def test_token_secret(self) -> None:
        """A legacy token works while its Secret holds it and its account lives."""
        self.assertEqual(self.client.get("/api/v1/namespaces/kube-system").code, 200)
        self.client.delete("/api/v1/namespaces/kube-system/secrets/tester-token")
        self.assertEqual(self.client.get("/api/v1/namespaces/kube-system").code, 401)

    def test_recreated_account(self) -> None:
        other = add_account(self.cluster, "default", "other")
        client = Client(self.cluster, other)
        self.assertEqual(client.get("/version").code, 200)
        self.client.delete("/api/v1/namespaces/default/serviceaccounts/other")
        self.cluster.store.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "other"}})
        self.assertEqual(client.get("/api/v1/namespaces").code, 401)

    def test_other_clusters_token(self) -> None:
        foreign = ClusterIdentity.generate(ADDRESS, "c-other", datetime.fromtimestamp(START, timezone.utc))
        account = self.client.get("/api/v1/namespaces/kube-system/serviceaccounts/tester").json
        token = foreign.mint_legacy_token("kube-system", "tester", account["metadata"]["uid"], "tester-token")
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 401)

    def test_impersonation(self) -> None:
        """Rancher's proxy headers: the effective user is the impersonated one."""
        headers = {
            "Impersonate-User": "u-admin",
            "Impersonate-Group": "system:cattle:authenticated",
            "Impersonate-Extra-Principalid": "local://u-admin",
            "Impersonate-Extra-Requesthost": "localhost:8443",
        }
        answer = self.client.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            headers=headers,
        )
        self.assertEqual(answer.code, 201)
        self.assertEqual(
            answer.json["status"]["userInfo"],
            {
                "username": "u-admin",
                "groups": ["system:cattle:authenticated", "system:authenticated"],
                "extra": {"principalid": ["local://u-admin"], "requesthost": ["localhost:8443"]},
            },
        )
        plain = self.client.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews", {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        ).json["status"]["userInfo"]
        self.assertEqual(plain["username"], "system:serviceaccount:kube-system:tester")
        self.assertEqual(plain["groups"], ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"])
        lonely = self.client.get("/api/v1/namespaces", headers={"Impersonate-Group": "system:masters"})
        self.assertEqual(lonely.code, 400)
        self.assertIn("without impersonating a user", lonely.json["message"])

    def test_token_request(self) -> None:
        answer = self.client.post(
            "/api/v1/namespaces/kube-system/serviceaccounts/tester/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        self.assertEqual(answer.code, 201, answer)
        self.assertEqual(answer.json["spec"], {"audiences": list(API_AUDIENCES), "expirationSeconds": 3600})
        self.assertEqual(answer.json["status"]["expirationTimestamp"], "2025-06-15T16:06:40Z")
        token = answer.json["status"]["token"]
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 200)
        short = self.client.post(
            "/api/v1/namespaces/kube-system/serviceaccounts/tester/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 599}},
        )
        self.assertEqual(short.code, 422)
        self.assertIn("may not specify a duration less than 10 minutes", short.json["message"])
        missing = self.client.post(
            "/api/v1/namespaces/kube-system/serviceaccounts/nobody/token", {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"}
        )
        self.assertEqual(missing.code, 404)
        self.clock.advance(3600 + 61)
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 401)

    def test_bound_token_request_in_protobuf(self) -> None:
        """Rancher's TokenRequest for an impersonated ServiceAccount, bound to a Secret."""
        bound = self.client.post(
            "/api/v1/namespaces/kube-system/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bound"}}
        ).json
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": "tester", "namespace": "kube-system"},
            "spec": {
                "audiences": ["https://kubernetes.default.svc.cluster.local"],
                "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "bound", "uid": bound["metadata"]["uid"]},
            },
        }
        answer = self.client.post(
            "/api/v1/namespaces/kube-system/serviceaccounts/tester/token",
            encode_protobuf(request),
            content_type="application/vnd.kubernetes.protobuf",
        )
        self.assertEqual(answer.code, 201, answer)
        token = answer.json["status"]["token"]
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 200)
        self.client.delete("/api/v1/namespaces/kube-system/secrets/bound")
        self.assertEqual(self.client.get("/api/v1/namespaces", token=token).code, 401)

    def test_reviews(self) -> None:
        review = self.client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": self.token}},
        )
        self.assertEqual(review.code, 201)
        self.assertTrue(review.json["status"]["authenticated"])
        self.assertEqual(review.json["status"]["user"]["username"], "system:serviceaccount:kube-system:tester")
        rejected = self.client.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "garbage"}},
        ).json
        self.assertEqual(rejected["status"], {"user": {}})
        access = self.client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}},
        ).json
        self.assertTrue(access["status"]["allowed"])
        subject = self.client.post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "u-x", "resourceAttributes": {"verb": "get"}}},
        ).json
        self.assertTrue(subject["status"]["allowed"])
        rules = self.client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}},
        ).json
        self.assertEqual(rules["status"]["resourceRules"][0]["verbs"], ["*"])
        self.assertEqual(self.client.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").code, 405)


class PodSubresourceTests(APITestCase):
    def test_log(self) -> None:
        answer = self.client.get("/api/v1/namespaces/kube-system/pods/coredns-ccb96694c-t4k8z/log?tailLines=1")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("Content-Type"), "text/plain")
        self.assertEqual(answer.body, b"ready\n")
        wrong = self.client.get("/api/v1/namespaces/kube-system/pods/coredns-ccb96694c-t4k8z/log?container=nope")
        self.assertEqual((wrong.code, wrong.json["message"]), (400, "container nope is not valid for pod coredns-ccb96694c-t4k8z"))

    def test_exec_has_no_kubelet(self) -> None:
        answer = self.client.post("/api/v1/namespaces/kube-system/pods/coredns-ccb96694c-t4k8z/exec?command=sh", b"")
        self.assertEqual(answer.code, 500)
        self.assertEqual(answer.json["kind"], "Status")
        self.assertIn("error dialing backend", answer.json["message"])
        self.assertEqual(self.client.put("/api/v1/namespaces/kube-system/pods/coredns-ccb96694c-t4k8z/exec", b"").code, 405)
        self.assertEqual(self.client.get("/api/v1/namespaces/kube-system/pods/missing/portforward").code, 404)


    def test_eviction_and_binding(self) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        created = self.client.post("/api/v1/namespaces/default/pods", pod)
        self.assertEqual(created.code, 201)
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "c-test-server-1"}}
        if not self.client.get("/api/v1/namespaces/default/pods/p").json["spec"].get("nodeName"):
            # Without the controllers nothing schedules it: bind it here.
            bound = self.client.post("/api/v1/namespaces/default/pods/p/binding", binding)
            self.assertEqual((bound.code, bound.json["status"]), (201, "Success"))
            self.assertEqual(self.client.get("/api/v1/namespaces/default/pods/p").json["spec"]["nodeName"], "c-test-server-1")
        again = self.client.post("/api/v1/namespaces/default/pods/p/binding", binding)
        self.assertEqual(again.code, 409)
        self.assertIn("is already assigned to node", again.json["message"])
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"}}
        evicted = self.client.post("/api/v1/namespaces/default/pods/p/eviction", eviction)
        self.assertEqual((evicted.code, evicted.json["code"]), (201, 201))
        remaining = self.client.get("/api/v1/namespaces/default/pods/p")
        self.assertTrue(remaining.code == 404 or remaining.json["metadata"].get("deletionTimestamp"))


class ComputedResourceTests(APITestCase):
    def test_component_statuses(self) -> None:
        listed = self.client.get("/api/v1/componentstatuses").json
        self.assertEqual([item["metadata"]["name"] for item in listed["items"]], ["scheduler", "controller-manager", "etcd-0"])
        self.assertEqual(self.client.get("/api/v1/componentstatuses/etcd-0").json["conditions"][0]["status"], "True")
        self.assertEqual(self.client.get("/api/v1/componentstatuses/nothing").code, 404)

    def test_timeout_on_long_running_requests_is_ignored(self) -> None:
        """The request deadline (and its parameter) is not applied to logs and watches."""
        answer = self.client.get("/api/v1/namespaces/kube-system/pods/coredns-ccb96694c-t4k8z/log?timeout=x")
        self.assertEqual(answer.code, 200)
        self.assertEqual(self.client.get("/readyz?timeout=x").code, 400)


class MetricsTests(APITestCase):
    def test_node_and_pod_metrics(self) -> None:
        """metrics-server's API, which the template's APIService announces."""
        nodes = self.client.get("/apis/metrics.k8s.io/v1beta1/nodes").json
        self.assertEqual(nodes["kind"], "NodeMetricsList")
        names = sorted(item["metadata"]["name"] for item in nodes["items"])
        self.assertEqual(names, sorted(item["metadata"]["name"] for item in self.client.get("/api/v1/nodes").json["items"]))
        self.assertTrue(nodes["items"][0]["usage"]["cpu"].endswith("m"))
        one = self.client.get(f"/apis/metrics.k8s.io/v1beta1/nodes/{names[0]}").json
        self.assertEqual(one["usage"], nodes["items"][0]["usage"])
        pods = self.client.get("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods").json
        self.assertEqual(pods["kind"], "PodMetricsList")
        self.assertTrue(all(item["containers"] for item in pods["items"]))
        self.assertEqual(self.client.get("/apis/metrics.k8s.io/v1beta1/nodes/nowhere").code, 404)
        self.assertEqual(self.client.get("/apis/metrics.k8s.io/v1beta1/nodes?watch=true").code, 405)


class ErrorTests(APITestCase):
    def test_malformed_json(self) -> None:
        answer = self.client.post("/api/v1/namespaces/default/configmaps", b'{"apiVersion":"v1","kind":"ConfigMap",', content_type="application/json")
        self.assertEqual(answer.code, 400)
        self.assertEqual(
            answer.json["message"],
            "the object provided is unrecognized (must be of type ConfigMap): "
            "couldn't get version/kind; json parse error: unexpected end of JSON input "
            '({"apiVersion":"v1","kind":"Con ...)',
        )
        garbage = self.client.post("/api/v1/namespaces/default/configmaps", b"{x}", content_type="application/json")
        self.assertIn("invalid character 'x' looking for beginning of object key string", garbage.json["message"])

    def test_method_not_allowed(self) -> None:
        answer = self.client.put("/api/v1/namespaces/default/configmaps", {})
        self.assertEqual(
            answer.json,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "the server does not allow this method on the requested resource",
                "reason": "MethodNotAllowed",
                "details": {},
                "code": 405,
            },
        )

    def test_internal_error_keeps_the_connection(self) -> None:
        """
        A failure inside a handler is logged and answered 500 InternalError;
        the kept-alive connection serves the next request.
        """

        class Broken:
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            def get(self, *args: Any) -> Any:
                raise RuntimeError("injected")

        store = self.cluster.store
        events: list = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        connection = Connection(self.cluster, self.token)
        self.cluster.store = Broken()  # type: ignore[assignment]
        connection.send("GET", "/api/v1/namespaces/default/configmaps/x")
        code, headers, body, complete = connection.read()
        self.assertEqual((code, complete), (500, True))
        self.assertEqual(json.loads(body)["reason"], "InternalError")
        self.assertNotIn(b"Traceback", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any(event.get("log_failure") is not None for event in events))
        self.cluster.store = store
        connection.send("GET", "/api/v1/namespaces/default")
        code, _, body, complete = connection.read()
        self.assertEqual((code, complete), (200, True))
        self.assertFalse(connection.transport.disconnecting)

    def test_counters(self) -> None:
        self.client.get("/api/v1/namespaces/default")
        self.client.get("/api/v1/namespaces/default/configmaps/missing")
        self.client.post("/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "counted"}})
        requests = self.cluster.stats.requests
        self.assertEqual(requests[("get", 200)], 1)
        self.assertEqual(requests[("get", 404)], 1)
        self.assertEqual(requests[("create", 201)], 1)
        self.assertGreater(self.cluster.stats.bytes_sent, 0)
        self.assertGreater(self.cluster.stats.bytes_received, 0)


class GoDurationTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_go_duration("45s"), 45)
        self.assertEqual(parse_go_duration("1m30s"), 90)
        self.assertAlmostEqual(parse_go_duration("250ms"), 0.25)
        self.assertEqual(parse_go_duration("0"), 0)
        for text, message in [
            ("5", 'time: missing unit in duration "5"'),
            ("5x", 'time: unknown unit "x" in duration "5x"'),
            ("", 'time: invalid duration ""'),
        ]:
            with self.assertRaises(ValueError) as raised:
                parse_go_duration(text)
            self.assertEqual(str(raised.exception), message)


class ClusterTests(SynchronousTestCase):
    def test_route(self) -> None:
        """Only the announced address is served, with one cached factory."""
        cluster = new_cluster()
        factory = cluster.route("tcp", ADDRESS)
        self.assertIsInstance(factory, TLSMemoryBIOFactory)
        self.assertIs(cluster.route("tcp", ADDRESS), factory)
        self.assertIsNone(cluster.route("tcp", "10.43.0.1:80"))
        self.assertIsNone(cluster.route("unix", ADDRESS))

    def test_export_and_restore(self) -> None:
        """A restored cluster has its objects back, and serves the CRDs created at runtime."""
        cluster = new_cluster()
        token = add_account(cluster)
        client = Client(cluster, token)
        cluster.store.create(CONFIG_MAPS, "default", {"metadata": {"name": "kept"}})
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.test"},
            "spec": {
                "group": "example.test",
                "scope": "Cluster",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}],
            },
        }
        self.assertEqual(client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).code, 201)
        changes = json.loads(json.dumps(cluster.export_changes()))
        restored = KubeCluster.create(
            default_template(), cluster.context, cluster.identity, cluster.clock, restored_changes=changes
        )
        self.assertEqual(restored.store.get(CONFIG_MAPS, "default", "kept")["metadata"]["name"], "kept")
        self.assertEqual(restored.store.resource_version, cluster.store.resource_version)
        self.assertEqual(Client(restored, token).get("/apis/example.test/v1").code, 200)


class _ClientTransport:
    """The Rancher end of one tunnelled stream: bytes it writes go to the session."""

    disconnecting = False

    def __init__(self, outbox: list[bytes]) -> None:
        self._outbox = outbox

    def write(self, data: bytes) -> None:
        self._outbox.append(data)

    def writeSequence(self, data: list) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.disconnecting = True

    def getPeer(self) -> None:
        return None

    def getHost(self) -> None:
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class TunnelHarness:
    """
    What Rancher does to reach a cluster's API: a remotedialer Connect to
    the announced address on the main tunnel's session, then TLS that
    trusts only the cluster CA (and checks its IP SAN), then HTTP/1.1 with
    twisted.web's client protocol. Bytes move only when L{pump}ed.
    """

    def __init__(self, cluster: KubeCluster, clock: Clock, conn_id: int = 7) -> None:
        self.clock = clock
        self.conn_id = conn_id
        self.sent: list[frames.Message] = []
        self.router = StreamRouter(cluster.route, clock, "c-test")
        self.session = Session(lambda data: self.sent.append(frames.decode(data)), self.router)
        self.router.session = self.session
        self._to_server: list[bytes] = []
        self.http = HTTP11ClientProtocol()
        client_factory = TLSMemoryBIOFactory(
            ssl.optionsForClientTLS("10.43.0.1", trustRoot=ssl.Certificate.loadPEM(cluster.identity.ca_pem)),
            True,
            Factory.forProtocol(lambda: self.http),
            clock=clock,
        )
        self.client = client_factory.buildProtocol(None)
        self.receive(frames.Connect(conn_id, "tcp", ADDRESS))
        self.client.makeConnection(_ClientTransport(self._to_server))
        self.pump()

    def receive(self, message: frames.Message) -> None:
        """A message from Rancher to the session."""
        self.session.receive(frames.encode(message, 1))

    def pump(self) -> None:
        for _ in range(200):
            self.clock.advance(0)
            moved = False
            while self._to_server:
                self.receive(frames.Data(self.conn_id, self._to_server.pop(0)))
                moved = True
            messages, self.sent[:] = list(self.sent), []
            for message in messages:
                if isinstance(message, frames.Data):
                    self.client.dataReceived(message.data)
                    moved = True
            if not moved and not self.clock.getDelayedCalls():
                return

    def request(self, path: str, token: str, complete: bool = True) -> list:
        """
        GET C{path}; the result list gets C{(code, body)} once the body is
        complete, and the body's chunks are appended to C{chunks} as they
        arrive (for streams).
        """
        results: list = []
        self.chunks: list[bytes] = []
        headers = Headers({b"Host": [b"10.43.0.1:443"], b"Authorization": [f"Bearer {token}".encode()]})
        deferred = self.http.request(ClientRequest(b"GET", path.encode(), headers, None, persistent=True))
        chunks = self.chunks

        def body(response: Any) -> None:
            class Collect(Protocol):
                def dataReceived(self, data: bytes) -> None:
                    chunks.append(data)

                def connectionLost(self, reason: Failure) -> None:
                    reason.trap(ResponseDone)
                    results.append((response.code, b"".join(chunks)))

            response.deliverBody(Collect())

        deferred.addCallback(body)
        deferred.addErrback(results.append)
        self.pump()
        return results


class RealStackTests(SynchronousTestCase):
    """
    Rancher's path: a remotedialer Connect to the announced address on the
    main tunnel's session, TLS that trusts only the cluster's CA and checks
    its IP SAN, and HTTP/1.1 with a kept-alive connection.
    """

    def test_through_the_tunnel(self) -> None:
        clock = Clock()
        cluster = new_cluster(clock)
        token = add_account(cluster)
        tunnel = TunnelHarness(cluster, clock)

        def get(path: str) -> tuple[int, bytes]:
            (result,) = tunnel.request(path, token)
            if isinstance(result, Failure):
                result.raiseException()
            return result

        code, body = get("/version")
        self.assertEqual((code, json.loads(body)["gitVersion"]), (200, "v1.28.15"))
        code, body = get("/api/v1/namespaces/kube-system")
        self.assertEqual((code, json.loads(body)["metadata"]["name"]), (200, "kube-system"))
        # Both answers came over the one stream Rancher opened.
        self.assertEqual(tunnel.session.stream_ids(), [7])
        refused: list[frames.Message] = []
        tunnel.session._send = lambda data: refused.append(frames.decode(data))
        tunnel.receive(frames.Connect(9, "tcp", "10.43.0.1:80"))
        self.assertIsInstance(refused[0], frames.Error)

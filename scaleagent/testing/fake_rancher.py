# -*- test-case-name: tests.test_rancher_client -*-
"""
An in-memory imitation of Rancher's management API, shaped like the real
responses recorded from Rancher 2.14, for unit tests of the Rancher client
and everything above it (served through treq's C{StubTreq}, no sockets).

The Go stand-in in C{tests/standin} is the integration-level imitation; this
one is for fast, deterministic tests of error handling and retries.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any, Optional

from klein import Klein
from twisted.web.iweb import IRequest

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _random(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


class FakeRancher:
    """
    @ivar api_token: the bearer token accepted (C{Bearer <api_token>}).
    @ivar provisioning_v2: when false, C{/v1/provisioning.cattle.io.clusters}
        answers 404, as on servers without it.
    @ivar id_delay: GETs of a new v1 cluster before C{status.clusterName}
        appears (Rancher's controller fills it asynchronously).
    @ivar url_delay: token list reads before C{manifestUrl} appears.
    @ivar cache_lag: GETs of a new v1 cluster answered 404, as steve's
        cache can before it has seen the create.
    @ivar fail_next: HTTP statuses to answer the next requests with.
    @ivar requests: (method, path) of every request, in order.
    """

    app = Klein()

    def __init__(self, api_token: str = "token-abcde:secret", server_url: str = "https://rancher.test") -> None:
        self.api_token = api_token
        self.server_url = server_url
        self.provisioning_v2 = True
        self.id_delay = 1
        self.url_delay = 1
        self.cache_lag = 0
        self.fail_next: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self.v1_clusters: dict[str, dict] = {}
        self.v3_clusters: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.cacerts = ""
        self._reads: dict[str, int] = {}
        self._lagging: dict[str, int] = {}
        self._rng = random.Random(7)

    # -- helpers ---------------------------------------------------------

    def _json(self, request: IRequest, status: int, body: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()

    def _error(self, request: IRequest, status: int, code: str, message: str) -> bytes:
        return self._json(
            request, status, {"type": "error", "status": str(status), "code": code, "message": message}
        )

    def _gate(self, request: IRequest, authenticated: bool = True) -> Optional[bytes]:
        self.requests.append((request.method.decode(), request.uri.decode()))
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self._error(request, status, "ServerError", f"injected {status}")
        if authenticated:
            header = (request.getHeader(b"authorization") or b"").decode("latin-1")
            if header != f"Bearer {self.api_token}":
                return self._error(request, 401, "Unauthorized", "must authenticate")
        return None

    def _ensure_token(self, cluster_id: str) -> dict:
        if cluster_id not in self.tokens:
            self.tokens[cluster_id] = {
                "id": f"{cluster_id}:default-token",
                "type": "clusterRegistrationToken",
                "clusterId": cluster_id,
                "name": "default-token",
                "token": _random(54, self._rng),
                "manifestUrl": "",
            }
        return self.tokens[cluster_id]

    def manifest_for(self, token: str) -> str:
        token_b64 = base64.b64encode(token.encode()).decode()
        url_b64 = base64.b64encode(self.server_url.encode()).decode()
        return f"""
apiVersion: v1
kind: Secret
metadata:
  name: cattle-credentials-0123456789
  namespace: cattle-system
type: Opaque
data:
  url: "{url_b64}"
  token: "{token_b64}"
  namespace: ""
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cattle-cluster-agent
  namespace: cattle-system
spec:
  template:
    spec:
      containers:
        - name: cluster-register
          image: rancher/rancher-agent:v2.14.4
          env:
          - name: CATTLE_SERVER
            value: "{self.server_url}"
          - name: CATTLE_CA_CHECKSUM
            value: ""
          - name: CATTLE_CREDENTIAL_NAME
            value: cattle-credentials-0123456789
          - name: CATTLE_SERVER_VERSION
            value: v2.14.4
"""

    # -- v1 provisioning clusters -------------------------------------------

    @app.route("/v1/provisioning.cattle.io.clusters", methods=["POST"])
    def create_v1(self, request: IRequest) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if not self.provisioning_v2:
            return self._error(request, 404, "NotFound", "404 page not found")
        body = json.loads(request.content.read())
        name = body["metadata"]["name"]
        if name in self.v1_clusters:
            return self._json(
                request,
                409,
                {
                    "type": "error",
                    "status": "409",
                    "code": "AlreadyExists",
                    "message": f'clusters.provisioning.cattle.io "{name}" already exists',
                },
            )
        body.setdefault("status", {})
        self.v1_clusters[name] = body
        self._reads[name] = 0
        self._lagging[name] = self.cache_lag
        return self._json(request, 201, body)

    @app.route("/v1/provisioning.cattle.io.clusters/<namespace>/<name>", methods=["GET"])
    def get_v1(self, request: IRequest, namespace: str, name: str) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        cluster = self.v1_clusters.get(name)
        if cluster is not None and self._lagging.get(name, 0) > 0:
            self._lagging[name] -= 1
            cluster = None
        if cluster is None or namespace != "fleet-default":
            return self._error(request, 404, "NotFound", f'clusters "{name}" not found')
        self._reads[name] += 1
        if self._reads[name] > self.id_delay and not cluster["status"].get("clusterName"):
            cluster_id = "c-m-" + _random(8, self._rng)
            cluster["status"]["clusterName"] = cluster_id
            self.v3_clusters[cluster_id] = {"id": cluster_id, "name": name, "state": "pending"}
            self._ensure_token(cluster_id)
        return self._json(request, 200, cluster)

    @app.route("/v1/provisioning.cattle.io.clusters/<namespace>/<name>", methods=["DELETE"])
    def delete_v1(self, request: IRequest, namespace: str, name: str) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        cluster = self.v1_clusters.pop(name, None)
        if cluster is None:
            return self._error(request, 404, "NotFound", f'clusters "{name}" not found')
        cluster_id = cluster["status"].get("clusterName")
        self.v3_clusters.pop(cluster_id, None)
        self.tokens.pop(cluster_id, None)
        return self._json(request, 200, cluster)

    # -- v3 ------------------------------------------------------------------

    @app.route("/v3/clusters", methods=["POST"])
    def create_v3(self, request: IRequest) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        body = json.loads(request.content.read())
        if any(c["name"] == body["name"] for c in self.v3_clusters.values()):
            return self._error(request, 422, "NotUnique", f"Cluster name {body['name']} is already in use")
        cluster_id = "c-" + _random(5, self._rng)
        cluster = dict(body, id=cluster_id, state="initializing")
        self.v3_clusters[cluster_id] = cluster
        self._ensure_token(cluster_id)
        return self._json(request, 201, cluster)

    @app.route("/v3/clusters", methods=["GET"])
    def list_v3(self, request: IRequest) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        name = (request.args.get(b"name") or [b""])[0].decode()
        data = [c for c in self.v3_clusters.values() if not name or c.get("name") == name]
        return self._json(request, 200, {"type": "collection", "data": data})

    @app.route("/v3/clusters/<cluster_id>", methods=["GET"])
    def get_v3(self, request: IRequest, cluster_id: str) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        cluster = self.v3_clusters.get(cluster_id)
        if cluster is None:
            return self._error(request, 404, "NotFound", f"clusters.management.cattle.io \"{cluster_id}\" not found")
        return self._json(request, 200, cluster)

    @app.route("/v3/clusters/<cluster_id>", methods=["DELETE"])
    def delete_v3(self, request: IRequest, cluster_id: str) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        if self.v3_clusters.pop(cluster_id, None) is None:
            return self._error(request, 404, "NotFound", "not found")
        self.tokens.pop(cluster_id, None)
        return self._json(request, 200, {})

    @app.route("/v3/clusterregistrationtokens", methods=["GET"])
    def list_tokens(self, request: IRequest) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        cluster_id = (request.args.get(b"clusterId") or [b""])[0].decode()
        token = self.tokens.get(cluster_id)
        data = []
        if token is not None:
            key = "token:" + cluster_id
            self._reads[key] = self._reads.get(key, 0) + 1
            if self._reads[key] > self.url_delay:
                token["manifestUrl"] = (
                    f"{self.server_url}/v3/import/{token['token']}_{cluster_id}.yaml"
                )
            data.append(token)
        return self._json(request, 200, {"type": "collection", "data": data})

    @app.route("/v3/clusterregistrationtokens", methods=["POST"])
    def create_token(self, request: IRequest) -> bytes:
        refused = self._gate(request)
        if refused is not None:
            return refused
        body = json.loads(request.content.read())
        return self._json(request, 201, self._ensure_token(body["clusterId"]))

    @app.route("/v3/import/<filename>", methods=["GET"])
    def import_yaml(self, request: IRequest, filename: str) -> bytes:
        refused = self._gate(request, authenticated=False)
        if refused is not None:
            return refused
        token, _, rest = filename.partition("_")
        request.setHeader(b"content-type", b"text/plain")
        return self.manifest_for(token).encode()

    @app.route("/v3/settings/<name>", methods=["GET"])
    def setting(self, request: IRequest, name: str) -> bytes:
        refused = self._gate(request, authenticated=(name != "cacerts"))
        if refused is not None:
            return refused
        values = {"cacerts": self.cacerts, "server-version": "v2.14.4"}
        if name not in values:
            return self._error(request, 404, "NotFound", "not found")
        return self._json(request, 200, {"id": name, "type": "setting", "value": values[name]})

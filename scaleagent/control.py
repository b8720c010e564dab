# -*- test-case-name: tests.test_control -*-
"""
The control API users drive scaleagent with: create, list, inspect and
delete simulated clusters, health and Prometheus metrics.

    POST   /clusters            {"name": "sim-1"}  or  {"count": 100, "prefix": "sim-"}
    GET    /clusters            every cluster, and counts by state
    GET    /clusters/<name>     one cluster in detail
    DELETE /clusters/<name>     close its tunnels, delete it in Rancher (?force=true:
                                forget it even if Rancher cannot be reached)
    GET    /healthz             200 when the daemon runs
    GET    /metrics             Prometheus text format

Bad requests change nothing and get a JSON body C{{"error": "..."}} with
400 (malformed), 404 (unknown cluster) or 409 (exists). When a control token
is configured every path but C{/healthz} needs C{Authorization: Bearer}.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Optional

from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from .fleet import Fleet, FleetError, validate_name
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

#: Largest request body accepted.
MAX_BODY = 64 * 1024

#: Most clusters one bulk request may create.
MAX_BULK = 10000


class ControlAPI:
    """
    @param fleet: the clusters being controlled.
    @param token: the bearer token requests must carry, or L{None}.
    """

    app = Klein()
    _log = Logger()

    def __init__(self, fleet: Fleet, token: Optional[str] = None) -> None:
        self.fleet = fleet
        self._token = token.encode("utf-8") if token else None

    def resource(self) -> Any:
        return self.app.resource()

    # -- helpers -----------------------------------------------------------------

    def _json(self, request: IRequest, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body, indent=2, sort_keys=False).encode("utf-8") + b"\n"

    def _error(self, request: IRequest, code: int, message: str) -> bytes:
        return self._json(request, code, {"error": message})

    def _authorised(self, request: IRequest) -> bool:
        if self._token is None:
            return True
        header = request.getHeader(b"authorization") or b""
        if isinstance(header, str):
            header = header.encode("latin-1")
        scheme, _, credentials = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)

    def _refuse(self, request: IRequest) -> Optional[bytes]:
        if self._authorised(request):
            return None
        request.setHeader(b"www-authenticate", b'Bearer realm="scaleagent"')
        return self._error(request, 401, "a valid control token is required")

    def _body(self, request: IRequest) -> Any:
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise FleetError(400, f"request body larger than {MAX_BODY} bytes")
        if not raw.strip():
            raise FleetError(400, "request body is empty; expected JSON")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise FleetError(400, f"request body is not valid JSON: {e}") from None

    # -- routes ------------------------------------------------------------------

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: IRequest) -> bytes:
        return self._json(request, 200, {"status": "ok", "clusters": self.fleet.summary()})

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        request.setHeader(b"content-type", METRICS_CONTENT_TYPE.encode())
        return self.fleet.metrics.render()

    @app.route("/clusters", methods=["GET"])
    def list_clusters(self, request: IRequest) -> bytes:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        clusters = [cluster.describe() for _, cluster in sorted(self.fleet.clusters.items())]
        return self._json(request, 200, {"summary": self.fleet.summary(), "clusters": clusters})

    @app.route("/clusters", methods=["POST"])
    def create_clusters(self, request: IRequest) -> bytes:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            names, bulk = self._names_to_create(self._body(request))
            created = self.fleet.add_many(names)
        except FleetError as e:
            return self._error(request, e.code, e.message)
        if not bulk:
            cluster = created[0]
            request.setHeader(b"location", f"/clusters/{cluster.name}".encode())
            return self._json(request, 202, cluster.describe())
        return self._json(
            request, 202, {"created": [c.name for c in created], "summary": self.fleet.summary()}
        )

    def _names_to_create(self, body: Any) -> tuple[list[str], bool]:
        """The names a create request asks for, and whether it is a bulk one."""
        if not isinstance(body, dict):
            raise FleetError(400, 'expected a JSON object: {"name": ...} or {"count": N, "prefix": ...}')
        unknown = set(body) - {"name", "count", "prefix", "start"}
        if unknown:
            raise FleetError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        if "name" in body:
            if {"count", "prefix", "start"} & set(body):
                raise FleetError(400, 'give either "name" or "count" with "prefix", not both')
            return [validate_name(body["name"])], False
        if "count" not in body:
            raise FleetError(400, 'missing "name" (or "count" and "prefix" for many)')
        count, prefix, start = body["count"], body.get("prefix", "sim-"), body.get("start")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BULK:
            raise FleetError(400, f'"count" must be a whole number from 1 to {MAX_BULK}')
        if not isinstance(prefix, str) or not prefix:
            raise FleetError(400, '"prefix" must be a non-empty string')
        if start is None:
            start = self._next_index(prefix)
        elif not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise FleetError(400, '"start" must be a whole number')
        return [validate_name(f"{prefix}{index}") for index in range(start, start + count)], True

    def _next_index(self, prefix: str) -> int:
        """One past the highest index already used with this prefix."""
        highest = 0
        for name in self.fleet.clusters:
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                highest = max(highest, int(name[len(prefix):]))
        return highest + 1

    @app.route("/clusters/<name>", methods=["GET"])
    def get_cluster(self, request: IRequest, name: str) -> bytes:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        cluster = self.fleet.clusters.get(name)
        if cluster is None:
            return self._error(request, 404, f"cluster {name} not found")
        return self._json(request, 200, cluster.describe())

    @app.route("/clusters/<name>", methods=["DELETE"])
    async def delete_cluster(self, request: IRequest, name: str) -> bytes:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        force = (request.args.get(b"force") or [b""])[0].lower() in (b"1", b"true", b"yes")
        try:
            await self.fleet.remove(name, force=force)
        except FleetError as e:
            return self._error(request, e.code, e.message)
        return self._json(request, 200, {"deleted": name})

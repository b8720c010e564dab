"""
C{python -m bench micro}: the synthetic Kubernetes API in-process, without
tunnel or network, to see what one request costs the daemon's CPU.

One cluster is built as the daemon builds it (default template, a fresh
identity with its cattle account, the bootstrap), on a deterministic clock.
Requests go through the same objects Rancher's streams reach:

  - C{http/...}: an HTTP/1.1 channel of the cluster's site on a memory
    transport, one kept-alive connection, requests parsed and answered by
    twisted.web and L{scaleagent.kube.api} (no TLS): GET, LIST, create,
    and watch events (ConfigMaps created through the API while watches are
    open on them).
  - C{tls/...}: the cluster's TLS + HTTP endpoint (what
    C{KubeCluster.route} serves) paired in memory with a pyOpenSSL client:
    a new connection (handshake, one GET /readyz) per iteration, and a
    request on a kept-alive TLS connection. Only the server side's calls are
    timed.
  - C{memory/...}: idle TLS API streams kept open after one request each,
    as Rancher's kept-alive clients leave them: Python heap (tracemalloc)
    and C heap (malloc, i.e. OpenSSL) per stream.

Each case runs for C{--micro-seconds}; the figure is per operation.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from . import report
from .report import kib
from .rig import log

ADDRESS = "10.43.0.1:443"
PROTOBUF = "application/vnd.kubernetes.protobuf, application/json"
JSON = "application/json"


def _build_cluster(clock: Any) -> Any:
    from scaleagent.config import DEFAULT_TEMPLATE_NAME, bundled_templates_dir
    from scaleagent.identity import ClusterIdentity
    from scaleagent.kube.cluster import KubeCluster
    from scaleagent.kube.template import ClusterContext, ClusterTemplate

    template = ClusterTemplate.load(bundled_templates_dir() / DEFAULT_TEMPLATE_NAME)
    now = datetime.fromtimestamp(clock.seconds(), timezone.utc)
    identity = ClusterIdentity.generate(ADDRESS, "micro", now)
    identity.ensure_cattle_account()
    context = ClusterContext("micro", "micro-seed", now - timedelta(days=1))
    return KubeCluster.create(template, context, identity, clock)


def _transport() -> Any:
    """A memory transport that takes the TCP options twisted.web sets."""
    from twisted.internet.testing import StringTransport

    class Transport(StringTransport):
        def setTcpNoDelay(self, enabled: bool) -> None:
            pass

        def setTcpKeepAlive(self, enabled: bool) -> None:
            pass

    return Transport()


class _Channel:
    """One kept-alive HTTP/1.1 connection to the cluster's site, in memory."""

    def __init__(self, cluster: Any, token: str, clock: Any) -> None:
        self.clock = clock
        self.transport = _transport()
        self.channel = cluster.site.buildProtocol(None)
        self.channel.makeConnection(self.transport)
        self.token = token

    def request(self, method: str, path: str, accept: str = JSON, body: bytes = b"", content_type: str = "") -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 10.43.0.1:443",
            f"Authorization: Bearer {self.token}",
            f"Accept: {accept}",
            "User-Agent: micro-bench",
        ]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
            lines.append(f"Content-Type: {content_type or JSON}")
        self.channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.clock.advance(0)
        out = self.transport.value()
        self.transport.clear()
        return out


def _rate(fn: Callable[[], Any], seconds: float, *, server_side: bool = False) -> dict[str, Any]:
    """
    Call C{fn} for about C{seconds} (at least 10 times); CPU time per call
    and calls per CPU-second. With C{server_side}, C{fn} returns the CPU
    seconds the server side spent and only those count: the in-memory
    client's own work (its half of TLS) is not the daemon's.
    """
    fn()  # warm-up (first-use caches)
    n = 0
    server_cpu = 0.0
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    while n < 10 or time.perf_counter() - wall0 < seconds:
        spent = fn()
        if server_side:
            server_cpu += spent
        n += 1
    cpu = server_cpu if server_side else time.process_time() - cpu0
    return {"n": n, "us_per_op": round(cpu / n * 1e6, 1), "per_second": round(n / cpu, 1)}


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def _http_cases(cluster: Any, token: str, clock: Any, seconds: float) -> dict[str, Any]:
    conn = _Channel(cluster, token, clock)
    # The Accept header of Rancher's controller clients; the daemon answers
    # JSON (it decodes protobuf request bodies but never encodes them).
    cases = {
        "readyz": ("/readyz", JSON),
        "get-kube-system": ("/api/v1/namespaces/kube-system", PROTOBUF),
        "list-nodes": ("/api/v1/nodes", PROTOBUF),
        "list-pods": ("/api/v1/pods", PROTOBUF),
        "list-clusterroles": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", PROTOBUF),
        "list-namespaces": ("/api/v1/namespaces", PROTOBUF),
        "discovery /api/v1": ("/api/v1", JSON),
    }
    out: dict[str, Any] = {}
    for name, (path, accept) in cases.items():
        first = conn.request("GET", path, accept)
        status = _status(first)
        head = first.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        content_type = next((line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.startswith("content-type:")), "")
        result = _rate(lambda: conn.request("GET", path, accept), seconds)
        result.update(status=status, response_bytes=len(first), content_type=content_type)
        out[name] = result
        log(f"  http/{name}: {result['us_per_op']} us ({status}, {len(first)} bytes, {content_type})")
    return out


def _write_cases(cluster: Any, token: str, clock: Any, seconds: float) -> dict[str, Any]:
    """ConfigMap creates through the API with 0, 1 and 12 watches open."""
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    out: dict[str, Any] = {}
    counter = [0]
    writer = _Channel(cluster, token, clock)

    def create() -> None:
        counter[0] += 1
        body = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"micro-{counter[0]}", "labels": {"bench": "micro"}},
                "data": {"key": "value" * 10},
            }
        ).encode()
        response = writer.request("POST", "/api/v1/namespaces/default/configmaps", JSON, body)
        if counter[0] == 1 and _status(response) != 201:
            raise RuntimeError(f"create failed: {response[:300]!r}")

    for watches, accept in ((0, JSON), (1, JSON), (1, PROTOBUF), (12, PROTOBUF)):
        watchers = []
        for _ in range(watches):
            w = _Channel(cluster, token, clock)
            head = w.request(
                "GET",
                "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&labelSelector=bench%3Dmicro",
                accept,
            )
            if _status(head) != 200:
                raise RuntimeError(f"watch failed: {head[:300]!r}")
            watchers.append(w)
        delivered = [0]

        def create_and_drain() -> None:
            create()
            clock.advance(0)
            for w in watchers:
                data = w.transport.value()
                if data:
                    delivered[0] += len(data)
                    w.transport.clear()

        result = _rate(create_and_drain, seconds)
        result["watch_bytes_per_event"] = round(delivered[0] / max(1, result["n"] + 1) / max(1, watches), 1) if watches else 0
        label = f"create-configmap, {watches} watch{'es' if watches != 1 else ''}" + (f" ({'protobuf' if accept == PROTOBUF else 'json'})" if watches else "")
        out[label] = result
        log(f"  http/{label}: {result['us_per_op']} us")
        for w in watchers:
            w.channel.connectionLost(Failure(ConnectionDone()))
        clock.advance(0)
    return out


class _TLSClient:
    """A pyOpenSSL client paired in memory with the cluster's TLS endpoint."""

    def __init__(self, cluster: Any, clock: Any, context: Any, factory: Any = None) -> None:
        from OpenSSL import SSL

        self.clock = clock
        factory = factory or cluster.route("tcp", ADDRESS)
        self.server = factory.buildProtocol(None)
        self.transport = _transport()
        self.server.makeConnection(self.transport)
        self.client = SSL.Connection(context, None)
        self.client.set_connect_state()
        self.server_seconds = 0.0

    def _pump(self) -> None:
        from OpenSSL import SSL

        for _ in range(20):
            moved = False
            try:
                data = self.client.bio_read(1 << 20)
            except SSL.WantReadError:
                data = b""
            if data:
                started = time.process_time()
                self.server.dataReceived(data)
                self.clock.advance(0)
                self.server_seconds += time.process_time() - started
                moved = True
            out = self.transport.value()
            if out:
                self.transport.clear()
                self.client.bio_write(out)
                moved = True
            if not moved:
                return

    def handshake(self) -> None:
        from OpenSSL import SSL

        for _ in range(10):
            try:
                self.client.do_handshake()
                return
            except SSL.WantReadError:
                self._pump()
        raise RuntimeError("TLS handshake did not finish")

    def get(self, path: str, token: str) -> bytes:
        from OpenSSL import SSL

        request = (
            f"GET {path} HTTP/1.1\r\nHost: 10.43.0.1:443\r\nAuthorization: Bearer {token}\r\n"
            f"Accept: {JSON}\r\nUser-Agent: micro-bench\r\n\r\n"
        ).encode()
        self.client.send(request)
        self._pump()
        out = b""
        while True:
            try:
                out += self.client.recv(1 << 20)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                break
        return out

    def close(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.server.connectionLost(Failure(ConnectionDone()))


def _client_context() -> Any:
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_alpn_protos([b"http/1.1"])
    context.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    return context


def _tls_cases(cluster: Any, token: str, clock: Any, seconds: float) -> dict[str, Any]:
    context = _client_context()
    out: dict[str, Any] = {}

    # A new connection per request: the cost of each stream Rancher opens.
    def new_connection() -> float:
        c = _TLSClient(cluster, clock, context)
        c.handshake()
        response = c.get("/readyz", token)
        if not response.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"readyz over TLS: {response[:200]!r}")
        c.close()
        return c.server_seconds

    out["new connection + GET /readyz (server side)"] = _rate(new_connection, seconds, server_side=True)

    kept = _TLSClient(cluster, clock, context)
    kept.handshake()

    def kept_get() -> float:
        before = kept.server_seconds
        kept.get("/api/v1/namespaces/kube-system", token)
        return kept.server_seconds - before

    out["kept-alive GET kube-system over TLS (server side)"] = _rate(kept_get, seconds, server_side=True)
    kept.close()
    for name, result in out.items():
        log(f"  tls/{name}: {result['us_per_op']} us")
    return out


def _stream_memory(cluster: Any, token: str, clock: Any, count: int = 300, tls12: bool = False) -> dict[str, Any]:
    """Idle TLS API streams after one request each: bytes per stream."""
    import twisted.internet.testing
    from OpenSSL import SSL
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from ._probe import _mallinfo, _short

    factory = None
    if tls12:
        # What the daemon would serve with TLS 1.2 as the highest version.
        factory = TLSMemoryBIOFactory(
            cluster.identity.server_context(SSL.TLS1_2_VERSION), False, cluster.site, clock=clock
        )
    context = _client_context()
    warm = _TLSClient(cluster, clock, context, factory)
    warm.handshake()
    warm.get("/readyz", token)
    gc.collect()
    c_heap0 = _mallinfo().get("in_use", 0)
    tracemalloc.start()
    clients = []
    for _ in range(count):
        c = _TLSClient(cluster, clock, context, factory)
        c.handshake()
        c.get("/api/v1/namespaces/kube-system", token)
        clients.append(c)
    # Drop the client ends (pyOpenSSL connections of this process): what
    # remains is the server side, as the daemon holds it.
    for c in clients:
        c.client = None
    gc.collect()
    # The memory transports are the benchmark's own (the daemon's stream
    # transports are counted in the fleet figures); leave them out: they are
    # made here and their buffers in twisted's StringTransport.
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, __file__),
            tracemalloc.Filter(False, twisted.internet.testing.__file__),
        ]
    )
    traced = sum(stat.size for stat in snapshot.statistics("filename"))
    tracemalloc.stop()
    c_heap1 = _mallinfo().get("in_use", 0)

    top = [
        {"where": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}", "bytes_per_stream": round(stat.size / count)}
        for stat in snapshot.statistics("lineno")[:12]
    ]
    for c in clients:
        c.close()
    clock.advance(0)
    result = {
        "streams": count,
        "python_bytes_per_stream": round(traced / count),
        "c_heap_bytes_per_stream": round((c_heap1 - c_heap0) / count),
        "top_python_lines": top,
        "tls": "1.2 at most" if tls12 else "1.3 (as served)",
        "note": "server side of an idle kept-alive API stream after one GET (client ends freed before measuring)",
    }
    if tls12:
        cluster.identity.server_context()  # the default context again
    log(
        f"  memory/idle TLS {'1.2' if tls12 else '1.3'} API stream: {kib(result['python_bytes_per_stream'])} KiB Python + "
        f"{kib(result['c_heap_bytes_per_stream'])} KiB C heap"
    )
    return result


def run_micro(opts: Any) -> dict[str, Any]:
    from twisted.internet.task import Clock

    seconds = opts.micro_seconds
    clock = Clock()
    clock.advance(time.time())
    log("micro: building one cluster")
    started = time.process_time()
    cluster = _build_cluster(clock)
    build_s = time.process_time() - started
    token = cluster.identity.tunnel_params().token
    result: dict[str, Any] = {
        "benchmark": "micro",
        "machine": report.machine(),
        "params": {"seconds_per_case": seconds},
        "cluster_build_ms": round(build_s * 1000, 1),
        "objects": cluster.store.count(),
    }
    result["http"] = _http_cases(cluster, token, clock, seconds)
    result["writes"] = _write_cases(cluster, token, clock, seconds)
    result["tls"] = _tls_cases(cluster, token, clock, seconds)
    result["stream_memory"] = _stream_memory(cluster, token, clock)
    result["stream_memory_tls12"] = _stream_memory(cluster, token, clock, tls12=True)
    lines = [
        f"scaleagent micro-benchmark (in-process, one cluster of {result['objects']} objects; "
        "CPU time per operation, operations per CPU-second)",
        f"  building the cluster (template, identity, bootstrap): {result['cluster_build_ms']} ms",
    ]
    for group in ("http", "writes", "tls"):
        for name, r in result[group].items():
            extra = f", {r['response_bytes']} bytes {r.get('content_type', '')}" if "response_bytes" in r else ""
            if r.get("watch_bytes_per_event"):
                extra += f", {r['watch_bytes_per_event']} bytes per watch event"
            lines.append(f"  {group + '/' + name:<58} {r['us_per_op']:>9.1f} us  {r['per_second']:>9.0f}/CPU-s{extra}")
    for key in ("stream_memory", "stream_memory_tls12"):
        sm = result[key]
        lines.append(
            f"  idle API stream, TLS {sm['tls']} (server side): {kib(sm['python_bytes_per_stream'])} KiB Python heap + "
            f"{kib(sm['c_heap_bytes_per_stream'])} KiB C heap (OpenSSL)"
        )
    for row in result["stream_memory"]["top_python_lines"][:6]:
        lines.append(f"      {row['bytes_per_stream']:>7} B  {row['where']}")
    path = report.write("micro", result, lines)
    print("\n".join(lines))
    log(f"results: bench/results/{path.name}")
    return result

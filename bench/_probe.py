"""
A small plain-HTTP server the benchmarks run inside the daemon process
(see L{bench._daemon}) to look at what the control API does not show: the
Python heap, a cProfile of the reactor thread and tracemalloc snapshots.

It listens on a loopback port of its own and writes the port number to the
file named by C{SCALEAGENT_BENCH_PROBE}. Nothing in it touches scaleagent's
objects; it only reads process-wide state, so the daemon measured is the
daemon as shipped plus this module (a few hundred KiB, present in the
baseline as well).

    GET  /heap                  counts and allocator statistics (cheap)
    GET  /heap?census=1         + a full gc.collect() (timed) and the most
                                numerous gc-tracked types (stops the reactor
                                for a few seconds with thousands of clusters)
    POST /profile?seconds=S     cProfile the reactor thread for S seconds;
                                ?out=FILE also dumps the raw stats there
    POST /tracemalloc/start?frames=N
    GET  /tracemalloc/snapshot?limit=N
    POST /tracemalloc/stop
    POST /trim                  malloc_trim(0): give free C heap back to the
                                system; RSS before and after
    GET  /lag?since=T           reactor lag: a timer due every 0.25 s
                                records how late it ran; per-second maxima
                                since wall-clock time T, and the garbage
                                collections (count, total and longest pause
                                by generation) in that time

The lag monitor starts with the probe: a reactor that is busy for a long
stretch (one slow call, or a long backlog) shows up as lag, which is what
delays pings, probes and watch events for every cluster at once.
"""

from __future__ import annotations

import cProfile
import ctypes
import ctypes.util
import functools
import gc
import io
import json
import os
import pstats
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter, deque
from typing import Any, Optional

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

# The daemon imports this module as bench._probe (bench/_daemon.py puts the
# repository on its path), so the report's helpers are at hand: one
# definition of a percentile for every figure.
from .report import percentile

_profile: Optional[cProfile.Profile] = None

#: Lag monitor: (second, max lag in that second), newest last.
LAG_TICK = 0.25
_lag: "deque[tuple[int, float]]" = deque(maxlen=4 * 3600)


class _LagMonitor:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.expected = time.monotonic() + LAG_TICK
        reactor.callLater(LAG_TICK, self.tick)

    def tick(self) -> None:
        now = time.monotonic()
        lag = max(0.0, now - self.expected)
        second = int(time.time())
        if _lag and _lag[-1][0] == second:
            if lag > _lag[-1][1]:
                _lag[-1] = (second, lag)
        else:
            _lag.append((second, lag))
        self.expected = now + LAG_TICK
        self.reactor.callLater(LAG_TICK, self.tick)


#: Garbage collections: (wall time, generation, seconds), newest last.
_gc_pauses: "deque[tuple[float, int, float]]" = deque(maxlen=100000)
_gc_started = [0.0]


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc_pauses.append((time.time(), info.get("generation", -1), time.perf_counter() - _gc_started[0]))


def gc_since(since: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for generation in (0, 1, 2):
        pauses = sorted(p for t, g, p in _gc_pauses if t >= since and g == generation)
        if pauses:
            out[f"gen{generation}"] = {
                "count": len(pauses),
                "total_s": round(sum(pauses), 3),
                "max_s": round(pauses[-1], 4),
            }
    return out


def lag_since(since: float) -> dict[str, Any]:
    rows = [(t, round(lag, 3)) for t, lag in _lag if t >= since]
    lags = sorted(lag for _, lag in rows)
    out: dict[str, Any] = {"seconds": len(rows)}
    if lags:
        out.update(
            max=lags[-1],
            p50=round(percentile(lags, 0.50), 3),
            p99=round(percentile(lags, 0.99), 3),
            over_1s=sum(1 for lag in lags if lag >= 1.0),
            over_5s=sum(1 for lag in lags if lag >= 5.0),
            worst=sorted(rows, key=lambda row: -row[1])[:5],
        )
    out["gc"] = gc_since(since)
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (find_library runs a subprocess)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def _mallinfo() -> dict[str, int]:
    """glibc's mallinfo2(): the C heap (large Python objects, OpenSSL...)."""
    try:
        mallinfo2 = _libc().mallinfo2
    except (OSError, AttributeError):
        return {}
    info = mallinfo2()
    return {
        # bytes obtained with brk/sbrk, and with mmap (big blocks)
        "arena": info.arena,
        "mmapped": info.hblkhd,
        # in use / free within those
        "in_use": info.uordblks + info.hblkhd,
        "free": info.fordblks,
    }


_PYMALLOC_KEYS = {
    "# arenas allocated total": "arenas_allocated_total",
    "# arenas reclaimed": "arenas_reclaimed",
    "# arenas highwater mark": "arenas_highwater",
    "# arenas allocated current": "arenas_current",
    "# bytes in allocated blocks": "bytes_in_allocated_blocks",
    "# bytes in available blocks": "bytes_in_available_blocks",
    "# bytes lost to pool headers": "bytes_pool_headers",
    "# bytes lost to quantization": "bytes_quantization",
    "# bytes lost to arena alignment": "bytes_arena_alignment",
    "Total": "total",
}


def _pymalloc_stats() -> dict[str, int]:
    """The summary of sys._debugmallocstats() (pymalloc's arenas)."""
    if not hasattr(sys, "_debugmallocstats"):
        return {}
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
    out: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^(#[^=]+?|Total)\s*=\s*([\d,]+)\s*$", line.strip())
        if match and match.group(1).strip() in _PYMALLOC_KEYS:
            out[_PYMALLOC_KEYS[match.group(1).strip()]] = int(match.group(2).replace(",", ""))
    return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> dict[str, Any]:
    """glibc's malloc_trim(0), timed, with RSS and mallinfo around it."""
    before = {"rss": _rss(), "mallinfo": _mallinfo()}
    started = time.perf_counter()
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError) as e:
        return {"error": str(e)}
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "before": before, "after": {"rss": _rss(), "mallinfo": _mallinfo()}}


def heap(census: bool = False, limit: int = 40) -> dict[str, Any]:
    result: dict[str, Any] = {
        "gc_count": gc.get_count(),
        "gc_thresholds": gc.get_threshold(),
        "gc_collections": [s.get("collections", 0) for s in gc.get_stats()],
        "gc_frozen": gc.get_freeze_count(),
        "allocated_blocks": sys.getallocatedblocks(),
        "mallinfo": _mallinfo(),
        "pymalloc": _pymalloc_stats(),
    }
    if census:
        started = time.perf_counter()
        result["gc_collect_freed"] = gc.collect()
        result["gc_collect_seconds"] = round(time.perf_counter() - started, 4)
        started = time.perf_counter()
        objects = gc.get_objects()
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for obj in objects:
            kind = type(obj)
            name = f"{kind.__module__}.{kind.__qualname__}"
            counts[name] += 1
            try:
                sizes[name] += sys.getsizeof(obj)
            except Exception:
                pass
        result["gc_tracked_objects"] = len(objects)
        del objects
        result["census"] = [
            {"type": name, "count": count, "shallow_bytes": sizes[name]}
            for name, count in counts.most_common(limit)
        ]
        result["census_by_size"] = [
            {"type": name, "count": counts[name], "shallow_bytes": size}
            for name, size in sizes.most_common(limit)
        ]
        result["census_seconds"] = round(time.perf_counter() - started, 3)
    result["allocated_blocks"] = sys.getallocatedblocks()
    return result


def _stats_text(profile: cProfile.Profile, sort: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return out.getvalue()


def _stats_rows(profile: cProfile.Profile, limit: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({func})",
                "calls": nc,
                "tottime": round(tt, 4),
                "cumtime": round(ct, 4),
            }
        )
    rows.sort(key=lambda row: row["tottime"], reverse=True)
    return rows[:limit]


def _short(filename: str) -> str:
    # Paths are shown from the package on (no machine paths in reports).
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/", filename)
    if stdlib:
        return filename[stdlib.end() :]
    for marker in ("/scaleagent/", "/bench/", "/twisted/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return os.path.basename(filename)


def _snapshot(limit: int) -> dict[str, Any]:
    if not tracemalloc.is_tracing():
        return {"tracing": False}
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
        )
    )
    current, peak = tracemalloc.get_traced_memory()
    result: dict[str, Any] = {
        "tracing": True,
        "traced_current": current,
        "traced_peak": peak,
        "overhead": tracemalloc.get_tracemalloc_memory(),
    }
    for group in ("filename", "lineno"):
        result[f"by_{group}"] = [
            {
                "where": f"{_short(stat.traceback[0].filename)}"
                + ("" if group == "filename" else f":{stat.traceback[0].lineno}"),
                "bytes": stat.size,
                "count": stat.count,
            }
            for stat in snapshot.statistics(group)[:limit]
        ]
    if tracemalloc.get_traceback_limit() > 1:
        result["by_traceback"] = [
            {
                "bytes": stat.size,
                "count": stat.count,
                "frames": [f"{_short(frame.filename)}:{frame.lineno}" for frame in stat.traceback],
            }
            for stat in snapshot.statistics("traceback")[: min(limit, 15)]
        ]
    return result


class _Probe(Resource):
    isLeaf = True

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        self.reactor = reactor

    def _arg(self, request: Any, name: str, default: str) -> str:
        values = request.args.get(name.encode())
        return values[0].decode() if values else default

    def _json(self, request: Any, body: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()

    def render_GET(self, request: Any) -> bytes:
        path = request.path.decode()
        if path == "/heap":
            census = self._arg(request, "census", "") not in ("", "0")
            return self._json(request, heap(census, int(self._arg(request, "limit", "40"))))
        if path == "/lag":
            return self._json(request, lag_since(float(self._arg(request, "since", "0"))))
        if path == "/tracemalloc/snapshot":
            return self._json(request, _snapshot(int(self._arg(request, "limit", "30"))))
        request.setResponseCode(404)
        return b"{}"

    def render_POST(self, request: Any) -> Any:
        global _profile
        path = request.path.decode()
        if path == "/profile":
            if _profile is not None:
                request.setResponseCode(409)
                return b'{"error":"a profile is running"}'
            seconds = float(self._arg(request, "seconds", "30"))
            out = self._arg(request, "out", "")
            limit = int(self._arg(request, "limit", "40"))
            profile = _profile = cProfile.Profile()
            started = time.perf_counter()
            cpu_started = time.process_time()
            # The client may give up before the profile ends (its timeout,
            # the benchmark interrupted); finishing that request would raise.
            gone: list[bool] = []
            request.notifyFinish().addErrback(lambda _: gone.append(True))
            profile.enable()

            def finish() -> None:
                global _profile
                profile.disable()
                _profile = None
                if out:
                    profile.dump_stats(out)
                if gone:
                    return
                body = {
                    "seconds": round(time.perf_counter() - started, 3),
                    "cpu_seconds": round(time.process_time() - cpu_started, 3),
                    "top_tottime": _stats_rows(profile, limit),
                    "text_cumulative": _stats_text(profile, "cumulative", limit),
                    "text_tottime": _stats_text(profile, "tottime", limit),
                }
                request.setHeader(b"content-type", b"application/json")
                request.write(json.dumps(body).encode())
                request.finish()

            self.reactor.callLater(seconds, finish)
            return NOT_DONE_YET
        if path == "/trim":
            return self._json(request, _trim())
        if path == "/tracemalloc/start":
            frames = int(self._arg(request, "frames", "1"))
            if not tracemalloc.is_tracing():
                tracemalloc.start(frames)
            return self._json(request, {"tracing": True, "frames": frames})
        if path == "/tracemalloc/stop":
            tracemalloc.stop()
            return self._json(request, {"tracing": False})
        request.setResponseCode(404)
        return b"{}"


def start(reactor: Any, port_file: str) -> None:
    _LagMonitor(reactor)
    gc.callbacks.append(_gc_callback)
    site = Site(_Probe(reactor))
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

    def listening(port: Any) -> None:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port.getHost().port))
        os.replace(tmp, port_file)

    endpoint.listen(site).addCallback(listening)

"""
The fleet benchmarks: one stand-in, one daemon, N clusters created through
the control API, measured idle, then under Rancher's load, then restarted.
C{memory}, C{latency} and C{startup} are phases of one run (so that they
share one bring-up); asking for one of them runs only the phases it needs.

The phases, in order (see bench/README.md for how to read them):

 1. baseline: the daemon with no cluster.
 2. (latency) one cluster, C{latency-probe}, created, released to Rancher's
    load and measured alone.
 3. bring-up: the other clusters are created with one bulk request; the
    stand-in holds Rancher's downstream requests (C{--downstream-held}), so
    they come up with both tunnels connected and nothing else: idle.
 4. (memory) idle window: RSS, heap and CPU of idle clusters.
 5. release: the stand-in lets Rancher's load onto the clusters (version
    checks, kube-system GETs, 12 watch-lists per cluster, RBAC writes,
    probes), at most --release-window syncing at a time (0: all at once,
    the burst of a Rancher restart), until all are synced, probed and
    active.
 6. (memory) loaded window: RSS, heap, CPU per minute, open streams and
    watches, and the request rates Rancher caused.
 7. (latency) the probe cluster again, now with N-1 loaded neighbours, and
    a burst of LISTs across every cluster.
 8. (memory) cProfile of the steady state, a heap census, and a
    tracemalloc-traced sample of extra clusters.
 9. (startup) SIGTERM, restart with N saved clusters: time until all are
    active again and the peak RSS.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any, Optional

from scaleagent.config import DEFAULT_CONNECT_CONCURRENCY, DEFAULT_RANCHER_POLL_INTERVAL

from . import report
from .report import kib, mib
from .rig import (
    BenchError,
    Daemon,
    Sampler,
    Standin,
    Workdir,
    build_standin,
    ignore_interrupts,
    log,
    machine_cpu,
    wait_until,
)

PROBE_NAME = "latency-probe"
PREFIX = "bench-"
TRACE_PREFIX = "traced-"


class FleetRun:
    def __init__(self, opts: Any, phases: set[str]) -> None:
        self.opts = opts
        self.phases = phases
        self.result: dict[str, Any] = {
            "benchmark": "fleet",
            "phases": sorted(phases),
            "params": {
                "clusters": opts.clusters,
                "hold_downstream": not opts.no_hold,
                "agent_deploy": opts.agent_deploy,
                "rancher_version": opts.rancher_version,
                "connect_concurrency": opts.connect_concurrency or f"default ({DEFAULT_CONNECT_CONCURRENCY})",
                "rancher_poll_interval": (
                    opts.poll_interval if opts.poll_interval is not None else f"default ({DEFAULT_RANCHER_POLL_INTERVAL:g})"
                ),
                "settle_s": opts.settle,
                "window_s": opts.window,
                "latency_iterations": opts.iterations,
                "trace_clusters": opts.trace_clusters,
                "profile_s": opts.profile_seconds,
                "what_if": opts.what_if or None,
                "release_window": opts.release_window,
            },
            "machine": report.machine(),
        }
        self.summary: list[str] = []
        self.extra: dict[str, str] = {}
        self.work = Workdir(keep=opts.keep)
        self.standin: Optional[Standin] = None
        self.daemon: Optional[Daemon] = None
        self.sampler: Optional[Sampler] = None
        self.t0 = time.time()

    # -- helpers -------------------------------------------------------------

    def alive(self) -> None:
        assert self.standin is not None and self.daemon is not None
        self.standin.alive()
        self.daemon.alive()

    def wait(self, probe: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
        return wait_until(probe, timeout, interval=interval, what=what, alive=self.alive)

    def snapshot(self, heap: bool = True) -> dict[str, Any]:
        """RSS, CPU, metrics and (cheap) heap figures of the daemon now."""
        d = self.daemon
        assert d is not None and d.proc is not None and self.standin is not None
        snap: dict[str, Any] = {
            "at_s": round(time.time() - self.t0, 1),
            "rss": d.proc.rss(),
            "peak_rss": d.proc.peak_rss(),
            "cpu_s": round(d.proc.cpu(), 2),
            "fds": d.proc.fds(),
            "threads": d.proc.threads(),
            "smaps": {k: v for k, v in d.proc.smaps().items() if k in ("Rss", "Pss", "Anonymous", "Pss_Anon", "Pss_File")},
            "standin_rss": self.standin.proc.rss(),
            "standin_cpu_s": round(self.standin.proc.cpu(), 2),
        }
        try:
            metrics = d.metrics()
            snap["metrics"] = {
                k: v
                for k, v in metrics.items()
                if k.startswith(
                    (
                        "scaleagent_streams_open",
                        "scaleagent_watches_open",
                        "scaleagent_objects",
                        "scaleagent_tunnels",
                        "scaleagent_clusters",
                        "scaleagent_heartbeat",
                    )
                )
                and v != 0
            }
            snap["metrics_all"] = len(metrics)
        except BenchError as e:
            snap["metrics_error"] = str(e)
        if heap:
            snap["heap"] = d.probe("GET", "/heap")
        return snap

    def window(self, label: str, seconds: float) -> dict[str, Any]:
        """CPU used and RSS drift over a quiet window of C{seconds}."""
        d, s = self.daemon, self.standin
        assert d is not None and d.proc is not None and s is not None
        log(f"{label}: measuring for {seconds:.0f}s")
        rancher_before = s.summary()
        busy0, total0 = machine_cpu()
        cpu_d0, cpu_s0, rss0 = d.proc.cpu(), s.proc.cpu(), d.proc.rss()
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            self.alive()
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        elapsed = time.monotonic() - started
        cpu_d1, cpu_s1, rss1 = d.proc.cpu(), s.proc.cpu(), d.proc.rss()
        busy1, total1 = machine_cpu()
        rancher_after = s.summary()
        minutes = elapsed / 60
        machine_busy = busy1 - busy0
        wall_start = time.time() - elapsed
        out = {
            "seconds": round(elapsed, 1),
            "daemon_cpu_s_per_min": round((cpu_d1 - cpu_d0) / minutes, 2),
            "daemon_cpu_share": round((cpu_d1 - cpu_d0) / elapsed, 3),
            "standin_cpu_s_per_min": round((cpu_s1 - cpu_s0) / minutes, 2),
            "machine_busy_share": round(machine_busy / max(1e-9, total1 - total0), 3),
            "other_processes_cpu_s_per_min": round(
                max(0.0, machine_busy - (cpu_d1 - cpu_d0) - (cpu_s1 - cpu_s0)) / minutes, 2
            ),
            "rss_drift_mib_per_min": round((rss1 - rss0) / 2**20 / minutes, 2),
            "rancher_per_min": _rates(rancher_before, rancher_after, minutes),
            "reactor_lag": self.lag(wall_start),
        }
        return out

    def clusters_by_state(self) -> dict[str, int]:
        assert self.daemon is not None
        return self.daemon.summary().get("states", {})

    # -- the run -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            self._run()
        except BaseException as e:
            self.result["error"] = f"{type(e).__name__}: {e}"
            if self.daemon is not None:
                self.result["daemon_log_tail"] = self.daemon.log_tail(3000)
            if self.standin is not None:
                self.result["standin_log_tail"] = self.standin.log_tail(3000)
            raise
        finally:
            self._teardown()
            self._write()
        return self.result

    def _run(self) -> None:
        opts = self.opts
        path = self.work.path
        binary = build_standin(path)
        args = ["--rancher-version", opts.rancher_version, "--log-level", "warn"]
        if not opts.no_hold:
            args.append("--downstream-held")
        if not opts.agent_deploy:
            args.append("--agent-deploy=false")
        args += opts.standin_arg or []
        log("starting the stand-in")
        self.standin = Standin(binary, path, args)
        self.daemon = Daemon(
            path,
            self.standin,
            connect_concurrency=opts.connect_concurrency,
            poll_interval=opts.poll_interval,
            whatif=opts.what_if,
        )
        log("starting the daemon")
        self.daemon.start()
        assert self.daemon.proc is not None
        self.sampler = Sampler({"daemon": self.daemon.proc, "standin": self.standin.proc}, interval=1.0)
        self.sampler.start()
        time.sleep(5)
        self.result["baseline"] = self.snapshot()
        base = self.result["baseline"]
        log(f"baseline: daemon RSS {mib(base['rss'])} MiB")

        total = opts.clusters
        if "latency" in self.phases:
            self._probe_cluster()
            self.result["latency"] = {"alone": self._latency("alone")}
            self.result["one_cluster"] = self.snapshot()
        self._bring_up(total)
        if "memory" in self.phases and not opts.no_hold:
            time.sleep(opts.settle / 2)
            idle = self.snapshot()
            idle["window"] = self.window("idle", opts.window / 2)
            idle["snapshot_end"] = self.snapshot(heap=False)
            self.result["idle"] = idle
        if not opts.no_hold:
            self._release(total)
        if "memory" in self.phases or "latency" in self.phases:
            log(f"settling for {opts.settle:.0f}s")
            time.sleep(opts.settle)
        if "memory" in self.phases:
            loaded = self.snapshot()
            loaded["window"] = self.window("loaded", opts.window)
            loaded["snapshot_end"] = self.snapshot(heap=False)
            loaded["rancher"] = self.standin.summary() if self.standin else None
            self.result["loaded"] = loaded
        if "latency" in self.phases:
            started = time.time()
            self.result["latency"]["loaded"] = self._latency("loaded")
            self.result["latency"]["loaded"]["reactor_lag"] = self.lag(started)
            started = time.time()
            self.result["latency"]["burst"] = self._burst()
            self.result["latency"]["burst"]["reactor_lag"] = self.lag(started)
        if "memory" in self.phases:
            if opts.profile_seconds > 0:
                self._profile()
            self._census()
            log("malloc_trim(0): how much of the RSS is free C heap")
            self.result["trim"] = self.daemon.probe("POST", "/trim", timeout=300)
            if opts.trace_clusters > 0:
                self._trace(total)
        if "startup" in self.phases:
            self._restart()

    # -- phases --------------------------------------------------------------

    def _probe_cluster(self) -> None:
        d, s = self.daemon, self.standin
        assert d is not None and s is not None
        log(f"creating the latency probe cluster {PROBE_NAME}")
        started = time.monotonic()
        d.post("/clusters", {"name": PROBE_NAME})
        view = self.wait(
            lambda: (lambda v: v if v.get("state") in ("connected", "active") and v.get("rancherId") else None)(
                d.get(f"/clusters/{PROBE_NAME}")
            ),
            180,
            "the probe cluster to connect",
        )
        self.probe_id = view["rancherId"]
        if not self.opts.no_hold:
            s.release([self.probe_id])
        self.wait(
            lambda: d.get(f"/clusters/{PROBE_NAME}").get("state") == "active" and _synced(s, self.probe_id),
            300,
            "the probe cluster to be active with Rancher's informers synced",
        )
        self.result["probe_cluster"] = {"id": self.probe_id, "active_after_s": round(time.monotonic() - started, 1)}
        time.sleep(10)

    def _bring_up(self, total: int) -> None:
        d, s = self.daemon, self.standin
        assert d is not None and s is not None and d.proc is not None and self.sampler is not None
        existing = d.summary()["total"]
        count = total - existing
        if count <= 0:
            return
        held = not self.opts.no_hold
        target = "connected" if held else "active"
        log(f"creating {count} clusters ({'idle: downstream held' if held else 'with Rancher load'})")
        self.sampler.mark("bring-up")
        started = time.time()
        cpu0, scpu0 = d.proc.cpu(), s.proc.cpu()
        d.post("/clusters", {"count": count, "prefix": PREFIX}, timeout=300)
        created_s = time.time() - started
        firsts: dict[str, float] = {}
        last_log = [0.0]

        def done() -> bool:
            states = self.clusters_by_state()
            now = time.time() - started
            for state, n in states.items():
                if n > 0 and state not in firsts:
                    firsts[state] = round(now, 1)
            if now - last_log[0] > 30:
                last_log[0] = now
                log(f"  {now:.0f}s: {states}; daemon RSS {mib(d.proc.rss())} MiB")  # type: ignore[union-attr]
            if held:
                return states.get("connected", 0) + states.get("active", 0) == total
            return states.get("active", 0) == total

        self.wait(done, 120 + total * 1.5, f"{total} clusters to be {target}", interval=2.0)
        up_s = time.time() - started
        cpu = d.proc.cpu() - cpu0
        bring_up: dict[str, Any] = {
            "clusters_created": count,
            "create_request_s": round(created_s, 2),
            f"all_{target}_s": round(up_s, 1),
            "first_seen_s": firsts,
            "daemon_cpu_s": round(cpu, 1),
            "daemon_cpu_s_per_cluster": round(cpu / count, 3),
            "standin_cpu_s": round(s.proc.cpu() - scpu0, 1),
            "daemon_peak_rss": self.sampler.peak("daemon", started),
            "reactor_lag": self.lag(started),
        }
        if not held:
            bring_up["rancher"] = self._wait_rancher(total, started)
        self.result["bring_up"] = bring_up
        log(f"all {total} {target} after {up_s:.0f}s; daemon used {bring_up['daemon_cpu_s']} CPU-s")

    def _wait_rancher(self, total: int, started: float) -> dict[str, Any]:
        s = self.standin
        assert s is not None
        marks: dict[str, float] = {}

        def done() -> bool:
            summary = s.summary()
            now = round(time.time() - started, 1)
            checks = {
                "informers_synced_s": summary.get("informersAll", 0) >= total,
                "probed_ok_s": summary.get("probe", {}).get("clustersOk", 0) >= total,
                "rancher_active_s": summary.get("states", {}).get("active", 0) >= total,
            }
            for key, ok in checks.items():
                if ok and key not in marks:
                    marks[key] = now
            return all(checks.values())

        self.wait(done, 300 + total * 1.0, "Rancher to see every cluster synced, probed and active")
        marks["summary"] = s.summary()  # type: ignore[assignment]
        return marks

    def _release(self, total: int) -> None:
        d, s = self.daemon, self.standin
        assert d is not None and s is not None and d.proc is not None and self.sampler is not None
        window = self.opts.release_window
        # The probe cluster of the latency phase was released on its own
        # before: count only the clusters this release lets Rancher onto.
        held = (s.summary().get("controllers") or {}).get("none", 0)
        how = "all at once" if window <= 0 else f"at most {window} clusters syncing at a time"
        log(f"releasing Rancher's load on {held} clusters, {how}")
        self.sampler.mark("release")
        started = time.time()
        cpu0, scpu0 = d.proc.cpu(), s.proc.cpu()
        profiling: Optional[threading.Thread] = None
        profiled: dict[str, Any] = {}
        if self.opts.profile_release > 0:
            seconds = self.opts.profile_release

            def profile() -> None:
                try:
                    profiled["result"] = self._take_profile("release", seconds)
                except (BenchError, OSError) as e:
                    profiled["error"] = str(e)

            profiling = threading.Thread(target=profile, daemon=True)
            profiling.start()
        if window <= 0:
            s.release()
        else:
            self._paced_release(window, held)
        s.post("/standin/bench/downstream", {"unhold": True})
        marks = self._wait_rancher(total, started)
        self.wait(lambda: self.clusters_by_state().get("active", 0) == total, 300, "the daemon to report all active")
        marks["daemon_all_active_s"] = round(time.time() - started, 1)
        cpu = d.proc.cpu() - cpu0
        marks["clusters_released"] = held
        marks["daemon_cpu_s"] = round(cpu, 1)
        marks["daemon_cpu_s_per_cluster"] = round(cpu / max(1, held), 3)
        marks["standin_cpu_s"] = round(s.proc.cpu() - scpu0, 1)
        marks["daemon_peak_rss"] = self.sampler.peak("daemon", started)
        marks["window"] = window
        marks["reactor_lag"] = self.lag(started)
        if profiling is not None:
            # Until it has returned the probe refuses another profile (409):
            # the steady-state one would fail.
            profiling.join(_profile_timeout(self.opts.profile_release) + 60)
            if profiling.is_alive():
                raise BenchError("the profile of the release has not returned; the daemon's probe is stuck")
            if "result" in profiled:
                self.result["profile_release"], self.extra["-profile-release.txt"] = profiled["result"]
            else:
                self.result["profile_release"] = {"error": profiled.get("error", "no answer")}
        self.result["release"] = marks
        log(
            f"released: informers synced after {marks['informers_synced_s']}s, all active after "
            f"{marks['daemon_all_active_s']}s; reactor lag max {marks['reactor_lag'].get('max')} s"
        )

    def _paced_release(self, window: int, held_count: int) -> None:
        """Release held clusters so that at most C{window} are syncing."""
        s = self.standin
        assert s is not None
        released: set[str] = set()
        last_log = time.time()
        # A 2-core machine syncs about 1.5 clusters a second; 5 s each leaves
        # room for a slower or shared one, and still ends a stuck release.
        timeout = 600 + 5.0 * held_count
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            lines = {line["id"]: line for line in s.summary(clusters=True).get("clusterList") or []}
            held = [cid for cid, line in lines.items() if line["phase"] == "none" and cid not in released]
            syncing = [cid for cid in released if not lines.get(cid, {}).get("synced")]
            room = window - len(syncing)
            if not held:
                return
            if time.monotonic() >= deadline:
                stuck = sorted(syncing) + sorted(held)
                names = ", ".join(f"{lines.get(cid, {}).get('name') or '?'} ({cid})" for cid in stuck[:20])
                more = f" and {len(stuck) - 20} more" if len(stuck) > 20 else ""
                raise BenchError(
                    f"paced release: after {timeout:.0f}s {len(syncing)} released clusters still syncing and "
                    f"{len(held)} not released; not synced: {names}{more}"
                )
            if room > 0:
                batch = sorted(held)[:room]
                s.release(batch)
                released.update(batch)
            if time.time() - last_log > 30:
                last_log = time.time()
                log(f"  released {len(released)}, {len(syncing)} syncing, {len(held)} held")
            time.sleep(1.0)

    def lag(self, since: float) -> dict[str, Any]:
        """The daemon's reactor lag since a wall-clock time."""
        assert self.daemon is not None
        try:
            return self.daemon.probe("GET", f"/lag?since={since:.0f}", timeout=120)
        except BenchError as e:
            return {"error": str(e)}

    def _latency(self, label: str) -> dict[str, Any]:
        s = self.standin
        assert s is not None
        n = self.opts.iterations
        path = f"/standin/clusters/{self.probe_id}/bench/latency"
        log(f"latency ({label}): {n} iterations per operation")
        warm = s.post(path, {"iterations": n}, timeout=1800)
        cold = s.post(
            path,
            {"iterations": max(10, n // 4), "cold": True, "ops": ["readyz", "get-kube-system", "list-nodes"]},
            timeout=1800,
        )
        out = {
            "warm": report.summarise_ops(warm["ops"]),
            "warm_first_ms": warm.get("firstMs"),
            "cold": report.summarise_ops(cold["ops"]),
            "accept": warm.get("accept"),
        }
        return out

    def _burst(self) -> dict[str, Any]:
        s = self.standin
        assert s is not None
        log("burst: LIST nodes and pods on every cluster, 32 at a time, fresh connections")
        res = s.post("/standin/bench/burst", {"ops": ["list-nodes", "list-pods"], "concurrency": 32}, timeout=1800)
        return {
            "clusters": res["clusters"],
            "requests": res["requests"],
            "wall_s": round(res["wallMs"] / 1000, 2),
            "per_second": round(res["perSecond"], 1),
            "ops": report.summarise_ops(res["ops"]),
        }

    def _take_profile(self, name: str, seconds: float) -> tuple[dict[str, Any], str]:
        """
        cProfile the daemon's reactor thread for C{seconds} (raw stats in
        C{<name>.prof} of the run directory); the summary for the JSON and
        the text for the C{-profile*.txt} file.
        """
        d = self.daemon
        assert d is not None
        out = urllib.parse.quote(str(self.work.path / f"{name}.prof"))
        prof = d.probe("POST", f"/profile?seconds={seconds:g}&limit=45&out={out}", timeout=_profile_timeout(seconds))
        summary = {key: prof[key] for key in ("seconds", "cpu_seconds", "top_tottime")}
        return summary, prof["text_tottime"] + "\n\n" + prof["text_cumulative"]

    def _profile(self) -> None:
        seconds = self.opts.profile_seconds
        log(f"cProfile of the steady state for {seconds:.0f}s")
        self.result["profile"], self.extra["-profile.txt"] = self._take_profile("steady", seconds)

    def _census(self) -> None:
        d = self.daemon
        assert d is not None
        log("heap census (full gc.collect, object counts)")
        self.result["census"] = d.probe("GET", "/heap?census=1&limit=40", timeout=600)

    def _trace(self, total: int) -> None:
        d, s = self.daemon, self.standin
        assert d is not None and s is not None and d.proc is not None
        m = self.opts.trace_clusters
        log(f"tracemalloc: {m} more clusters under trace")
        rss0 = d.proc.rss()
        d.probe("POST", "/tracemalloc/start?frames=1")
        failed = True
        try:
            d.post("/clusters", {"count": m, "prefix": TRACE_PREFIX})
            goal = total + m
            self.wait(lambda: self.clusters_by_state().get("active", 0) >= goal, 600, f"{m} traced clusters to be active")
            self.wait(lambda: s.summary().get("informersAll", 0) >= goal, 300, "their informers to sync")
            time.sleep(self.opts.settle / 2)
            snap = d.probe("GET", "/tracemalloc/snapshot?limit=30", timeout=600)
            failed = False
        finally:
            try:
                d.probe("POST", "/tracemalloc/stop")
            except (BenchError, OSError) as e:
                # After a failure (the daemon gone, most likely) that failure
                # is the one to report, not this consequence of it.
                if not failed:
                    raise
                log(f"tracemalloc/stop: {e}")
        snap["clusters"] = m
        snap["traced_per_cluster"] = snap.get("traced_current", 0) / m
        snap["rss_delta"] = d.proc.rss() - rss0
        self.result["tracemalloc"] = snap

    def _restart(self) -> None:
        d, s = self.daemon, self.standin
        assert d is not None and s is not None and self.sampler is not None
        total = d.summary()["total"]
        log(f"restart: SIGTERM, then start again with {total} saved clusters")
        rss_before = d.proc.rss() if d.proc else 0
        stop_s = d.stop()
        self.sampler.mark("restart")
        started = time.time()
        d.start(timeout=600)
        assert d.proc is not None
        self.sampler.procs["daemon"] = d.proc
        api_s = time.time() - started
        firsts: dict[str, float] = {}

        def done() -> bool:
            states = self.clusters_by_state()
            now = time.time() - started
            if states.get("connected", 0) + states.get("active", 0) == total and "all_connected_s" not in firsts:
                firsts["all_connected_s"] = round(now, 1)
            return states.get("active", 0) == total

        self.wait(done, 600 + total, "every restored cluster to be active again")
        active_s = time.time() - started
        restart_lag = self.lag(started)
        time.sleep(self.opts.settle / 2)
        summary = s.summary()
        self.result["startup"] = {
            "clusters": total,
            "rss_before_stop": rss_before,
            "stop_s": round(stop_s, 1),
            "control_api_s": round(api_s, 1),
            **firsts,
            "all_active_s": round(active_s, 1),
            "peak_rss": d.proc.peak_rss(),
            "rss_after": d.proc.rss(),
            "cpu_s": round(d.proc.cpu(), 1),
            "reactor_lag": restart_lag,
            "rancher": {k: summary.get(k) for k in ("states", "informersAll", "liveSessions", "informers", "probe")},
        }

    # -- the end -------------------------------------------------------------

    def _teardown(self) -> None:
        ignore_interrupts()
        if self.sampler is not None:
            self.sampler.stop()
            self.result["timeline"] = {
                "daemon": self.sampler.timeline("daemon", self.t0),
                "standin": self.sampler.timeline("standin", self.t0),
                "marks": [{"t": round(t - self.t0, 1), "what": what} for t, what in self.sampler.marks],
            }
        for proc in (self.daemon, self.standin):
            if proc is not None:
                try:
                    proc.stop()
                except Exception as e:  # keep tearing down
                    log(f"stopping: {e}")
        self.result["duration_s"] = round(time.time() - self.t0, 1)
        self.work.cleanup()

    def _write(self) -> None:
        self.summary = summarise(self.result)
        path = report.write(f"fleet-{self.opts.clusters}", self.result, self.summary, self.extra)
        print("\n".join(self.summary))
        log(f"results: bench/results/{path.name}")


def _profile_timeout(seconds: float) -> float:
    """How long a profile of C{seconds} may take to come back: the reactor
    can be stalled for minutes under a release burst."""
    return seconds + 900


def _synced(standin: Standin, cluster_id: str) -> bool:
    summary = standin.summary(clusters=True)
    for line in summary.get("clusterList") or []:
        if line["id"] == cluster_id:
            return bool(line["synced"] and line["probeOk"] > 0 and line["state"] == "active")
    return False


def _rates(before: dict[str, Any], after: dict[str, Any], minutes: float) -> dict[str, Any]:
    """What Rancher asked during a window, per minute and per cluster."""
    clusters = max(1, after.get("clusters", 1))
    out: dict[str, Any] = {}
    for group in ("probe", "informers"):
        for key, value in (after.get(group) or {}).items():
            if key in ("maxLastMs", "clustersOk", "informers", "synced"):
                continue
            delta = value - (before.get(group) or {}).get(key, 0)
            out[f"{group}.{key}"] = round(delta / minutes, 1)
            out[f"{group}.{key}_per_cluster"] = round(delta / minutes / clusters, 3)
    return out


# -- the human summary -----------------------------------------------------------


def _lag_text(lag: Optional[dict[str, Any]]) -> str:
    if not lag or "max" not in lag:
        return "reactor lag n/a"
    text = f"reactor lag p50 {lag['p50'] * 1000:.0f} ms, p99 {lag['p99'] * 1000:.0f} ms, max {lag['max']:.2f} s"
    full = (lag.get("gc") or {}).get("gen2")
    if full:
        text += f"; {full['count']} full GCs, longest {full['max_s']:.2f} s"
    return text


def summarise(r: dict[str, Any]) -> list[str]:
    p = r["params"]
    n = p["clusters"]
    lines = [f"scaleagent fleet benchmark: {n} clusters (phases: {', '.join(r['phases'])})"]
    if p.get("what_if"):
        lines.append(f"  WHAT-IF EXPERIMENT applied to the daemon: {p['what_if']} (not scaleagent as shipped)")
    m = r.get("machine", {})
    lines.append(
        f"  machine: {m.get('cpus')} CPUs, {m.get('mem_total_gib')} GiB, Python {m.get('python')}, "
        f"{m.get('openssl', '')}; load average at start {' '.join(m.get('loadavg', []))}"
    )
    lines.append(
        f"  Rancher stand-in {p['rancher_version']}, agent redeploy {'on' if p['agent_deploy'] else 'off'}, "
        f"{'idle first (downstream held), then released' if p['hold_downstream'] else 'loaded from creation'}"
    )
    if "error" in r:
        lines.append(f"  FAILED: {r['error'][:500]}")
    base = r.get("baseline")
    if base:
        lines.append(f"  baseline (no cluster): RSS {mib(base['rss'])} MiB")
    one = r.get("one_cluster")
    if one:
        lines.append(f"  one loaded cluster:    RSS {mib(one['rss'])} MiB")
    bu = r.get("bring_up")
    if bu:
        key = next((k for k in bu if k.startswith("all_") and k.endswith("_s")), "")
        lines.append(
            f"  bring-up of {bu['clusters_created']}: {key[4:-2]} after {bu.get(key)} s; daemon {bu['daemon_cpu_s']} CPU-s "
            f"({bu['daemon_cpu_s_per_cluster'] * 1000:.0f} ms/cluster), stand-in {bu['standin_cpu_s']} CPU-s; "
            f"peak RSS {mib(bu['daemon_peak_rss'])} MiB"
        )
        if "rancher" in bu:
            rb = bu["rancher"]
            lines.append(
                f"    Rancher: informers synced {rb.get('informers_synced_s')} s, probed {rb.get('probed_ok_s')} s, "
                f"active {rb.get('rancher_active_s')} s"
            )

    def state_line(name: str, snap: dict[str, Any]) -> None:
        rss = snap["rss"]
        per = (rss - base["rss"]) / n if base else 0
        w = snap.get("window", {})
        met = snap.get("metrics", {})
        blocks = (snap.get("heap") or {}).get("allocated_blocks", 0)
        base_blocks = ((base or {}).get("heap") or {}).get("allocated_blocks")
        if base_blocks is not None:
            blocks_text = f"Python blocks {(blocks - base_blocks) / n:.0f} per cluster over the baseline"
        else:
            blocks_text = f"Python blocks {blocks / n:.0f} per cluster (total/N, baseline included)"
        lines.append(
            f"  {name}: RSS {mib(rss)} MiB = {kib(per)} KiB per cluster over the baseline; {blocks_text}; "
            f"streams {int(met.get('scaleagent_streams_open', 0))}, watches {int(met.get('scaleagent_watches_open', 0))}"
        )
        if w:
            lines.append(
                f"    CPU: daemon {w['daemon_cpu_s_per_min']} s/min ({w['daemon_cpu_share'] * 100:.1f}% of a core), "
                f"stand-in {w['standin_cpu_s_per_min']} s/min, other processes {w['other_processes_cpu_s_per_min']} s/min; "
                f"RSS drift {w['rss_drift_mib_per_min']} MiB/min; {_lag_text(w.get('reactor_lag'))}"
            )

    if r.get("idle"):
        state_line("idle (tunnels only)", r["idle"])
    rel = r.get("release")
    if rel:
        how = "all at once" if not rel.get("window") or rel["window"] <= 0 else f"at most {rel['window']} syncing at a time"
        lines.append(
            f"  release of Rancher's load ({how}): informers synced {rel.get('informers_synced_s')} s, "
            f"probed {rel.get('probed_ok_s')} s, Rancher active {rel.get('rancher_active_s')} s, "
            f"daemon active {rel.get('daemon_all_active_s')} s; daemon {rel.get('daemon_cpu_s')} CPU-s "
            f"({rel.get('daemon_cpu_s_per_cluster', 0) * 1000:.0f} ms per released cluster, "
            f"{rel.get('clusters_released', n)} released); peak RSS {mib(rel.get('daemon_peak_rss', 0))} MiB; "
            f"{_lag_text(rel.get('reactor_lag'))}"
        )
    if r.get("loaded"):
        state_line("loaded (steady state)", r["loaded"])
        if r.get("idle"):
            per = (r["loaded"]["rss"] - r["idle"]["rss"]) / n
            lines.append(f"    Rancher's load adds {kib(per)} KiB per cluster over idle")
        rates = r["loaded"].get("window", {}).get("rancher_per_min", {})
        if rates:
            lines.append(
                f"    Rancher per cluster per minute: {rates.get('probe.requests_per_cluster')} probes, "
                f"{rates.get('informers.watches_per_cluster')} watch (re)starts, {rates.get('informers.lists_per_cluster')} lists, "
                f"{rates.get('informers.events_per_cluster')} watch events, {rates.get('informers.errors_per_cluster')} informer errors"
            )
    lat = r.get("latency") or {}
    for label in ("alone", "loaded"):
        if label in lat:
            title = "  latency, probe cluster alone" if label == "alone" else f"  latency, with {n - 1} loaded neighbours"
            if lat[label].get("reactor_lag"):
                title += f" [{_lag_text(lat[label]['reactor_lag'])}]"
            lines += report.ops_table(title + " (kept-alive connection):", lat[label]["warm"])
            lines += report.ops_table("    new connection per request (tunnel stream + TLS handshake):", lat[label]["cold"])
    if "burst" in lat:
        b = lat["burst"]
        lines += report.ops_table(
            f"  burst: {b['requests']} LISTs over {b['clusters']} clusters, 32 in flight, fresh connections: "
            f"{b['wall_s']} s, {b['per_second']}/s",
            b["ops"],
        )
    prof = r.get("profile")
    if prof:
        lines.append(f"  profile ({prof['seconds']} s, {prof['cpu_seconds']} CPU-s under cProfile), top by own time:")
        for row in prof["top_tottime"][:12]:
            lines.append(f"    {row['tottime']:>8.2f}s {row['calls']:>9} calls  {row['function']}")
    census = r.get("census")
    if census:
        # No census of the baseline (it would cost a full collection for one
        # figure): these per-cluster counts are totals / N, the daemon's own
        # objects included.
        lines.append(
            f"  heap: full gc.collect {census.get('gc_collect_seconds')} s, {census.get('gc_tracked_objects')} gc-tracked objects "
            f"({census.get('gc_tracked_objects', 0) / n:.0f} per cluster as total/N, baseline included), pymalloc "
            f"{mib(census.get('pymalloc', {}).get('bytes_in_allocated_blocks', 0))} MiB in use, C heap "
            f"{mib(census.get('mallinfo', {}).get('in_use', 0))} MiB in use / {mib(census.get('mallinfo', {}).get('free', 0))} MiB free"
        )
        for row in census.get("census", [])[:12]:
            lines.append(f"    {row['count']:>9} {row['count'] / n:>8.1f} total/N  {row['type']}")
    trim = r.get("trim")
    if trim and "after" in trim:
        lines.append(
            f"  malloc_trim(0) took {trim['seconds']} s: RSS {mib(trim['before']['rss'])} -> {mib(trim['after']['rss'])} MiB "
            f"({kib((trim['after']['rss'] - base['rss']) / n) if base else 0} KiB per cluster over the baseline after it)"
        )
    tm = r.get("tracemalloc")
    if tm and tm.get("tracing"):
        lines.append(
            f"  tracemalloc over {tm['clusters']} added clusters: {kib(tm['traced_per_cluster'])} KiB traced per cluster "
            f"(RSS grew {kib(tm['rss_delta'] / tm['clusters'])} KiB per cluster, under tracing); top lines:"
        )
        for row in tm.get("by_lineno", [])[:12]:
            lines.append(f"    {kib(row['bytes'] / tm['clusters']):>8} KiB/cluster {row['count']:>8}  {row['where']}")
    st = r.get("startup")
    if st:
        lines.append(
            f"  restart with {st['clusters']} saved clusters: control API after {st['control_api_s']} s, all connected "
            f"{st.get('all_connected_s')} s, all active {st['all_active_s']} s; peak RSS {mib(st['peak_rss'])} MiB, "
            f"after {mib(st['rss_after'])} MiB (before the stop {mib(st['rss_before_stop'])} MiB); stop took {st['stop_s']} s; "
            f"{_lag_text(st.get('reactor_lag'))}"
        )
    lines.append(f"  run took {r.get('duration_s')} s")
    return lines

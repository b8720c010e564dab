"""
C{python -m bench [memory] [latency] [startup] [micro] [--clusters N] ...}

Without a name: memory and latency (one shared fleet). Results are printed
and written to bench/results/.
"""

from __future__ import annotations

import argparse
import signal
import sys

from .rig import BenchError, log

FLEET = ("memory", "latency", "startup")
NAMES = (*FLEET, "micro", "all")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="scaleagent benchmarks: memory per loaded cluster, list/watch latency through "
        "the tunnel, restart, and an in-process API micro-benchmark. See bench/README.md.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help="memory, latency, startup, micro or all (default: memory latency); "
        "memory, latency and startup share one fleet",
    )
    parser.add_argument("--clusters", "-n", type=int, default=1000, help="clusters in the fleet (default 1000)")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds to let the fleet settle before a window (default 45)")
    parser.add_argument("--window", type=float, default=90.0, help="seconds of the loaded steady-state window; the idle one is half (default 90)")
    parser.add_argument("--iterations", type=int, default=200, help="requests per latency operation (default 200)")
    parser.add_argument("--profile-seconds", type=float, default=45.0, help="cProfile of the steady state, 0 to skip (default 45)")
    parser.add_argument("--trace-clusters", type=int, default=10, help="extra clusters brought up under tracemalloc, 0 to skip (default 10)")
    parser.add_argument(
        "--no-hold",
        action="store_true",
        help="create the clusters with Rancher's load from the start (no idle phase, no release burst)",
    )
    parser.add_argument(
        "--release-window",
        type=int,
        default=25,
        help="when Rancher's load is released, at most this many clusters are syncing at a time; "
        "0 releases all at once (the burst of a Rancher restart) (default 25)",
    )
    parser.add_argument("--profile-release", type=float, default=0.0, help="cProfile the first S seconds of the release (default 0: off)")
    parser.add_argument("--agent-deploy", action="store_true", help="let the stand-in redeploy the agent with kubectl apply (slow: about 1 CPU-s of Go per cluster)")
    parser.add_argument("--rancher-version", default="2.14", choices=("2.14", "2.11"), help="Rancher behaviour the stand-in emulates (default 2.14)")
    parser.add_argument("--connect-concurrency", type=int, default=None, help="the daemon's ConnectConcurrency (default: its own default)")
    parser.add_argument("--poll-interval", type=float, default=None, help="the daemon's RancherPollInterval in seconds (default: its own default, 30)")
    parser.add_argument("--standin-arg", action="append", help="extra argument for `standin serve` (repeatable)")
    parser.add_argument(
        "--what-if",
        default="",
        help="comma-separated experiments applied to the daemon (not to scaleagent's code): "
        "gc-freeze, tls12; see bench/_daemon.py. Off by default",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run directory (logs, state, raw profiles, and the daemon's config with the stand-in's throwaway API token)",
    )
    parser.add_argument("--micro-seconds", type=float, default=3.0, help="seconds per micro-benchmark case (default 3)")
    opts = parser.parse_args(argv)
    names = set(opts.names or ["memory", "latency"])
    unknown = names - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")
    if "all" in names:
        names = set(NAMES) - {"all"}
    if opts.clusters < 2 and "latency" in names:
        parser.error("--clusters must be at least 2 for latency (the probe cluster and its neighbours)")
    if opts.clusters < 1:
        parser.error("--clusters must be at least 1")
    from ._daemon import WHATIFS

    for name in filter(None, opts.what_if.split(",")):
        if name not in WHATIFS:
            parser.error(f"unknown --what-if {name!r}; choose from {', '.join(WHATIFS)}")
    opts.names = names
    return opts


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    opts = parse(argv)
    # Stop cleanly (processes stopped, partial results written) on SIGTERM,
    # and on SIGINT even when started in the background.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        if "micro" in opts.names:
            from .micro import run_micro

            run_micro(opts)
        fleet = opts.names & set(FLEET)
        if fleet:
            from .fleet import FleetRun

            FleetRun(opts, fleet).run()
    except BenchError as e:
        log(f"benchmark failed: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

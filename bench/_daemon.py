"""
Run the daemon as C{twistd} would (C{python -m bench._daemon -n scaleagent
...} takes twistd's arguments) with the benchmark probe (L{bench._probe})
started inside the process once the reactor runs.

C{SCALEAGENT_BENCH_WHATIF} (comma-separated, default none) applies one of
the experiments in L{WHATIFS} to the daemon before it starts: changes the
benchmark report proposes, measured without editing scaleagent. A normal
run applies none.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable


def _gc_freeze() -> None:
    """
    Once a minute, collect the young generations and gc.freeze() what
    survived: long-lived objects (clusters, streams, stored objects) leave
    the generations a full collection scans, so its pause no longer grows
    with the fleet. (Cyclic garbage among frozen objects is never freed.)
    """
    import gc

    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    def freeze() -> None:
        gc.collect(1)
        gc.freeze()

    loop = LoopingCall(freeze)
    reactor.callWhenRunning(loop.start, 60.0, False)  # type: ignore[attr-defined]


def _tls12() -> None:
    """Cluster API streams negotiate TLS 1.2 at most (smaller per-stream state)."""
    from OpenSSL import SSL

    from scaleagent.identity import ClusterIdentity

    original = ClusterIdentity.server_context

    def server_context(self: Any, maximum_tls_version: Any = None) -> Any:
        return original(self, maximum_tls_version or SSL.TLS1_2_VERSION)

    ClusterIdentity.server_context = server_context  # type: ignore[method-assign]


WHATIFS: dict[str, Callable[[], None]] = {
    "gc-freeze": _gc_freeze,
    "tls12": _tls12,
}


def main() -> None:
    # The default reactor, as twistd itself would install it.
    from twisted.internet import reactor

    for name in filter(None, os.environ.get("SCALEAGENT_BENCH_WHATIF", "").split(",")):
        WHATIFS[name]()

    port_file = os.environ.get("SCALEAGENT_BENCH_PROBE")
    if port_file:
        from bench import _probe

        reactor.callWhenRunning(_probe.start, reactor, port_file)  # type: ignore[attr-defined]

    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()

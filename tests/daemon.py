"""
Run the scaleagent daemon (C{twistd scaleagent}) as a real process from
trial tests, and talk to its control API.

The daemon runs from the source tree: C{PYTHONPATH} starts with the
repository root, so the tree's C{scaleagent} package and
C{twisted/plugins/scaleagent_plugin.py} are the ones used, whatever is
installed. It is started through C{twisted.scripts.twistd.run} with the
test's interpreter (C{python -m twisted} would be C{twist}, which cannot
daemonise or write a pidfile).

Typical use in a test::

    config_dir = write_config(self.mktemp(), {"RancherURL": ..., ...})
    daemon = await start_daemon(self, config_dir, port)
    code, body = await daemon.control("POST", "/clusters", {"name": "sim-1"})

Every process is stopped in the test's cleanup (SIGTERM, then SIGKILL), a
daemonised one through its pidfile; any left at interpreter exit are
killed. The log file and twistd's output stay in the test's directory.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from treq.client import HTTPClient

from tests.standin import ProcessOutput, kill_after, wait_for

#: The repository root: what C{PYTHONPATH} starts with.
REPO_ROOT = Path(__file__).resolve().parent.parent

#: C{twistd}, run by the test's own interpreter.
TWISTD_BOOT = "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"

#: The most output kept in memory per stream.
_OUTPUT_KEEP = 256 * 1024


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class DaemonError(Exception):
    """The daemon could not be started or used."""


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks
    it; it is free again when this returns).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listen_address(port: int) -> str:
    """The C{ListenAddress} of a loopback control API on C{port}."""
    return f"tcp:{port}:interface=127.0.0.1"


def write_config(directory: Union[str, Path], entries: Mapping[str, Any]) -> Path:
    """
    Write C{<directory>/config} as C{Key: Value} lines (created with mode
    0600: it holds the API token) and return the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}: {value}\n" for key, value in entries.items())
    path = directory / "config"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(text)
    return directory


def daemon_environment() -> dict[str, str]:
    """The environment of a daemon: the source tree first on C{PYTHONPATH}."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def twistd_argv(args: Iterable[str]) -> list[str]:
    """The argv of C{twistd args...} run by this interpreter."""
    return [sys.executable, "-c", TWISTD_BOOT, *args]


def process_alive(pid: int) -> bool:
    """
    Whether C{pid} is a running process: a zombie (exited, not reaped,
    e.g. a daemon whose parent is a non-reaping init) counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            # "pid (comm) S ...": the state follows the last ")".
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def read_logs(log_path: Union[str, Path]) -> str:
    """
    A twistd log file with its rotated predecessors (C{L.N} ... C{L.1}, then
    C{L}: twistd rotates at 1 MB), as one text; empty if there is none.
    """
    log_path = Path(log_path)
    rotated = []
    for candidate in log_path.parent.glob(log_path.name + ".*"):
        suffix = candidate.name[len(log_path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    parts = [path for _, path in sorted(rotated, reverse=True)]
    if log_path.exists():
        parts.append(log_path)
    return "".join(path.read_text(errors="replace") for path in parts)


# Every daemon pid started and not yet seen to exit: killed at exit.
_live_pids: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_live_pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


async def run_twistd(
    args: Iterable[str],
    *,
    cwd: Union[str, Path],
    timeout: float = 60.0,
    reactor: Any = None,
) -> tuple[str, str, int]:
    """
    Run C{twistd args...} in C{cwd} to its end (a failed start, or the
    parent of a daemonising run) and return its stdout, stderr and exit
    code. It is killed after C{timeout} seconds, which is an error.
    """
    reactor = reactor or _reactor()
    collector = ProcessOutput(keep=_OUTPUT_KEEP)
    argv = twistd_argv(args)
    transport = reactor.spawnProcess(
        collector, argv[0], argv, env=daemon_environment(), path=str(cwd)
    )
    pid = transport.pid
    _live_pids.add(pid)
    timer = kill_after(reactor, transport, timeout)
    code = await collector.wait_ended()
    _live_pids.discard(pid)
    out = collector.stdout.decode(errors="replace")
    err = collector.stderr.decode(errors="replace")
    if not timer.active():
        raise DaemonError(f"twistd {' '.join(args)} still running after {timeout}s:\n{out}\n{err}")
    timer.cancel()
    return out, err, code


class ControlClient:
    """
    A client of scaleagent's control API at C{url} (C{http://host:port}).
    Its connections are kept open between requests: L{close} them before
    the test ends.
    """

    def __init__(self, url: str, reactor: Any = None) -> None:
        self.url = url
        self._pool = HTTPConnectionPool(reactor or _reactor(), persistent=True)
        self._http = HTTPClient(Agent(reactor or _reactor(), pool=self._pool))

    def close(self) -> Deferred[None]:
        return self._pool.closeCachedConnections()

    async def control(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: Optional[bytes] = None,
    ) -> tuple[int, Any]:
        """
        One request: C{body} is sent as JSON, or C{raw} as is. Returns the
        status and the decoded JSON (the text if it is not JSON).
        """
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = await self._http.request(
            method,
            self.url + path,
            data=data,
            headers={b"Content-Type": [b"application/json"]},
        )
        content = await response.content()
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content.decode(errors="replace")

    async def clusters(self) -> dict[str, Any]:
        """C{GET /clusters}: C{{"summary": ..., "clusters": [...]}}."""
        code, body = await self.control("GET", "/clusters")
        if code != 200:
            raise DaemonError(f"GET /clusters: HTTP {code}: {body!r}")
        return body


class DaemonProcess:
    """
    A C{twistd -n scaleagent} process and a client for its control API.

    @ivar log_path: its log file (C{--logfile}).
    @ivar pidfile: its pidfile (C{--pidfile}).
    @ivar control_url: C{http://127.0.0.1:<port>}.
    """

    def __init__(
        self,
        reactor: Any,
        transport: Any,
        collector: ProcessOutput,
        control_url: str,
        log_path: Path,
        pidfile: Path,
    ) -> None:
        self._reactor = reactor
        self._transport = transport
        self._collector = collector
        self.control_url = control_url
        self.log_path = log_path
        self.pidfile = pidfile
        self.client = ControlClient(control_url, reactor)
        self.pid: int = transport.pid
        _live_pids.add(self.pid)

    @classmethod
    def spawn(
        cls,
        config_dir: Union[str, Path],
        port: int,
        *,
        log_path: Union[str, Path],
        pidfile: Union[str, Path],
        extra_args: Iterable[str] = (),
        reactor: Any = None,
    ) -> "DaemonProcess":
        """
        Start C{twistd -n --pidfile P --logfile L scaleagent -c DIR} in
        the directory of the log file; the configuration must make the
        control API listen on C{port}.
        """
        reactor = reactor or _reactor()
        args = [
            "-n",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(log_path),
            "scaleagent",
            "-c",
            str(config_dir),
            *extra_args,
        ]
        argv = twistd_argv(args)
        collector = ProcessOutput(keep=_OUTPUT_KEEP)
        transport = reactor.spawnProcess(
            collector, argv[0], argv, env=daemon_environment(), path=str(Path(log_path).parent)
        )
        return cls(
            reactor, transport, collector, f"http://127.0.0.1:{port}", Path(log_path), Path(pidfile)
        )

    # -- the process ---------------------------------------------------------------

    @property
    def exit_code(self) -> Optional[int]:
        return self._collector.exit_code

    def output(self) -> str:
        """What the process wrote to stdout and stderr (the last part)."""
        return (
            "stdout:\n"
            + self._collector.stdout.decode(errors="replace")
            + "\nstderr:\n"
            + self._collector.stderr.decode(errors="replace")
        )

    def log_text(self) -> str:
        """The daemon's whole log so far (rotated parts included)."""
        return read_logs(self.log_path)

    def diagnostics(self, lines: int = 60) -> str:
        """The end of the log and the process output, for failure messages."""
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"exit code {self.exit_code}; {self.output()}\nlog tail:\n{tail}"

    def _signal(self, name: str) -> None:
        try:
            self._transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """
        Wait until C{/healthz} answers 200; fail at once, with the output
        and log, if the process exits first.
        """

        async def probe() -> Any:
            if self.exit_code is not None:
                return "exited"
            code, _ = await self.control("GET", "/healthz")
            return code

        try:
            result = await wait_for(
                probe,
                timeout=timeout,
                until=lambda r: r in ("exited", 200),
                interval=0.2,
                what="the daemon's /healthz",
            )
        except AssertionError as e:
            raise DaemonError(f"{e}\n{self.diagnostics()}") from None
        if result == "exited":
            raise DaemonError(f"the daemon exited before it was ready: {self.diagnostics()}")

    async def kill(self) -> int:
        """SIGKILL (nothing is flushed or saved) and wait for the exit."""
        await self.client.close()
        self._signal("KILL")
        code = await self._collector.wait_ended()
        _live_pids.discard(self.pid)
        return code

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the exit, SIGKILL after C{timeout}; the exit code."""
        await self.client.close()
        if self.exit_code is None:
            self._signal("TERM")
            waiting = self._collector.wait_ended()
            timer = self._reactor.callLater(timeout, self._signal, "KILL")
            await waiting
            if timer.active():
                timer.cancel()
        _live_pids.discard(self.pid)
        return self.exit_code if self.exit_code is not None else -1

    # -- the control API -----------------------------------------------------------

    def control(self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None) -> Any:
        """See L{ControlClient.control}."""
        return self.client.control(method, path, body, raw=raw)

    def clusters(self) -> Any:
        """See L{ControlClient.clusters}."""
        return self.client.clusters()


async def start_daemon(
    testcase: TestCase,
    config_dir: Union[str, Path],
    port: int,
    *,
    log_name: str = "daemon.log",
    extra_args: Iterable[str] = (),
    wait: bool = True,
    reactor: Any = None,
) -> DaemonProcess:
    """
    Start C{twistd -n scaleagent} for a test, stopped in its cleanup. The
    log file and pidfile are kept beside the configuration directory
    (C{<config_dir>/../<log_name>}, C{twistd.pid}); the same C{log_name}
    after a restart appends to the same log.
    """
    base = Path(config_dir).parent
    daemon = DaemonProcess.spawn(
        config_dir,
        port,
        log_path=base / log_name,
        pidfile=base / "twistd.pid",
        extra_args=extra_args,
        reactor=reactor,
    )
    testcase.addCleanup(daemon.stop)
    if wait:
        await daemon.wait_ready()
    return daemon


def cleanup_pidfile_process(testcase: TestCase, pidfile: Union[str, Path]) -> None:
    """
    In the test's cleanup, stop whatever process C{pidfile} names (a
    daemonised twistd): SIGTERM, then SIGKILL if it is still there after a
    grace period.
    """
    pidfile = Path(pidfile)

    async def cleanup() -> None:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if not process_alive(pid):
            return
        _live_pids.add(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
        try:
            await wait_for(lambda: not process_alive(pid), timeout=20.0, interval=0.1)
        except AssertionError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _live_pids.discard(pid)

    testcase.addCleanup(lambda: defer.ensureDeferred(cleanup()))

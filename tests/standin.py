# -*- test-case-name: tests.test_standin_harness -*-
"""
Build and run the Go Rancher stand-in (C{tests/standin}) from trial tests.

The stand-in is built once per test process with the local Go toolchain
(L{build_standin}); a missing toolchain skips the calling test locally and
fails it when the C{CI} environment variable is set. L{StandinProcess} runs
one long-lived subcommand (C{serve}, C{refagent}) that announces itself with
a JSON line on stdout, talks to the stand-in's control API and stops it;
L{run_standin} runs a one-shot subcommand (C{vectors}, C{protovectors}).
L{wait_for} polls a condition until it holds, never sleeping blindly.

Typical use in a test::

    async def test_something(self):
        standin = await start_standin(self, "--ping-interval", "200ms")
        cluster = await standin.create_cluster()
        ...
        view = await wait_for(
            lambda: standin.cluster(cluster["id"]),
            until=lambda c: c["tunnels"]["main"]["live"] == 1,
            what="the main tunnel to come up",
        )
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import struct
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional, TypeVar, Union

from twisted.internet import defer, protocol, ssl, task
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger, formatEvent, globalLogPublisher
from zope.interface import provider
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from treq.client import HTTPClient

T = TypeVar("T")

#: The Go module of the stand-in.
STANDIN_DIR = Path(__file__).resolve().parent / "standin"

#: How long a cold `go build` of the stand-in (client-go, kubectl) may take.
BUILD_TIMEOUT = 900.0

#: The most stderr a process keeps in memory for failure messages.
_STDERR_KEEP = 256 * 1024

_log = Logger()


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class StandinError(Exception):
    """The stand-in could not be built, started or used."""


class StandinExited(StandinError):
    """The process ended before it was ready; carries its stderr."""


class ControlError(StandinError):
    """
    The control API answered with an unexpected status.

    @ivar code: the HTTP status.
    @ivar body: the decoded JSON body, or the raw text.
    """

    def __init__(self, method: str, path: str, code: int, body: Any) -> None:
        super().__init__(f"{method} {path}: HTTP {code}: {body!r}")
        self.code = code
        self.body = body


class WaitTimeout(AssertionError):
    """L{wait_for} gave up; the message holds the last observed value."""


def go_environment() -> dict[str, str]:
    """
    The environment for the Go toolchain: the installed toolchain only,
    and no VCS stamping (the tree may not be a git checkout).
    """
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    flags = env.get("GOFLAGS", "").split()
    if "-buildvcs=false" not in flags:
        flags.append("-buildvcs=false")
    env["GOFLAGS"] = " ".join(flags)
    return env


class ProcessOutput(protocol.ProcessProtocol):
    """
    Keeps a process's output and reports its exit to any number of
    waiters.

    @param keep: at most this many bytes of each stream are kept (the
        last ones); L{None} keeps everything.
    """

    def __init__(self, keep: Optional[int] = None) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exit_code: Optional[int] = None
        self._keep_bytes = keep
        self._ended: list[Deferred[int]] = []

    def _keep(self, buffer: bytearray, data: bytes) -> None:
        buffer += data
        if self._keep_bytes is not None and len(buffer) > self._keep_bytes:
            del buffer[: len(buffer) - self._keep_bytes]

    def outReceived(self, data: bytes) -> None:
        self._keep(self.stdout, data)

    def errReceived(self, data: bytes) -> None:
        self._keep(self.stderr, data)

    def processEnded(self, reason: Failure) -> None:
        code = reason.value.exitCode
        if code is None:
            # Killed by a signal: report it as the shell does.
            code = 128 + (reason.value.signal or 0)
        self.exit_code = code
        waiters, self._ended = self._ended, []
        for waiter in waiters:
            waiter.callback(code)

    def wait_ended(self) -> Deferred[int]:
        if self.exit_code is not None:
            return defer.succeed(self.exit_code)
        waiter: Deferred[int] = Deferred()
        self._ended.append(waiter)
        return waiter


def kill_after(reactor: Any, transport: Any, timeout: float) -> Any:
    """
    SIGKILL the process of C{transport} in C{timeout} seconds unless the
    returned call is cancelled first; still active afterwards means the
    process ended in time.
    """

    def expire() -> None:
        try:
            transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass

    return reactor.callLater(timeout, expire)


async def _run_process(
    reactor: Any,
    executable: str,
    args: list[str],
    *,
    env: Optional[dict[str, str]] = None,
    path: Optional[str] = None,
    timeout: Optional[float] = None,
) -> tuple[bytes, bytes, int]:
    collector = ProcessOutput()
    transport = reactor.spawnProcess(
        collector, executable, [executable, *args], env=env or dict(os.environ), path=path
    )
    timer = None if timeout is None else kill_after(reactor, transport, timeout)
    code = await collector.wait_ended()
    if timer is not None and timer.active():
        timer.cancel()
    elif timer is not None:
        raise StandinError(
            f"{executable} {' '.join(args)} did not finish in {timeout}s; stderr:\n"
            + collector.stderr.decode(errors="replace")[-4000:]
        )
    return bytes(collector.stdout), bytes(collector.stderr), code


# The build, shared by every test of the process: the binary path or the
# failure (a Failure of SkipTest or StandinError).
_build_result: Union[str, Failure, None] = None
_build_waiters: Optional[list[Deferred[str]]] = None


def build_standin(reactor: Any = None) -> Deferred[str]:
    """
    Build the stand-in (once per process) and return the binary's path.

    Without a Go toolchain the Deferred fails with L{SkipTest}, or with
    L{StandinError} when C{CI} is set; a failed build fails with
    L{StandinError} and the compiler's output. C{STANDIN_BINARY} in the
    environment names a prebuilt binary to use instead (for debugging).
    """
    global _build_waiters
    if isinstance(_build_result, str):
        return defer.succeed(_build_result)
    if isinstance(_build_result, Failure):
        return defer.fail(_build_result)
    waiter: Deferred[str] = Deferred()
    if _build_waiters is None:
        _build_waiters = [waiter]
        defer.ensureDeferred(_build(reactor or _reactor())).addBoth(_build_done)
    else:
        _build_waiters.append(waiter)
    return waiter


async def _build(reactor: Any) -> str:
    prebuilt = os.environ.get("STANDIN_BINARY")
    if prebuilt:
        if not os.access(prebuilt, os.X_OK):
            raise StandinError(f"STANDIN_BINARY={prebuilt} is not an executable")
        return prebuilt
    go = shutil.which("go")
    if go is None:
        message = "the Go toolchain (go) is not on PATH; the stand-in tests need it"
        if os.environ.get("CI"):
            raise StandinError(message + " (CI is set, so this is a failure)")
        raise SkipTest(message)
    outdir = tempfile.mkdtemp(prefix="standin-build-")
    atexit.register(shutil.rmtree, outdir, True)
    binary = os.path.join(outdir, "standin")
    _log.info("building the stand-in into {binary}", binary=binary)
    out, err, code = await _run_process(
        reactor,
        go,
        ["build", "-o", binary, "."],
        env=go_environment(),
        path=str(STANDIN_DIR),
        timeout=BUILD_TIMEOUT,
    )
    if code != 0:
        raise StandinError(
            f"go build of {STANDIN_DIR} failed (exit {code}):\n"
            + (out + err).decode(errors="replace")
        )
    return binary


def _build_done(result: Union[str, Failure]) -> None:
    global _build_result, _build_waiters
    _build_result = result
    waiters, _build_waiters = _build_waiters or [], None
    for waiter in waiters:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)


def run_standin(
    args: list[str], *, timeout: Optional[float] = 600.0, reactor: Any = None
) -> Deferred[tuple[bytes, bytes, int]]:
    """
    Run a one-shot subcommand (C{vectors}, C{protovectors}, ...) and return
    its stdout, stderr and exit code. The process is killed after
    C{timeout} seconds, which fails the Deferred.
    """
    reactor = reactor or _reactor()

    async def run() -> tuple[bytes, bytes, int]:
        binary = await build_standin(reactor)
        return await _run_process(reactor, binary, list(args), timeout=timeout)

    return defer.ensureDeferred(run())


# Processes still running, killed at interpreter exit if a test leaked one.
_live: set["StandinProcess"] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        if proc.pid is not None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass


class _ReadyProtocol(protocol.ProcessProtocol):
    """Waits for the readiness line; keeps stderr (and tees it to a file)."""

    def __init__(self, log_path: Optional[str]) -> None:
        self.ready: Deferred[dict[str, Any]] = Deferred()
        self.ended: list[Deferred[int]] = []
        self.exit_code: Optional[int] = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._log_file = open(log_path, "ab") if log_path else None

    def outReceived(self, data: bytes) -> None:
        self.stdout += data
        if not self.ready.called and b"\n" in self.stdout:
            line = bytes(self.stdout).split(b"\n", 1)[0]
            try:
                announced = json.loads(line)
            except ValueError:
                # Not quoted: the line carries the stand-in's API token.
                self.ready.errback(
                    StandinError(f"readiness line is not JSON ({len(line)} bytes; see the stand-in's log)")
                )
                return
            self.ready.callback(announced)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        if len(self.stderr) > _STDERR_KEEP:
            del self.stderr[: len(self.stderr) - _STDERR_KEEP]
        if self._log_file is not None:
            self._log_file.write(data)
            self._log_file.flush()

    def processEnded(self, reason: Failure) -> None:
        code = reason.value.exitCode
        if code is None:
            code = 128 + (reason.value.signal or 0)
        self.exit_code = code
        if self._log_file is not None:
            self._log_file.close()
        if not self.ready.called:
            self.ready.errback(
                StandinExited(
                    f"exited with {code} before it was ready; stderr:\n"
                    + self.stderr.decode(errors="replace")[-8000:]
                )
            )
        waiters, self.ended = self.ended, []
        for waiter in waiters:
            waiter.callback(code)


class StandinProcess:
    """
    A running C{standin} subcommand that announced itself with a JSON line.

    For C{serve}: L{url}, L{control_url}, L{cacerts} and L{checksum} come
    from that line, and the control-API helpers below talk to it.

    @ivar ready: the whole readiness JSON object.
    """

    def __init__(
        self, reactor: Any, transport: Any, proto: _ReadyProtocol, ready: dict[str, Any]
    ) -> None:
        self._reactor = reactor
        self._transport = transport
        self._proto = proto
        self.ready = ready
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._http = HTTPClient(Agent(reactor, pool=self._pool))

    @classmethod
    def spawn(
        cls,
        binary: str,
        args: list[str],
        *,
        reactor: Any = None,
        ready_timeout: float = 60.0,
        log_path: Optional[str] = None,
    ) -> Deferred["StandinProcess"]:
        """
        Start C{binary args...} and wait for its readiness line.
        """
        reactor = reactor or _reactor()
        proto = _ReadyProtocol(log_path)
        transport = reactor.spawnProcess(proto, binary, [binary, *args], env=dict(os.environ))

        def timed_out(result: Any, timeout: float) -> Any:
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            raise StandinError(
                f"{' '.join(args[:1])} not ready after {timeout}s; stderr:\n"
                + proto.stderr.decode(errors="replace")[-8000:]
            )

        def failed(failure: Failure) -> Failure:
            # Never leave a process behind that did not come up properly.
            try:
                transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            return failure

        d = proto.ready
        d.addTimeout(ready_timeout, reactor, onTimeoutCancel=timed_out)
        d.addErrback(failed)
        d.addCallback(lambda ready: cls(reactor, transport, proto, ready))

        def track(proc: "StandinProcess") -> "StandinProcess":
            _live.add(proc)
            return proc

        return d.addCallback(track)

    # What the readiness line said (serve).
    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def control_url(self) -> str:
        return str(self.ready["control"])

    @property
    def cacerts(self) -> str:
        return str(self.ready["cacerts"])

    @property
    def checksum(self) -> str:
        return str(self.ready["checksum"])

    @property
    def pid(self) -> Optional[int]:
        return self._transport.pid

    @property
    def exit_code(self) -> Optional[int]:
        return self._proto.exit_code

    def stderr_text(self) -> str:
        """The last part of what the process wrote to stderr."""
        return self._proto.stderr.decode(errors="replace")

    def client_tls_options(self, hostname: str = "127.0.0.1") -> Any:
        """TLS options that trust only the stand-in's CA."""
        authority = ssl.Certificate.loadPEM(self.cacerts.encode("ascii"))
        return ssl.optionsForClientTLS(hostname, trustRoot=authority)

    def ws_url(self, path: str = "/v3/connect") -> str:
        return "wss://" + self.url.split("://", 1)[1] + path

    # Process control.
    def _wait_ended(self) -> Deferred[int]:
        if self._proto.exit_code is not None:
            return defer.succeed(self._proto.exit_code)
        waiter: Deferred[int] = Deferred()
        self._proto.ended.append(waiter)
        return waiter

    def _signal(self, name: str) -> None:
        try:
            self._transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def stop(self, timeout: float = 30.0) -> Deferred[int]:
        """
        SIGTERM (the stand-in saves its state and exits), wait for the exit,
        SIGKILL after C{timeout}; returns the exit code.
        """

        async def stop() -> int:
            await self._pool.closeCachedConnections()
            if self._proto.exit_code is None:
                self._signal("TERM")
                waiting = self._wait_ended()
                timer = self._reactor.callLater(timeout, self._signal, "KILL")
                await waiting
                if timer.active():
                    timer.cancel()
            _live.discard(self)
            return self._proto.exit_code if self._proto.exit_code is not None else -1

        return defer.ensureDeferred(stop())

    def kill(self) -> Deferred[int]:
        """SIGKILL and wait for the exit (nothing is saved)."""

        async def kill() -> int:
            await self._pool.closeCachedConnections()
            self._signal("KILL")
            code = await self._wait_ended()
            _live.discard(self)
            return code

        return defer.ensureDeferred(kill())

    # The control API.
    def control_raw(
        self, method: str, path: str, body: Any = None
    ) -> Deferred[tuple[int, bytes]]:
        """One control-API request; returns the status and the raw body."""

        async def request() -> tuple[int, bytes]:
            data = None if body is None else json.dumps(body).encode("utf-8")
            response = await self._http.request(
                method,
                self.control_url + path,
                data=data,
                headers={b"Content-Type": [b"application/json"]},
            )
            return response.code, await response.content()

        return defer.ensureDeferred(request())

    def control(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: tuple[int, ...] = (200, 201),
    ) -> Deferred[Any]:
        """
        One control-API request; returns the decoded JSON answer, or fails
        with L{ControlError} when the status is not in C{expect}.
        """

        async def request() -> Any:
            code, raw = await self.control_raw(method, path, body)
            try:
                decoded: Any = json.loads(raw) if raw else None
            except ValueError:
                decoded = raw.decode(errors="replace")
            if code not in expect:
                raise ControlError(method, path, code, decoded)
            return decoded

        return defer.ensureDeferred(request())

    def create_cluster(self, **spec: str) -> Deferred[dict[str, Any]]:
        """Register a cluster (C{id}, C{name}, C{token} optional)."""
        return self.control("POST", "/standin/clusters", spec)

    def cluster(self, cluster_id: str) -> Deferred[dict[str, Any]]:
        """Everything recorded for a cluster."""
        return self.control("GET", f"/standin/clusters/{cluster_id}")

    def clusters(self) -> Deferred[list[dict[str, Any]]]:
        return self.control("GET", "/standin/clusters").addCallback(lambda r: r["clusters"])

    def disconnect(
        self, cluster_id: str, tunnel: str = "both", abort: bool = False
    ) -> Deferred[dict[str, Any]]:
        """Close a cluster's tunnel(s) from the server side."""
        return self.control(
            "POST", f"/standin/clusters/{cluster_id}/disconnect", {"tunnel": tunnel, "abort": abort}
        )

    def streams(
        self,
        cluster_id: str,
        address: str,
        tests: list[dict[str, Any]],
        concurrency: int = 1,
        tunnel: str = "main",
    ) -> Deferred[dict[str, Any]]:
        """Run stream tests (see tests/standin/streamtest.go) through a tunnel."""
        return self.control(
            "POST",
            f"/standin/clusters/{cluster_id}/streams",
            {"address": address, "tests": tests, "concurrency": concurrency, "tunnel": tunnel},
        )

    def steve(
        self, cluster_id: str, path: str, method: str = "GET", **extra: Any
    ) -> Deferred[dict[str, Any]]:
        """One HTTP request through the cluster's steve tunnel."""
        return self.control(
            "POST",
            f"/standin/clusters/{cluster_id}/steve",
            {"method": method, "path": path, **extra},
        )

    def ping(self, cluster_id: str) -> Deferred[dict[str, Any]]:
        """Run the Connected check (GET /ping through steve) now."""
        return self.control("POST", f"/standin/clusters/{cluster_id}/ping")


# The stream-test protocol (tests/standin/streamtest.go): the stand-in opens
# a stream and writes a 17-byte header, op (E echo, S source, K sink) || N
# (uint64 big-endian) || seed (uint64 big-endian); payload(seed, N) is the
# first N bytes of sha256(seed_be8 || 0_be8) || sha256(seed_be8 || 1_be8) ...
STREAM_HEADER_LEN = 17
STREAM_OPS = {b"E": "echo", b"S": "source", b"K": "sink"}


def parse_stream_header(header: bytes) -> tuple[str, int, int]:
    """
    Decode a stream-test header into (op name, N, seed).

    @raise ValueError: if it is not one.
    """
    if len(header) != STREAM_HEADER_LEN or header[:1] not in STREAM_OPS:
        raise ValueError(f"not a stream-test header: {header!r}")
    length, seed = struct.unpack(">QQ", header[1:])
    return STREAM_OPS[header[:1]], length, seed


class StreamPayload:
    """
    payload(seed, ·) of the stream-test protocol, produced incrementally:
    C{read(n)} returns the next C{n} bytes.
    """

    def __init__(self, seed: int) -> None:
        self._seed = struct.pack(">Q", seed)
        self._counter = 0
        self._block = b""

    def read(self, n: int) -> bytes:
        out = bytearray(self._block[:n])
        self._block = self._block[n:]
        while len(out) < n:
            block = hashlib.sha256(self._seed + struct.pack(">Q", self._counter)).digest()
            self._counter += 1
            take = n - len(out)
            out += block[:take]
            self._block = block[take:]
        return bytes(out)


#: Keys whose values are credentials in the stand-in's views (cluster
#: tokens, the tunnel params that carry the SA token, the API token).
SECRET_KEYS = frozenset({"token", "tokens", "apiToken", "params", "paramsHeader", "saToken"})


def redact(value: Any) -> Any:
    """A copy of a control-API answer safe to print: credentials replaced."""
    if isinstance(value, dict):
        return {
            key: ("<redacted>" if key in SECRET_KEYS else redact(item)) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def wait_for(
    probe: Callable[[], Union[T, Awaitable[T]]],
    timeout: float = 30.0,
    clock: Optional[IReactorTime] = None,
    *,
    until: Callable[[T], bool] = bool,
    interval: float = 0.05,
    what: str = "",
) -> Deferred[T]:
    """
    Call C{probe} (which may return a Deferred) until C{until} holds for
    its result, and return that result. Failures of C{probe} count as "not
    yet". After C{timeout} seconds fail with L{WaitTimeout}, whose message
    shows the last value (or failure) observed.
    """
    clock = clock or _reactor()
    missing = object()

    async def poll() -> T:
        deadline = clock.seconds() + timeout
        last: Any = missing
        while True:
            try:
                value = await defer.maybeDeferred(probe)
            except Exception as e:
                last = e
            else:
                last = value
                if until(value):
                    return value
            if clock.seconds() >= deadline:
                shown = "nothing" if last is missing else repr(redact(last))
                raise WaitTimeout(
                    f"waited {timeout}s for {what or 'the condition'}; last observed: {shown[:4000]}"
                )
            await task.deferLater(clock, interval, lambda: None)

    return defer.ensureDeferred(poll())


async def start_standin(
    testcase: TestCase, *args: str, state_dir: Optional[str] = None, reactor: Any = None
) -> StandinProcess:
    """
    Build and start C{standin serve} for a test (stopped in its cleanup).
    The state lives in a fresh directory unless C{state_dir} is given; the
    stand-in's stderr is kept next to it (C{<state_dir>.stderr.log}).
    """
    binary = await build_standin(reactor)
    if state_dir is None:
        state_dir = testcase.mktemp()
    proc = await StandinProcess.spawn(
        binary,
        ["serve", "--state-dir", state_dir, *args],
        reactor=reactor,
        log_path=state_dir.rstrip("/") + ".stderr.log",
    )
    testcase.addCleanup(proc.stop)
    return proc


async def start_refagent(
    testcase: TestCase, standin: StandinProcess, token: str, *args: str, reactor: Any = None
) -> StandinProcess:
    """
    Start the Go reference agent (C{standin refagent}, built from the real
    remotedialer client) against a stand-in, trusting only its CA.
    """
    binary = await build_standin(reactor)
    base = testcase.mktemp()
    os.makedirs(base)
    ca_file = os.path.join(base, "cacerts.pem")
    with open(ca_file, "w") as f:
        f.write(standin.cacerts + "\n")
    proc = await StandinProcess.spawn(
        binary,
        ["refagent", "--server", standin.url, "--token", token, "--cacert", ca_file, *args],
        reactor=reactor,
        log_path=os.path.join(base, "refagent.stderr.log"),
    )
    testcase.addCleanup(proc.stop)
    return proc


class LogWatch:
    """
    Every log event of a test, kept so that its clean-up can check that no
    secret was logged (here, or in a stand-in's stderr: what Rancher would
    log about us).

    Create it in C{setUp} I{after} adding the check as a clean-up:
    clean-ups run last-in first-out, so the check then runs once everything
    has logged and the observer is gone.
    """

    def __init__(self, testcase: Any) -> None:
        self.events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observer(event: dict[str, Any]) -> None:
            self.events.append(event)

        globalLogPublisher.addObserver(observer)
        testcase.addCleanup(globalLogPublisher.removeObserver, observer)

    def secret_leaks(self, secrets: list[str], standins: list["StandinProcess"]) -> list[str]:
        """
        Where any of C{secrets} was logged; each entry names the event or
        the stand-in, never the secret.
        """
        leaks = []
        for index, event in enumerate(self.events):
            text = formatEvent(event) or ""
            try:
                text += repr(event)
            except Exception:
                pass
            if any(secret in text for secret in secrets):
                leaks.append(f"log event #{index} ({event.get('log_format')!r}) holds a secret")
        for standin in standins:
            if any(secret in standin.stderr_text() for secret in secrets):
                leaks.append("the stand-in logged a secret")
        return leaks

    def failures(self) -> list[str]:
        """The failures (tracebacks) that were logged."""
        return [
            formatEvent(event) or repr(event.get("log_format"))
            for event in self.events
            if event.get("log_failure") is not None
        ]

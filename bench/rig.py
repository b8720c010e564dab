"""
The processes a benchmark runs and how it talks to them: the Go Rancher
stand-in (C{tests/standin}, built here with the local Go toolchain), the
scaleagent daemon (C{twistd -n scaleagent} with the probe of
L{bench._probe}), C{/proc} readings of both, and small blocking HTTP
helpers. Everything runs on loopback, in a temporary directory that is
removed afterwards unless asked to keep it.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
STANDIN_DIR = ROOT / "tests" / "standin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(Exception):
    """A benchmark could not be run (a process died, a wait timed out)."""


def ignore_interrupts() -> None:
    """
    Ignore SIGINT and SIGTERM from now on: called when teardown starts, so
    that a second Ctrl-C cannot leave the stand-in or the daemon running or
    the partial results unwritten.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# -- HTTP ---------------------------------------------------------------------


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 60.0,
    raw: bool = False,
) -> Any:
    """One request; the decoded JSON answer (or bytes with C{raw})."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:2000].decode(errors="replace")
        raise BenchError(f"{method} {url}: HTTP {e.code}: {detail}") from None
    if raw:
        return payload
    return json.loads(payload) if payload else None


def wait_until(
    probe: Callable[[], Any],
    timeout: float,
    *,
    interval: float = 2.0,
    what: str = "the condition",
    alive: Optional[Callable[[], None]] = None,
) -> Any:
    """Call C{probe} until it returns something true; its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        if alive is not None:
            alive()
        try:
            last = probe()
        except (OSError, BenchError, ValueError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise BenchError(f"waited {timeout:.0f}s for {what}; last: {str(last)[:1000]}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /proc --------------------------------------------------------------------


@dataclass
class ProcSample:
    t: float
    rss: int
    cpu: float


class Proc:
    """Readings of one process from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _status(self) -> dict[str, str]:
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
        return out

    def rss(self) -> int:
        """Resident set size, bytes."""
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def peak_rss(self) -> int:
        """VmHWM: the highest RSS since the process started, bytes."""
        return int(self._status()["VmHWM"].split()[0]) * 1024

    def cpu(self) -> float:
        """User + system CPU seconds used so far (all threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def threads(self) -> int:
        return int(self._status()["Threads"])

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def smaps(self) -> dict[str, int]:
        """/proc/pid/smaps_rollup in bytes (Rss, Pss, Anonymous, ...)."""
        out = {}
        try:
            with open(f"/proc/{self.pid}/smaps_rollup") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[2] == "kB":
                        out[parts[0].rstrip(":")] = int(parts[1]) * 1024
        except OSError:
            pass
        return out

    def sample(self) -> ProcSample:
        return ProcSample(time.time(), self.rss(), self.cpu())


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class Sampler(threading.Thread):
    """Samples RSS and CPU of some processes every C{interval} seconds."""

    def __init__(self, procs: dict[str, Proc], interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.interval = interval
        self.samples: dict[str, list[ProcSample]] = {name: [] for name in procs}
        self.marks: list[tuple[float, str]] = []
        # Not _stop: threading.Thread has a method of that name.
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for name, proc in list(self.procs.items()):
                try:
                    self.samples.setdefault(name, []).append(proc.sample())
                except OSError:
                    pass
            self._halt.wait(self.interval)

    def mark(self, label: str) -> None:
        self.marks.append((time.time(), label))

    def stop(self) -> None:
        """Stop sampling; returns once the thread has (the samples are final)."""
        self._halt.set()
        if self.is_alive():
            self.join(self.interval + 30)

    def peak(self, name: str, since: float = 0.0) -> int:
        values = [s.rss for s in self.samples.get(name, []) if s.t >= since]
        return max(values) if values else 0

    def timeline(self, name: str, start: float, every: float = 10.0) -> list[dict[str, float]]:
        """Samples about C{every} seconds apart, relative to C{start}."""
        out: list[dict[str, float]] = []
        next_t = 0.0
        for s in self.samples.get(name, []):
            rel = s.t - start
            if rel >= next_t:
                out.append({"t": round(rel, 1), "rss_mib": round(s.rss / 2**20, 1), "cpu_s": round(s.cpu, 2)})
                next_t = rel + every
        return out


# -- the stand-in ---------------------------------------------------------------


def build_standin(workdir: Path) -> str:
    """Build the stand-in (or use C{STANDIN_BINARY}); the binary's path."""
    prebuilt = os.environ.get("STANDIN_BINARY")
    if prebuilt:
        return prebuilt
    go = shutil.which("go")
    if go is None:
        raise BenchError("the Go toolchain (go) is not on PATH; the benchmarks need the stand-in")
    binary = workdir / "standin"
    env = dict(os.environ, GOTOOLCHAIN="local")
    flags = env.get("GOFLAGS", "").split()
    if "-buildvcs=false" not in flags:
        flags.append("-buildvcs=false")
    env["GOFLAGS"] = " ".join(flags)
    log("building the stand-in")
    started = time.monotonic()
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=STANDIN_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise BenchError(f"go build of the stand-in failed:\n{done.stdout}{done.stderr}")
    log(f"built in {time.monotonic() - started:.0f}s")
    return str(binary)


class _Child:
    """
    What the stand-in and the daemon share: a child process whose output
    goes to log files in the run directory, and a JSON API on loopback.
    """

    #: How the process is named in errors.
    name = "the process"
    #: Seconds between SIGTERM and SIGKILL in L{stop}.
    stop_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: Optional[subprocess.Popen[bytes]] = None
        #: Base URL of the API L{get} and L{post} talk to.
        self.api = ""
        self._output: Optional[IO[bytes]] = None

    def _log_names(self) -> list[str]:
        """The process's log files in the run directory, oldest first."""
        raise NotImplementedError

    def log_tail(self, n: int = 4000) -> str:
        out = b""
        for name in self._log_names():
            try:
                out += (self.workdir / name).read_bytes()[-n:]
            except OSError:
                pass
        return out.decode(errors="replace")

    def alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"{self.name} exited ({code}):\n{self.log_tail()}")

    def get(self, path: str, **kw: Any) -> Any:
        return http("GET", self.api + path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return http("POST", self.api + path, body if body is not None else {}, **kw)

    def stop(self, timeout: Optional[float] = None) -> float:
        """SIGTERM, wait (then SIGKILL); the seconds it took."""
        started = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._output is not None:
            self._output.close()
            self._output = None
        return time.monotonic() - started


class Standin(_Child):
    """C{standin serve} with the benchmark switches."""

    name = "the stand-in"

    def __init__(self, binary: str, workdir: Path, args: list[str], ready_timeout: float = 120.0) -> None:
        super().__init__(workdir)
        self._output = open(workdir / "standin.log", "wb")
        try:
            self.process = subprocess.Popen(
                [binary, "serve", "--state-dir", str(workdir / "standin-state"), *args],
                stdout=subprocess.PIPE,
                stderr=self._output,
                stdin=subprocess.DEVNULL,
            )
            self.ready = json.loads(self._ready_line(ready_timeout))
            self.url: str = self.ready["url"]
            self.control: str = self.ready["control"]
            self.api = self.control
            self.proc: Proc = Proc(self.process.pid)
            (workdir / "ca.pem").write_text(self.ready["cacerts"] + "\n")
        except BaseException:
            # Nobody else holds the process yet: without this a failed start
            # (or Ctrl-C while it starts) leaves the stand-in running.
            if self.process is not None:
                self.process.kill()
                self.process.wait()
                if self.process.stdout is not None:
                    self.process.stdout.close()
            self._output.close()
            self._output = None
            raise

    def _ready_line(self, timeout: float) -> bytes:
        """The first line on stdout, which the stand-in writes once it serves."""
        assert self.process is not None and self.process.stdout is not None
        # Straight from the descriptor: a buffered readline cannot time out.
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise BenchError(f"the stand-in was not ready within {timeout:.0f}s:\n{self.log_tail()}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    try:
                        self.process.wait(5)  # lets it finish writing its log
                    except subprocess.TimeoutExpired:
                        pass
                    raise BenchError("the stand-in exited before it was ready:\n" + self.log_tail())
                data += chunk
        return data.split(b"\n", 1)[0]

    def _log_names(self) -> list[str]:
        return ["standin.log"]

    def summary(self, clusters: bool = False) -> dict[str, Any]:
        return self.get("/standin/bench/summary" + ("?clusters=1" if clusters else ""))

    def release(self, ids: Optional[list[str]] = None) -> Any:
        return self.post("/standin/bench/downstream", {"clusters": ids} if ids else {})


# -- the daemon -------------------------------------------------------------------


class Daemon(_Child):
    """
    The scaleagent daemon: C{twistd -n scaleagent} with a configuration
    written for the stand-in, run through L{bench._daemon} for the probe.
    """

    name = "the daemon"
    # SIGTERM saves the state of every cluster: thousands take a while.
    stop_timeout = 120.0

    def __init__(
        self,
        workdir: Path,
        standin: Standin,
        *,
        connect_concurrency: Optional[int] = None,
        poll_interval: Optional[float] = None,
        whatif: str = "",
    ) -> None:
        super().__init__(workdir)
        self.whatif = whatif
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self.url
        config = workdir / "config"
        config.mkdir(exist_ok=True)
        lines = [
            f"RancherURL: {standin.url}",
            f"BearerToken: {standin.ready['apiToken']}",
            f"CACerts: {workdir / 'ca.pem'}",
            f"StateDir: {workdir / 'state'}",
            f"ListenAddress: tcp:{self.port}:interface=127.0.0.1",
            "LogLevel: info",
        ]
        if connect_concurrency:
            lines.append(f"ConnectConcurrency: {connect_concurrency}")
        if poll_interval is not None:
            lines.append(f"RancherPollInterval: {poll_interval:g}")
        (config / "config").write_text("\n".join(lines) + "\n")
        self.proc: Optional[Proc] = None
        self.probe_url = ""
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        self.starts += 1
        probe_file = self.workdir / "probe.port"
        if probe_file.exists():
            probe_file.unlink()
        env = dict(os.environ, SCALEAGENT_BENCH_PROBE=str(probe_file), SCALEAGENT_BENCH_WHATIF=self.whatif)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._output = open(self.workdir / f"daemon-{self.starts}.out", "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench._daemon",
                "-n",
                "--pidfile=",
                f"--logfile={self.workdir / f'daemon-{self.starts}.log'}",
                "scaleagent",
                "--config",
                str(self.workdir / "config"),
            ],
            cwd=str(ROOT),
            env=env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.proc = Proc(self.process.pid)
        wait_until(lambda: self.get("/healthz", timeout=5), timeout, interval=0.5, what="the daemon's control API", alive=self.alive)
        port = wait_until(lambda: probe_file.read_text().strip(), 30, interval=0.2, what="the probe", alive=self.alive)
        self.probe_url = f"http://127.0.0.1:{port}"

    def _log_names(self) -> list[str]:
        return [f"daemon-{self.starts}.out", f"daemon-{self.starts}.log"]

    def summary(self) -> dict[str, Any]:
        """Counts of clusters by state (GET /healthz)."""
        return self.get("/healthz", timeout=30)["clusters"]

    def metrics(self) -> dict[str, float]:
        """GET /metrics as {'name{labels}': value}."""
        text = http("GET", self.url + "/metrics", raw=True, timeout=60).decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out

    def probe(self, method: str, path: str, timeout: float = 300.0) -> Any:
        return http(method, self.probe_url + path, {} if method == "POST" else None, timeout=timeout)


@dataclass
class Workdir:
    """A temporary directory for one benchmark run."""

    keep: bool = False
    path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="scaleagent-bench-")))

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept the run directory {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)

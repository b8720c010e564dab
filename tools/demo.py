"""
A first run without a Rancher: start the bundled Rancher stand-in (the Go
program the tests use, built from tests/standin), point a scaleagent daemon
at it, create a few clusters and show them go Active.

    make run                       # what `make run` does when no config exists
    python tools/demo.py --clusters 5

Everything lives in .demo/ in the checkout; Ctrl-C stops both processes.
The stand-in imitates Rancher's API and what Rancher does to an imported
cluster; it is not Rancher. The README shows how to point scaleagent at a
real one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_standin() -> Path:
    go = shutil.which("go")
    if go is None:
        sys.exit("the demo needs Go to build the Rancher stand-in (tests/standin); install Go 1.25+")
    binary = DEMO / "standin"
    print("building the Rancher stand-in (tests/standin) ...", flush=True)
    environment = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
    subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=ROOT / "tests" / "standin", env=environment, check=True
    )
    return binary


def start_standin(binary: Path) -> tuple[subprocess.Popen, dict]:
    log = open(DEMO / "standin.log", "ab")
    process = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--control-listen",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(DEMO / "standin-state"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        sys.exit(f"the stand-in did not start; see {DEMO / 'standin.log'}")
    return process, json.loads(line)


def write_config(ready: dict, control_port: int) -> Path:
    config_dir = DEMO / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    ca_file = config_dir / "rancher-ca.pem"
    ca_file.write_text(ready["cacerts"])
    (config_dir / "config").write_text(
        "# Written by tools/demo.py: a scaleagent pointed at the local Rancher stand-in.\n"
        f"RancherURL: {ready['url']}\n"
        f"BearerToken: {ready['apiToken']}\n"
        f"CACerts: {ca_file}\n"
        f"ListenAddress: tcp:{control_port}:interface=127.0.0.1\n"
        "RancherPollInterval: 5\n"
    )
    os.chmod(config_dir / "config", 0o600)
    return config_dir


def request(method: str, url: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=10) as answer:
        return json.loads(answer.read())


def wait_for_control(url: str, daemon: subprocess.Popen) -> None:
    for _ in range(120):
        if daemon.poll() is not None:
            sys.exit(f"scaleagent exited; see {DEMO / 'scaleagent.log'}")
        try:
            request("GET", url + "/healthz")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    sys.exit("scaleagent's control API did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=3, help="clusters to create (default 3)")
    options = parser.parse_args()
    DEMO.mkdir(exist_ok=True)
    binary = build_standin()
    standin, ready = start_standin(binary)
    control_port = free_port()
    config_dir = write_config(ready, control_port)
    control = f"http://127.0.0.1:{control_port}"
    twistd = Path(sys.executable).parent / "twistd"
    daemon = subprocess.Popen(
        [str(twistd), "-n", "scaleagent", "-c", str(config_dir)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=open(DEMO / "scaleagent.log", "ab"),
        stderr=subprocess.STDOUT,
    )

    def stop(*_: object) -> None:
        for process in (daemon, standin):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (daemon, standin):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        print("\nstopped; state, config and logs are in", DEMO)
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    wait_for_control(control, daemon)
    print(f"Rancher stand-in: {ready['url']}   scaleagent control API: {control}")
    print(f"config: {config_dir / 'config'}   logs: {DEMO}/*.log\n")

    existing = request("GET", control + "/clusters")["clusters"]
    if not existing:
        created = request("POST", control + "/clusters", {"count": options.clusters, "prefix": "demo-"})
        print("created", ", ".join(created["created"]))
    print("watching (Ctrl-C to stop; try: curl -s", control + "/clusters)\n")
    last = None
    while True:
        if daemon.poll() is not None or standin.poll() is not None:
            print("a process exited; see the logs in", DEMO)
            stop()
        clusters = request("GET", control + "/clusters")["clusters"]
        line = "  ".join(f"{c['name']}: {c['state']}" for c in clusters)
        if line != last:
            print(time.strftime("%H:%M:%S"), line, flush=True)
            last = line
        time.sleep(2)


if __name__ == "__main__":
    main()

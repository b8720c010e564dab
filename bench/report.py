"""
Numbers in, numbers out: percentiles, units, and where results go
(C{bench/results/<time>-<name>.json} and C{.txt}, plus C{latest-<name>.*}).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Optional

RESULTS = Path(__file__).resolve().parent / "results"

MiB = 2**20
KiB = 2**10


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def distribution(samples: Iterable[float]) -> dict[str, Any]:
    values = sorted(samples)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 3),
        "p90": round(percentile(values, 0.90), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(values[-1], 3),
        "mean": round(sum(values) / len(values), 3),
    }


def summarise_ops(ops: dict[str, Any]) -> dict[str, Any]:
    """The stand-in's per-op samples as distributions (ms)."""
    out = {}
    for name, op in sorted(ops.items()):
        entry = distribution(op.get("samplesMs") or [])
        entry["errors"] = op.get("errors", 0)
        if op.get("lastError"):
            entry["last_error"] = op["lastError"][:300]
        if op.get("bytes"):
            entry["bytes"] = op["bytes"]
        if op.get("items"):
            entry["items"] = op["items"]
        phases = op.get("phasesMs") or {}
        if phases:
            entry["phases_p50"] = {
                phase: round(percentile(sorted(values), 0.5), 3) for phase, values in phases.items() if values
            }
        out[name] = entry
    return out


def ops_table(title: str, ops: dict[str, Any]) -> list[str]:
    lines = [title, f"    {'operation':<20}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  ms   errors  size"]
    for name, d in ops.items():
        if not d.get("n"):
            lines.append(f"    {name:<20}{0:>6}  (no samples; errors {d.get('errors', 0)}: {d.get('last_error', '')[:80]})")
            continue
        size = ""
        if d.get("bytes"):
            size = f"{d['bytes'] / 1024:.1f} KiB" + (f", {d['items']} items" if d.get("items", 0) > 1 else "")
        lines.append(
            f"    {name:<20}{d['n']:>6}{d['p50']:>9.2f}{d['p90']:>9.2f}{d['p99']:>9.2f}{d['max']:>9.1f}"
            f"     {d.get('errors', 0):>6}  {size}"
        )
        phases = d.get("phases_p50")
        if phases and "tls" in phases:
            lines.append("        p50 by phase: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    return lines


def mib(value: float) -> float:
    return round(value / MiB, 1)


def kib(value: float) -> float:
    return round(value / KiB, 1)


def _command_output(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        return ""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    """What the numbers were measured on (no host names or paths)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "go": _command_output(["go", "env", "GOVERSION"]),
    }
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_gib"] = round(int(line.split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        info["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    try:
        import OpenSSL
        import twisted

        info["twisted"] = twisted.__version__
        info["pyopenssl"] = OpenSSL.__version__
        info["openssl"] = OpenSSL.SSL.SSLeay_version(OpenSSL.SSL.SSLEAY_VERSION).decode()
    except Exception:
        pass
    return info


def write(name: str, result: dict[str, Any], summary: list[str], extra: Optional[dict[str, str]] = None) -> Path:
    """Write the JSON and the text summary; returns the JSON's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = RESULTS / f"{stamp}-{name}"
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    text = "\n".join(summary) + "\n"
    base.with_suffix(".txt").write_text(text)
    for suffix, content in (extra or {}).items():
        Path(f"{base}{suffix}").write_text(content)
    for suffix in (".json", ".txt"):
        latest = RESULTS / f"latest-{name}{suffix}"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(base.with_suffix(suffix).name)
        except OSError:
            pass
    return json_path

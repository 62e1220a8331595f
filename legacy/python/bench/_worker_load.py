"""Load generation for the worker benchmark with ``wrk`` (C, event-driven), pinned to its own core.

Python load generators saturate a core long before the worker does; ``wrk`` with one thread and
N connections is a closed loop of concurrency N that stays far from being the bottleneck. Bodies
(JSON or binary tensor data) are written to a file and sent verbatim by a small Lua script.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int  # non-2xx responses + socket errors


@dataclass(frozen=True)
class Body:
    path: Path
    content_type: str
    header_length: int | None = None

    @classmethod
    def write(cls, data: bytes, content_type: str, header_length: int | None = None) -> Body:
        fd, name = tempfile.mkstemp(suffix=".body")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return cls(Path(name), content_type, header_length)


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "the worker benchmark needs `wrk` as its load generator: `apt-get install wrk` "
            "(Debian/Ubuntu) or `brew install wrk`"
        )
    return found


def _script(body: Body) -> Path:
    lines = [
        'wrk.method = "POST"',
        f'local f = io.open("{body.path}", "rb")',
        'wrk.body = f:read("*all")',
        "f:close()",
        f'wrk.headers["Content-Type"] = "{body.content_type}"',
    ]
    if body.header_length is not None:
        lines.append(f'wrk.headers["Inference-Header-Content-Length"] = "{body.header_length}"')
    fd, name = tempfile.mkstemp(suffix=".lua")
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return Path(name)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(
    url: str, body: Body, *, connections: int, seconds: float, cpu: int | None
) -> LoadResult:
    """One closed-loop run of ``wrk``; returns throughput, p50/p99 and failures."""
    script = _script(body)
    cmd = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]

    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})  # wrk is single-threaded here (-t1)
        text, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()}")
    finally:
        script.unlink(missing_ok=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", text)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", text)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    failed = int(non2xx[1]) if non2xx else 0
    if socket:
        failed += sum(int(socket[i]) for i in range(1, 5))
    return LoadResult(rps, p50, p99, total, failed)

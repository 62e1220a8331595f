"""Benchmark of the inference worker: ratios measured side by side in one run on one machine.

The worker runs as its own process (``bench/_worker_server.py``: the real app plus a no-op route)
pinned to one core; ``wrk`` drives it from another core; ONNX Runtime uses one intra-op and one
inter-op thread in the worker and in the raw in-process baseline. Every figure is the median over
alternating rounds (A, B, A, B, …), so drift on the machine hits both sides alike. Run
``python -m bench.worker_bench`` (about 3 minutes) or ``--quick`` (about 30 s).

Figures: served rows/s ÷ raw ONNX Runtime rows/s (MLP 3x1024, 32 rows per request, binary
tensors); served ÷ no-op requests/s (tiny model, JSON); batching on ÷ off at concurrency 1, 8, 64;
router overhead (routed ÷ pinned); p50/p99 steady vs during 20 hot swaps, and failed requests.

Peer: KServe's Python model server (``bench/_kserve_server.py``, run by the interpreter of a
separate virtualenv, ``.venv-peer`` from ``make bench-peer-env`` or ``--peer-python``, because
KServe pins its own fastapi/pydantic/uvicorn) serves the same ONNX bytes with the same ORT
settings, pinned to the worker's core; the same ``wrk`` bodies and concurrency drive Lepton and
KServe in alternating rounds, one server under load at a time, after both answers have been
checked against raw ONNX Runtime: Lepton ÷ KServe requests/s and p99 for the MLP (binary
tensors, which KServe accepts too) and for the tiny model (JSON, c=16).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import onnxruntime as ort
import orjson

from bench._worker_load import Body, LoadResult, require_wrk, run_wrk
from lepton.dev import sample_models
from lepton.dev.azurite import Azurite, free_port
from lepton.shared.lifecycle import Stage
from lepton.shared.manifest import Batching, Manifest
from lepton.shared.model_store import BlobModelStore
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import ModelStoreSettings, StorageSettings
from lepton.shared.storage import (
    blob_service,
    ensure_layout,
    table_service,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
MLP_ROWS = 32
MLP = {"width": 1024, "depth": 3, "n_features": 256}
SMALL_MLP = {"width": 512, "depth": 2, "n_features": 128}
SWAPS = 20
MODELS = ("mlp", "tiny", "batch-on", "batch-off", "swap")
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
MLP_CONNECTIONS = 2
TINY_CONNECTIONS = 16


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float
    swap_seconds: float


def spawn_pinned(
    cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, cpu: int | None
) -> subprocess.Popen[bytes]:
    """Start a server process with its output in ``log``, pinned to ``cpu`` when one is given.

    Pinned right after it starts, before it has loaded anything, so the threads it creates
    later (ONNX Runtime's, the event loop's executor) inherit the one-core mask.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    return process


def wait_ready(
    url: str, path: str, *, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    """Poll ``GET path`` until it answers 200; fail early, with its log, if the server dies."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    state = "not ready" if process.poll() is None else f"exited with {process.returncode}"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise SystemExit(f"{url}{path} {state} after {timeout}s; {log} ends with:\n{tail}")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Lab:
    """Azurite + registry + the worker process, and helpers to publish and route versions."""

    def __init__(self, tmp: Path, server_cpu: int | None) -> None:
        self.tmp = tmp
        self.azurite = Azurite(tmp / "azurite", ROOT).start()
        storage = StorageSettings(connection_string=self.azurite.connection_string)
        blobs, tables = blob_service(storage), table_service(storage)
        ensure_layout(blobs, tables)
        self.blobs = blobs
        self.store = BlobModelStore(blobs, ModelStoreSettings(cache_dir=tmp / "cache"))
        self.registry = TableRegistry(tables)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_cpu = server_cpu
        self.process: subprocess.Popen[bytes] | None = None

    def publish(
        self, model: str, version: str, data: bytes, stage: Stage, batching: Batching | None = None
    ) -> None:
        manifest = Manifest(batching=batching) if batching is not None else None
        stored = self.store.upload_model(model, version, io.BytesIO(data), manifest)
        self.registry.register_version(
            model, version, sha256=stored.sha256, size=stored.size, blob_path=stored.path
        )
        steps = {
            Stage.EVALUATING: (Stage.VALIDATING, Stage.EVALUATING),
            Stage.PRODUCTION: (Stage.VALIDATING, Stage.EVALUATING, Stage.PRODUCTION),
            Stage.CANARY: (Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY),
        }[stage]
        for step in steps:
            self.move(model, version, step)

    def move(self, model: str, version: str, to: Stage) -> None:
        self.registry.transition(model, version, to, reason="bench", actor="bench")

    def route(self, model: str, **changes: object) -> None:
        current = self.registry.get_routes(model)
        self.registry.set_routes(
            replace(current, **changes),  # type: ignore[arg-type]
            actor="bench",
            reason="bench",
        )

    def start_worker(self) -> None:
        env = {
            **os.environ,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "LEPTON_CACHE_DIR": str(self.tmp / "cache"),
            "LEPTON_WORKER_PORT": str(self.port),
            "LEPTON_WORKER_REPLICA_ID": "bench",
            "LEPTON_WORKER_POLL_INTERVAL_S": "0.2",
            "LEPTON_WORKER_MODELS": ",".join(MODELS),
            "LEPTON_WORKER_HEARTBEAT_S": "2",
            "LEPTON_WORKER_FLUSH_S": "2",
            "LEPTON_WORKER_INTRA_OP_THREADS": "1",
            "LEPTON_WORKER_INTER_OP_THREADS": "1",
            "LEPTON_WORKER_BATCH_CONCURRENCY": "1",
            "LEPTON_WORKER_UNLOAD_GRACE_S": "0.5",
        }
        self.process = spawn_pinned(
            [sys.executable, str(ROOT / "bench" / "_worker_server.py")],
            env=env,
            cwd=ROOT,
            log=self.tmp / "worker.log",
            cpu=self.server_cpu,
        )

    def wait_ready(self, model: str, version: str | None = None, timeout: float = 60) -> None:
        assert self.process is not None
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
        wait_ready(
            self.url, path, process=self.process, log=self.tmp / "worker.log", timeout=timeout
        )

    def close(self) -> None:
        stop(self.process)
        self.azurite.stop()


class Peer:
    """KServe's model server (``bench/_kserve_server.py``) in its own venv, on the worker's core.

    It serves the same ONNX bytes under the same model names as the worker, so the same request
    paths and ``wrk`` bodies work against both. Its environment drops ``PYTHONPATH`` and
    ``PYTHONHOME`` so nothing from Lepton's venv leaks into KServe's.
    """

    def __init__(self, python: Path, tmp: Path, server_cpu: int | None) -> None:
        self.python = python
        self.tmp = tmp
        self.server_cpu = server_cpu
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "kserve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.version = "?"

    def start(self, models: dict[str, bytes]) -> None:
        specs = []
        for name, data in models.items():
            path = self.tmp / f"peer-{name}.onnx"
            path.write_bytes(data)
            specs.append(f"{name}={path}")
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
        self.process = spawn_pinned(
            [
                str(self.python),
                str(ROOT / "bench" / "_kserve_server.py"),
                "--http_port",
                str(self.port),
                *specs,
            ],
            env=env,
            cwd=self.tmp,
            log=self.log,
            cpu=self.server_cpu,
        )

    def wait_ready(self, models: list[str]) -> None:
        """Wait for every model (KServe imports slowly on one core), then read its version."""
        assert self.process is not None
        for model in models:
            wait_ready(
                self.url,
                f"/v2/models/{model}/ready",
                process=self.process,
                log=self.log,
                timeout=180,
            )
        self.version = str(httpx.get(f"{self.url}/v2", timeout=5).json()["version"])

    def close(self) -> None:
        stop(self.process)


def json_body(x: np.ndarray) -> Body:
    doc = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ]
    }
    return Body.write(orjson.dumps(doc), "application/json")


def binary_body(x: np.ndarray, output: str) -> Body:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": output, "parameters": {"binary_data": True}}],
        }
    )
    return Body.write(header + x.tobytes(), "application/octet-stream", len(header))


def raw_rows_per_s(onnx_bytes: bytes, x: np.ndarray, seconds: float, cpu: int | None) -> float:
    """In-process ONNX Runtime on the worker's core with the worker's thread settings."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for _ in range(3):
            session.run(None, {"input": x})
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            session.run(None, {"input": x})
            n += 1
        return float(n * x.shape[0] / (time.perf_counter() - started))
    finally:
        os.sched_setaffinity(0, before)


def side_by_side(rounds: int, a: Callable[[], T], b: Callable[[], T]) -> tuple[list[T], list[T]]:
    """Run a, b, a, b, … so that drift on the machine hits both sides alike."""
    xs, ys = [], []
    for _ in range(rounds):
        xs.append(a())
        ys.append(b())
    return xs, ys


def alternate(rounds: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, ...]:
    """Median of a, median of b, median of the per-round ratio a/b (rounds alternate a, b)."""
    xs, ys = side_by_side(rounds, a, b)
    ratios = [x / y for x, y in zip(xs, ys, strict=True)]
    return statistics.median(xs), statistics.median(ys), statistics.median(ratios)


@dataclass(frozen=True)
class Workload:
    """One request shape sent to Lepton and to the peer: path, body, concurrency, and its model."""

    label: str
    path: str
    body: Body
    connections: int
    onnx: bytes
    x: np.ndarray


_DTYPES = {"FP32": np.float32}


def decode_outputs(content: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    """Outputs of a v2 response, JSON ``data`` or binary tensors after the JSON header."""
    n = int(header_length) if header_length else len(content)
    doc = orjson.loads(content[:n])
    outputs, offset = {}, n
    for out in doc["outputs"]:
        dtype = _DTYPES[out["datatype"]]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            array = np.asarray(out["data"], dtype)
        else:
            array = np.frombuffer(content[offset : offset + size], dtype)
            offset += size
        outputs[out["name"]] = array.reshape(out["shape"])
    return outputs


def check_answer(server: str, url: str, work: Workload) -> None:
    """One request with the benchmark's exact body; its ``output`` must match raw ONNX Runtime.

    A server that answered fast but wrong (or with an error) would make its throughput figure
    meaningless, so this runs before any load.
    """
    headers = {"content-type": work.body.content_type}
    if work.body.header_length is not None:
        headers["inference-header-content-length"] = str(work.body.header_length)
    response = httpx.post(
        url + work.path, content=work.body.path.read_bytes(), headers=headers, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(
            f"{server} {work.path}: HTTP {response.status_code}: {response.text[:500]}"
        )
    got = decode_outputs(response.content, response.headers.get("inference-header-content-length"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(work.onnx, options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": work.x})[0]
    if "output" not in got or not np.allclose(got["output"], expected, rtol=1e-5, atol=1e-5):
        raise SystemExit(f"{server} {work.path} answered differently from raw ONNX Runtime")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def swap_run(
    lab: Lab, body: Body, plan: Plan, *, cpu: int | None, versions: list[str], current: list[str]
) -> tuple[LoadResult, int]:
    """Load the ``swap`` model while promoting the next version up to ``SWAPS`` times.

    Each promotion waits until the worker serves the new version, so every swap really happens
    under load (three versions rotate: the one two steps back has been unloaded and reloads).
    Returns wrk's result and the number of swaps completed while it ran.
    """
    result: list[LoadResult] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run_wrk(
                f"{lab.url}/v2/models/swap/infer",
                body,
                connections=8,
                seconds=plan.swap_seconds,
                cpu=cpu,
            )
        )
    )
    thread.start()
    done = 0
    with httpx.Client(base_url=lab.url, timeout=5) as client:
        time.sleep(0.2)
        while done < SWAPS and thread.is_alive():
            old = current[0]
            new = versions[(versions.index(old) + 1) % len(versions)]
            lab.move("swap", new, Stage.PRODUCTION)
            lab.move("swap", old, Stage.SUPERSEDED)
            lab.route("swap", production=new)
            current[0] = new
            while thread.is_alive():
                meta = client.get("/v2/models/swap").json()
                if meta["parameters"]["version"] == new:
                    done += 1
                    break
                time.sleep(0.02)
    thread.join()
    return result[0], done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 30 s instead of 3 minutes")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help=f"interpreter of a venv with kserve installed (default: {PEER_PYTHON} if present)",
    )
    args = parser.parse_args(argv)
    peer_python: Path | None = args.peer_python
    if peer_python is None and PEER_PYTHON.exists():
        peer_python = PEER_PYTHON
    elif peer_python is not None and not peer_python.exists():
        raise SystemExit(f"--peer-python {peer_python} does not exist")
    plan = Plan(rounds=1, seconds=1, swap_seconds=6) if args.quick else Plan(3, 2, 8)
    require_wrk()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    load_cpu = cpus[1] if len(cpus) > 1 else None
    rng = np.random.default_rng(0)
    mlp_bytes = sample_models.mlp(**MLP)
    small_bytes = sample_models.mlp(**SMALL_MLP)
    tiny_bytes = sample_models.scaled_identity(1.0)
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(Path(tmp), server_cpu)
        peer = Peer(peer_python, Path(tmp), server_cpu) if peer_python is not None else None
        try:
            if peer is not None:
                # Started first: it imports for a while and is idle (on the same core) afterwards.
                peer.start({"mlp": mlp_bytes, "tiny": tiny_bytes})
            lab.publish(
                "mlp",
                "1.0.0",
                mlp_bytes,
                Stage.PRODUCTION,
                Batching(max_batch_size=MLP_ROWS, max_delay_ms=0),
            )
            lab.publish("tiny", "1.0.0", tiny_bytes, Stage.PRODUCTION)
            lab.publish("tiny", "1.1.0", tiny_bytes, Stage.CANARY)
            lab.publish(
                "batch-on",
                "1.0.0",
                small_bytes,
                Stage.PRODUCTION,
                Batching(max_batch_size=64, max_delay_ms=1.0),
            )
            lab.publish(
                "batch-off",
                "1.0.0",
                small_bytes,
                Stage.PRODUCTION,
                Batching(max_batch_size=1, max_delay_ms=0),
            )
            swap_versions = ["1.0.0", "1.1.0", "1.2.0"]
            for i, v in enumerate(swap_versions):
                lab.publish("swap", v, sample_models.scaled_identity(1.0 + i), Stage.EVALUATING)
            lab.move("swap", "1.0.0", Stage.PRODUCTION)
            for model in ("mlp", "batch-on", "batch-off"):
                lab.route(model, production="1.0.0")
            lab.route("tiny", production="1.0.0", candidate="1.1.0", candidate_weight_bp=5_000)
            lab.route("swap", production="1.0.0")
            lab.start_worker()
            for model in MODELS:
                lab.wait_ready(model)
            lab.wait_ready("tiny", "1.1.0")
            if peer is not None:
                peer.wait_ready(["mlp", "tiny"])
            rows = _measure(
                lab,
                plan,
                rng=rng,
                mlp_bytes=mlp_bytes,
                tiny_bytes=tiny_bytes,
                load_cpu=load_cpu,
                server_cpu=server_cpu,
                swap_versions=swap_versions,
                peer=peer,
            )
        finally:
            if peer is not None:
                peer.close()
            lab.close()
    _print(rows, plan, server_cpu, load_cpu)
    return 0


def _measure(
    lab: Lab,
    plan: Plan,
    *,
    rng: np.random.Generator,
    mlp_bytes: bytes,
    tiny_bytes: bytes,
    load_cpu: int | None,
    server_cpu: int | None,
    swap_versions: list[str],
    peer: Peer | None,
) -> list[tuple[str, str, str, str]]:
    url = lab.url
    rows: list[tuple[str, str, str, str]] = []

    def wrk(path: str, body: Body, c: int, seconds: float | None = None) -> LoadResult:
        return run_wrk(
            url + path, body, connections=c, seconds=seconds or plan.seconds, cpu=load_cpu
        )

    x_mlp = rng.standard_normal((MLP_ROWS, MLP["n_features"])).astype(np.float32)
    mlp_body = binary_body(x_mlp, "output")
    served, raw, ratio = alternate(
        plan.rounds,
        lambda: wrk("/v2/models/mlp/infer", mlp_body, MLP_CONNECTIONS).requests_per_s * MLP_ROWS,
        lambda: raw_rows_per_s(mlp_bytes, x_mlp, plan.seconds, server_cpu),
    )
    rows.append(
        (
            "served ÷ raw ORT rows/s (MLP 3x1024, 32 rows/request, binary)",
            f"{ratio:.2f}",
            "≥ 0.80",
            f"{served:,.0f} vs {raw:,.0f} rows/s",
        )
    )

    x_tiny = rng.random((1, 4), np.float32)
    tiny = json_body(x_tiny)
    model_rps, noop_rps, ratio = alternate(
        plan.rounds,
        lambda: wrk("/v2/models/tiny/infer", tiny, TINY_CONNECTIONS).requests_per_s,
        lambda: wrk("/noop", tiny, TINY_CONNECTIONS).requests_per_s,
    )
    rows.append(
        (
            "served ÷ no-op req/s (tiny model, JSON, c=16)",
            f"{ratio:.2f}",
            "≥ 0.70",
            f"{model_rps:,.0f} vs {noop_rps:,.0f} req/s",
        )
    )

    small = json_body(rng.standard_normal((1, SMALL_MLP["n_features"])).astype(np.float32))
    for c in (1, 8, 64):
        on, off, ratio = alternate(
            plan.rounds,
            _bound(wrk, "/v2/models/batch-on/infer", small, c),
            _bound(wrk, "/v2/models/batch-off/infer", small, c),
        )
        rows.append(
            (
                f"batching on ÷ off req/s (MLP 2x512, 1 row, c={c})",
                f"{ratio:.2f}",
                "",
                f"{on:,.0f} vs {off:,.0f} req/s",
            )
        )

    routed, pinned, ratio = alternate(
        plan.rounds,
        lambda: wrk("/v2/models/tiny/infer", tiny, 16).requests_per_s,
        lambda: wrk("/v2/models/tiny/versions/1.0.0/infer", tiny, 16).requests_per_s,
    )
    overhead_us = (1 / routed - 1 / pinned) * 1e6
    rows.append(
        (
            "router: routed ÷ pinned req/s (50/50 split, c=16)",
            f"{ratio:.2f}",
            "≈ 1",
            f"{overhead_us:+.1f} µs/request",
        )
    )

    swap_body = json_body(np.ones((1, 4), np.float32))
    current = ["1.0.0"]
    steady: list[LoadResult] = []
    swapping: list[LoadResult] = []
    swaps = 0
    for _ in range(plan.rounds):
        steady.append(wrk("/v2/models/swap/infer", swap_body, 8, plan.swap_seconds))
        result, done = swap_run(
            lab, swap_body, plan, cpu=load_cpu, versions=swap_versions, current=current
        )
        swapping.append(result)
        swaps += done
    med = statistics.median
    rows.append(
        (
            f"p50 latency steady → during {SWAPS} hot swaps (c=8)",
            f"{med(r.p50_ms for r in steady):.2f} → {med(r.p50_ms for r in swapping):.2f}",
            "",
            "ms",
        )
    )
    rows.append(
        (
            f"p99 latency steady → during {SWAPS} hot swaps (c=8)",
            f"{med(r.p99_ms for r in steady):.2f} → {med(r.p99_ms for r in swapping):.2f}",
            "",
            "ms",
        )
    )
    failed = sum(r.failed for r in swapping)
    total = sum(r.requests for r in swapping)
    rows.append((f"failed requests during {swaps} hot swaps", str(failed), "0", f"of {total:,}"))
    if peer is None:
        rows.append(
            (
                "Lepton ÷ peer server (KServe) req/s and p99",
                "—",
                "ahead",
                "not measured: run `make bench-peer-env` first (or pass --peer-python)",
            )
        )
    else:
        workloads = [
            Workload(
                "MLP 3x1024, 32 rows/request, binary",
                "/v2/models/mlp/infer",
                mlp_body,
                MLP_CONNECTIONS,
                mlp_bytes,
                x_mlp,
            ),
            Workload(
                "tiny model, JSON",
                "/v2/models/tiny/infer",
                tiny,
                TINY_CONNECTIONS,
                tiny_bytes,
                x_tiny,
            ),
        ]
        rows += _peer_rows(lab, peer, workloads, plan, load_cpu)
    for body in (mlp_body, tiny, small, swap_body):
        body.path.unlink(missing_ok=True)
    return rows


def _peer_rows(
    lab: Lab, peer: Peer, workloads: list[Workload], plan: Plan, load_cpu: int | None
) -> list[tuple[str, str, str, str]]:
    """Lepton ÷ KServe requests/s and p99 per workload, in alternating rounds.

    Both answers are checked first, then each server gets one discarded warm-up run per
    workload (Lepton's worker has been under load for a while by now; KServe has not). The
    server not under load still shares the core: Lepton's worker keeps its background loops
    (route polling, heartbeats, metric flushes), so the CPU each one uses while idle is measured
    and printed, since it counts against the other.
    """
    assert lab.process is not None and peer.process is not None
    pids = {"Lepton": lab.process.pid, "KServe": peer.process.pid}
    name = f"KServe {peer.version}"
    for work in workloads:
        check_answer("Lepton", lab.url, work)
        check_answer(name, peer.url, work)

    def load(url: str, work: Workload, seconds: float) -> LoadResult:
        return run_wrk(
            url + work.path, work.body, connections=work.connections, seconds=seconds, cpu=load_cpu
        )

    for work in workloads:
        load(lab.url, work, 1)
        load(peer.url, work, 1)
    idle = {server: [0.0, 0.0] for server in pids}  # CPU seconds, wall seconds while idle

    def measured(url: str, idle_server: str, work: Workload) -> LoadResult:
        pid = pids[idle_server]
        cpu, wall = cpu_seconds(pid), time.monotonic()
        result = load(url, work, plan.seconds)
        idle[idle_server][0] += cpu_seconds(pid) - cpu
        idle[idle_server][1] += time.monotonic() - wall
        return result

    rows: list[tuple[str, str, str, str]] = []
    med = statistics.median
    for work in workloads:
        ours, theirs = side_by_side(
            plan.rounds,
            functools.partial(measured, lab.url, "KServe", work),
            functools.partial(measured, peer.url, "Lepton", work),
        )
        shape = f"{work.label}, c={work.connections}"
        failed = sum(r.failed for r in ours), sum(r.failed for r in theirs)
        if any(failed):
            rows.append(
                (
                    f"Lepton ÷ {name} ({shape})",
                    "invalid",
                    "ahead",
                    f"failed requests: Lepton {failed[0]}, KServe {failed[1]}",
                )
            )
            continue
        rps_ratio = med(
            a.requests_per_s / b.requests_per_s for a, b in zip(ours, theirs, strict=True)
        )
        p99_ratio = med(a.p99_ms / b.p99_ms for a, b in zip(ours, theirs, strict=True))
        rows.append(
            (
                f"Lepton ÷ {name} req/s ({shape})",
                f"{rps_ratio:.2f}",
                "> 1",
                f"{med(r.requests_per_s for r in ours):,.0f} vs "
                f"{med(r.requests_per_s for r in theirs):,.0f} req/s",
            )
        )
        rows.append(
            (
                f"p99 Lepton vs {name} ({shape})",
                f"{med(r.p99_ms for r in ours):.2f} vs {med(r.p99_ms for r in theirs):.2f}",
                "lower",
                f"ms; Lepton ÷ KServe {p99_ratio:.2f}",
            )
        )
    share = {server: 100 * cpu / wall for server, (cpu, wall) in idle.items()}
    rows.append(
        (
            "idle server's CPU while the other is loaded",
            f"{share['Lepton']:.1f} / {share['KServe']:.1f} %",
            "",
            "Lepton / KServe, of the core they share (counts against the one under load)",
        )
    )
    return rows


def _bound(
    wrk: Callable[[str, Body, int], LoadResult], path: str, body: Body, c: int
) -> Callable[[], float]:
    return lambda: wrk(path, body, c).requests_per_s


def _print(
    rows: list[tuple[str, str, str, str]], plan: Plan, server_cpu: int | None, load_cpu: int | None
) -> None:
    pinning = (
        f"worker on CPU {server_cpu}, wrk on CPU {load_cpu}"
        if server_cpu is not None
        else "one CPU: worker and wrk share it (figures are pessimistic)"
    )
    print(
        f"\nLepton worker benchmark — {pinning}; ORT 1 intra-op + 1 inter-op thread; "
        f"median of {plan.rounds} alternating round(s) of {plan.seconds:g} s\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'value':>15}  {'target':>7}  detail")
    for name, value, target, detail in rows:
        print(f"{name:<{width}}  {value:>15}  {target:>7}  {detail}")


if __name__ == "__main__":
    sys.exit(main())

"""A load generator for the demo and the end-to-end test: callers of the worker's v2 API.

Threads send ``POST /v2/models/{model}/infer`` at a target rate with rows from the dataset and a
slice of rows outside the training range (pixels above ``FEATURE_MAX``), and record for every
request which version served it and whether the caller got a usable answer. A caller's failure is
a transport error, a non-2xx status, or outputs that are not finite numbers (a NaN prediction is
as useless to a caller as an error).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

UNKNOWN_VERSION = "?"


@dataclass(frozen=True)
class LoadSummary:
    sent: int
    failed: int
    served: dict[str, int]  # version → requests it answered
    failed_by_version: dict[str, int]
    unseen_sent: int
    elapsed_s: float
    failures: dict[str, int] = field(default_factory=dict)  # "<status> <version>" → count

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "served": self.served,
            "failed_by_version": self.failed_by_version,
            "unseen_sent": self.unseen_sent,
            "elapsed_s": round(self.elapsed_s, 2),
            "failures": self.failures,
        }


def _finite(value: Any) -> bool:
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def caller_failed(status: int, body: Any) -> bool:
    if not 200 <= status < 300:
        return True
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs:
        return True
    return not all(_finite(o.get("data")) for o in outputs if isinstance(o, dict))


@dataclass
class LoadGenerator:
    worker_url: str
    model: str
    rows: np.ndarray  # float32 [N, features] in the training range
    feature_max: float
    unseen_fraction: float = 0.1
    rps: float = 60.0
    threads: int = 4
    input_name: str = "input"
    seed: int = 0
    _served: Counter[str] = field(default_factory=Counter)
    _failed: Counter[str] = field(default_factory=Counter)
    _failures: Counter[str] = field(default_factory=Counter)
    _sent: int = 0
    _unseen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _started: float = 0.0

    def _row(self, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        row = self.rows[int(rng.integers(len(self.rows)))].copy()
        unseen = bool(rng.random() < self.unseen_fraction)
        if unseen:
            # A few pixels brighter than anything in training: the live slice offline data lacks.
            cols = rng.choice(row.shape[0], size=4, replace=False)
            row[cols] = self.feature_max + 4.0
        return row, unseen

    def _run(self, index: int) -> None:
        rng = np.random.default_rng(self.seed + index)
        interval = self.threads / self.rps
        url = f"{self.worker_url}/v2/models/{self.model}/infer"
        with httpx.Client(timeout=10.0) as http:
            next_at = time.monotonic()
            while not self._stop.is_set():
                row, unseen = self._row(rng)
                body = {
                    "inputs": [
                        {
                            "name": self.input_name,
                            "shape": [1, row.shape[0]],
                            "datatype": "FP32",
                            "data": row.tolist(),
                        }
                    ]
                }
                version = UNKNOWN_VERSION
                status = "transport"
                try:
                    response = http.post(url, json=body)
                    version = response.headers.get("x-lepton-version") or UNKNOWN_VERSION
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = None
                    failed = caller_failed(response.status_code, payload)
                    status = str(response.status_code)
                except httpx.HTTPError:
                    failed = True
                with self._lock:
                    self._sent += 1
                    self._unseen += unseen
                    self._served[version] += 1
                    if failed:
                        self._failed[version] += 1
                        self._failures[f"{status} {version}"] += 1
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
            thread.start()
            self._threads.append(thread)
        return self

    def summary(self) -> LoadSummary:
        with self._lock:
            return LoadSummary(
                sent=self._sent,
                failed=sum(self._failed.values()),
                served=dict(self._served),
                failed_by_version=dict(self._failed),
                unseen_sent=self._unseen,
                elapsed_s=time.monotonic() - self._started,
                failures=dict(self._failures),
            )

    def stop(self) -> LoadSummary:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        return self.summary()

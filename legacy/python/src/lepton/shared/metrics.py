"""Per-window metric rollups: written by every worker replica, summed by canary analysis.

One row per (model, window, version, replica) in the ``metrics`` table, PartitionKey = model. A
replica upserts its row for the current window as it accumulates (idempotent, off the request
path); the lifecycle sums the rows of a window across replicas. Latency is kept as counts over
fixed histogram buckets so windows and replicas add up exactly and rank tests run on the buckets.
Windows older than the retention are deleted by a timer (:func:`expire_rollups`), so the table
does not grow without bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from lepton.shared.names import SemVer, validate_model_name
from lepton.shared.storage import METRICS_TABLE

# Upper bounds (ms) of the latency buckets; the last bucket is everything above the last bound.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.25,
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    2000,
    5000,
    math.inf,
)
# Bins of the top-1 score (classification) or of the first output (regression, clipped to
# [0, 1] after the worker's scaling) used for the population stability index.
SCORE_BINS = 10
# Bounded reservoir of paired shadow latency differences kept per window and replica.
MAX_PAIRED_SAMPLES = 256
# Most operations one entity-group transaction may carry (Azure Table storage's limit).
_MAX_BATCH = 100


def latency_bucket(ms: float) -> int:
    """Index of the bucket that holds a latency of ``ms`` milliseconds."""
    for i, bound in enumerate(LATENCY_BUCKETS_MS):
        if ms <= bound:
            return i
    return len(LATENCY_BUCKETS_MS) - 1


@dataclass(frozen=True)
class WindowRollup:
    """What one replica saw of one version during one window."""

    model: str
    version: str
    replica: str
    window_start: int  # unix seconds, a multiple of window_seconds
    window_seconds: int
    requests: int = 0  # every request this version answered (routed, pinned or shadow)
    routed_requests: int = 0  # requests the weighted router sent here (used for the SRM check)
    errors: int = 0  # failed requests, non-finite outputs included
    nonfinite: int = 0
    rows: int = 0  # predictions made (a request may carry several rows)
    latency_buckets: tuple[int, ...] = field(default_factory=lambda: (0,) * len(LATENCY_BUCKETS_MS))
    latency_sum_ms: float = 0.0
    compute_ms: float = 0.0  # ONNX Runtime time spent for this version (resource use R)
    score_bins: tuple[int, ...] = field(default_factory=lambda: (0,) * SCORE_BINS)
    shadow_pairs: int = 0  # shadow: responses compared with production on the same request
    shadow_flips: int = 0  # shadow: pairs whose top-1 class differs from production's
    paired_latency_diff_ms: tuple[float, ...] = ()  # shadow: candidate - production, sampled

    def merged(self, other: WindowRollup) -> WindowRollup:
        """The sum of two rollups of the same model and version (any replica/window)."""
        return replace(
            self,
            replica="*" if other.replica != self.replica else self.replica,
            requests=self.requests + other.requests,
            routed_requests=self.routed_requests + other.routed_requests,
            errors=self.errors + other.errors,
            nonfinite=self.nonfinite + other.nonfinite,
            rows=self.rows + other.rows,
            latency_buckets=tuple(
                a + b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)
            ),
            latency_sum_ms=self.latency_sum_ms + other.latency_sum_ms,
            compute_ms=self.compute_ms + other.compute_ms,
            score_bins=tuple(a + b for a, b in zip(self.score_bins, other.score_bins, strict=True)),
            shadow_pairs=self.shadow_pairs + other.shadow_pairs,
            shadow_flips=self.shadow_flips + other.shadow_flips,
            paired_latency_diff_ms=(self.paired_latency_diff_ms + other.paired_latency_diff_ms),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "replica": self.replica,
            "window_start": self.window_start,
            "window_seconds": self.window_seconds,
            "requests": self.requests,
            "routed_requests": self.routed_requests,
            "errors": self.errors,
            "nonfinite": self.nonfinite,
            "rows": self.rows,
            "latency_buckets": list(self.latency_buckets),
            "latency_sum_ms": self.latency_sum_ms,
            "compute_ms": self.compute_ms,
            "score_bins": list(self.score_bins),
            "shadow_pairs": self.shadow_pairs,
            "shadow_flips": self.shadow_flips,
            "paired_latency_diff_ms": list(self.paired_latency_diff_ms),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowRollup:
        return cls(
            model=data["model"],
            version=data["version"],
            replica=data["replica"],
            window_start=int(data["window_start"]),
            window_seconds=int(data["window_seconds"]),
            requests=int(data["requests"]),
            routed_requests=int(data["routed_requests"]),
            errors=int(data["errors"]),
            nonfinite=int(data["nonfinite"]),
            rows=int(data["rows"]),
            latency_buckets=tuple(int(x) for x in data["latency_buckets"]),
            latency_sum_ms=float(data["latency_sum_ms"]),
            compute_ms=float(data["compute_ms"]),
            score_bins=tuple(int(x) for x in data["score_bins"]),
            shadow_pairs=int(data["shadow_pairs"]),
            shadow_flips=int(data["shadow_flips"]),
            paired_latency_diff_ms=tuple(float(x) for x in data["paired_latency_diff_ms"]),
        )


def empty_rollup(model: str, version: str, window_start: int, window_seconds: int) -> WindowRollup:
    return WindowRollup(model, version, "*", window_start, window_seconds)


def _row_key(rollup: WindowRollup) -> str:
    return f"{rollup.window_start:012d}!{SemVer.parse(rollup.version).sort_key}!{rollup.replica}"


class MetricsStore:
    """Reads and writes :class:`WindowRollup` rows in the ``metrics`` table."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table: TableClient = tables.get_table_client(METRICS_TABLE)

    def write(self, rollup: WindowRollup) -> None:
        """Upsert one replica's rollup for one window (safe to repeat: last write wins)."""
        validate_model_name(rollup.model)
        self._table.upsert_entity(
            {
                "PartitionKey": rollup.model,
                "RowKey": _row_key(rollup),
                "Version": rollup.version,
                "WindowStart": rollup.window_start,
                "Data": json.dumps(rollup.to_json()),
            },
            mode=UpdateMode.REPLACE,
        )

    def read(self, model: str, start: int, end: int) -> list[WindowRollup]:
        """Every row of ``model`` whose window starts in ``[start, end)`` (unix seconds)."""
        validate_model_name(model)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": model, "lo": f"{start:012d}", "hi": f"{end:012d}"},
        )
        return [WindowRollup.from_json(json.loads(r["Data"])) for r in rows]

    def totals(self, model: str, start: int, end: int) -> dict[str, WindowRollup]:
        """Rollups of ``[start, end)`` summed over replicas and windows, per version."""
        out: dict[str, WindowRollup] = {}
        for row in self.read(model, start, end):
            out[row.version] = out[row.version].merged(row) if row.version in out else row
        return out

    def delete_older_than(self, model: str, cutoff: int) -> int:
        """Delete windows that started before ``cutoff``; returns how many rows went."""
        validate_model_name(model)
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @hi",
            parameters={"pk": model, "hi": f"{cutoff:012d}"},
            select=["PartitionKey", "RowKey"],
        )
        deleted = 0
        batch: list[dict[str, Any]] = []
        # One partition per model, so rows go in entity-group transactions: an hour of rollups
        # from many replicas is a few requests, not one per row. Deleting while paging is safe:
        # the continuation token names the next key, not an offset.
        for row in rows:
            batch.append({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]})
            if len(batch) == _MAX_BATCH:
                deleted += self._delete(batch)
                batch = []
        if batch:
            deleted += self._delete(batch)
        return deleted

    def _delete(self, rows: list[dict[str, Any]]) -> int:
        try:
            self._table.submit_transaction([("delete", row) for row in rows])
        except TableTransactionError:
            # A row went in between (a concurrent pruner): a transaction is all or nothing, so
            # delete one by one; deleting a missing entity is not an error.
            for row in rows:
                self._table.delete_entity(row["PartitionKey"], row["RowKey"])
        return len(rows)


def expire_rollups(
    store: MetricsStore, models: Iterable[str], *, now: float, retention_s: float
) -> dict[str, int]:
    """Delete every model's windows that started more than ``retention_s`` before ``now``.

    Returns the rows deleted per model (models with none left out). The retention timer calls it
    with the registry's models: workers write rollups only for registered versions.
    """
    cutoff = int(now - retention_s)
    deleted: dict[str, int] = {}
    for model in models:
        count = store.delete_older_than(model, cutoff)
        if count:
            deleted[model] = count
    return deleted


def sum_rollups(rows: Iterable[WindowRollup]) -> WindowRollup | None:
    total: WindowRollup | None = None
    for row in rows:
        total = row if total is None else total.merged(row)
    return total

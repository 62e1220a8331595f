"""Rich renderings of a model's state for ``lepton status`` and ``lepton watch``.

A view is built from what the API returns (versions, stages, routes, the active lifecycle's custom
status) plus the ``metrics`` rollups of the last minute read straight from storage (requests,
error rate, p95 latency per version), so the live view shows the same numbers the canary judges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from lepton.shared.metrics import LATENCY_BUCKETS_MS, MetricsStore, WindowRollup

STAGE_STYLE = {
    "registered": "dim",
    "validating": "cyan",
    "evaluating": "cyan",
    "shadow": "magenta",
    "canary": "yellow",
    "production": "bold green",
    "superseded": "dim green",
    "rejected": "bold red",
    "rolled_back": "red",
}
FINAL_STAGES = frozenset({"production", "superseded", "rejected", "rolled_back"})


@dataclass(frozen=True)
class VersionStats:
    requests: int
    error_rate: float | None
    p95_ms: float | None


def p95_ms(buckets: tuple[int, ...]) -> float | None:
    """Upper bound of the bucket holding the 95th percentile (None without samples)."""
    total = sum(buckets)
    if total == 0:
        return None
    running = 0
    for bound, count in zip(LATENCY_BUCKETS_MS, buckets, strict=True):
        running += count
        if running >= 0.95 * total:
            return bound
    return LATENCY_BUCKETS_MS[-1]


def stats_from(rollup: WindowRollup) -> VersionStats:
    rate = rollup.errors / rollup.requests if rollup.requests else None
    return VersionStats(rollup.requests, rate, p95_ms(rollup.latency_buckets))


def recent_stats(
    metrics: MetricsStore | None, model: str, seconds: int = 60
) -> dict[str, VersionStats]:
    if metrics is None:
        return {}
    now = int(time.time())
    try:
        totals = metrics.totals(model, now - seconds, now + 1)
    except Exception:  # metrics are a nicety in the view; the API data is what matters
        return {}
    return {version: stats_from(r) for version, r in totals.items()}


def stage_text(stage: str) -> Text:
    return Text(stage, style=STAGE_STYLE.get(stage, ""))


def traffic_of(version: str, routes: dict[str, Any]) -> str:
    weight = int(routes.get("candidate_weight_bp") or 0)
    if routes.get("production") == version:
        return f"{(10_000 - weight) / 100:g}%" if routes.get("candidate") else "100%"
    if routes.get("candidate") == version:
        return f"{weight / 100:g}%"
    if routes.get("shadow") == version:
        return f"shadow {int(routes.get('shadow_fraction_bp') or 0) / 100:g}%"
    return ""


def step_text(lifecycle: dict[str, Any] | None) -> str:
    """The active lifecycle's position, from its custom status: step, weight, decision."""
    if not lifecycle:
        return ""
    custom = lifecycle.get("custom_status")
    if not isinstance(custom, dict):
        return str(custom or lifecycle.get("runtime_status") or "")
    parts: list[str] = []
    if custom.get("waiting_for"):
        parts.append(f"waiting for {custom['waiting_for']}")
    if custom.get("steps"):
        parts.append(f"step {custom.get('step', 0)}/{custom['steps']}")
        if custom.get("weight_bp") is not None:
            parts.append(f"{int(custom['weight_bp']) / 100:g}%")
    if custom.get("decision"):
        parts.append(str(custom["decision"]))
    return " · ".join(parts) or str(lifecycle.get("runtime_status") or "")


def model_table(
    detail: dict[str, Any],
    lifecycles: dict[str, dict[str, Any] | None],
    stats: dict[str, VersionStats],
) -> Table:
    routes = detail.get("routes") or {}
    table = Table(title=f"model {detail.get('model')}", title_justify="left", expand=False)
    for column in ("version", "stage", "step", "traffic", "req/60s", "errors", "p95 ms", "reason"):
        table.add_column(
            column,
            overflow="fold",
            justify="right" if column in ("req/60s", "errors", "p95 ms") else "left",
        )
    for v in reversed(detail.get("versions") or []):
        version = str(v["version"])
        s = stats.get(version)
        table.add_row(
            version,
            stage_text(str(v["stage"])),
            step_text(lifecycles.get(version)),
            traffic_of(version, routes),
            str(s.requests) if s else "",
            f"{s.error_rate:.1%}" if s and s.error_rate is not None else "",
            f"≤{s.p95_ms:g}" if s and s.p95_ms is not None else "",
            str(v.get("reason") or "")[:80],
        )
    return table


def routes_text(routes: dict[str, Any]) -> Text:
    weight = int(routes.get("candidate_weight_bp") or 0)
    parts = [f"production={routes.get('production') or '-'}"]
    if routes.get("candidate"):
        parts.append(f"candidate={routes['candidate']} ({weight / 100:g}%)")
    if routes.get("shadow"):
        parts.append(
            f"shadow={routes['shadow']} ({int(routes.get('shadow_fraction_bp') or 0) / 100:g}%)"
        )
    if routes.get("sticky_header"):
        parts.append(f"sticky={routes['sticky_header']}")
    parts.append(f"generation {routes.get('generation', 0)}")
    return Text("routes: " + ", ".join(parts))


def model_view(
    detail: dict[str, Any],
    lifecycles: dict[str, dict[str, Any] | None],
    stats: dict[str, VersionStats],
) -> Group:
    return Group(model_table(detail, lifecycles, stats), routes_text(detail.get("routes") or {}))

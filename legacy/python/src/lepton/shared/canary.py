"""Canary statistics: judge one canary step of a candidate against production (DESIGN.md §5).

Pure numpy/scipy over :class:`~lepton.shared.metrics.WindowRollup` totals; no I/O, deterministic.
:func:`decide_canary_step` applies the checks in a fixed order, each with its own reason:

* **Sample-ratio mismatch first** (chi-square of the routed split against the configured weight,
  at ``srm_alpha = 0.001``). If routing did not do what it was told, every other comparison is
  biased, so the step is ``invalid`` rather than judged. The level is strict because the check runs
  at every look of every rollout and real routing bugs give enormous chi-square values anyway
  (the SRM literature, e.g. Fabijan et al. 2019, uses p < 0.0005 for the same reason).
* **Error rate by an always-valid sequential test** (:mod:`lepton.shared._sequential`): the
  orchestrator looks at the totals after every check interval, and a fixed-horizon test repeated
  that often would roll back healthy versions far more often than its alpha says (a one-sided
  z-test at 0.05 peeked every 100 requests rolls back a third of healthy canaries within 20,000
  requests: ``bench/canary_power.py``). The e-process
  stays valid under any number of looks, so a clear regression may stop the step early, even with
  fewer than ``min_requests`` samples, while the false-rollback rate stays below ``alpha``.
* **Too few samples** → ``insufficient_evidence``: the step extends (bounded by the policy)
  instead of passing on no data.
* **Latency**: a rollback needs both a practically large p95 ratio (read from the histograms) and
  a significant one-sided Mann-Whitney U over the bucketed latencies. The rank test runs on the
  buckets because histograms are all a rollup keeps (they add exactly over replicas and windows);
  ranks ignore how wide the buckets are and are robust to latency's heavy tail, and the
  tie-corrected normal approximation is exact enough at canary sample sizes. It is not
  always-valid, which is why its level (``latency_alpha = 0.01``) is stricter and the p95 gate
  requires a large effect as well.
* **Shadow agreement and score shift**, where present (see :mod:`lepton.shared.shadow_stats`).

Every decision also carries :func:`composite_score` (``P = w1·T + w2·R + w3·E``) of both versions
in its ``checks``, for the reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from lepton.shared._sequential import log_e_values
from lepton.shared.errors import InvalidInput, InvalidPolicy
from lepton.shared.metrics import LATENCY_BUCKETS_MS, WindowRollup
from lepton.shared.records import BASIS_POINTS

__all__ = [
    "COMPOSITE_SCALES",
    "COMPOSITE_WEIGHTS",
    "CanaryDecision",
    "CanaryThresholds",
    "SequentialResult",
    "Verdict",
    "composite_from_parts",
    "composite_score",
    "composite_scores",
    "decide_canary_step",
    "error_checks",
    "error_rate_evidence",
    "format_percent",
    "json_safe",
    "latency_checks",
    "mann_whitney_from_buckets",
    "p95_from_buckets",
    "production_reference",
    "sample_ratio_mismatch",
]

# Default weights of P = w1·T + w2·R + w3·E (the policy usually passes its own).
COMPOSITE_WEIGHTS: tuple[float, float, float] = (0.5, 0.2, 0.3)
# Reference scales that make the composite score's parts comparable (see composite_score).
COMPOSITE_SCALES: tuple[float, float, float] = (100.0, 1000.0, 0.01)


@dataclass(frozen=True)
class CanaryThresholds:
    """The statistical part of the rollout policy; invalid values raise ``InvalidPolicy``."""

    alpha: float = 0.05  # error-rate test level (always-valid)
    max_error_rate_ratio: float = 1.5  # tolerated candidate/production error-rate ratio
    max_error_rate_delta: float = 0.005  # absolute tolerance: 0 vs 0.1% is not a rollback
    max_p95_latency_ratio: float = 1.5
    # ...and slower by at least this much at p95: a 3x ratio on 0.1 ms is scheduler jitter,
    # not a regression (the evaluation gate has the same floor, min_latency_delta_ms).
    min_p95_latency_delta_ms: float = 1.0
    latency_alpha: float = 0.01
    min_requests: int = 200  # per version per step; fewer → insufficient_evidence
    srm_alpha: float = 0.001  # sample-ratio-mismatch chi-square level
    min_agreement: float = 0.95  # shadow/label agreement floor
    max_psi: float = 0.2

    def __post_init__(self) -> None:
        for name in ("alpha", "latency_alpha", "srm_alpha"):
            _check_open_unit(name, getattr(self, name), "a significance level such as 0.05")
        _check_number("max_error_rate_ratio", self.max_error_rate_ratio)
        if self.max_error_rate_ratio < 1:
            raise InvalidPolicy(
                f"thresholds.max_error_rate_ratio must be ≥ 1 (1 = no tolerance), got "
                f"{self.max_error_rate_ratio!r}; below 1 an unchanged version would count as a "
                "regression"
            )
        _check_number("max_error_rate_delta", self.max_error_rate_delta)
        if not 0 <= self.max_error_rate_delta < 1:
            raise InvalidPolicy(
                f"thresholds.max_error_rate_delta must be in [0, 1) (an absolute error-rate "
                f"difference such as 0.005), got {self.max_error_rate_delta!r}"
            )
        _check_number("max_p95_latency_ratio", self.max_p95_latency_ratio)
        if self.max_p95_latency_ratio < 1:
            raise InvalidPolicy(
                f"thresholds.max_p95_latency_ratio must be ≥ 1 (e.g. 1.5 = 50% slower), got "
                f"{self.max_p95_latency_ratio!r}"
            )
        _check_number("min_p95_latency_delta_ms", self.min_p95_latency_delta_ms)
        if self.min_p95_latency_delta_ms < 0:
            raise InvalidPolicy(
                f"thresholds.min_p95_latency_delta_ms must be ≥ 0 (milliseconds; 0 = ratio only), "
                f"got {self.min_p95_latency_delta_ms!r}"
            )
        if isinstance(self.min_requests, bool) or not isinstance(self.min_requests, int):
            raise InvalidPolicy(
                f"thresholds.min_requests must be a whole number, got {self.min_requests!r}"
            )
        if self.min_requests < 1:
            raise InvalidPolicy(
                f"thresholds.min_requests must be ≥ 1 (e.g. 200), got {self.min_requests!r}"
            )
        _check_number("min_agreement", self.min_agreement)
        if not 0 <= self.min_agreement <= 1:
            raise InvalidPolicy(
                f"thresholds.min_agreement must be in [0, 1] (a fraction such as 0.95), got "
                f"{self.min_agreement!r}"
            )
        _check_number("max_psi", self.max_psi)
        if self.max_psi <= 0:
            raise InvalidPolicy(
                f"thresholds.max_psi must be > 0 (0.1 = minor shift, 0.2 = major), got "
                f"{self.max_psi!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPolicy(f"thresholds.{name} must be a finite number, got {value!r}")
    return float(value)


def _check_open_unit(name: str, value: object, example: str) -> None:
    if not 0 < _check_number(name, value) < 1:
        raise InvalidPolicy(f"thresholds.{name} must be in (0, 1) ({example}), got {value!r}")


class Verdict(StrEnum):
    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    INVALID = "invalid"  # sample-ratio mismatch: routing did not do what it was told


@dataclass(frozen=True)
class CanaryDecision:
    """A verdict, the sentence a user sees, and every statistic computed on the way."""

    verdict: Verdict
    reason: str
    checks: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form: NaN and infinities (empty or overflow histograms) become ``None``."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "checks": json_safe(self.checks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CanaryDecision:
        return cls(Verdict(data["verdict"]), str(data["reason"]), dict(data["checks"]))


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (strict JSON, as reports and HTTP need)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | str | None):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class SequentialResult:
    """Evidence that the candidate's error rate exceeds production's beyond the tolerance."""

    candidate_rate: float
    production_rate: float
    tolerated_rate: float  # max(ratio·production, production + delta) at the observed rates
    log_e_value: float
    p_value: float  # always-valid: min(1, 1/e); valid at any look, however many were taken
    alpha: float
    regression: bool  # p_value ≤ alpha

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate_error_rate": self.candidate_rate,
            "production_error_rate": self.production_rate,
            "tolerated_error_rate": self.tolerated_rate,
            "error_log_e_value": self.log_e_value,
            "error_p_value": self.p_value,
            "error_alpha": self.alpha,
            "error_regression": self.regression,
        }


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidInput(f"{name} must be a whole number ≥ 0, got {value!r}")


def error_rate_evidence(
    cand_errors: int,
    cand_n: int,
    prod_errors: int,
    prod_n: int,
    *,
    alpha: float,
    max_ratio: float,
    max_delta: float,
) -> SequentialResult:
    """Always-valid test of "candidate error rate > max(ratio·production, production + delta)".

    Universal-inference e-process with Jeffreys mixtures (see :mod:`lepton.shared._sequential`):
    pass the cumulative totals at every look; rejecting whenever ``p_value ≤ alpha`` keeps the
    false-rollback probability ≤ alpha over all looks together.
    """
    for name, value in (
        ("cand_errors", cand_errors), ("cand_n", cand_n),
        ("prod_errors", prod_errors), ("prod_n", prod_n),
    ):  # fmt: skip
        _check_count(name, value)
    if cand_errors > cand_n or prod_errors > prod_n:
        raise InvalidInput(
            f"errors cannot exceed requests (candidate {cand_errors}/{cand_n}, production "
            f"{prod_errors}/{prod_n}); pass counts from the same rollup"
        )
    CanaryThresholds(alpha=alpha, max_error_rate_ratio=max_ratio, max_error_rate_delta=max_delta)
    log_e = float(
        log_e_values(
            cand_errors, cand_n, prod_errors, prod_n, max_ratio=max_ratio, max_delta=max_delta
        )
    )
    cand_rate = cand_errors / cand_n if cand_n else 0.0
    prod_rate = prod_errors / prod_n if prod_n else 0.0
    p_value = 1.0 if log_e <= 0 else math.exp(-log_e)
    return SequentialResult(
        candidate_rate=cand_rate,
        production_rate=prod_rate,
        tolerated_rate=max(max_ratio * prod_rate, prod_rate + max_delta),
        log_e_value=log_e,
        p_value=p_value,
        alpha=alpha,
        regression=p_value <= alpha,
    )


def _check_buckets(name: str, buckets: Sequence[int]) -> np.ndarray[Any, np.dtype[np.float64]]:
    arr = np.asarray(buckets, dtype=np.float64)
    if arr.ndim != 1 or arr.size != len(LATENCY_BUCKETS_MS):
        raise InvalidInput(
            f"{name} must hold {len(LATENCY_BUCKETS_MS)} latency bucket counts "
            f"(LATENCY_BUCKETS_MS), got {arr.size}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidInput(f"{name} must hold counts ≥ 0, got {list(buckets)}")
    return arr


def p95_from_buckets(buckets: Sequence[int]) -> float:
    """Upper bound (ms) of the bucket holding the 95th percentile.

    ``inf`` when it falls in the overflow bucket, ``nan`` for an empty histogram.
    """
    counts = _check_buckets("buckets", buckets)
    total = counts.sum()
    if total == 0:
        return math.nan
    # The smallest bucket whose cumulative count reaches 95% of the total.
    index = int(np.searchsorted(np.cumsum(counts), 0.95 * total, side="left"))
    return float(LATENCY_BUCKETS_MS[index])


def mann_whitney_from_buckets(a: Sequence[int], b: Sequence[int]) -> tuple[float, float]:
    """(U of ``a``, one-sided p that ``a`` — the candidate — is slower than ``b``).

    Every latency in a bucket ties with the others there; U counts a tie as 1/2 and the variance
    carries the usual tie correction. Normal approximation with continuity correction, as
    ``scipy.stats.mannwhitneyu(method="asymptotic")``; p = 1 when either side is empty or every
    latency shares one bucket.
    """
    ca = _check_buckets("a", a)
    cb = _check_buckets("b", b)
    n_a, n_b = ca.sum(), cb.sum()
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    below_b = np.cumsum(cb) - cb  # production latencies in strictly faster buckets
    u = float(np.sum(ca * (below_b + 0.5 * cb)))
    n = n_a + n_b
    ties = ca + cb
    variance = n_a * n_b / 12.0 * ((n + 1) - np.sum(ties**3 - ties) / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0
    z = (u - n_a * n_b / 2.0 - 0.5) / math.sqrt(variance)
    return u, float(stats.norm.sf(z))


def sample_ratio_mismatch(
    candidate_routed: int, production_routed: int, weight_bp: int
) -> tuple[float, float]:
    """(chi-square, p) of the routed split against ``weight_bp`` basis points to the candidate."""
    _check_count("candidate_routed", candidate_routed)
    _check_count("production_routed", production_routed)
    if (
        isinstance(weight_bp, bool)
        or not isinstance(weight_bp, int)
        or not (0 <= weight_bp <= BASIS_POINTS)
    ):
        raise InvalidInput(
            f"weight_bp must be a whole number of basis points in 0..{BASIS_POINTS}, "
            f"got {weight_bp!r}"
        )
    total = candidate_routed + production_routed
    if total == 0:
        return 0.0, 1.0
    share = weight_bp / BASIS_POINTS
    expected = np.array([total * share, total * (1 - share)])
    observed = np.array([candidate_routed, production_routed], dtype=np.float64)
    if np.any(expected == 0):
        # 0% or 100%: any request on the side that should get none is a mismatch.
        exact = bool(np.all(observed[expected == 0] == 0))
        return (0.0, 1.0) if exact else (math.inf, 0.0)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return chi2, float(stats.chi2.sf(chi2, df=1))


def composite_from_parts(
    p95_ms: float,
    compute_ms_per_1k: float,
    error_rate: float,
    *,
    weights: tuple[float, float, float] = COMPOSITE_WEIGHTS,
    scales: tuple[float, float, float] = COMPOSITE_SCALES,
) -> dict[str, float]:
    """``P = w1·T + w2·R + w3·E`` from its raw parts; lower is better.

    The parts are made unitless by reference scales so the weights mean what they say:
    ``T = p95 ms / 100 ms``, ``R = (compute ms per 1,000 predictions) / 1000 ms`` (1 ms of ONNX
    Runtime time per prediction), ``E = error rate / 1%``. So a version at p95 100 ms, 1 ms per
    prediction and 1% errors scores ``P = w1 + w2 + w3``. The raw values come back too. One
    function for live traffic (:func:`composite_score`) and the offline evaluation, so every
    report scores versions the same way.
    """
    _check_composite(weights, scales)
    t, r, e = p95_ms / scales[0], compute_ms_per_1k / scales[1], error_rate / scales[2]
    return {
        "p95_ms": p95_ms,
        "compute_ms_per_1k": compute_ms_per_1k,
        "error_rate": error_rate,
        "T": t,
        "R": r,
        "E": e,
        "P": weights[0] * t + weights[1] * r + weights[2] * e,
    }


def _check_composite(
    weights: tuple[float, float, float], scales: tuple[float, float, float]
) -> None:
    for label, triple in (("weights", weights), ("scales", scales)):
        if len(triple) != 3 or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in triple
        ):
            raise InvalidPolicy(
                f"composite {label} must be three finite numbers ≥ 0, got {triple!r}"
            )
    if sum(weights) <= 0 or min(scales) <= 0:
        raise InvalidPolicy(
            f"composite weights must not all be 0 and scales must be > 0, got weights "
            f"{weights!r}, scales {scales!r}"
        )


def composite_score(
    rollup: WindowRollup,
    *,
    weights: tuple[float, float, float] = COMPOSITE_WEIGHTS,
    scales: tuple[float, float, float] = COMPOSITE_SCALES,
) -> dict[str, float]:
    """:func:`composite_from_parts` of one version's live traffic in a rollup.

    ``T`` from the histogram's p95, ``R`` from ONNX Runtime compute time per 1,000 predictions,
    ``E`` from failed requests. Parts are NaN when the rollup saw no requests (or no
    predictions, for R); a p95 in the overflow bucket makes ``T`` infinite.
    """
    _check_composite(weights, scales)  # a bad policy is named before the rollup is read
    p95_ms = p95_from_buckets(rollup.latency_buckets)
    compute_per_1k = rollup.compute_ms / rollup.rows * 1000.0 if rollup.rows else math.nan
    error_rate = rollup.errors / rollup.requests if rollup.requests else math.nan
    return composite_from_parts(p95_ms, compute_per_1k, error_rate, weights=weights, scales=scales)


def composite_scores(
    candidate: WindowRollup, production: WindowRollup | None, weights: tuple[float, float, float]
) -> dict[str, dict[str, float]]:
    """:func:`composite_score` of the candidate and, when there is one, of production."""
    out = {"candidate": composite_score(candidate, weights=weights)}
    if production is not None:
        out["production"] = composite_score(production, weights=weights)
    return out


def format_percent(rate: float) -> str:
    return f"{100 * rate:.2g}%" if rate < 0.1 else f"{100 * rate:.1f}%"


def _p95_ratio(cand_p95: float, prod_p95: float) -> float:
    if math.isnan(cand_p95) or math.isnan(prod_p95):
        return math.nan
    if math.isinf(prod_p95):
        return 1.0 if math.isinf(cand_p95) else 0.0
    return cand_p95 / prod_p95


def latency_checks(
    candidate: WindowRollup, production: WindowRollup, thresholds: CanaryThresholds
) -> tuple[dict[str, Any], str | None]:
    """Latency statistics, and a rollback reason when the p95 ratio, its absolute difference and
    Mann-Whitney all say slower."""
    cand_p95 = p95_from_buckets(candidate.latency_buckets)
    prod_p95 = p95_from_buckets(production.latency_buckets)
    ratio = _p95_ratio(cand_p95, prod_p95)
    delta = cand_p95 - prod_p95  # NaN or inf propagate; NaN compares false below
    u, p = mann_whitney_from_buckets(candidate.latency_buckets, production.latency_buckets)
    checks = {
        "candidate_p95_ms": cand_p95,
        "production_p95_ms": prod_p95,
        "p95_ratio": ratio,
        "p95_delta_ms": delta,
        "latency_mwu_u": u,
        "latency_mwu_p": p,
    }
    if (
        ratio > thresholds.max_p95_latency_ratio
        and delta > thresholds.min_p95_latency_delta_ms
        and p < thresholds.latency_alpha
    ):
        return checks, (
            f"candidate p95 latency {cand_p95:g} ms vs production {prod_p95:g} ms (ratio "
            f"{ratio:.2f} > {thresholds.max_p95_latency_ratio:g}, +{delta:g} ms > "
            f"{thresholds.min_p95_latency_delta_ms:g} ms; Mann-Whitney p={p:.2g} < "
            f"{thresholds.latency_alpha:g})"
        )
    return checks, None


def error_checks(
    candidate: WindowRollup, production: WindowRollup | None, thresholds: CanaryThresholds
) -> tuple[dict[str, Any], str | None]:
    """Error-rate statistics, and a rollback reason when the sequential test rejects."""
    prod_errors, prod_n = (production.errors, production.requests) if production else (0, 0)
    result = error_rate_evidence(
        candidate.errors,
        candidate.requests,
        prod_errors,
        prod_n,
        alpha=thresholds.alpha,
        max_ratio=thresholds.max_error_rate_ratio,
        max_delta=thresholds.max_error_rate_delta,
    )
    if not result.regression:
        return result.to_json(), None
    cand, prod = format_percent(result.candidate_rate), format_percent(result.production_rate)
    return result.to_json(), (
        f"candidate error rate {cand} ({candidate.errors}/{candidate.requests}) vs production "
        f"{prod} ({prod_errors}/{prod_n}) exceeds the tolerated "
        f"{format_percent(result.tolerated_rate)} (always-valid p={result.p_value:.2g} < "
        f"{thresholds.alpha:g})"
    )


def production_reference(
    window: WindowRollup | None, baseline: WindowRollup | None, *, weight_bp: int
) -> WindowRollup | None:
    """The production totals a canary step is judged against: ``window`` or ``baseline``.

    Below 100% production serves the rest of the same window, the fairest comparison (same
    time, same load), so ``window`` is used. At 100% production gets no routed traffic: the
    window holds nothing (or a few pinned calls) and no regression could be shown, so the step
    would pass on no evidence. There ``baseline`` — production's totals measured earlier in the
    same rollout — is used when it saw requests. A comparison across time is weaker than a
    concurrent split (a change of load between the two shows as a difference), which is why it
    is used only where no concurrent production traffic exists.
    """
    if weight_bp == BASIS_POINTS and baseline is not None and baseline.requests > 0:
        return baseline
    return window


def decide_canary_step(
    candidate: WindowRollup | None,
    production: WindowRollup | None,
    *,
    weight_bp: int,
    thresholds: CanaryThresholds,
    final_step: bool,
    composite_weights: tuple[float, float, float] = COMPOSITE_WEIGHTS,
) -> CanaryDecision:
    """Judge one canary step from the totals of its windows so far (module docstring: order).

    Pass the totals accumulated since the step began, at every look: the error test stays valid
    however often it is called on growing totals, and the SRM check compares them with this
    step's weight (so do not carry routed counts across steps). Each step is a fresh sequential
    test, so over S steps the false-rollback rate is at most S·alpha (far less in practice: see
    ``bench/canary_power.py``). ``production=None`` means there is no
    production version to compare with: no SRM or latency comparison, and no error regression
    can be shown; only the sample-size floor applies. At ``weight_bp=10000`` production receives
    no routed traffic: pass its totals from the earlier steps to keep the comparisons meaningful
    (its sample-size floor is not applied there; :func:`production_reference` picks them).
    ``checks["composite"]`` holds
    :func:`composite_score` of both versions under ``composite_weights`` (pass the policy's).
    """
    # Validates weight_bp even when the SRM check itself is skipped.
    sample_ratio_mismatch(0, 0, weight_bp)
    if candidate is None or candidate.requests == 0:
        return CanaryDecision(
            Verdict.INSUFFICIENT_EVIDENCE,
            f"no requests reached the candidate yet at weight {weight_bp / 100:g}%; keep the "
            "step running",
            {"weight_bp": weight_bp, "candidate_requests": 0},
        )
    checks: dict[str, Any] = {
        "weight_bp": weight_bp,
        "candidate_requests": candidate.requests,
        "production_requests": production.requests if production else 0,
        "candidate_routed": candidate.routed_requests,
        "production_routed": production.routed_requests if production else 0,
        "composite": composite_scores(candidate, production, composite_weights),
    }

    if production is not None and weight_bp != BASIS_POINTS:
        chi2, srm_p = sample_ratio_mismatch(
            candidate.routed_requests, production.routed_requests, weight_bp
        )
        checks.update(srm_chi2=chi2, srm_p=srm_p)
        if srm_p < thresholds.srm_alpha:
            routed = candidate.routed_requests + production.routed_requests
            share = candidate.routed_requests / routed
            return CanaryDecision(
                Verdict.INVALID,
                f"sample-ratio mismatch: the candidate got {100 * share:.2f}% of {routed} routed "
                f"requests but its weight is {weight_bp / 100:g}% (chi2={chi2:.1f}, "
                f"p={srm_p:.2g} < {thresholds.srm_alpha:g}); the window is not judged — check "
                "the router and the replicas' route tables",
                checks,
            )

    error_stats, error_reason = error_checks(candidate, production, thresholds)
    checks.update(error_stats)
    if error_reason is not None:
        return CanaryDecision(Verdict.ROLLBACK, error_reason, checks)

    # At 100% production gets no routed traffic, so only its earlier totals (if passed) count.
    sizes = [("candidate", candidate.requests)]
    if production is not None and weight_bp < BASIS_POINTS:
        sizes.append(("production", production.requests))
    short = [f"{name} {n}" for name, n in sizes if n < thresholds.min_requests]
    if short:
        return CanaryDecision(
            Verdict.INSUFFICIENT_EVIDENCE,
            f"too few requests to judge ({', '.join(short)} < {thresholds.min_requests} per "
            "version); the step extends",
            checks,
        )

    if production is not None:
        latency_stats, latency_reason = latency_checks(candidate, production, thresholds)
        checks.update(latency_stats)
        if latency_reason is not None:
            return CanaryDecision(Verdict.ROLLBACK, latency_reason, checks)

        # shadow_stats builds on this module's types, so it is imported here, not at the top.
        from lepton.shared.shadow_stats import agreement_checks

        shadow_stats, shadow_reason = agreement_checks(candidate, production, thresholds)
        checks.update(shadow_stats)
        if shadow_reason is not None:
            return CanaryDecision(Verdict.ROLLBACK, shadow_reason, checks)

    summary = f"error rate {format_percent(checks['candidate_error_rate'])} vs production " + (
        format_percent(checks["production_error_rate"])
        if production is not None
        else "(none: no production version to compare with)"
    )
    if "p95_ratio" in checks:
        summary += f", p95 ratio {checks['p95_ratio']:.2f}"
    if final_step:
        return CanaryDecision(
            Verdict.PROMOTE,
            f"final step passed over {candidate.requests} requests: {summary}",
            checks,
        )
    return CanaryDecision(
        Verdict.CONTINUE, f"step passed over {candidate.requests} requests: {summary}", checks
    )

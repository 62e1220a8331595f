"""Paired statistics: candidate and production answering the *same* requests (shadow or labels).

Shadow traffic mirrors each request to the candidate, so the two versions can be compared pair by
pair, which is far more sensitive than comparing two independent samples:

* **Top-1 flip rate**: the share of pairs whose top-1 class differs. Without labels a flip cannot
  be called right or wrong, so the question is only "do they disagree more than the policy allows
  (``1 - min_agreement``)?": an exact one-sided binomial test, so a handful of noisy pairs does not
  roll back a version whose point estimate dips under the floor.
* **McNemar's test** where labels exist (offline evaluation): only the discordant pairs carry
  information about which model is more accurate; the exact binomial form is valid at any count.
* **Paired latency by Wilcoxon signed-rank** on candidate - production differences: it removes the
  per-request variation both versions share, and ranks keep a few slow outliers from dominating.
* **Score shift by the population stability index** over the score bins, with epsilon smoothing so
  an empty bin does not make it infinite (0.1 is the customary "minor", 0.2 the "major" shift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from lepton.shared.canary import (
    COMPOSITE_WEIGHTS,
    CanaryDecision,
    CanaryThresholds,
    Verdict,
    composite_scores,
    error_checks,
    format_percent,
    latency_checks,
)
from lepton.shared.errors import InvalidInput
from lepton.shared.metrics import WindowRollup

__all__ = [
    "PSI_EPSILON",
    "FlipRateResult",
    "agreement_checks",
    "decide_shadow",
    "flip_rate_test",
    "mcnemar",
    "mcnemar_from_predictions",
    "population_stability_index",
    "wilcoxon_paired_latency",
]

# Smallest bin share used by the PSI: a bin empty on one side counts as 0.01% of it.
PSI_EPSILON = 1e-4
# Below this many non-zero differences (and without ties) the Wilcoxon null is enumerated exactly.
_WILCOXON_EXACT_MAX_N = 50


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidInput(f"{name} must be a whole number ≥ 0, got {value!r}")


def mcnemar(b01: int, b10: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (1.0 when there are none)."""
    _check_count("b01", b01)
    _check_count("b10", b10)
    if b01 + b10 == 0:
        return 1.0
    return float(stats.binomtest(int(b01), int(b01 + b10), 0.5).pvalue)


@dataclass(frozen=True)
class FlipRateResult:
    pairs: int
    flips: int
    flip_rate: float
    max_flip_rate: float
    p_value: float  # one-sided exact binomial, H0: flip rate ≤ max_flip_rate
    exceeds: bool  # p_value < alpha

    def to_json(self) -> dict[str, Any]:
        return {
            "shadow_pairs": self.pairs,
            "shadow_flips": self.flips,
            "agreement": 1.0 - self.flip_rate,
            "flip_rate": self.flip_rate,
            "max_flip_rate": self.max_flip_rate,
            "flip_p_value": self.p_value,
            "flip_exceeds": self.exceeds,
        }


def flip_rate_test(
    pairs: int, flips: int, *, max_flip_rate: float, alpha: float = 0.05
) -> FlipRateResult:
    """Is the top-1 flip rate significantly above ``max_flip_rate``? (exact binomial, one-sided)."""
    _check_count("pairs", pairs)
    _check_count("flips", flips)
    if flips > pairs:
        raise InvalidInput(
            f"flips ({flips}) cannot exceed pairs ({pairs}); pass one rollup's counts"
        )
    if not 0 <= max_flip_rate <= 1 or not 0 < alpha < 1:
        raise InvalidInput(
            f"max_flip_rate must be in [0, 1] and alpha in (0, 1), got {max_flip_rate!r}, {alpha!r}"
        )
    if pairs == 0:
        return FlipRateResult(0, 0, 0.0, max_flip_rate, 1.0, False)
    if max_flip_rate == 0:
        p = 0.0 if flips else 1.0  # any flip refutes "never flips"
    else:
        p = float(
            stats.binomtest(int(flips), int(pairs), max_flip_rate, alternative="greater").pvalue
        )
    return FlipRateResult(pairs, flips, flips / pairs, max_flip_rate, p, p < alpha)


def wilcoxon_paired_latency(diffs_ms: Sequence[float]) -> tuple[float, float]:
    """(sum of positive ranks, one-sided p that the candidate is slower) for paired differences.

    Zero differences are dropped (Wilcoxon's convention); exact null distribution for small
    samples without ties, normal approximation otherwise; p = 1 with no non-zero difference.
    """
    d = np.asarray(diffs_ms, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise InvalidInput("paired latency differences must be a flat list of finite numbers (ms)")
    d = d[d != 0]
    if d.size == 0:
        return 0.0, 1.0
    has_ties = np.unique(np.abs(d)).size < d.size
    method = "exact" if d.size <= _WILCOXON_EXACT_MAX_N and not has_ties else "approx"
    result = stats.wilcoxon(d, alternative="greater", method=method)
    return float(result.statistic), float(result.pvalue)


def population_stability_index(
    expected_bins: Sequence[int], actual_bins: Sequence[int], *, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = Σ (a - e)·ln(a / e) over bin shares, each share floored at ``epsilon``."""
    e = np.asarray(expected_bins, dtype=np.float64)
    a = np.asarray(actual_bins, dtype=np.float64)
    if e.ndim != 1 or e.shape != a.shape or e.size < 2:
        raise InvalidInput(
            f"PSI needs two flat lists of bin counts of the same length ≥ 2, got {e.size} and "
            f"{a.size} bins"
        )
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))) or np.any(e < 0) or np.any(a < 0):
        raise InvalidInput("PSI bin counts must be finite numbers ≥ 0")
    if e.sum() == 0 or a.sum() == 0:
        raise InvalidInput("PSI needs at least one observation on each side; wait for traffic")
    shares = [np.maximum(x / x.sum(), epsilon) for x in (e, a)]
    pe, pa = (s / s.sum() for s in shares)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def agreement_checks(
    candidate: WindowRollup, production: WindowRollup, thresholds: CanaryThresholds
) -> tuple[dict[str, Any], str | None]:
    """Flip-rate and PSI statistics where the rollups carry them, and a rollback reason."""
    checks: dict[str, Any] = {}
    reason: str | None = None
    if candidate.shadow_pairs > 0:
        flips = flip_rate_test(
            candidate.shadow_pairs,
            candidate.shadow_flips,
            max_flip_rate=1.0 - thresholds.min_agreement,
            alpha=thresholds.alpha,
        )
        checks.update(flips.to_json())
        if flips.exceeds:
            reason = (
                f"candidate agrees with production on {100 * (1 - flips.flip_rate):.1f}% of "
                f"{flips.pairs} paired requests, below the {100 * thresholds.min_agreement:g}% "
                f"floor (exact binomial p={flips.p_value:.2g} < {thresholds.alpha:g})"
            )
    if sum(candidate.score_bins) > 0 and sum(production.score_bins) > 0:
        psi = population_stability_index(production.score_bins, candidate.score_bins)
        checks["psi"] = psi
        if reason is None and psi > thresholds.max_psi:
            reason = (
                f"candidate output scores shifted from production's (PSI {psi:.3f} > "
                f"{thresholds.max_psi:g})"
            )
    return checks, reason


def decide_shadow(
    candidate: WindowRollup,
    production: WindowRollup,
    thresholds: CanaryThresholds,
    *,
    final: bool = True,
    composite_weights: tuple[float, float, float] = COMPOSITE_WEIGHTS,
) -> CanaryDecision:
    """Judge shadow traffic: errors, flip rate, paired latency and score shift.

    ``PROMOTE`` means "shadow passed, go on to the canary" (``CONTINUE`` when ``final`` is false,
    for an early look that found nothing wrong).
    """
    checks: dict[str, Any] = {"shadow_pairs": candidate.shadow_pairs}
    if candidate.shadow_pairs == 0 or candidate.requests == 0:
        return CanaryDecision(
            Verdict.INSUFFICIENT_EVIDENCE,
            "no shadow pairs recorded yet; check that the shadow fraction is above 0 and the "
            "candidate is warm",
            checks,
        )
    checks["composite"] = composite_scores(candidate, production, composite_weights)
    error_stats, error_reason = error_checks(candidate, production, thresholds)
    checks.update(error_stats)
    if error_reason is not None:
        return CanaryDecision(Verdict.ROLLBACK, error_reason, checks)
    if candidate.shadow_pairs < thresholds.min_requests:
        return CanaryDecision(
            Verdict.INSUFFICIENT_EVIDENCE,
            f"too few shadow pairs to judge ({candidate.shadow_pairs} < "
            f"{thresholds.min_requests}); shadowing continues",
            checks,
        )

    agreement_stats, agreement_reason = agreement_checks(candidate, production, thresholds)
    checks.update(agreement_stats)
    if agreement_reason is not None:
        return CanaryDecision(Verdict.ROLLBACK, agreement_reason, checks)

    latency_stats, _ = latency_checks(candidate, production, thresholds)
    checks.update(latency_stats)
    w_stat, w_p = wilcoxon_paired_latency(candidate.paired_latency_diff_ms)
    diffs = candidate.paired_latency_diff_ms
    median_diff = float(np.median(diffs)) if diffs else math.nan
    checks.update(
        paired_latency_samples=len(diffs),
        paired_latency_median_diff_ms=median_diff,
        paired_wilcoxon_stat=w_stat,
        paired_wilcoxon_p=w_p,
    )
    # The paired test is the sharper one; without paired samples fall back to the unpaired
    # Mann-Whitney over the histograms, which describe the same mirrored requests.
    latency_p = w_p if diffs else checks["latency_mwu_p"]
    test = "Wilcoxon" if diffs else "Mann-Whitney"
    ratio, delta = checks["p95_ratio"], checks["p95_delta_ms"]
    if (
        ratio > thresholds.max_p95_latency_ratio
        and delta > thresholds.min_p95_latency_delta_ms
        and latency_p < thresholds.latency_alpha
    ):
        paired = f", median paired difference {median_diff:+.2f} ms" if diffs else ""
        return CanaryDecision(
            Verdict.ROLLBACK,
            f"candidate is slower on the same requests: p95 {checks['candidate_p95_ms']:g} ms vs "
            f"{checks['production_p95_ms']:g} ms (ratio {ratio:.2f} > "
            f"{thresholds.max_p95_latency_ratio:g}, +{delta:g} ms > "
            f"{thresholds.min_p95_latency_delta_ms:g} ms){paired} ({test} p={latency_p:.2g} < "
            f"{thresholds.latency_alpha:g})",
            checks,
        )

    agreement = checks.get("agreement", math.nan)
    summary = (
        f"agreement {100 * agreement:.1f}% over {candidate.shadow_pairs} pairs, error rate "
        f"{format_percent(checks['candidate_error_rate'])} vs "
        f"{format_percent(checks['production_error_rate'])}"
    )
    if final:
        return CanaryDecision(Verdict.PROMOTE, f"shadow passed: {summary}", checks)
    return CanaryDecision(Verdict.CONTINUE, f"shadow looks healthy so far: {summary}", checks)


def mcnemar_from_predictions(
    y_true: npt.ArrayLike, pred_a: npt.ArrayLike, pred_b: npt.ArrayLike
) -> dict[str, Any]:
    """McNemar on labelled predictions of two models (A = production, B = candidate).

    ``b01``: A wrong and B right; ``b10``: A right and B wrong. ``p_value`` is the exact
    two-sided McNemar p; it says whether the two accuracies differ, not which is higher.
    """
    arrays = [np.asarray(x) for x in (y_true, pred_a, pred_b)]
    if any(x.ndim != 1 for x in arrays) or len({x.size for x in arrays}) != 1:
        raise InvalidInput(
            "y_true, pred_a and pred_b must be flat arrays of the same length, got shapes "
            f"{[x.shape for x in arrays]}"
        )
    y, a, b = arrays
    if y.size == 0:
        raise InvalidInput("McNemar needs at least one labelled example; the dataset is empty")
    a_right, b_right = a == y, b == y
    b01 = int(np.sum(~a_right & b_right))
    b10 = int(np.sum(a_right & ~b_right))
    return {
        "n": int(y.size),
        "accuracy_a": float(a_right.mean()),
        "accuracy_b": float(b_right.mean()),
        "b01": b01,
        "b10": b10,
        "p_value": mcnemar(b01, b10),
    }

"""Unit tests of the paired shadow statistics against scipy and hand-checkable cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lepton.shared.canary import CanaryThresholds, Verdict
from lepton.shared.errors import InvalidInput
from lepton.shared.metrics import LATENCY_BUCKETS_MS, SCORE_BINS, WindowRollup, latency_bucket
from lepton.shared.shadow_stats import (
    decide_shadow,
    flip_rate_test,
    mcnemar,
    mcnemar_from_predictions,
    population_stability_index,
    wilcoxon_paired_latency,
)

DEFAULTS = CanaryThresholds()

# --- McNemar ----------------------------------------------------------------------------------


def test_mcnemar_exact_by_hand() -> None:
    # 0 vs 5 discordant pairs: two-sided exact p = 2 · 0.5**5.
    assert mcnemar(0, 5) == pytest.approx(0.0625)
    # 1 vs 6: 2 · (1 + 7) / 2**7.
    assert mcnemar(1, 6) == pytest.approx(16 / 128)
    assert mcnemar(0, 0) == 1.0
    assert mcnemar(7, 7) == 1.0


def test_mcnemar_agrees_with_the_chi_square_form_at_large_counts() -> None:
    b01, b10 = 420, 520
    chi2 = (abs(b01 - b10) - 1) ** 2 / (b01 + b10)
    assert mcnemar(b01, b10) == pytest.approx(stats.chi2.sf(chi2, df=1), rel=0.05)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(InvalidInput, match="b10 must be a whole number ≥ 0"):
        mcnemar(3, -1)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500))
def test_mcnemar_is_symmetric_and_a_probability(b01: int, b10: int) -> None:
    p = mcnemar(b01, b10)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(mcnemar(b10, b01))
    # Moving one discordant pair from the smaller side to the larger never raises p.
    lo, hi = sorted((b01, b10))
    if lo > 0:
        assert mcnemar(lo - 1, hi + 1) <= p + 1e-12


def test_mcnemar_from_predictions_counts_the_discordant_pairs() -> None:
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    a = np.array([0, 1, 2, 3, 9, 9, 9, 7])  # A wrong at 4, 5, 6
    b = np.array([0, 9, 2, 3, 4, 5, 9, 7])  # B wrong at 1, 6
    out = mcnemar_from_predictions(y, a, b)
    assert out["b01"] == 2  # A wrong, B right: 4, 5
    assert out["b10"] == 1  # A right, B wrong: 1
    assert out["accuracy_a"] == pytest.approx(5 / 8)
    assert out["accuracy_b"] == pytest.approx(6 / 8)
    assert out["p_value"] == pytest.approx(mcnemar(2, 1))
    assert out["n"] == 8
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    ("y", "a", "b", "words"),
    [
        ([], [], [], "at least one labelled example"),
        ([1, 2], [1], [1, 2], "same length"),
        ([[1]], [[1]], [[1]], "flat arrays"),
    ],
)
def test_mcnemar_from_predictions_rejects_mismatched_inputs(
    y: list[int], a: list[int], b: list[int], words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        mcnemar_from_predictions(y, a, b)


# --- flip rate --------------------------------------------------------------------------------


def test_flip_rate_test_matches_scipy_binomtest() -> None:
    result = flip_rate_test(400, 30, max_flip_rate=0.05)
    ref = stats.binomtest(30, 400, 0.05, alternative="greater").pvalue
    assert result.p_value == pytest.approx(ref)
    assert result.flip_rate == 0.075
    assert result.exceeds  # 7.5% over 400 pairs is clearly above 5%


def test_a_few_noisy_pairs_do_not_count_as_disagreement() -> None:
    # 2 flips in 20 pairs: agreement 90% < 95%, but that happens by chance 26% of the time.
    result = flip_rate_test(20, 2, max_flip_rate=0.05)
    assert not result.exceeds
    assert result.p_value > 0.2


def test_flip_rate_edges_and_bad_input() -> None:
    assert flip_rate_test(0, 0, max_flip_rate=0.05).p_value == 1.0
    assert flip_rate_test(10, 1, max_flip_rate=0.0).exceeds
    assert not flip_rate_test(10, 0, max_flip_rate=0.0).exceeds
    with pytest.raises(InvalidInput, match=r"flips \(4\) cannot exceed pairs \(3\)"):
        flip_rate_test(3, 4, max_flip_rate=0.05)
    with pytest.raises(InvalidInput, match="max_flip_rate must be in"):
        flip_rate_test(3, 1, max_flip_rate=1.5)


# --- Wilcoxon ---------------------------------------------------------------------------------


def test_wilcoxon_matches_scipy_exact_and_approx() -> None:
    small = [1.5, 2.25, -0.5, 3.0, 0.75, 4.0, -1.25]
    ref = stats.wilcoxon(small, alternative="greater", method="exact")
    assert wilcoxon_paired_latency(small) == pytest.approx((ref.statistic, ref.pvalue))
    rng = np.random.default_rng(4)
    large = np.round(rng.normal(0.3, 1.0, 256), 1)  # rounding makes ties
    nonzero = large[large != 0]
    ref = stats.wilcoxon(nonzero, alternative="greater", method="approx")
    assert wilcoxon_paired_latency(list(large)) == pytest.approx((ref.statistic, ref.pvalue))


def test_wilcoxon_by_hand_and_degenerate_inputs() -> None:
    # All five differences positive: W+ = 15 and exact p = 1 / 2**5.
    assert wilcoxon_paired_latency([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((15.0, 1 / 32))
    assert wilcoxon_paired_latency([]) == (0.0, 1.0)
    assert wilcoxon_paired_latency([0.0, 0.0]) == (0.0, 1.0)
    with pytest.raises(InvalidInput, match="finite numbers"):
        wilcoxon_paired_latency([1.0, math.nan])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 2)), max_size=80))
def test_wilcoxon_p_is_a_probability_and_sign_flip_reverses_it(diffs: list[float]) -> None:
    stat, p = wilcoxon_paired_latency(diffs)
    _, p_neg = wilcoxon_paired_latency([-d for d in diffs])
    assert 0.0 <= p <= 1.0
    assert stat >= 0
    # One-sided p-values of a statistic and its mirror image cover everything at least once.
    assert p + p_neg >= 1.0 - 1e-9


# --- PSI --------------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    # Shares 0.5/0.5 vs 0.25/0.75: (0.25-0.5)·ln(0.5) + (0.75-0.5)·ln(1.5).
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert population_stability_index([50, 50], [25, 75]) == pytest.approx(expected)
    assert population_stability_index([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)


def test_psi_is_finite_with_an_empty_bin() -> None:
    psi = population_stability_index([100, 0], [50, 50])
    assert math.isfinite(psi)
    assert psi > 1.0


@pytest.mark.parametrize(
    ("e", "a", "words"),
    [
        ([1, 2], [1, 2, 3], "same length"),
        ([0, 0], [1, 2], "at least one observation"),
        ([1, -2], [1, 2], "finite numbers ≥ 0"),
        ([5], [5], "length ≥ 2"),
    ],
)
def test_psi_rejects_bad_bins(e: list[int], a: list[int], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        population_stability_index(e, a)


bins = st.lists(st.integers(0, 1000), min_size=SCORE_BINS, max_size=SCORE_BINS).filter(any)


@settings(max_examples=100, deadline=None)
@given(bins, bins)
def test_psi_is_non_negative_and_symmetric(e: list[int], a: list[int]) -> None:
    psi = population_stability_index(e, a)
    assert psi >= 0
    assert psi == pytest.approx(population_stability_index(a, e))
    assert population_stability_index(e, e) == pytest.approx(0.0, abs=1e-12)


# --- decide_shadow ----------------------------------------------------------------------------


def shadow_rollup(
    version: str,
    *,
    pairs: int,
    flips: int = 0,
    errors: int = 0,
    median_ms: float = 6.0,
    diffs: tuple[float, ...] = (),
    scores: tuple[int, ...] = (100,) * SCORE_BINS,
    seed: int = 0,
) -> WindowRollup:
    rng = np.random.default_rng(seed)
    counts = [0] * len(LATENCY_BUCKETS_MS)
    for ms in rng.lognormal(math.log(median_ms), 0.3, pairs):
        counts[latency_bucket(float(ms))] += 1
    return WindowRollup(
        "digits", version, "*", 0, 300, requests=pairs, routed_requests=0, errors=errors,
        rows=pairs, latency_buckets=tuple(counts), shadow_pairs=pairs if version != "1.0.0" else 0,
        shadow_flips=flips, score_bins=scores, paired_latency_diff_ms=diffs,
    )  # fmt: skip


def test_healthy_shadow_passes() -> None:
    rng = np.random.default_rng(9)
    cand = shadow_rollup("1.1.0", pairs=1000, flips=20, diffs=tuple(rng.normal(0, 1, 256)))
    prod = shadow_rollup("1.0.0", pairs=1000, seed=1)
    d = decide_shadow(cand, prod, DEFAULTS)
    assert d.verdict is Verdict.PROMOTE
    assert d.reason.startswith("shadow passed: agreement 98.0% over 1000 pairs")
    assert decide_shadow(cand, prod, DEFAULTS, final=False).verdict is Verdict.CONTINUE
    for key in ("flip_p_value", "psi", "paired_wilcoxon_p", "error_p_value", "p95_ratio"):
        assert key in d.checks
    json.dumps(d.to_json(), allow_nan=False)


def test_shadow_rolls_back_on_flips() -> None:
    cand = shadow_rollup("1.1.0", pairs=1000, flips=150)
    d = decide_shadow(cand, shadow_rollup("1.0.0", pairs=1000), DEFAULTS)
    assert d.verdict is Verdict.ROLLBACK
    assert "agrees with production on 85.0% of 1000 paired requests" in d.reason


def test_shadow_rolls_back_on_paired_latency() -> None:
    rng = np.random.default_rng(2)
    cand = shadow_rollup(
        "1.1.0", pairs=1000, median_ms=20.0, diffs=tuple(rng.normal(14.0, 3.0, 256))
    )
    d = decide_shadow(cand, shadow_rollup("1.0.0", pairs=1000), DEFAULTS)
    assert d.verdict is Verdict.ROLLBACK
    assert "slower on the same requests" in d.reason
    assert d.checks["paired_wilcoxon_p"] < 1e-10


def test_shadow_rolls_back_on_score_shift() -> None:
    cand = shadow_rollup("1.1.0", pairs=1000, scores=(0,) * 8 + (500, 500))
    d = decide_shadow(cand, shadow_rollup("1.0.0", pairs=1000), DEFAULTS)
    assert d.verdict is Verdict.ROLLBACK
    assert "PSI" in d.reason


def test_shadow_rolls_back_on_errors_even_early() -> None:
    cand = shadow_rollup("1.1.0", pairs=80, errors=30)
    d = decide_shadow(cand, shadow_rollup("1.0.0", pairs=80), DEFAULTS)
    assert d.verdict is Verdict.ROLLBACK
    assert "error rate" in d.reason


def test_shadow_without_enough_pairs_is_insufficient() -> None:
    prod = shadow_rollup("1.0.0", pairs=100)
    none = decide_shadow(WindowRollup("digits", "1.1.0", "*", 0, 300), prod, DEFAULTS)
    assert none.verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "no shadow pairs" in none.reason
    few = decide_shadow(shadow_rollup("1.1.0", pairs=50), prod, DEFAULTS)
    assert few.verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "50 < 200" in few.reason


def test_shadow_latency_falls_back_to_the_histograms_without_paired_samples() -> None:
    slow = shadow_rollup("1.1.0", pairs=1000, median_ms=20.0)
    d = decide_shadow(slow, shadow_rollup("1.0.0", pairs=1000), DEFAULTS)
    assert d.verdict is Verdict.ROLLBACK
    assert "Mann-Whitney p=" in d.reason
    assert d.checks["paired_latency_samples"] == 0

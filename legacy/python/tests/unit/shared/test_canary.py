"""Unit tests of the canary statistics against scipy, brute force and hand-checkable cases."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import betaln, xlog1py, xlogy

from lepton.shared._sequential import log_e_values
from lepton.shared.canary import (
    CanaryDecision,
    CanaryThresholds,
    Verdict,
    composite_from_parts,
    composite_score,
    decide_canary_step,
    error_rate_evidence,
    json_safe,
    mann_whitney_from_buckets,
    p95_from_buckets,
    production_reference,
    sample_ratio_mismatch,
)
from lepton.shared.errors import InvalidInput, InvalidPolicy
from lepton.shared.metrics import LATENCY_BUCKETS_MS, WindowRollup, latency_bucket

N_BUCKETS = len(LATENCY_BUCKETS_MS)
DEFAULTS = CanaryThresholds()


def buckets_of(latencies_ms: Iterable[float]) -> tuple[int, ...]:
    counts = [0] * N_BUCKETS
    for ms in latencies_ms:
        counts[latency_bucket(ms)] += 1
    return tuple(counts)


def rollup(
    version: str,
    *,
    requests: int,
    errors: int = 0,
    routed: int | None = None,
    latencies_ms: Iterable[float] = (),
    **extra: object,
) -> WindowRollup:
    latencies = list(latencies_ms) or [4.0] * requests
    return WindowRollup(
        "digits",
        version,
        "*",
        0,
        300,
        requests=requests,
        routed_requests=requests if routed is None else routed,
        errors=errors,
        rows=requests,
        latency_buckets=buckets_of(latencies),
        latency_sum_ms=float(sum(latencies)),
        compute_ms=0.5 * requests,
        **extra,  # type: ignore[arg-type]
    )


# --- thresholds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("alpha", 0.0, "thresholds.alpha must be in (0, 1)"),
        ("alpha", 1.5, "thresholds.alpha must be in (0, 1)"),
        ("srm_alpha", math.nan, "thresholds.srm_alpha must be a finite number"),
        ("latency_alpha", "0.01", "thresholds.latency_alpha must be a finite number"),
        ("max_error_rate_ratio", 0.9, "must be ≥ 1"),
        ("max_error_rate_delta", -0.1, "must be in [0, 1)"),
        ("max_p95_latency_ratio", 0.5, "must be ≥ 1"),
        ("min_requests", 0, "must be ≥ 1"),
        ("min_requests", 2.5, "must be a whole number"),
        ("min_agreement", 1.2, "must be in [0, 1]"),
        ("max_psi", 0.0, "must be > 0"),
    ],
)
def test_thresholds_reject_bad_values_with_the_field_name(
    field: str, value: object, words: str
) -> None:
    with pytest.raises(InvalidPolicy) as err:
        CanaryThresholds(**{field: value})  # type: ignore[arg-type]
    assert words in str(err.value)
    assert repr(value) in str(err.value)


def test_thresholds_round_trip_through_json() -> None:
    custom = CanaryThresholds(alpha=0.01, min_requests=50, max_psi=0.1)
    assert CanaryThresholds(**json.loads(json.dumps(custom.to_json()))) == custom


# --- error-rate e-process ---------------------------------------------------------------------


def test_rates_inside_the_tolerance_give_no_evidence() -> None:
    # 1.2% vs 1%: above production, but under max(1.5·1%, 1% + 0.5%) = 1.5%.
    result = error_rate_evidence(
        120, 10_000, 100, 10_000, alpha=0.05, max_ratio=1.5, max_delta=0.005
    )
    assert result.p_value == 1.0
    assert not result.regression
    assert result.tolerated_rate == pytest.approx(0.015)


def test_clear_regression_is_caught_with_few_samples() -> None:
    # 30/150 = 20% against 0.2% in production: a step should stop long before 200 requests.
    result = error_rate_evidence(30, 150, 20, 10_000, alpha=0.05, max_ratio=1.5, max_delta=0.005)
    assert result.regression
    assert result.p_value < 1e-6


def test_absolute_tolerance_spares_tiny_rates() -> None:
    # 0.3% vs 0%: infinitely worse by ratio, but inside the 0.5% absolute tolerance.
    spared = error_rate_evidence(60, 20_000, 0, 20_000, alpha=0.05, max_ratio=1.5, max_delta=0.005)
    assert not spared.regression
    strict = error_rate_evidence(60, 20_000, 0, 20_000, alpha=0.05, max_ratio=1.5, max_delta=0.0)
    assert strict.regression


def test_without_production_data_no_regression_can_be_shown() -> None:
    # Even 100% failures: with no baseline the null "production fails as often" cannot be refuted.
    result = error_rate_evidence(500, 500, 0, 0, alpha=0.05, max_ratio=1.5, max_delta=0.005)
    assert not result.regression


def _brute_force_null_sup(counts: tuple[int, int, int, int], ratio: float, delta: float) -> float:
    xc, nc, xp, np_ = counts
    grid = np.linspace(0.0, 1.0, 2001)
    pc, pp = np.meshgrid(grid, grid, indexing="ij")
    ll = xlogy(xc, pc) + xlog1py(nc - xc, -pc) + xlogy(xp, pp) + xlog1py(np_ - xp, -pp)
    in_null = pc <= np.maximum(ratio * pp, pp + delta) + 1e-12
    return float(ll[in_null].max())


@pytest.mark.parametrize(
    ("counts", "ratio", "delta"),
    [((12, 100, 3, 300), 1.5, 0.005), ((9, 40, 10, 200), 1.0, 0.0), ((5, 50, 1, 60), 2.0, 0.02)],
)
def test_e_value_matches_mixture_over_brute_force_null_maximum(
    counts: tuple[int, int, int, int], ratio: float, delta: float
) -> None:
    xc, nc, xp, np_ = counts

    def log_jeffreys_marginal(x: int, n: int) -> float:
        # Direct numerical integral of the Beta(1/2, 1/2) mixture, independent of betaln.
        p = np.linspace(1e-9, 1 - 1e-9, 400_001)
        density = stats.beta.pdf(p, 0.5, 0.5) * np.exp(xlogy(x, p) + xlog1py(n - x, -p))
        return float(np.log(np.trapezoid(density, p)))

    expected = (
        log_jeffreys_marginal(xc, nc)
        + log_jeffreys_marginal(xp, np_)
        - _brute_force_null_sup(counts, ratio, delta)
    )
    got = float(log_e_values(xc, nc, xp, np_, max_ratio=ratio, max_delta=delta))
    # The grid's maximum can only fall short of the true one, so ours may be a hair lower.
    assert got == pytest.approx(expected, abs=2e-3)
    assert got <= expected + 1e-9


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((5, 4, 0, 10), "errors cannot exceed requests"),
        ((-1, 4, 0, 10), "cand_errors must be a whole number ≥ 0"),
        ((1, 4, 0, 2.5), "prod_n must be a whole number ≥ 0"),
    ],
)
def test_error_evidence_rejects_impossible_counts(args: tuple[int, ...], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        error_rate_evidence(*args, alpha=0.05, max_ratio=1.5, max_delta=0.005)


def test_error_evidence_rejects_a_bad_level() -> None:
    with pytest.raises(InvalidPolicy, match="alpha"):
        error_rate_evidence(1, 10, 1, 10, alpha=5.0, max_ratio=1.5, max_delta=0.005)


counts = st.integers(min_value=0, max_value=3000)


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[int, int, int, int]:
    nc, np_ = draw(st.integers(1, 3000)), draw(st.integers(1, 3000))
    return draw(st.integers(0, nc)), nc, draw(st.integers(0, np_)), np_


@settings(max_examples=80, deadline=None)
@given(count_pairs(), st.sampled_from([(1.0, 0.0), (1.5, 0.005), (2.0, 0.01)]))
def test_p_value_is_a_probability_and_monotone(
    c: tuple[int, int, int, int], tolerance: tuple[float, float]
) -> None:
    xc, nc, xp, np_ = c
    ratio, delta = tolerance

    def p(xc: int, xp: int) -> float:
        return error_rate_evidence(
            xc, nc, xp, np_, alpha=0.05, max_ratio=ratio, max_delta=delta
        ).p_value

    here = p(xc, xp)
    assert 0.0 <= here <= 1.0
    # Monotone below the degenerate edge where every candidate request failed: there the null
    # explains p_c = 1 through p_p = 1/ratio, and the production count moves that point.
    if xc + 1 < nc:
        # More candidate errors never weaken the evidence...
        assert p(xc + 1, xp) <= here + 1e-12
        # ...and more production errors never strengthen it.
        if xp < np_:
            assert p(xc, xp + 1) >= here - 1e-12


@settings(max_examples=60, deadline=None)
@given(count_pairs())
def test_looser_tolerance_never_strengthens_the_evidence(c: tuple[int, int, int, int]) -> None:
    strict = error_rate_evidence(*c, alpha=0.05, max_ratio=1.2, max_delta=0.001)
    loose = error_rate_evidence(*c, alpha=0.05, max_ratio=1.5, max_delta=0.005)
    assert loose.p_value >= strict.p_value - 1e-12


@settings(max_examples=80, deadline=None)
@given(
    count_pairs(),
    st.sampled_from([(1.0, 0.0), (1.5, 0.005), (3.0, 0.05)]),
    st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
)
def test_no_null_point_explains_the_data_better_than_the_computed_maximum(
    c: tuple[int, int, int, int], tolerance: tuple[float, float], point: tuple[float, float]
) -> None:
    # Any point of the null bounds the e-value from above; the search must not miss a better one.
    xc, nc, xp, np_ = c
    ratio, delta = tolerance
    # Only data outside the null exercise the constrained search.
    assume(xc / nc > max(ratio * xp / np_, xp / np_ + delta))
    # A null point near the data, on or just inside the boundary, where the maximum usually is.
    pp = float(np.clip(xp / np_ + (point[0] - 0.5) * 0.04, 0.0, 1.0))
    pc = (1.0 - 0.01 * point[1]) * min(1.0, max(ratio * pp, pp + delta))
    log_mix = (
        betaln(xc + 0.5, nc - xc + 0.5) + betaln(xp + 0.5, np_ - xp + 0.5) - 2 * betaln(0.5, 0.5)
    )
    ll = xlogy(xc, pc) + xlog1py(nc - xc, -pc) + xlogy(xp, pp) + xlog1py(np_ - xp, -pp)
    got = float(log_e_values(xc, nc, xp, np_, max_ratio=ratio, max_delta=delta))
    assert got <= log_mix - ll + 1e-9


# --- latency ----------------------------------------------------------------------------------


def test_p95_is_the_upper_bound_of_the_bucket_holding_it() -> None:
    counts = [0] * N_BUCKETS
    counts[latency_bucket(3.0)] = 94  # ≤ 3 ms bucket
    counts[latency_bucket(9.0)] = 6  # ≤ 10 ms bucket
    assert p95_from_buckets(counts) == 10.0
    counts[latency_bucket(3.0)] = 95
    counts[latency_bucket(9.0)] = 5
    assert p95_from_buckets(counts) == 3.0


def test_p95_edges() -> None:
    assert math.isnan(p95_from_buckets([0] * N_BUCKETS))
    assert p95_from_buckets(buckets_of([10_000.0] * 10)) == math.inf
    with pytest.raises(InvalidInput, match=f"must hold {N_BUCKETS} latency bucket counts"):
        p95_from_buckets([1, 2, 3])
    with pytest.raises(InvalidInput, match="counts ≥ 0"):
        p95_from_buckets([-1] + [0] * (N_BUCKETS - 1))


def test_p95_agrees_with_numpy_on_the_bucket_bounds() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=2.0, sigma=0.8, size=5000)
    bounds = np.array([LATENCY_BUCKETS_MS[latency_bucket(ms)] for ms in latencies])
    assert p95_from_buckets(buckets_of(latencies)) == np.quantile(bounds, 0.95, method="higher")


def _expand(buckets: Sequence[int]) -> np.ndarray:
    return np.repeat(np.arange(N_BUCKETS), buckets)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_mann_whitney_matches_scipy_on_expanded_samples(shift: float) -> None:
    rng = np.random.default_rng(3)
    a = buckets_of(rng.lognormal(1.5 + shift, 0.5, 400))
    b = buckets_of(rng.lognormal(1.5, 0.5, 700))
    u, p = mann_whitney_from_buckets(a, b)
    ref = stats.mannwhitneyu(_expand(a), _expand(b), alternative="greater", method="asymptotic")
    assert u == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_mann_whitney_degenerate_inputs_give_no_evidence() -> None:
    same_bucket = buckets_of([4.0] * 50)
    assert mann_whitney_from_buckets(same_bucket, same_bucket)[1] == 1.0
    assert mann_whitney_from_buckets([0] * N_BUCKETS, same_bucket) == (0.0, 1.0)


bucket_lists = st.lists(st.integers(0, 40), min_size=N_BUCKETS, max_size=N_BUCKETS)


@settings(max_examples=150, deadline=None)
@given(bucket_lists, bucket_lists)
def test_mann_whitney_properties(a: list[int], b: list[int]) -> None:
    u_ab, p_ab = mann_whitney_from_buckets(a, b)
    u_ba, p_ba = mann_whitney_from_buckets(b, a)
    assert 0.0 <= p_ab <= 1.0
    assert u_ab + u_ba == pytest.approx(sum(a) * sum(b))
    # The continuity correction makes the two one-sided p-values sum to at least 1.
    assert p_ab + p_ba >= 1.0 - 1e-12
    if sum(a) and sum(b) and a[0] > 0:
        # Moving one candidate latency from the fastest bucket to the slowest: more evidence.
        slower = [a[0] - 1, *a[1:-1], a[-1] + 1]
        assert mann_whitney_from_buckets(slower, b)[1] <= p_ab + 1e-12


# --- sample-ratio mismatch --------------------------------------------------------------------


def test_srm_matches_scipy_chisquare() -> None:
    chi2, p = sample_ratio_mismatch(1080, 8920, 1000)
    ref = stats.chisquare([1080, 8920], f_exp=[1000, 9000])
    assert chi2 == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)
    # Hand check: (80²/1000 + 80²/9000) = 7.11.
    assert chi2 == pytest.approx(6.4 + 0.7111, abs=1e-3)


def test_srm_edges() -> None:
    assert sample_ratio_mismatch(0, 0, 2500) == (0.0, 1.0)
    assert sample_ratio_mismatch(0, 500, 0) == (0.0, 1.0)
    assert sample_ratio_mismatch(3, 500, 0) == (math.inf, 0.0)
    assert sample_ratio_mismatch(500, 0, 10_000) == (0.0, 1.0)
    with pytest.raises(InvalidInput, match=r"weight_bp must be a whole number of basis points"):
        sample_ratio_mismatch(1, 1, 10_001)
    with pytest.raises(InvalidInput, match="candidate_routed must be a whole number"):
        sample_ratio_mismatch(-1, 1, 100)


@settings(max_examples=100, deadline=None)
@given(counts, counts, st.integers(1, 9999))
def test_srm_is_symmetric_and_a_probability(c: int, p: int, w: int) -> None:
    chi2, pv = sample_ratio_mismatch(c, p, w)
    chi2_swapped, pv_swapped = sample_ratio_mismatch(p, c, 10_000 - w)
    assert 0.0 <= pv <= 1.0
    assert chi2 >= 0
    assert chi2 == pytest.approx(chi2_swapped)
    assert pv == pytest.approx(pv_swapped)


# --- composite score --------------------------------------------------------------------------


def test_composite_score_by_hand() -> None:
    r = WindowRollup(
        "digits", "1.0.0", "*", 0, 300, requests=1000, routed_requests=1000, errors=20,
        rows=4000, latency_buckets=buckets_of([40.0] * 1000), compute_ms=2000.0,
    )  # fmt: skip
    score = composite_score(r, weights=(0.5, 0.2, 0.3))
    # p95 = 50 ms bucket → T = 0.5; 2000 ms / 4000 rows · 1000 = 500 ms per 1k → R = 0.5;
    # 2% errors → E = 2; P = 0.25 + 0.1 + 0.6.
    assert score["p95_ms"] == 50.0
    assert score["compute_ms_per_1k"] == 500.0
    assert score["error_rate"] == 0.02
    assert (score["T"], score["R"], score["E"]) == (0.5, 0.5, 2.0)
    assert score["P"] == pytest.approx(0.95)


def test_composite_from_parts_is_the_formula_the_rollup_score_uses() -> None:
    # Offline evaluation scores from raw parts; it must agree with the live-traffic score.
    by_hand = composite_from_parts(50.0, 500.0, 0.02, weights=(0.5, 0.2, 0.3))
    r = WindowRollup(
        "digits", "1.0.0", "*", 0, 300, requests=1000, routed_requests=1000, errors=20,
        rows=4000, latency_buckets=buckets_of([40.0] * 1000), compute_ms=2000.0,
    )  # fmt: skip
    assert by_hand == composite_score(r, weights=(0.5, 0.2, 0.3))
    with pytest.raises(InvalidPolicy, match="composite weights"):
        composite_from_parts(1.0, 1.0, 0.0, weights=(0.0, 0.0, 0.0))


def test_json_safe_turns_non_finite_numbers_into_null() -> None:
    idle = composite_score(WindowRollup("digits", "1.0.0", "*", 0, 300))
    text = json.dumps(json_safe({"idle": idle, "inf": math.inf, "n": (1, np.int64(2))}))
    assert json.loads(text) == {"idle": dict.fromkeys(idle), "inf": None, "n": [1, 2]}


def test_composite_score_of_an_idle_version_is_nan_not_an_error() -> None:
    idle = WindowRollup("digits", "1.0.0", "*", 0, 300)
    assert math.isnan(composite_score(idle)["P"])


@pytest.mark.parametrize("weights", [(-1.0, 0.5, 0.5), (0.0, 0.0, 0.0), (1.0, 1.0)])
def test_composite_score_rejects_bad_weights(weights: tuple[float, float, float]) -> None:
    with pytest.raises(InvalidPolicy, match="composite weights"):
        composite_score(rollup("1.0.0", requests=10), weights=weights)


# --- decide_canary_step -----------------------------------------------------------------------


def decide(
    cand: WindowRollup | None, prod: WindowRollup | None, weight_bp: int = 1000, **kw: object
) -> CanaryDecision:
    final = bool(kw.pop("final_step", False))
    thresholds = CanaryThresholds(**kw) if kw else DEFAULTS  # type: ignore[arg-type]
    return decide_canary_step(
        cand, prod, weight_bp=weight_bp, thresholds=thresholds, final_step=final
    )


def test_healthy_step_continues_and_final_step_promotes() -> None:
    rng = np.random.default_rng(11)
    cand = rollup("1.1.0", requests=1000, errors=3, latencies_ms=rng.lognormal(1.5, 0.4, 1000))
    prod = rollup("1.0.0", requests=9000, errors=30, latencies_ms=rng.lognormal(1.5, 0.4, 9000))
    step = decide(cand, prod)
    assert step.verdict is Verdict.CONTINUE
    assert "0.3% vs production 0.33%" in step.reason
    assert decide(cand, prod, final_step=True).verdict is Verdict.PROMOTE
    for key in ("srm_p", "error_p_value", "p95_ratio", "latency_mwu_p", "candidate_error_rate"):
        assert key in step.checks


def test_srm_invalidates_before_anything_else() -> None:
    # The candidate fails a lot, but it also got 2% of the traffic instead of 10%: not judged.
    cand = rollup("1.1.0", requests=200, errors=100)
    prod = rollup("1.0.0", requests=9800)
    d = decide(cand, prod)
    assert d.verdict is Verdict.INVALID
    assert "sample-ratio mismatch" in d.reason
    assert "2.00% of 10000 routed requests" in d.reason
    assert "weight is 10%" in d.reason


def test_srm_is_skipped_at_full_weight_and_without_production() -> None:
    cand = rollup("1.1.0", requests=500)
    prod = rollup("1.0.0", requests=400, routed=0)  # pinned callers only
    assert "srm_p" not in decide(cand, prod, weight_bp=10_000).checks
    assert decide(cand, None, weight_bp=500).verdict is Verdict.CONTINUE


def test_clear_error_regression_rolls_back_below_min_requests() -> None:
    cand = rollup("1.1.0", requests=120, errors=25)
    prod = rollup("1.0.0", requests=1080, errors=2)
    d = decide(cand, prod)
    assert d.verdict is Verdict.ROLLBACK
    assert d.reason.startswith("candidate error rate 20.8% (25/120) vs production 0.19% (2/1080)")
    assert "always-valid p=" in d.reason


def test_few_samples_without_a_clear_regression_is_insufficient() -> None:
    cand = rollup("1.1.0", requests=50, errors=1)
    prod = rollup("1.0.0", requests=450, errors=2)
    d = decide(cand, prod)
    assert d.verdict is Verdict.INSUFFICIENT_EVIDENCE
    assert "candidate 50 < 200" in d.reason
    assert decide(None, prod).verdict is Verdict.INSUFFICIENT_EVIDENCE


def test_latency_regression_needs_ratio_and_significance() -> None:
    rng = np.random.default_rng(5)
    prod = rollup("1.0.0", requests=9000, latencies_ms=rng.lognormal(1.5, 0.3, 9000))
    slow = rollup("1.1.0", requests=1000, latencies_ms=rng.lognormal(2.5, 0.3, 1000))
    d = decide(slow, prod)
    assert d.verdict is Verdict.ROLLBACK
    assert "p95 latency" in d.reason
    assert d.checks["p95_ratio"] > 1.5
    # The same shift judged with a tolerance larger than the ratio is not a rollback.
    assert decide(slow, prod, max_p95_latency_ratio=10.0).verdict is Verdict.CONTINUE
    # A significant but small shift (same bucket p95) is not a rollback either.
    nudge = rollup("1.1.0", requests=1000, latencies_ms=rng.lognormal(1.55, 0.3, 1000))
    small = decide(nudge, prod)
    assert small.checks["latency_mwu_p"] < 0.01
    assert small.verdict is Verdict.CONTINUE


def test_a_large_ratio_on_sub_millisecond_latencies_is_not_a_regression() -> None:
    rng = np.random.default_rng(6)
    # 3x slower, clearly significant, but both p95s well under a millisecond: jitter, not cost.
    prod = rollup("1.0.0", requests=9000, latencies_ms=rng.lognormal(-2.3, 0.2, 9000))
    fast_but_slower = rollup("1.1.0", requests=1000, latencies_ms=rng.lognormal(-1.2, 0.2, 1000))
    d = decide(fast_but_slower, prod)
    assert d.checks["p95_ratio"] > 1.5 and d.checks["latency_mwu_p"] < 0.01
    assert d.checks["p95_delta_ms"] < 1.0
    assert d.verdict is Verdict.CONTINUE
    # With the floor off, the ratio alone decides, as before.
    floorless = decide(fast_but_slower, prod, min_p95_latency_delta_ms=0.0)
    assert floorless.verdict is Verdict.ROLLBACK
    assert "ms > 0 ms" in floorless.reason
    with pytest.raises(InvalidPolicy, match="min_p95_latency_delta_ms must be ≥ 0"):
        CanaryThresholds(min_p95_latency_delta_ms=-1.0)


def test_canary_step_rolls_back_on_low_agreement_and_score_shift() -> None:
    flips = rollup("1.1.0", requests=1000, shadow_pairs=1000, shadow_flips=120)
    prod = rollup("1.0.0", requests=9000)
    d = decide(flips, prod)
    assert d.verdict is Verdict.ROLLBACK
    assert "agrees with production on 88.0% of 1000 paired requests" in d.reason

    shifted = rollup("1.1.0", requests=1000, score_bins=(0,) * 5 + (200,) * 5)
    base = rollup("1.0.0", requests=9000, score_bins=(900,) * 10)
    d = decide(shifted, base)
    assert d.verdict is Verdict.ROLLBACK
    assert "PSI" in d.reason


def test_decision_json_is_strict_json_and_round_trips() -> None:
    cand = rollup("1.1.0", requests=300, latencies_ms=[10_000.0] * 300)  # p95 = overflow
    prod = rollup("1.0.0", requests=2700)
    d = decide(cand, prod)
    text = json.dumps(d.to_json(), allow_nan=False)
    back = CanaryDecision.from_json(json.loads(text))
    assert back.verdict is d.verdict
    assert back.reason == d.reason
    assert back.checks["candidate_p95_ms"] is None  # infinite: past the last bucket bound


def test_bad_weight_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="weight_bp"):
        decide(rollup("1.1.0", requests=10), None, weight_bp=-5)


def test_every_decision_reports_the_composite_score_of_both_versions() -> None:
    cand = rollup("1.1.0", requests=1000, errors=10)
    prod = rollup("1.0.0", requests=9000, errors=9)
    weights = (0.4, 0.2, 0.4)
    d = decide_canary_step(
        cand, prod, weight_bp=1000, thresholds=DEFAULTS, final_step=False,
        composite_weights=weights,
    )  # fmt: skip
    assert d.checks["composite"]["candidate"] == composite_score(cand, weights=weights)
    assert d.checks["composite"]["production"] == composite_score(prod, weights=weights)
    # 1% vs 0.1% errors, same latency and compute: the candidate scores worse (higher).
    assert d.checks["composite"]["candidate"]["P"] > d.checks["composite"]["production"]["P"]
    with pytest.raises(InvalidPolicy, match="composite weights"):
        decide_canary_step(
            cand, prod, weight_bp=1000, thresholds=DEFAULTS, final_step=False,
            composite_weights=(0.0, 0.0, 0.0),
        )  # fmt: skip


def test_full_weight_step_promotes_without_fresh_production_traffic() -> None:
    cand = rollup("1.1.0", requests=800, errors=2)
    idle_prod = rollup("1.0.0", requests=0, routed=0)
    d = decide(cand, idle_prod, weight_bp=10_000, final_step=True)
    assert d.verdict is Verdict.PROMOTE
    # Production totals carried over from earlier steps still expose a regression at 100%.
    earlier_prod = rollup("1.0.0", requests=5000, errors=5, routed=0)
    failing = rollup("1.1.0", requests=800, errors=40)
    assert decide(failing, earlier_prod, weight_bp=10_000, final_step=True).verdict is (
        Verdict.ROLLBACK
    )


def test_production_reference_uses_the_baseline_only_at_full_weight() -> None:
    window = rollup("1.0.0", requests=900)
    earlier = rollup("1.0.0", requests=5000, routed=5000)
    # Below 100% production is measured in the same window, the fairest comparison.
    assert production_reference(window, earlier, weight_bp=5000) is window
    # At 100% production has no routed traffic: the earlier totals are what it is judged on.
    assert production_reference(None, earlier, weight_bp=10_000) is earlier
    pinned = rollup("1.0.0", requests=3, routed=0)
    assert production_reference(pinned, earlier, weight_bp=10_000) is earlier
    # A baseline without requests proves nothing; the window (if any) is all there is.
    empty = rollup("1.0.0", requests=0)
    assert production_reference(pinned, empty, weight_bp=10_000) is pinned
    assert production_reference(None, None, weight_bp=10_000) is None


def test_a_regression_at_full_weight_is_caught_only_with_a_baseline() -> None:
    failing = rollup("1.1.0", requests=800, errors=240)
    no_traffic = decide(failing, production_reference(None, None, weight_bp=10_000), 10_000)
    assert no_traffic.verdict is Verdict.CONTINUE  # nothing to compare with: cannot fail
    earlier = rollup("1.0.0", requests=800, routed=800)
    judged = decide(failing, production_reference(None, earlier, weight_bp=10_000), 10_000)
    assert judged.verdict is Verdict.ROLLBACK
    assert "vs production 0% (0/800)" in judged.reason

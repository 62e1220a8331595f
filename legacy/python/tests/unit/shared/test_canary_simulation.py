"""Simulated streams: false-rollback rate under peeking, and requests to catch a doubled error rate.

Seeded numpy streams run through the same e-process code the canary decision uses
(``bench/canary_power.py`` prints the same figures with more repetitions). The Monte-Carlo slack is
three standard errors of a rate at ``alpha``. A naive fixed-horizon z-test peeked at as often
shows that the simulation does detect a procedure whose false-rollback rate is inflated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lepton.shared._sequential import first_crossing, log_e_values, simulate_counts
from lepton.shared.canary import CanaryThresholds, Verdict, decide_canary_step
from lepton.shared.metrics import LATENCY_BUCKETS_MS, WindowRollup

ALPHA = 0.05
STREAMS = 1000
LOOK_EVERY = 100  # the orchestrator peeks at the totals every 100 requests


def slack(n: int, rate: float = ALPHA) -> float:
    return 3.0 * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize(
    ("label", "cand_rate", "ratio", "delta"),
    [
        # No tolerance at all and equal rates: the hardest case for "equal is not worse".
        ("equal rates, zero tolerance", 0.01, 1.0, 0.0),
        # Default tolerances, candidate exactly at the tolerated boundary (least favourable).
        ("at the default tolerance", 0.015, 1.5, 0.005),
    ],
)
def test_false_rollback_rate_with_peeking_stays_below_alpha(
    label: str, cand_rate: float, ratio: float, delta: float
) -> None:
    xc, nc, xp, np_ = simulate_counts(
        production_rate=0.01, candidate_rate=cand_rate, candidate_share=0.5,
        streams=STREAMS, requests=20_000, look_every=LOOK_EVERY, seed=1,
    )  # fmt: skip
    log_e = log_e_values(xc, nc, xp, np_, max_ratio=ratio, max_delta=delta)
    false_rollbacks = float(np.mean(first_crossing(log_e, ALPHA) >= 0))
    print(f"\n{label}: false-rollback rate {false_rollbacks:.4f} over 200 looks")
    assert false_rollbacks <= ALPHA + slack(STREAMS)


def test_naive_repeated_z_test_is_inflated_so_the_simulation_can_tell() -> None:
    xc, nc, xp, np_ = simulate_counts(
        production_rate=0.01, candidate_rate=0.01, candidate_share=0.5,
        streams=STREAMS, requests=20_000, look_every=LOOK_EVERY, seed=1,
    )  # fmt: skip
    pooled = (xc + xp) / (nc + np_)
    se = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / np_))
    z = np.divide(xc / nc - xp / np_, se, out=np.zeros_like(se), where=se > 0)
    inflated = float(np.mean((z > stats.norm.isf(ALPHA)).any(axis=1)))
    print(f"\nnaive z-test peeked 200 times: false-rollback rate {inflated:.3f}")
    assert inflated > ALPHA + slack(STREAMS)


def test_a_doubled_error_rate_is_caught() -> None:
    streams, look_every = 200, 500
    xc, nc, xp, np_ = simulate_counts(
        production_rate=0.01, candidate_rate=0.02, candidate_share=0.5,
        streams=streams, requests=300_000, look_every=look_every, seed=2,
    )  # fmt: skip
    thresholds = CanaryThresholds()
    log_e = log_e_values(
        xc, nc, xp, np_,
        max_ratio=thresholds.max_error_rate_ratio, max_delta=thresholds.max_error_rate_delta,
    )  # fmt: skip
    first = first_crossing(log_e, thresholds.alpha)
    caught = first >= 0
    requests = (first[caught] + 1) * look_every
    print(
        f"\n1% → 2% at a 50% split, default tolerances: caught {caught.mean():.1%}, median "
        f"{np.median(requests):.0f} requests ({np.median(requests) / 2:.0f} on the candidate)"
    )
    assert caught.mean() >= 0.95
    # Zero tolerance catches the same regression far sooner: the tolerance is what costs time.
    strict = first_crossing(log_e_values(xc, nc, xp, np_, max_ratio=1.0, max_delta=0.0), ALPHA)
    assert np.median(strict[strict >= 0]) * look_every < np.median(requests)


def _buckets(rng: np.random.Generator, n: int, median_ms: float) -> np.ndarray:
    latencies = rng.lognormal(np.log(median_ms), 0.4, n)
    bounds = np.array(LATENCY_BUCKETS_MS[:-1])
    return np.bincount(np.searchsorted(bounds, latencies), minlength=len(LATENCY_BUCKETS_MS))


def _stream_decisions(
    rng: np.random.Generator, *, cand_rate: float, looks: int, weight_bp: int
) -> list[Verdict]:
    """decide_canary_step at every look of one stream; stops at the first non-continue verdict."""
    thresholds = CanaryThresholds()
    cand = WindowRollup("digits", "1.1.0", "*", 0, 300)
    prod = WindowRollup("digits", "1.0.0", "*", 0, 300)
    verdicts = []
    for _ in range(looks):
        n_c = int(rng.binomial(LOOK_EVERY, weight_bp / 10_000))
        n_p = LOOK_EVERY - n_c
        cand = cand.merged(_window("1.1.0", n_c, rng.binomial(n_c, cand_rate), rng))
        prod = prod.merged(_window("1.0.0", n_p, rng.binomial(n_p, 0.01), rng))
        verdict = decide_canary_step(
            cand, prod, weight_bp=weight_bp, thresholds=thresholds, final_step=False
        ).verdict
        verdicts.append(verdict)
        if verdict in (Verdict.ROLLBACK, Verdict.INVALID):
            break
    return verdicts


def _window(version: str, n: int, errors: int, rng: np.random.Generator) -> WindowRollup:
    return WindowRollup(
        "digits", version, "*", 0, 300, requests=n, routed_requests=n, errors=int(errors), rows=n,
        latency_buckets=tuple(int(c) for c in _buckets(rng, n, 8.0)),
    )  # fmt: skip


def test_decide_canary_step_end_to_end_on_healthy_and_regressed_streams() -> None:
    rng = np.random.default_rng(3)
    streams, looks = 40, 30  # 3,000 requests per stream at a 25% weight
    healthy = [
        _stream_decisions(rng, cand_rate=0.01, looks=looks, weight_bp=2500) for _ in range(streams)
    ]
    rollbacks = sum(Verdict.ROLLBACK in v for v in healthy) / streams
    invalid = sum(Verdict.INVALID in v for v in healthy) / streams
    print(f"\nhealthy streams: rollback {rollbacks:.3f}, invalid (SRM) {invalid:.3f}")
    assert rollbacks <= ALPHA + slack(streams)
    # 30 SRM looks at 0.001 each bound the false-invalid rate by 3% (a union bound).
    assert invalid <= 0.03 + slack(streams, 0.03)
    # Early looks say insufficient_evidence, later ones continue: the step extends, then passes.
    finished = [v for v in healthy if len(v) == looks]
    assert len(finished) >= streams - 2
    assert all(
        v[0] is Verdict.INSUFFICIENT_EVIDENCE and v[-1] is Verdict.CONTINUE for v in finished
    )

    broken = [
        _stream_decisions(rng, cand_rate=0.10, looks=looks, weight_bp=2500) for _ in range(20)
    ]
    assert all(v[-1] is Verdict.ROLLBACK for v in broken)
    # A tenfold regression stops the step before its minimum sample size would even allow a pass.
    stopped_at = [len(v) * LOOK_EVERY * 0.25 for v in broken]
    assert np.median(stopped_at) < CanaryThresholds().min_requests

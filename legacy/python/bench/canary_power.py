"""Canary power: false-rollback rate under peeking and requests needed to catch an error regression.

Simulates seeded request streams (random routing at the canary weight, Bernoulli errors), peeks at
the cumulative totals every ``look_every`` requests, and applies the always-valid error-rate test
that :func:`lepton.shared.canary.decide_canary_step` uses. Prints, per scenario, the share of
streams that rolled back (for equal rates: the false-rollback rate, to compare with alpha) and the
median / 90th-percentile number of requests (all, and on the candidate) until the rollback. A
naive fixed-horizon z-test peeked at just as often is shown for contrast.

Run: ``.venv/bin/python -m bench.canary_power [--quick] [--seed N]`` (``--quick``: fewer streams).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lepton.shared._sequential import first_crossing, log_e_values, simulate_counts
from lepton.shared.canary import CanaryThresholds

DEFAULTS = CanaryThresholds()


@dataclass(frozen=True)
class Scenario:
    label: str
    production_rate: float
    candidate_rate: float
    candidate_share: float
    requests: int  # per stream: the horizon of the simulation, not of the test
    look_every: int
    max_ratio: float = DEFAULTS.max_error_rate_ratio
    max_delta: float = DEFAULTS.max_error_rate_delta
    naive: bool = False  # a fixed-horizon one-sided z-test at every look instead


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("equal 1% vs 1%, zero tolerance", 0.01, 0.01, 0.5, 20_000, 100, 1.0, 0.0),
    Scenario("equal 1% vs 1%, default tolerance", 0.01, 0.01, 0.5, 20_000, 100),
    Scenario("1.5% vs 1% (at the tolerance)", 0.01, 0.015, 0.5, 20_000, 100),
    Scenario("equal 1% vs 1%, naive z-test", 0.01, 0.01, 0.5, 20_000, 100, naive=True),
    Scenario("2x: 2% vs 1%, 50% split", 0.01, 0.02, 0.5, 400_000, 500),
    Scenario("2x: 2% vs 1%, 10% split", 0.01, 0.02, 0.1, 800_000, 1000),
    Scenario("2x: 2% vs 1%, 50%, zero tolerance", 0.01, 0.02, 0.5, 100_000, 100, 1.0, 0.0),
    Scenario("4x: 4% vs 1%, 10% split", 0.01, 0.04, 0.1, 100_000, 100),
    Scenario("25x: 5% vs 0.2%, 1% split", 0.002, 0.05, 0.01, 200_000, 100),
)


@dataclass(frozen=True)
class Outcome:
    rollback_rate: float
    median_requests: float
    p90_requests: float
    median_candidate_requests: float


def run(scenario: Scenario, *, streams: int, seed: int, alpha: float) -> Outcome:
    xc, nc, xp, np_ = simulate_counts(
        production_rate=scenario.production_rate,
        candidate_rate=scenario.candidate_rate,
        candidate_share=scenario.candidate_share,
        streams=streams,
        requests=scenario.requests,
        look_every=scenario.look_every,
        seed=seed,
    )
    if scenario.naive:
        pooled = (xc + xp) / (nc + np_)
        se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(nc, 1) + 1 / np.maximum(np_, 1)))
        z = np.divide(xc / np.maximum(nc, 1) - xp / np.maximum(np_, 1), se,
                      out=np.zeros_like(se), where=se > 0)  # fmt: skip
        crossed = z > stats.norm.isf(alpha)
        first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    else:
        log_e = log_e_values(
            xc, nc, xp, np_, max_ratio=scenario.max_ratio, max_delta=scenario.max_delta
        )
        first = first_crossing(log_e, alpha)
    caught = first >= 0
    if not caught.any():
        return Outcome(0.0, float("nan"), float("nan"), float("nan"))
    looks = first[caught]
    total = (looks + 1) * scenario.look_every
    on_candidate = nc[np.flatnonzero(caught), looks]
    return Outcome(
        rollback_rate=float(caught.mean()),
        median_requests=float(np.median(total)),
        p90_requests=float(np.quantile(total, 0.9)),
        median_candidate_requests=float(np.median(on_candidate)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer streams (seconds, not minutes)")
    parser.add_argument("--seed", type=int, default=20_240_601)
    args = parser.parse_args(argv)
    alpha = DEFAULTS.alpha
    null_streams, power_streams = (1000, 200) if args.quick else (10_000, 1000)
    print(
        f"alpha={alpha}, default tolerance: ratio {DEFAULTS.max_error_rate_ratio}, delta "
        f"{DEFAULTS.max_error_rate_delta}; streams: {null_streams} (equal rates), "
        f"{power_streams} (regressions)"
    )
    header = (
        f"{'scenario':<38} {'looks':>9} {'rollback':>9} {'median req':>11} {'p90 req':>9} "
        f"{'median on cand':>15}"
    )
    print(header)
    print("-" * len(header))
    for i, scenario in enumerate(SCENARIOS):
        started = time.perf_counter()
        equal = scenario.candidate_rate <= max(
            scenario.max_ratio * scenario.production_rate,
            scenario.production_rate + scenario.max_delta,
        )
        streams = null_streams if equal else power_streams
        out = run(scenario, streams=streams, seed=args.seed + i, alpha=alpha)
        looks = f"{scenario.requests // scenario.look_every}x{scenario.look_every}"
        print(
            f"{scenario.label:<38} {looks:>9} {out.rollback_rate:>9.4f} "
            f"{out.median_requests:>11.0f} {out.p90_requests:>9.0f} "
            f"{out.median_candidate_requests:>15.0f}   ({time.perf_counter() - started:.1f}s)"
        )
    print(
        "rollback = share of streams rolled back within the horizon (false-rollback rate where "
        "the rates are within the tolerance)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

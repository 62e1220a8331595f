"""Always-valid evidence that a candidate's error rate exceeds production's beyond a tolerance.

The statistic is a *universal-inference e-process* (Wasserman, Ramdas and Balakrishnan, "Universal
inference", PNAS 2020): the likelihood of both arms' error counts under a fixed Jeffreys
Beta(1/2, 1/2) mixture, divided by the largest likelihood any "no regression" hypothesis reaches.
For every null point θ0 the mixture/L(θ0) ratio is a nonnegative martingale with mean 1 and the
statistic never exceeds it, so Ville's inequality gives P(statistic ever ≥ 1/alpha) ≤ alpha: the
test may be looked at after every request, window or step and stopped as soon as it crosses,
without the inflation a repeated fixed-horizon test suffers. It is exact (no normal
approximation), so it stays honest at the tiny counts where a clear regression must stop a step
early, and it needs only the totals (a Bernoulli likelihood does not depend on the order of the
requests), which is all a ``WindowRollup`` keeps. The price of that guarantee is sample size: a
regression just past the tolerance takes a few times the requests of a single fixed-horizon test.

"No regression" is ``p_c ≤ max(ratio · p_p, p_p + delta)``: the candidate must exceed both the
relative and the absolute tolerance before it counts as worse. Everything here is vectorised over
numpy arrays so simulations run the very code the canary decision runs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, xlog1py, xlogy

FloatArray = npt.NDArray[np.float64]

# Jeffreys prior: minimax regret for a Bernoulli rate, and no tuning to a particular error level.
_PRIOR_A = 0.5
_PRIOR_B = 0.5
# 64 halvings pass float precision (2**-52 of the interval): the constrained maximum is exact.
_BISECTIONS = 64


Counts = tuple[FloatArray, FloatArray, FloatArray, FloatArray]  # cand errors, n, prod errors, n


def _log_likelihood(counts: Counts, pc: FloatArray, pp: FloatArray) -> FloatArray:
    xc, nc, xp, np_ = counts
    # xlogy/xlog1py make 0·log 0 = 0, so zero-error and zero-request arms need no special case.
    out: FloatArray = xlogy(xc, pc) + xlog1py(nc - xc, -pc) + xlogy(xp, pp) + xlog1py(np_ - xp, -pp)
    return out


def _over(num: FloatArray, den: FloatArray) -> FloatArray:
    # A count of 0 contributes nothing to the derivative even where its rate rounds to 0 or 1.
    out: FloatArray = np.divide(num, den, out=np.zeros_like(num), where=num != 0)
    return out


def _max_on_line(counts: Counts, slope: float, offset: float) -> FloatArray:
    """Largest log-likelihood on the line ``p_c = slope·q + offset``, ``p_p = q`` (elementwise).

    The log-likelihood is concave along the line, so its derivative falls monotonically and
    bisection on the derivative finds the maximum; the derivative is only evaluated strictly
    inside the interval, where no rate is 0 or 1.
    """
    xc, nc, xp, np_ = counts
    hi_q = min(1.0, (1.0 - offset) / slope)
    lo = np.zeros_like(xc)
    hi = np.full_like(xc, hi_q)
    for _ in range(_BISECTIONS):
        q = 0.5 * (lo + hi)
        pc = slope * q + offset
        slope_at_q = slope * (_over(xc, pc) - _over(nc - xc, 1.0 - pc)) + (
            _over(xp, q) - _over(np_ - xp, 1.0 - q)
        )
        rising = slope_at_q > 0
        lo = np.where(rising, q, lo)
        hi = np.where(rising, hi, q)
    candidates = [0.5 * (lo + hi), np.zeros_like(xc), np.full_like(xc, hi_q)]
    best: FloatArray = np.maximum.reduce(
        [_log_likelihood(counts, slope * q + offset, q) for q in candidates]
    )
    return best


def log_e_values(
    cand_errors: npt.ArrayLike,
    cand_n: npt.ArrayLike,
    prod_errors: npt.ArrayLike,
    prod_n: npt.ArrayLike,
    *,
    max_ratio: float,
    max_delta: float,
) -> FloatArray:
    """Natural log of the e-process for "candidate error rate regressed" (elementwise)."""
    xc = np.asarray(cand_errors, dtype=np.float64)
    nc = np.asarray(cand_n, dtype=np.float64)
    xp = np.asarray(prod_errors, dtype=np.float64)
    np_ = np.asarray(prod_n, dtype=np.float64)
    shape = np.broadcast_shapes(xc.shape, nc.shape, xp.shape, np_.shape)
    # Flat float copies: ufuncs turn 0-d arrays into scalars, which cannot be assigned into.
    xc, nc, xp, np_ = (
        np.broadcast_to(v, shape).astype(np.float64).ravel() for v in (xc, nc, xp, np_)
    )

    log_mixture = (
        betaln(xc + _PRIOR_A, nc - xc + _PRIOR_B)
        + betaln(xp + _PRIOR_A, np_ - xp + _PRIOR_B)
        - 2.0 * betaln(_PRIOR_A, _PRIOR_B)
    )
    pc_hat = np.divide(xc, nc, out=np.zeros_like(xc), where=nc > 0)
    pp_hat = np.divide(xp, np_, out=np.zeros_like(xp), where=np_ > 0)
    log_unconstrained = _log_likelihood((xc, nc, xp, np_), pc_hat, pp_hat)
    in_null = pc_hat <= np.maximum(max_ratio * pp_hat, pp_hat + max_delta)

    # Outside the null the constrained maximum lies on one of the two boundary lines; most looks
    # in a healthy canary are inside it, so only the others pay for the search.
    log_null = log_unconstrained.copy()
    out = ~in_null
    if out.any():
        sub = (xc[out], nc[out], xp[out], np_[out])
        log_null[out] = np.maximum(
            _max_on_line(sub, slope=max_ratio, offset=0.0),
            _max_on_line(sub, slope=1.0, offset=max_delta),
        )
    result: FloatArray = (log_mixture - log_null).reshape(shape)
    return result


def simulate_counts(
    *,
    production_rate: float,
    candidate_rate: float,
    candidate_share: float,
    streams: int,
    requests: int,
    look_every: int,
    seed: int,
) -> Counts:
    """Cumulative (cand errors, cand n, prod errors, prod n) at every look of simulated streams.

    Each stream routes ``requests`` requests at random with ``candidate_share`` to the candidate
    and fails each with its version's rate; arrays have shape ``(streams, requests // look_every)``.
    Used by the tests and ``bench/canary_power.py`` to measure the false-rollback rate and the
    requests needed to detect a regression, with the same code the decision runs.
    """
    rng = np.random.default_rng(seed)
    looks = requests // look_every
    cand_block = rng.binomial(look_every, candidate_share, size=(streams, looks))
    prod_block = look_every - cand_block
    cand_errors = rng.binomial(cand_block, candidate_rate)
    prod_errors = rng.binomial(prod_block, production_rate)
    return (
        np.cumsum(cand_errors, axis=1).astype(np.float64),
        np.cumsum(cand_block, axis=1).astype(np.float64),
        np.cumsum(prod_errors, axis=1).astype(np.float64),
        np.cumsum(prod_block, axis=1).astype(np.float64),
    )


def first_crossing(log_e: FloatArray, alpha: float) -> npt.NDArray[np.int64]:
    """Index of the first look per stream (row) whose e-value reaches ``1/alpha``; -1 if none."""
    crossed = log_e >= math.log(1.0 / alpha)
    first: npt.NDArray[np.int64] = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    return first

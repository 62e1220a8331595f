"""Per-row summaries of a model's outputs for canary analysis: the score and the top-1 class.

The score is the top-1 probability of the output named like ``probabilities`` (or else the first
2-D float output) and goes into ``SCORE_BINS`` bins for the population stability index; models
without such an output contribute their first output value clipped to [0, 1]. The top-1 class
(argmax of the same 2-D output, else the first value itself) is what shadow comparisons flip on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lepton.shared.metrics import SCORE_BINS


def pick_score_output(names: Sequence[str], ranks: Sequence[int], floats: Sequence[bool]) -> str:
    """The output the scores come from, chosen once per loaded version."""
    for name in names:
        if "prob" in name.lower():
            return name
    for name, rank, is_float in zip(names, ranks, floats, strict=True):
        if rank == 2 and is_float:
            return name
    return names[0]


def row_scores(output: np.ndarray) -> np.ndarray:
    """One score in [0, 1] per row (NaN rows stay NaN and are not binned)."""
    if output.ndim == 2 and output.shape[1] > 0 and np.issubdtype(output.dtype, np.floating):
        return np.asarray(output.max(axis=1), dtype=np.float64)
    flat = output.reshape(output.shape[0], -1) if output.ndim >= 1 else output.reshape(1, -1)
    if flat.shape[1] == 0:
        return np.zeros(flat.shape[0])
    return np.asarray(np.clip(flat[:, 0].astype(np.float64), 0.0, 1.0))


def row_top1(output: np.ndarray) -> np.ndarray:
    """The predicted class per row (argmax of a 2-D output, else the first value)."""
    if output.ndim == 2 and output.shape[1] > 0:
        return np.asarray(output.argmax(axis=1))
    flat = output.reshape(output.shape[0], -1) if output.ndim >= 1 else output.reshape(1, -1)
    return flat[:, 0] if flat.shape[1] else np.zeros(flat.shape[0])


def score_histogram(scores: np.ndarray) -> np.ndarray:
    """Counts of finite scores per bin; bin ``i`` holds [i/B, (i+1)/B), the last one includes 1."""
    finite = scores[np.isfinite(scores)]
    bins = np.minimum((np.clip(finite, 0.0, 1.0) * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
    return np.bincount(bins, minlength=SCORE_BINS)

"""The tuning and measuring protocol of a comparison, on NumPy arrays.

:data:`PROTOCOL` states it (every report prints it); the functions apply it
to the numbers a sweep produced: :func:`steps_to_target`,
:func:`choose_learning_rate`, :func:`performance_profile` (with the AlgoPerf
score, computed exactly) and :func:`speedups`. Plain NumPy: this module
imports nothing of jaxgd, so the protocol can be read and tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROFILE_TAU_MAX",
    "PROTOCOL",
    "choose_learning_rate",
    "performance_profile",
    "speedups",
    "steps_to_target",
]

PROTOCOL = """\
1. Every run takes exactly ``steps`` updates (runs are not stopped at the
   target, so the curves are whole); a run that meets a non-finite loss or
   gradient stops there and counts as *diverged*.
2. Seed ``s`` draws the start (``problem.init``) and the minibatch order;
   every optimizer and rate sees the same starts (common random numbers).
3. A run's *final loss* is the full-data loss after its last update; its
   *steps to target* is the first step ``k`` at which the recorded loss is
   ``<= problem.target`` (the minibatch loss on minibatch problems), and
   infinite when never reached.
4. For each optimizer the learning rate is chosen by, in order: fewest
   diverged seeds; the lowest mean over seeds of ``max(final loss,
   target)`` (so every loss at or below the target counts as equally good);
   ties (every seed reached the target) go to the fewest mean steps to
   target. Means leave out diverged runs, so a NaN never poisons them.
5. A choice at the smallest or largest rate of the grid is flagged: the
   best rate may lie outside it.
6. Across problems, an optimizer's steps to target on a problem is the mean
   over seeds when every seed reached the target, else infinite. Its
   performance profile ``rho(tau)`` is the fraction of problems on which that
   is within a factor ``tau`` of the best optimizer's; the AlgoPerf score is
   the area under ``rho`` for ``1 <= tau <= 4``, divided by 3. The speedup
   over vanilla is the geometric mean, over problems both solved, of
   vanilla's steps over the optimizer's.
7. Time: a problem's sweep is one program, compiled first
   (``jax.jit(...).lower(...).compile()``, timed apart) and then run once
   (timed to ``block_until_ready``); time per step is that run's wall time
   over ``steps``, for all runs together and per run.
"""
"""The tuning and measuring protocol (after DeepOBS, Schneider et al. 2019, and
AlgoPerf, Dahl et al. 2023), written into every report."""

PROFILE_TAU_MAX = 4.0
"""AlgoPerf's largest ratio to the best: the profile is integrated up to it."""


def steps_to_target(curves: np.ndarray, target: float) -> np.ndarray:
    """First step at which each curve is ``<= target``; ``inf`` where never.

    Args:
        curves: losses with the step on the last axis (NaN after a run stopped).
        target: the loss that counts as solved.

    Examples:
        >>> import numpy as np
        >>> steps_to_target(np.array([[3.0, 2.0, 0.5, 0.1], [3.0, 2.0, np.nan, np.nan]]), 1.0)
        array([ 2., inf])
    """
    hit = curves <= target  # NaN compares False
    first = np.argmax(hit, axis=-1).astype(np.float64)
    return np.where(hit.any(axis=-1), first, np.inf)


def choose_learning_rate(
    final_loss: np.ndarray, diverged: np.ndarray, to_target: np.ndarray, target: float
) -> int:
    """The index of the best learning rate by the protocol's criterion.

    In order: fewest diverged seeds; lowest mean over the finite seeds of
    ``max(final_loss, target)``; fewest mean steps to target (a tie on the
    second key means every seed reached the target).

    Args:
        final_loss: ``(n_rates, n_seeds)`` final losses.
        diverged: ``(n_rates, n_seeds)`` booleans.
        to_target: ``(n_rates, n_seeds)`` steps to target (``inf``: never).
        target: the problem's target loss.

    Examples:
        >>> import numpy as np
        >>> loss = np.array([[0.5, 0.4], [1e-9, 1e-9], [1e-12, 1e-12], [np.nan, 1e-20]])
        >>> div = np.array([[0, 0], [0, 0], [0, 0], [1, 0]], bool)
        >>> steps = np.array([[np.inf, np.inf], [40, 42], [12, 15], [np.inf, 3]])
        >>> choose_learning_rate(loss, div, steps, target=1e-6)  # solved fastest, no divergence
        2
    """
    keys = []
    for i in range(final_loss.shape[0]):
        ok = ~diverged[i] & np.isfinite(final_loss[i])
        clipped = np.maximum(final_loss[i][ok], target)
        mean_loss = float(clipped.mean()) if clipped.size else math.inf
        mean_steps = float(to_target[i][ok].mean()) if ok.any() else math.inf
        keys.append((int(diverged[i].sum()), mean_loss, mean_steps, i))
    return min(keys)[3]


def performance_profile(
    to_target: Mapping[str, Sequence[float]], taus: Sequence[float] | None = None
) -> dict[str, Any]:
    """Performance profiles and AlgoPerf scores from steps to target per problem.

    Args:
        to_target: optimizer label -> steps to target on each problem (the
            same problem order for every label; ``inf`` when not solved).
        taus: the ratios ``tau >= 1`` at which to evaluate ``rho``; by default
            200 points log-spaced over ``[1, 4]``.

    Returns:
        A dict with ``taus``, ``rho`` (label -> a list, one value per tau) and
        ``score`` (label -> float). For each ``tau``, ``rho`` holds the fraction
        of problems whose steps to target is at most ``tau`` times the best
        optimizer's on that problem; the
        score is the area under ``rho`` over ``[1, 4]`` divided by 3 (1 is
        best: fastest on every problem). Problems no optimizer solved count
        against every optimizer.

    Examples:
        >>> prof = performance_profile({"a": [10, 100], "b": [20, 40]}, taus=[1, 2, 4])
        >>> prof["rho"]
        {'a': [0.5, 0.5, 1.0], 'b': [0.5, 1.0, 1.0]}
    """
    labels = list(to_target)
    table = np.array([to_target[label] for label in labels], np.float64)  # (n_opt, n_prob)
    if taus is None:
        taus = np.geomspace(1.0, PROFILE_TAU_MAX, 200)
    taus = np.asarray(taus, np.float64)
    best = table.min(axis=0) if table.size else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(table), table / np.maximum(best, 1.0), np.inf)
        ratio = np.where(np.isfinite(table) & (best == 0), np.where(table == 0, 1.0, np.inf), ratio)
    n = max(table.shape[1], 1)
    rho = {
        label: [float(np.sum(ratio[i] <= t + 1e-12) / n) for t in taus]
        for i, label in enumerate(labels)
    }
    # rho is a step function: problem i counts from tau = ratio_i on, so its share
    # of the area over [1, tau_max] is (tau_max - max(ratio_i, 1)) when positive.
    area = np.clip(PROFILE_TAU_MAX - np.maximum(ratio, 1.0), 0.0, None)  # inf ratio -> 0
    score = {
        label: float(area[i].sum() / n / (PROFILE_TAU_MAX - 1.0)) for i, label in enumerate(labels)
    }
    return {"taus": taus.tolist(), "rho": rho, "score": score}


def speedups(to_target: Mapping[str, Sequence[float]], reference: str) -> dict[str, Any]:
    """Geometric-mean ratio ``reference steps / optimizer steps`` over problems both solved."""
    if reference not in to_target:
        return {}
    ref = np.asarray(to_target[reference], np.float64)
    out = {}
    for label, values in to_target.items():
        v = np.asarray(values, np.float64)
        both = np.isfinite(ref) & np.isfinite(v)
        ratios = np.maximum(ref[both], 1.0) / np.maximum(v[both], 1.0)
        out[label] = {
            "geomean_speedup": float(np.exp(np.mean(np.log(ratios)))) if ratios.size else None,
            "problems_compared": int(both.sum()),
            "solved_where_reference_did_not": int(np.sum(np.isfinite(v) & ~np.isfinite(ref))),
        }
    return out

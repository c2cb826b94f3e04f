"""The tuning and measuring protocol of a comparison, on NumPy arrays.

:data:`PROTOCOL` states it (every report prints it); the functions apply it
to the numbers a sweep produced: :func:`steps_to_target`,
:func:`choose_learning_rate`, :func:`performance_profile` (with the AlgoPerf
score as AlgoPerf's own scoring code computes it) and :func:`speedups`. Plain
NumPy: this module imports nothing of jaxgd, so the protocol can be read and
tested alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROFILE_POINTS",
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
   There are two disjoint sets of seeds: the *tuning seeds* choose the
   learning rate, the *evaluation seeds* are reported.
3. A run's *final loss* is the full-data training loss after its last
   update; its *steps to target* is the first step ``k`` at which the
   recorded loss is ``<= problem.target`` (the minibatch loss on minibatch
   problems), and infinite when never reached. Where the problem holds out
   test data (``problem.test_data``: the real data sets hold out a
   stratified fifth, never trained on), the run also records the
   *held-out loss* ``loss(params, test_data)`` every ``max(1, steps // 100)``
   steps and after its last update (the *final held-out loss*), and its
   *steps to the held-out target* is the first recorded step at which it is
   ``<= problem.eval_target``; the time to a target is those steps at the
   measured time per step.
4. For each optimizer the learning rate is chosen on the tuning seeds, by, in
   order: fewest diverged seeds; the lowest mean over seeds of ``max(final
   loss, target)`` (so every loss at or below the target counts as equally
   good); ties (every seed reached the target) go to the fewest mean steps
   to target. Means leave out diverged runs, so a NaN never poisons them.
   The choice uses training figures only: the held-out data judges, it
   never tunes.
5. The chosen rate runs again from every evaluation seed (the same compiled
   program as the sweep). Every figure reported (means, spreads, targets
   reached, held-out losses, the profile, the verdicts) is the evaluation
   seeds', so the choice does not flatter the report (DeepOBS's protocol).
6. A choice at the smallest or largest rate of the grid is flagged: the
   best rate may lie outside it.
7. Two optimizers are compared on each problem and metric (final held-out
   loss, final training loss above the optimum, floored at float32's
   resolution there, steps to each target) over the paired
   evaluation seeds: the ratio ``b / a`` as a geometric mean, its 95 %
   bootstrap interval (fixed resampling seed), a paired Wilcoxon
   signed-rank test Holm-corrected across the whole table, and a verdict
   that names a winner only when the corrected test and the interval both
   say so, the interval clear of the 0.1 % band around 1 (a smaller
   difference is no win); values equal to float32 round-off (relative
   ``1e-5``) are ties.
   A pair where one run reached a target and the other not is
   ``incomparable`` on that metric.
8. Across problems, an optimizer's steps to target on a problem is the mean
   over the evaluation seeds when every seed reached the target (the
   held-out target where the problem has one, else the training target),
   else infinite. Its performance profile ``rho(tau)`` is the fraction of
   problems on which that is within a factor ``tau`` of the best optimizer's
   (more than 4 times the best counts as not solved). The AlgoPerf score is
   computed as AlgoPerf's scoring code computes it: ``rho`` at 100 evenly
   spaced ``tau`` from 1 to 4, integrated by the trapezoid rule, divided by
   3 (the exact area under the step function ``rho`` over ``[1, 4]``,
   divided by 3, is kept beside it as ``exact_area``). The speedup over
   vanilla is the geometric mean, over problems both solved, of vanilla's
   steps over the optimizer's.
9. Time: a problem's sweep is one program, compiled first
   (``jax.jit(...).lower(...).compile()``, timed apart) and then run (timed
   to ``block_until_ready``), once for the tuning seeds and once per
   evaluation call; time per step is the runs' wall time over ``steps``,
   for all runs together and per run. On a CPU, problems without data
   alike (the same shapes of params and loss, minimisers alike, all from
   the catalogue or none) share one program (each problem's loss picked by
   its index), compiled once: each reports its share of the compile time.
"""
"""The tuning and measuring protocol (after DeepOBS, Schneider et al. 2019, and
AlgoPerf, Dahl et al. 2023), written into every report."""

PROFILE_TAU_MAX = 4.0
"""AlgoPerf's largest ratio to the best: the profile is integrated up to it, and a
problem solved more slowly than that counts as not solved."""

PROFILE_POINTS = 100
"""How many evenly spaced ``tau`` in ``[1, PROFILE_TAU_MAX]`` AlgoPerf's score
evaluates ``rho`` at (its ``num_points``, ``scale="linear"``)."""


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

    The score is the one AlgoPerf's scoring code (``scoring/performance_profile.py``
    in ``mlcommons/algorithmic-efficiency``) computes and its leaderboards publish:
    ``rho`` at :data:`PROFILE_POINTS` evenly spaced ``tau`` from 1 to
    :data:`PROFILE_TAU_MAX`, integrated by the trapezoid rule, divided by 3. Fed
    AlgoPerf's published times to target, it gives the published scores (the
    tests check all 16 of the v0.6 self-tuning leaderboard to 1e-12).

    Args:
        to_target: optimizer label -> steps to target on each problem (the
            same problem order for every label; ``inf`` or NaN when not solved).
        taus: the ratios ``tau >= 1`` at which to evaluate ``rho``; by default
            the score's grid (:data:`PROFILE_POINTS` points evenly spaced over
            ``[1, 4]``).

    Returns:
        A dict with ``taus``, ``rho`` (label -> a list, one value per tau),
        ``score`` and ``exact_area`` (label -> float each). For each ``tau``,
        ``rho`` holds the fraction of problems whose steps to target is at most
        ``tau`` times the best optimizer's on that problem (more than 4 times
        counts as not solved). ``score`` is AlgoPerf's score (above);
        ``exact_area`` is the exact area under the step function ``rho`` over
        ``[1, 4]`` divided by 3, which the score approaches as the grid is
        refined. Both are 1 for the fastest optimizer on every problem.
        Problems no optimizer solved count against every optimizer.

    Examples:
        >>> prof = performance_profile({"a": [10, 100], "b": [20, 40]}, taus=[1, 2, 4])
        >>> prof["rho"]
        {'a': [0.5, 0.5, 1.0], 'b': [0.5, 1.0, 1.0]}
        >>> # the trapezoid rule ramps b's jump at tau = 2 up from the grid point before it
        >>> round(prof["exact_area"]["b"], 6), round(prof["score"]["b"], 6)
        (0.833333, 0.835859)
    """
    labels = list(to_target)
    table = np.array([to_target[label] for label in labels], np.float64)
    ratio = _ratios(table.reshape(len(labels), -1) if labels else np.zeros((0, 0)))
    n = max(ratio.shape[1], 1)
    grid = np.linspace(1.0, PROFILE_TAU_MAX, PROFILE_POINTS)
    taus = grid if taus is None else np.asarray(taus, np.float64)
    rho = (ratio[:, :, None] <= taus).sum(axis=1) / n  # (n_opt, n_tau)
    on_grid = (ratio[:, :, None] <= grid).sum(axis=1) / n
    # The trapezoid rule over AlgoPerf's grid, normalised by the grid's range.
    trapezoid = (np.diff(grid) * (on_grid[:, 1:] + on_grid[:, :-1]) / 2.0).sum(axis=1)
    score = trapezoid / (grid[-1] - grid[0])
    # rho is a step function: problem i counts from tau = ratio_i on, so its share
    # of the area over [1, tau_max] is (tau_max - max(ratio_i, 1)) when positive.
    area = np.clip(PROFILE_TAU_MAX - np.maximum(ratio, 1.0), 0.0, None)  # inf ratio -> 0
    exact = area.sum(axis=1) / n / (PROFILE_TAU_MAX - 1.0)
    return {
        "taus": taus.tolist(),
        "rho": {label: rho[i].tolist() for i, label in enumerate(labels)},
        "score": {label: float(score[i]) for i, label in enumerate(labels)},
        "exact_area": {label: float(exact[i]) for i, label in enumerate(labels)},
    }


def _ratios(table: np.ndarray) -> np.ndarray:
    """Each entry of ``(n_opt, n_prob)`` over its problem's best, as AlgoPerf forms them.

    Not solved (``inf`` or NaN) and more than :data:`PROFILE_TAU_MAX` times the best
    become ``inf``; where the best is 0, the optimizers at 0 get ratio 1.
    """
    table = np.where(np.isnan(table), np.inf, table)
    best = table.min(axis=0) if table.size else np.zeros(table.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(table > PROFILE_TAU_MAX * best, np.inf, table)
        ratio = table / best
    ratio = np.where((table == 0) & (best == 0), 1.0, ratio)
    return np.where(np.isnan(ratio), np.inf, ratio)  # inf / inf: no optimizer solved it


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

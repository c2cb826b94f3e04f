"""Paired statistics of a comparison: ratio, bootstrap interval, test, verdict.

Two optimizers ``a`` and ``b`` run on the same evaluation seeds (common random
numbers: seed ``i`` of ``a`` pairs with seed ``i`` of ``b``), so each metric
gives one ratio ``b / a`` per seed. :func:`paired_comparison` summarises one
metric of one pair; :func:`pairwise` does it for every problem, metric and
pair of a table and corrects the p-values across the whole table with
:func:`holm`. Plain NumPy and SciPy (:mod:`scipy.special`; :mod:`scipy.stats`
beyond 13 pairs only): this module imports nothing
of jaxgd, so it can be read and tested alone.

The rules, stated once (the guide ``docs/guides/statistics.md`` shows how to
read them):

- ``ratio``: the geometric mean over the paired seeds of ``b / a``.
- ``ci_low``, ``ci_high``: a bootstrap interval of that ratio at level
  ``1 - alpha`` (95 % by default): the seed pairs are resampled with
  replacement ``n_boot`` times by a generator seeded with ``seed`` (the same
  inputs give the same interval), and the interval is the *expanded
  percentile* interval of the resampled geometric means (Hesterberg 2015):
  the percentiles are taken at ``Phi(-sqrt(n / (n - 1)) t_{n-1, 1 - alpha/2})``
  and its complement instead of ``alpha / 2``, which corrects the plain
  percentile interval's narrowness at few seeds (at 10 seeds and
  ``alpha = 0.05``: the 0.85th and 99.15th percentiles). The interval is not
  corrected for the number of rows; the Holm-corrected p-value guards the
  table.
- ``p_raw``: the two-sided paired Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``) of ``log(b / a)``; pairs with equal values are
  dropped (``zero_method="wilcox"``) and ``p_raw = 1`` when every pair is
  equal. Values within a relative ``tie_rtol`` of each other (``1e-5`` by
  default: float32 round-off, accumulated over a run) count as equal, so a
  difference in the last digits of two converged losses is a tie, never a
  verdict. With ``n`` unequal pairs the smallest two-sided p-value is
  ``2 / 2**n``: below 6 seeds no test can reach ``alpha = 0.05``, and every
  verdict is "no difference".
- ``p_value``: ``p_raw`` after Holm's correction across the table.
- ``verdict``: ``"a better"`` or ``"b better"`` only when ``p_value <=
  alpha`` and the whole interval lies beyond the practical-equivalence band
  ``[1 / (1 + MARGIN), 1 + MARGIN]`` on that side (``MARGIN = 1e-3``: a
  difference under 0.1 %, such as two converged runs whose held-out losses
  differ in the fifth digit, is consistent but no win); otherwise ``"no
  difference"``. A tie is never called a win.
- Values must be positive; ``inf`` (a run that never reached its target) and
  ``0`` (the target met at the start) are allowed. A pair with both values
  ``inf`` (or both ``0``) says nothing about the ratio and is left out. A
  pair with one value ``inf`` or ``0`` and the other not has no finite ratio:
  the row's verdict is ``"incomparable"`` and its numbers are NaN (read
  another metric, such as the final loss, for that pair). A row with no pair
  left is ``"incomparable"`` too.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_BOOTSTRAPS",
    "MARGIN",
    "TIE_RTOL",
    "VERDICTS",
    "holm",
    "mean_interval",
    "paired_comparison",
    "pairwise",
]

DEFAULT_BOOTSTRAPS = 10_000
"""Bootstrap resamples of the seed pairs behind each interval."""

VERDICTS = ("a better", "b better", "no difference", "incomparable")
"""The verdicts a row can carry."""

MIN_SEEDS = 2

TIE_RTOL = 1e-5
"""Paired values this close (relative) count as equal: float32 round-off is no win."""

MARGIN = 1e-3
"""A ratio whose whole interval lies within 0.1 % of 1 names no winner (practical
equivalence), however small its p-value."""


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down correction of p-values for the family they form.

    The ``k``-th smallest of ``m`` p-values is multiplied by ``m - k + 1``
    (``k`` from 1), capped at 1, and made non-decreasing in that order. It
    controls the family-wise error rate (not the false discovery rate). NaN
    p-values stay NaN and do not count in ``m``.

    Args:
        p_values: the raw p-values, in any order.

    Returns:
        The corrected p-values, in the order given.

    Examples:
        >>> holm([0.01, 0.04, 0.03, 0.2]).tolist()
        [0.04, 0.09, 0.09, 0.2]
    """
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _values(x: Any, name: str, where: str) -> np.ndarray:
    values = np.asarray(x, np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"{where}: {name} must be a 1-D array over the evaluation seeds, got shape "
            f"{values.shape}; pass one value per seed."
        )
    if np.isnan(values).any() or (values < 0).any():
        raise ValueError(
            f"{where}: {name} holds NaN or negative values; a ratio needs positive values "
            "(inf allowed for a run that never reached its target): map a diverged run to "
            "inf, or compare a positive metric."
        )
    return values


def _check_pair(a: Any, b: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _values(a, "a", where), _values(b, "b", where)
    if a.shape != b.shape:
        raise ValueError(
            f"{where}: a has {a.size} seeds and b {b.size}; the runs are paired seed by "
            "seed: pass both on the same evaluation seeds."
        )
    if a.size < MIN_SEEDS:
        raise ValueError(
            f"{where}: a verdict needs at least {MIN_SEEDS} paired evaluation seeds, got "
            f"{a.size}; run more evaluation seeds (eval_seeds=10 detects a 10% difference "
            "at the noise of docs/guides/statistics.md)."
        )
    return a, b


def _expanded_tail(n: int, alpha: float) -> float:
    """The tail of the expanded percentile interval (Hesterberg 2015).

    The plain percentile interval of a mean is too narrow at few seeds (it
    spreads by the plug-in variance and normal quantiles, so a nominal 95 %
    interval misses the true ratio well over 5 % of the time at 10 seeds);
    taking its percentiles as far out as the t interval's width corrects that.
    """
    if n < 2:
        return alpha / 2
    import scipy.special  # the t and normal distributions, without scipy.stats' import

    width = np.sqrt(n / (n - 1)) * scipy.special.stdtrit(n - 1, 1 - alpha / 2)  # t's ppf
    return float(scipy.special.ndtr(-width))  # the normal cdf


def mean_interval(
    values: Any, *, n_boot: int = DEFAULT_BOOTSTRAPS, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """The expanded percentile bootstrap interval of the mean of ``values`` (the same
    rule as the ratio's interval, on the values themselves); NaN for no value.

    Examples:
        >>> low, high = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
        >>> 1.0 <= low < 3.0 < high <= 5.0
        True
    """
    values = np.asarray(values, np.float64)
    n = values.size
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    tail = _expanded_tail(n, alpha)
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _raw(
    a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, alpha: float, tie_rtol: float = TIE_RTOL
) -> dict:
    """Ratio, interval and uncorrected p-value of checked, paired values."""
    edge_a = (a == 0) | np.isinf(a)
    edge_b = (b == 0) | np.isinf(b)
    nan = float("nan")
    row = {"ratio": nan, "ci_low": nan, "ci_high": nan, "p_raw": nan, "n": 0}
    if (edge_a != edge_b).any() or ((a == 0) & np.isinf(b)).any() or ((b == 0) & np.isinf(a)).any():
        return row  # a pair with no finite ratio
    keep = ~(edge_a & edge_b)  # both inf, or both 0: no information on the ratio
    logs = np.log(b[keep] / a[keep])
    n = logs.size
    if n == 0:
        return row
    rng = np.random.default_rng(seed)
    means = logs[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    tail = _expanded_tail(n, alpha)
    low, high = np.quantile(means, [tail, 1 - tail])
    tested = np.where(np.abs(logs) <= tie_rtol, 0.0, logs)  # round-off: a tie
    p_raw = _wilcoxon_p(tested)
    return {
        "ratio": float(np.exp(logs.mean())),
        "ci_low": float(np.exp(low)),
        "ci_high": float(np.exp(high)),
        "p_raw": p_raw,
        "n": int(n),
    }


EXACT_SIGN_FLIPS = 13
"""Up to this many pairs, the p-value counts every sign flip (SciPy's exact branch)."""


def _wilcoxon_p(d: np.ndarray) -> float:
    """The two-sided Wilcoxon signed-rank p-value of ``d`` (zeros dropped; 1 when all
    are zero): SciPy's ``wilcoxon(d, zero_method="wilcox")``, computed here up to
    :data:`EXACT_SIGN_FLIPS` values.

    Up to 13 values SciPy's answer is exact: its exact null distribution, or with
    ties or zeros a permutation test over all ``2**n`` sign flips that calls the
    statistic once per flip in Python (0.7 s a row at 12 seeds: a table took
    20 s). Both are the same count: the signed-rank sum of every flip of the
    nonzero values (a zero flips to itself, so it changes no count), one matrix
    product here, compared with SciPy's relative tolerance; the value is SciPy's
    to round-off, and the default comparison (13 seeds) never imports
    :mod:`scipy.stats` (0.45 s).
    """
    if not d.any():
        return 1.0  # every pair equal: nothing for the test to rank
    if d.size > EXACT_SIGN_FLIPS:
        return float(_stats().wilcoxon(d, zero_method="wilcox").pvalue)
    nonzero = d[d != 0]
    _, which, counts = np.unique(np.abs(nonzero), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[which]  # 1, 2, ...; ties share their mean
    observed = ranks[nonzero > 0].sum()
    flips = (np.arange(2**nonzero.size)[:, None] >> np.arange(nonzero.size)) & 1
    null = flips @ ranks  # the positive-rank sum of every sign flip
    gamma = abs(100 * np.finfo(np.float64).eps * observed)
    less, greater = np.mean(null <= observed + gamma), np.mean(null >= observed - gamma)
    return float(min(2 * min(less, greater), 1.0))


def _verdict(row: dict, p_value: float, lower_is_better: bool, alpha: float) -> str:
    if not np.isfinite(row["ratio"]):
        return "incomparable"
    if not p_value <= alpha:
        return "no difference"
    b_smaller = row["ci_high"] < 1.0 / (1.0 + MARGIN)
    if not (b_smaller or row["ci_low"] > 1.0 + MARGIN):
        return "no difference"  # the interval reaches 1 or stays within 0.1 % of it
    return "b better" if b_smaller == lower_is_better else "a better"


def _check_options(n_boot: int, alpha: float, where: str) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"{where}: n_boot must be a positive integer, got {n_boot!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"{where}: alpha must lie in (0, 1), got {alpha!r}; 0.05 is usual.")


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    metric: str,
    lower_is_better: bool = True,
    n_boot: int = DEFAULT_BOOTSTRAPS,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """One metric of optimizers ``a`` and ``b`` over paired evaluation seeds.

    The rules (ratio, percentile bootstrap interval, Wilcoxon test, verdict,
    infinite and zero values) are stated in the module's docstring; alone,
    the Holm correction leaves the one p-value as it is.

    Args:
        a: the metric of ``a``, one value per evaluation seed.
        b: the metric of ``b`` on the same seeds, in the same order.
        metric: the metric's name (written into the row).
        lower_is_better: whether a smaller value is better (steps to target,
            final loss); ``False`` for accuracy.
        n_boot: bootstrap resamples of the seed pairs.
        seed: the resampling generator's seed (the same inputs give the same
            interval).
        alpha: the test's level; the interval's level is ``1 - alpha``.

    Returns:
        A dict with ``metric``, ``ratio`` (geometric mean of ``b / a``),
        ``ci_low``, ``ci_high``, ``p_value``, ``p_raw``, ``verdict`` (one of
        :data:`VERDICTS`), ``n`` (the seed pairs used) and
        ``lower_is_better``.

    Raises:
        ValueError: fewer than 2 seeds, unpaired shapes, NaN or negative values.

    Examples:
        >>> row = paired_comparison([10, 20, 30, 40, 50, 60], [20, 40, 60, 80, 100, 120],
        ...                         metric="steps_to_target")
        >>> row["ratio"], row["ci_low"], row["ci_high"], row["verdict"]
        (2.0, 2.0, 2.0, 'a better')
    """
    where = f"paired_comparison(metric={metric!r})"
    _check_options(n_boot, alpha, where)
    row = _raw(*_check_pair(a, b, where), int(n_boot), seed, alpha)
    p_value = float(holm([row["p_raw"]])[0])
    verdict = _verdict(row, p_value, lower_is_better, alpha)
    return {"metric": metric, **row, "p_value": p_value, "verdict": verdict,
            "lower_is_better": bool(lower_is_better)}  # fmt: skip


def _direction(lower_is_better: bool | Mapping[str, bool], metric: str) -> bool:
    if isinstance(lower_is_better, Mapping):
        if metric not in lower_is_better:
            raise ValueError(
                f"pairwise: lower_is_better names no direction for metric {metric!r}; "
                "add it to the mapping, or pass one bool for every metric."
            )
        return bool(lower_is_better[metric])
    return bool(lower_is_better)


def _pairs(labels: list[str], baseline: str | None, problem: str) -> list[tuple[str, str]]:
    if baseline is None:
        return list(itertools.combinations(labels, 2))
    if baseline not in labels:
        raise ValueError(
            f"pairwise: baseline {baseline!r} is not among problem {problem!r}'s optimizers "
            f"{labels}; pass one of them, or baseline=None for every pair."
        )
    return [(baseline, label) for label in labels if label != baseline]


def _stats():
    """:mod:`scipy.stats`, imported when first needed (it takes half a second, more
    than the rest of ``import jaxgd``): the Wilcoxon test of more than 13 pairs."""
    import scipy.stats

    return scipy.stats


def pairwise(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    metrics: Sequence[str],
    *,
    lower_is_better: bool | Mapping[str, bool] = True,
    baseline: str | None = None,
    n_boot: int = DEFAULT_BOOTSTRAPS,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Every problem, metric and pair of optimizers, Holm-corrected together.

    Args:
        results: ``{problem: {label: {metric: values}}}``, the values one per
            evaluation seed, every label of a problem on the same seeds.
        metrics: the metrics to compare: each present for every label of a
            problem, or for none (then that problem has no rows for it).
        lower_is_better: one direction for every metric, or a mapping
            metric -> bool.
        baseline: compare only this label against each other one (as ``a``);
            by default every pair, ``a`` before ``b`` in the labels' order.
        n_boot: bootstrap resamples of the seed pairs, per row.
        seed: the resampling generator's seed, the same for every row (a row
            equals :func:`paired_comparison` of its values, but for the
            correction).
        alpha: the level of the corrected tests; the intervals' level is
            ``1 - alpha``.

    Returns:
        One dict per problem, metric and pair, in that nesting order: the
        keys of :func:`paired_comparison` plus ``problem``, ``a`` and ``b``;
        ``p_value`` is Holm-corrected across every row with a test (rows
        ``"incomparable"`` have none and do not count).

    Examples:
        >>> results = {"quadratic": {
        ...     "sgd": {"steps": [40, 42, 39, 45, 41, 44, 40, 43]},
        ...     "adam": {"steps": [20, 22, 19, 24, 20, 21, 22, 23]}}}
        >>> [(r["a"], r["b"], r["verdict"]) for r in pairwise(results, ["steps"])]
        [('sgd', 'adam', 'b better')]
    """
    _check_options(n_boot, alpha, "pairwise")
    rows = []
    for problem, by_label in results.items():
        for metric in metrics:
            anywhere = any(metric in v for labels in results.values() for v in labels.values())
            if anywhere and not any(metric in values for values in by_label.values()):
                continue  # a metric this problem has not (no held-out data, say)
            for a, b in _pairs(list(by_label), baseline, problem):
                where = f"pairwise(problem={problem!r}, metric={metric!r}, a={a!r}, b={b!r})"
                for label in (a, b):
                    if metric not in by_label[label]:
                        raise ValueError(
                            f"{where}: {label!r} has no metric {metric!r} (it has "
                            f"{sorted(by_label[label])}); pass metrics every label has."
                        )
                values = _check_pair(by_label[a][metric], by_label[b][metric], where)
                head = {"problem": problem, "a": a, "b": b, "metric": metric}
                raw = _raw(*values, int(n_boot), seed, alpha)
                rows.append({**head, **raw, "lower_is_better": _direction(lower_is_better, metric)})
    for row, p_value in zip(rows, holm([r["p_raw"] for r in rows]), strict=True):
        row["p_value"] = float(p_value)
        row["verdict"] = _verdict(row, p_value, row["lower_is_better"], alpha)
    return rows

"""Why a chosen rate overshoots, or would one grid step up: the diagnostics of
``compare(diagnostics=...)``.

After the sweep of a problem has chosen each optimizer's rate, each optimizer
runs once more at that rate and once at the next rate of its grid (from the
first tuning seed's start, as :mod:`jaxgd.comparison._chosen` runs the
sharpness), recording the instruments of ``minimize(diagnostics=...)``
every step: Cockpit's alpha (the effective relative step size: above 1 a
step overshoots) and the cosine between successive updates, and where asked
the update ratio and the noise scale. :class:`DiagnosticsRun` holds one such
run and says whether, and from when, it overshoots for a long stretch
(:meth:`DiagnosticsRun.overshoot`); the report draws and words it
(``diagnostics_<problem>``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxgd.comparison._chosen import _chosen_run as chosen_run
from jaxgd.comparison._schema import json_number

__all__ = ["DiagnosticsRun", "Diagnosed", "Overshoot", "diagnose_chosen", "long_stretch"]


def long_stretch(steps: int) -> int:
    """Steps of alpha above 1 in a row that count as a long stretch: a tenth of the
    run, at least 5.

    Examples:
        >>> long_stretch(500), long_stretch(20)
        (50, 5)
    """
    return max(5, math.ceil(steps / 10))


class Overshoot(NamedTuple):
    """The longest stretch of steps whose alpha (a running median of ``window``
    steps) stays above 1, and the share of all finite alphas above 1."""

    start: int  # its first step (-1: no step above 1)
    length: int  # its steps
    fraction: float  # of the finite alphas, the share above 1 (NaN: none finite)
    long: bool  # at least long_stretch(steps) steps: the run overshoots


@dataclasses.dataclass(eq=False)
class DiagnosticsRun:
    """The instruments along one run at one rate (the first tuning seed).

    Attributes:
        learning_rate: the rate.
        alpha: Cockpit's alpha of each step's update, shape ``(steps,)`` (NaN
            where undefined: the last step, no update, after a divergence).
        cosine: the cosine between each update and the one before (NaN at 0).
        loss: the loss at every step of that run.
        update_ratio: leaf path -> ``|update| / |params|`` of that leaf per
            step, where asked, else None.
        noise_scale: the gradient noise scale per step, where asked (and the
            problem has data), else None.
    """

    learning_rate: float
    alpha: np.ndarray | None
    cosine: np.ndarray | None
    loss: np.ndarray
    update_ratio: dict[str, np.ndarray] | None = None
    noise_scale: np.ndarray | None = None

    @property
    def window(self) -> int:
        """Steps of the running median that smooths alpha (odd; 1 for short runs)."""
        return 2 * max(0, min(4, len(self.loss) // 50)) + 1

    def smoothed_alpha(self) -> np.ndarray:
        """alpha's running median over the last :attr:`window` steps (NaN left out)."""
        a = np.asarray(self.alpha, np.float64)
        w = self.window
        if w == 1:
            return a
        padded = np.concatenate([np.full(w - 1, np.nan), a])
        windows = np.lib.stride_tricks.sliding_window_view(padded, w)
        out = np.full(len(a), np.nan)
        finite = np.isfinite(windows).any(axis=1)
        out[finite] = np.nanmedian(windows[finite], axis=1)
        return out

    def overshoot(self) -> Overshoot | None:
        """The longest stretch with alpha above 1 (None without alpha).

        Examples:
            >>> a = np.r_[np.full(10, 0.5), np.full(30, 1.5), np.full(60, 0.2)]
            >>> DiagnosticsRun(0.1, a, None, np.ones(100)).overshoot()
            Overshoot(start=12, length=30, fraction=0.3, long=True)
        """
        if self.alpha is None:
            return None
        above = self.smoothed_alpha() > 1
        best_start, best, start = -1, 0, 0
        for i, up in enumerate(above):
            if not up:
                start = i + 1
            elif i + 1 - start > best:
                best_start, best = start, i + 1 - start
        finite = np.isfinite(self.alpha)
        fraction = float(np.mean(self.alpha[finite] > 1)) if finite.any() else math.nan
        return Overshoot(best_start, best, fraction, best >= long_stretch(len(self.loss)))

    def diverged_at(self) -> int | None:
        """The first step whose loss is not finite (None: the run stayed finite)."""
        bad = np.flatnonzero(~np.isfinite(self.loss))
        return int(bad[0]) if bad.size else None

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (NaN becomes None)."""

        def listed(a):
            return None if a is None else [json_number(float(x)) for x in a]

        ratio = self.update_ratio
        return {
            "learning_rate": self.learning_rate,
            "alpha": listed(self.alpha),
            "cosine": listed(self.cosine),
            "loss": listed(self.loss),
            "update_ratio": None if ratio is None else {k: listed(v) for k, v in ratio.items()},
            "noise_scale": listed(self.noise_scale),
            "overshoot": None if self.overshoot() is None else self.overshoot()._asdict(),
        }


@dataclasses.dataclass(eq=False)
class Diagnosed:
    """One optimizer's diagnostics: at its chosen rate, and one grid step up (None
    where the chosen rate tops its grid)."""

    chosen: DiagnosticsRun
    up: DiagnosticsRun | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_dict(),
            "up": None if self.up is None else self.up.to_dict(),
        }


def _run(problem, factory, rate, seed, steps, batch_size, mesh, names) -> DiagnosticsRun:
    if problem.data is None:  # no examples: no noise scale
        names = tuple(n for n in names if n != "noise_scale")
    h = chosen_run(problem, factory, rate, seed, steps, batch_size, mesh, diagnostics=names).history
    as_array = lambda a: None if a is None else np.asarray(a, np.float64)  # noqa: E731
    ratio = None
    if h.update_ratio is not None:
        pairs = jax.tree_util.tree_flatten_with_path(h.update_ratio)[0]
        ratio = {jax.tree_util.keystr(path) or "params": as_array(a) for path, a in pairs}
    return DiagnosticsRun(
        learning_rate=float(rate),
        alpha=as_array(h.alpha),
        cosine=as_array(h.cosine),
        loss=as_array(h.loss),
        update_ratio=ratio,
        noise_scale=as_array(h.noise_scale),
    )


def diagnose_chosen(problem, factories, per_opt, seed, steps, batch_size, mesh, names) -> None:
    """Fill in each optimizer's :class:`Diagnosed`: runs at its chosen rate and at
    the next rate of its grid, recording ``names`` every step."""
    for label, factory in factories.items():
        runs = per_opt[label]
        grid = np.asarray(runs.learning_rates)
        args = (problem, factory)
        rest = (seed, steps, batch_size, mesh, names)
        chosen = _run(*args, runs.learning_rate, *rest)
        up = None
        if runs.chosen + 1 < len(grid):
            up = _run(*args, float(grid[runs.chosen + 1]), *rest)
        runs.diagnostics = Diagnosed(chosen, up)

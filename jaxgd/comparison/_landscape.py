"""What a comparison computes of the loss surface itself, for the report to draw.

- :func:`minimiser`: the known minimiser, where the sweep measures the largest
  curvature ``L`` (the sweep's own program does, beside the runs);
- :func:`vanilla_limit`: plain gradient descent's stability limit as the
  optimizer states it (:func:`jaxgd.optimizers.stability_limit`), which with
  ``L`` gives the largest stable rate (:attr:`ProblemResult.stability_limit`);
- :func:`contours`: the loss on a grid over the frame of a 2-D problem's
  paths (:class:`jaxgd.comparison.Contours`), so that the report draws the
  contours without computing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd import optimizers as _optimizers
from jaxgd import problems as _problems
from jaxgd.comparison._checks import is_2d
from jaxgd.comparison._runs import Contours, OptimizerRuns

__all__ = ["CONTOUR_POINTS", "contours", "frame", "minimiser", "vanilla_limit"]

CONTOUR_POINTS = 200  # grid points along each axis of the paths figure's frame
_WHOLE_PATH_SPAN = 4.0  # show whole paths unless that makes the frame this much wider


def minimiser(problem: _problems.Problem) -> Any:
    """The known minimiser (the first of several), or None.

    The sweep measures the largest curvature ``L`` there (power iteration on
    Hessian-vector products): plain gradient descent converges near the
    minimum only for rates below its stability limit (:func:`vanilla_limit`),
    which explains vanilla's choice.
    """
    x = problem.optimum_params
    if x is None:
        return None
    leaves = jax.tree.leaves(x)
    if len(leaves) == 1 and leaves[0].ndim == 2 and is_2d(problem):
        return leaves[0][0]  # several minimisers (Himmelblau): the first
    return x


def vanilla_limit() -> dict[str, Any]:
    """Plain gradient descent's stability limit at rate 1, as :func:`jaxgd.optimizers.
    stability_limit` states it: ``{"kind", "limit", "formula"}``.

    Its limit is ``c / lr`` on the sharpness, so the largest stable rate at
    curvature ``L`` is ``c / L`` (the formula with ``lr`` and ``L`` swapped).

    Examples:
        >>> vanilla_limit()
        {'kind': 'sharpness', 'limit': 2.0, 'formula': '2/lr'}
    """
    return _optimizers.stability_limit(_optimizers.sgd(1.0))._asdict()


def frame(problem: _problems.Problem, runs: dict[str, OptimizerRuns]) -> tuple[np.ndarray, ...]:
    """The plotted box ``(lo, hi)`` of a 2-D problem's paths at the chosen rates.

    The box holds the starts, the minima and every point of every path that
    did not diverge (a diverged one flies off to where the loss overflows),
    with a margin, unless that is more than ``_WHOLE_PATH_SPAN`` times wider
    than the box of the middle 90 % of the points (a run that went far off):
    then it is that smaller box. The report cuts paths that leave it.
    """
    pts, starts = [], []
    for r in runs.values():
        path = r.paths[r.chosen]  # (seeds, steps, 2)
        starts.append(path[:, 0])
        flat = path[~r.diverged[r.chosen]].reshape(-1, 2)
        pts.append(flat[np.all(np.isfinite(flat), axis=1)])
    fixed = np.concatenate([np.asarray(problem.optimum_params, np.float64).reshape(-1, 2), *starts])
    fixed = fixed[np.all(np.isfinite(fixed), axis=1)]
    pts = np.concatenate([*pts, fixed])  # every run diverged: the starts and minima

    def padded(lo, hi):
        span = np.maximum(hi - lo, 1.0)
        return lo - 0.1 * span, hi + 0.1 * span

    core = padded(
        np.minimum(np.percentile(pts, 5, axis=0), fixed.min(axis=0)),
        np.maximum(np.percentile(pts, 95, axis=0), fixed.max(axis=0)),
    )
    whole = padded(
        np.minimum(pts.min(axis=0), fixed.min(axis=0)),
        np.maximum(pts.max(axis=0), fixed.max(axis=0)),
    )
    if np.all(whole[1] - whole[0] <= _WHOLE_PATH_SPAN * (core[1] - core[0])):
        return whole
    return core


def contours(
    problem: _problems.Problem,
    runs: dict[str, OptimizerRuns],
    losses: Callable[[jax.Array], jax.Array] | None = None,
) -> Contours | None:
    """The loss minus the optimum on a grid over :func:`frame`, for a problem whose
    paths were recorded (2-D); None for the others.

    The loss is evaluated in float32 at every grid point (one compiled, vmapped
    call: ``losses(points)`` where given, as
    :func:`jaxgd.comparison._groups.grid_loss` computes a group's), then
    clipped to ``[1e-6, 1e30]`` (an overflow becomes ``1e30``).
    """
    if not all(r.paths is not None for r in runs.values()):
        return None
    lo, hi = frame(problem, runs)
    x = np.linspace(lo[0], hi[0], CONTOUR_POINTS)
    y = np.linspace(lo[1], hi[1], CONTOUR_POINTS)
    grid = np.stack(np.meshgrid(x, y), axis=-1).reshape(-1, 2)
    losses = jax.jit(jax.vmap(problem.loss)) if losses is None else losses
    z = np.asarray(losses(jnp.asarray(grid, jnp.float32)), np.float64)
    gap = np.clip(z.reshape(len(y), len(x)) - problem.optimum_value, 1e-6, 1e30)
    return Contours(lo=np.asarray(lo), hi=np.asarray(hi), x=x, y=y, gap=gap)

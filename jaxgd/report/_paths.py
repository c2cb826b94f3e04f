"""The figures of where the runs went: ``paths_<problem>`` (the paths over the loss
contours) and ``sharpness_<problem>`` (the sharpness against its limit); see
:mod:`jaxgd.report.figures`."""

from __future__ import annotations

import numpy as np

from jaxgd.comparison import Comparison, ProblemResult
from jaxgd.report._axes import (
    FLOOR,
    LEGEND_GAP,
    color,
    gap,
    limit_formula,
    log_scale,
    loss_axis,
    new_figure,
    place_axes,
    plain_log_formatter,
    positive,
)

__all__ = ["paths_figure", "sharpness_figure"]


def _clip_path(path: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The path's points with a NaN break around every step that starts and ends
    outside the frame, so no segment is drawn that neither starts nor ends in view
    (a segment that leaves the frame is drawn up to its edge)."""
    inside = np.all((path >= lo) & (path <= hi), axis=1)
    kept = np.flatnonzero(inside[:-1] | inside[1:])  # step i -> i+1 drawn: one end in view
    if len(kept) == len(path) - 1:
        return path
    pieces = []
    for run in np.split(kept, np.flatnonzero(np.diff(kept) > 1) + 1):
        if len(run):
            pieces += [path[run[0] : run[-1] + 2], np.full((1, 2), np.nan)]
    return np.concatenate(pieces[:-1]) if pieces else np.empty((0, 2))


def _levels(values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The contour levels, half a decade apart, over ``values`` (and their log10 ends)."""
    lo = np.floor(2 * np.log10(max(values.min(), 1e-3))) / 2
    hi = max(np.ceil(2 * np.log10(values.max())) / 2, lo + 0.5)
    return lo, hi, 10.0 ** np.arange(lo, hi + 0.25, 0.5)


def _color_bar(fig, axes, contour_set, lo: float, hi: float, p: ProblemResult) -> None:
    cbar = fig.colorbar(
        contour_set,
        ax=axes,
        shrink=0.9,
        aspect=30,
        ticks=10.0 ** np.arange(np.ceil(lo), np.floor(hi) + 0.5),
    )
    cbar.ax.yaxis.set_major_formatter(plain_log_formatter()())
    cbar.ax.minorticks_off()
    cbar.set_label("loss − optimum (log scale)" if p.problem.optimum_value else "loss (log scale)")


MOST_PATHS = 32  # paths drawn per optimizer: the first seeds' (100000 lines would
# take minutes to draw and show nothing more)


def _draw_paths(ax, label: str, r, col: str, frame) -> bool:
    """One optimizer's paths at its chosen rate (the first :data:`MOST_PATHS`
    seeds'), cut at ``frame`` (None: not cut); whether a path was cut."""
    cut = False
    for j in range(min(r.paths.shape[1], MOST_PATHS)):
        pj = r.paths[r.chosen, j]
        pj = pj[np.all(np.isfinite(pj), axis=1)]
        if not len(pj):
            continue
        drawn = pj if frame is None else _clip_path(pj, *frame)
        cut = cut or drawn is not pj
        ax.plot(drawn[:, 0], drawn[:, 1], "-", color=col, lw=1.1, alpha=0.8, zorder=4,
                gid=f"path:{label}:{j}")  # fmt: skip
        ax.plot(pj[0, 0], pj[0, 1], "o", color=col, mec="k", ms=6, zorder=5)
        ax.plot(pj[-1, 0], pj[-1, 1], "s", color=col, mec="k", ms=5, zorder=6,
                gid=f"end:{label}:{j}")  # fmt: skip
    return cut


def paths_figure(c: Comparison, p: ProblemResult):
    """Each optimizer's paths (one per seed) at its chosen rate over the loss contours.

    The contours and the frame come computed with the comparison
    (:attr:`ProblemResult.contours`); a problem result without them (one built
    by hand) gets its paths drawn uncut on plain axes, without contours.
    """
    from matplotlib.colors import LogNorm

    grid = p.contours
    frame = None if grid is None else (grid.lo, grid.hi)
    if grid is not None:
        lo, hi, levels = _levels(grid.gap)
    n = len(p.optimizers)
    fig, axes = new_figure((4.2 * n, 4.4), 1, n, sharex=True, sharey=True, squeeze=False)
    # left: the y label beside tick labels of up to five characters ("−12.5")
    place_axes(fig, title_lines=3, left=0.75, right=0.95, bottom=0.5, wspace=0.08)
    opt = np.asarray(p.problem.optimum_params, np.float64).reshape(-1, 2)
    cut = False
    for ax, (label, r) in zip(axes[0], p.optimizers.items(), strict=True):
        if grid is not None:
            cs = ax.contourf(grid.x, grid.y, grid.gap, levels=levels, norm=LogNorm(),
                             cmap="Greys_r", alpha=0.75)  # fmt: skip
            ax.contour(grid.x, grid.y, grid.gap, levels=levels, norm=LogNorm(), colors="0.5",
                       linewidths=0.4)  # fmt: skip
        # The minimum first, the paths over it, and the ends (small squares) on top:
        # a run that ends at the minimum shows its square inside the star.
        ax.plot(opt[:, 0], opt[:, 1], "*", color="gold", mec="k", ms=18, ls="", zorder=3)
        cut = _draw_paths(ax, label, r, color(label, c.optimizer_labels), frame) or cut
        div = int(r.diverged[r.chosen].sum())
        shown = f", first {MOST_PATHS} of {r.paths.shape[1]} seeds" * (
            r.paths.shape[1] > MOST_PATHS
        )
        ax.set_title(
            f"{label}, lr {r.learning_rate:.2g}{shown}" + (f" ({div} diverged)" if div else ""),
            fontsize=10,
        )
        if frame is not None:
            ax.set_xlim(frame[0][0], frame[1][0])
            ax.set_ylim(frame[0][1], frame[1][1])
        ax.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    if grid is not None:
        _color_bar(fig, axes[0].tolist(), cs, lo, hi, p)
    note = "; steps that start and end outside the frame are not drawn" if cut else ""
    fig.suptitle(
        f"{p.name}: {p.steps}-step paths at the chosen rates, one per seed\n"
        f"(circle: start, square: end, star: minimum{note})",
        fontsize=10,
    )
    return fig


def sharpness_figure(c: Comparison, p: ProblemResult):
    """The sharpness along each chosen run against its limit (top), the loss below.

    Curves that coincide (plain descent and a line search at the same rate, the
    constant sharpness of a quadratic) stay visible: the earlier optimizer is
    drawn wider, beneath the later ones.
    """
    fig, (top, bottom) = new_figure((9, 6.6), 2, 1, sharex=True, height_ratios=[3, 2])
    use_gap, ylabel = loss_axis(p)
    measured = [(label, r) for label, r in p.optimizers.items() if r.sharpness is not None]
    curves = []
    for k, (label, r) in enumerate(measured):
        run = r.sharpness
        col = color(label, c.optimizer_labels)
        width = 1.2 + 1.5 * (len(measured) - 1 - k)  # the first widest, beneath
        lr = r.learning_rate
        kind = "preconditioned " if run.limit and run.limit["kind"] == "preconditioned" else ""
        top.plot(
            run.steps,
            run.watched,
            "-",
            color=col,
            lw=width,
            alpha=0.9,
            label=f"{label}, lr {lr:.2g}: {kind}sharpness",
            gid=f"sharpness:{label}",
        )
        curves.append(np.asarray(run.watched, np.float64))
        if run.limit is not None:
            value = run.limit["limit"]
            top.axhline(
                value,
                color=col,
                ls="--",
                lw=1.3,
                gid=f"limit:{label}",
                label=f"{label}'s limit {limit_formula(run.limit)} = {value:.3g}",
            )
            curves.append(np.array([value]))
        y = gap(p, run.loss) if use_gap else np.maximum(run.loss, FLOOR)
        bottom.plot(np.arange(len(y)), y, color=col, lw=width, alpha=0.9, label=label,
                    gid=f"loss:{label}")  # fmt: skip
    log = positive(curves)
    if log:
        log_scale(top, "y")
    top.set_ylabel("largest eigenvalue" + (" (log scale)" if log else ""))
    top.grid(True, which="major", alpha=0.3)
    legends = [top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0))]
    top.set_title("sharpness (solid) and its stability limit (dashed, same colour)", fontsize=10)
    log_scale(bottom, "y")
    bottom.set_ylabel(ylabel.replace(" (log scale", "\n(log scale"))
    bottom.set_xlabel("step")
    bottom.grid(True, which="major", alpha=0.3)
    legends.append(
        bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0))
    )
    bottom.set_title("the loss of the same runs", fontsize=10)
    every = measured[0][1].sharpness.every if measured else 1
    fig.suptitle(
        f"{p.name}: the Hessian's largest eigenvalue along one run (seed {c.seeds[0]}) of each "
        f"optimizer at its chosen rate, every {every} steps.\nAbove its limit a step "
        "overshoots along the top eigenvector. Adam-type: the eigenvalue of P^-1 H "
        "(preconditioned).\nLines that coincide: the earlier optimizer is drawn wider, beneath.",
        fontsize=10,
    )
    place_axes(fig, title_lines=5, left=1.0, beside=legends, hspace=0.3)
    return fig

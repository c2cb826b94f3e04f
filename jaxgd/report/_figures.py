"""The report's figures, drawn with matplotlib (Agg backend: no display needed).

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (so a
test or a notebook can read the plotted data from its artists, named by
``gid``), made without pyplot (no global state: figures may be drawn on a
worker thread, and need no closing) and laid out by fixed margins rather than
a layout engine (which measured every tick label twice more: a third of the
drawing time); :func:`draw_all` saves every figure of a comparison as a PNG:

- ``loss_<problem>``: loss over steps at each optimizer's chosen rate, the
  median over seeds with a band from the best to the worst seed
  (``gid="band:<label>"``);
- ``lr_<problem>``: final loss against learning rate per optimizer, every
  seed a dot, diverged runs a cross at the top (``gid="diverged:<label>"``),
  vanilla's stability limit ``2/L`` a dotted line (``gid="stability-limit"``);
- ``paths_<problem>`` (2-D problems): each optimizer's paths over the loss
  contours;
- ``sharpness_<problem>`` (with ``compare(sharpness=True)``): top, the
  sharpness along each optimizer's run at its chosen rate (the
  preconditioned one for Adam-type optimizers; ``gid="sharpness:<label>"``)
  and its stability limit as a dashed line of the same colour
  (``gid="limit:<label>"``); bottom, that run's loss on the same step axis
  (``gid="loss:<label>"``);
- ``performance_profile``: the fraction of problems solved within a factor
  tau of the fastest optimizer.

:func:`figure_names` says which figures a comparison gets;
:func:`problem_pngs` draws one problem's as soon as its sweep is over (see
:class:`jaxgd.report.FigureDrawer`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import pathlib
import re
import warnings
from collections.abc import Iterator, Mapping

import numpy as np

from jaxgd.comparison import Comparison, ProblemResult

__all__ = [
    "draw_all",
    "figure_names",
    "figure_png",
    "limit_formula",
    "loss_figure",
    "paths_figure",
    "problem_figure_names",
    "problem_pngs",
    "profile_figure",
    "sensitivity_figure",
    "sharpness_figure",
]

_COLORS = {"vanilla": "#1f77b4", "momentum": "#ff7f0e", "adam": "#2ca02c"}
_OTHER_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_FLOOR = 1e-12  # log-scale plots show a gap below this as this
_WHOLE_PATH_SPAN = 4.0  # show whole paths unless that makes the frame this much wider


def _color(label: str, labels: list[str]) -> str:
    """A stable colour per optimizer label."""
    if label in _COLORS:
        return _COLORS[label]
    others = [x for x in labels if x not in _COLORS]
    return _OTHER_COLORS[others.index(label) % len(_OTHER_COLORS)]


def _new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure and its axes, drawn by Agg: no pyplot, so no global state (the
    figures can be drawn on a worker thread) and nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


_TITLE_LINE = 0.19  # inches per line of a fontsize-10 title
_LEGEND_GAP = 0.02  # a legend beside the axes starts this far right of them (axes fraction)


def _legend_inches(fig, legends) -> float:
    """The width of the widest of ``legends`` in inches (their text measured once)."""
    renderer = fig.canvas.get_renderer()
    return max(leg.get_window_extent(renderer).width for leg in legends) / fig.dpi


def _place_axes(fig, *, title_lines: int, left: float = 0.9, right: float = 0.15,
                bottom: float = 0.55, beside=(), **spacing) -> None:  # fmt: skip
    """Set the margins (inches) around the axes: a fixed layout instead of a
    layout engine, which measured every tick label two more times per figure
    (a third of the drawing time). ``beside``: legends placed right of the
    axes, which the right margin makes room for."""
    width, height = fig.get_size_inches()
    if beside:
        inner = width - left - right
        extra = _legend_inches(fig, beside) + 0.05
        # solve: axes width * _LEGEND_GAP + legend <= right margin
        right = right + extra + _LEGEND_GAP * (inner - extra) / (1 + _LEGEND_GAP)
    top = 0.12 + title_lines * _TITLE_LINE
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        **spacing,
    )


def _lines(text: str) -> int:
    return text.count("\n") + 1


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MATH_POWER = re.compile(r"\$\\mathdefault\{(?:([\d.]+)\\times)?10\^\{(-?\d+)\}\}\$")


@functools.cache
def _plain_log_formatter():
    """matplotlib's log-axis labels written in plain text (``10⁻⁴``, ``2×10⁻¹``) rather
    than mathtext (``$10^{-4}$``): the same labels, but parsing mathtext took a fifth
    of the figures' drawing time (matplotlib keeps only 50 parsed labels)."""
    from matplotlib.ticker import LogFormatterSciNotation

    class PlainLogFormatter(LogFormatterSciNotation):
        def __call__(self, x, pos=None):
            label = super().__call__(x, pos)
            power = _MATH_POWER.fullmatch(label)
            if power is None:  # anything else stays as matplotlib writes it
                return label
            coefficient, exponent = power.groups()
            return (
                (f"{coefficient}×" if coefficient else "") + "10" + exponent.translate(_SUPERSCRIPT)
            )

    return PlainLogFormatter


def _log_scale(ax, which: str) -> None:
    """A log scale on ``ax``'s ``which`` axis (``"x"`` or ``"y"``), labelled as
    matplotlib labels one, in plain text (:func:`_plain_log_formatter`)."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    formatter = _plain_log_formatter()
    axis.set_major_formatter(formatter())
    axis.set_minor_formatter(formatter(labelOnlyBase=False))


def _floor(p: ProblemResult) -> float:
    """The smallest gap worth drawing: below float32 resolution at the optimum it is noise."""
    return max(_FLOOR, 4 * float(np.finfo(np.float32).eps) * abs(p.problem.optimum_value))


def _gap(p: ProblemResult, values: np.ndarray) -> np.ndarray:
    """``values - optimum``, floored for log scales (NaN stays NaN)."""
    return np.maximum(values - p.problem.optimum_value, _floor(p))


def _loss_axis(p: ProblemResult) -> tuple[bool, str]:
    """Plot the gap to the optimum (True) or the loss itself, and the axis label."""
    if p.batch_size is not None:
        return False, "minibatch loss (log scale)"
    if p.problem.optimum_value == 0:
        return True, "loss (log scale; optimum 0)"
    return True, "loss − optimum (log scale)"


def _has_paths(p: ProblemResult) -> bool:
    return all(r.paths is not None for r in p.optimizers.values())


def problem_figure_names(p: ProblemResult) -> list[str]:
    """One problem's figures: ``loss_<name>`` and ``lr_<name>``, ``paths_<name>`` for a
    2-D problem (its params recorded), ``sharpness_<name>`` where the sharpness was
    recorded (``compare(sharpness=True)``)."""
    names = [f"loss_{p.name}", f"lr_{p.name}"]
    if _has_paths(p):
        names.append(f"paths_{p.name}")
    if p.measured_sharpness:
        names.append(f"sharpness_{p.name}")
    return names


def figure_names(comparison: Comparison) -> list[str]:
    """The figures :func:`draw_all` draws for ``comparison``, in drawing order.

    Per problem those of :func:`problem_figure_names`, then one ``performance_profile``.
    """
    return [n for p in comparison.problems for n in problem_figure_names(p)] + [
        "performance_profile"
    ]


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """Silence NumPy's all-NaN-slice warnings (diverged runs end in NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def loss_figure(c: Comparison, p: ProblemResult):
    """Loss over steps at each optimizer's chosen rate: median over seeds, band best to worst."""
    use_gap, ylabel = _loss_axis(p)
    fig, ax = _new_figure((7, 4.2))
    steps = np.arange(p.steps)
    for label, r in p.optimizers.items():
        curves = r.curves[r.chosen]  # (n_seeds, steps)
        y = _gap(p, curves) if use_gap else np.maximum(curves, _FLOOR)
        with np.errstate(invalid="ignore"), _quiet_nan_warnings():
            mid = np.nanmedian(y, axis=0)
            lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
        col = _color(label, c.optimizer_labels)
        div = int(r.diverged[r.chosen].sum())
        extra = f", {div} diverged" if div else ""
        ax.plot(
            steps,
            mid,
            color=col,
            lw=1.8,
            label=f"{label} (lr {r.learning_rate:.2g}{extra})",
            gid=f"median:{label}",
        )
        if curves.shape[0] > 1:
            ax.fill_between(steps, lo, hi, color=col, alpha=0.2, lw=0, gid=f"band:{label}")
    target = p.problem.target - p.problem.optimum_value if use_gap else p.problem.target
    ax.axhline(target, color="0.3", ls="--", lw=1, label="target", gid="target")
    if not use_gap and p.problem.optimum_value > 0:
        ax.axhline(p.problem.optimum_value, color="0.3", ls=":", lw=1, label="optimum (full data)")
    _log_scale(ax, "y")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    band = f"line: median of {len(c.seeds)} seeds, band: best to worst seed"
    if use_gap and p.problem.optimum_value != 0:
        band += f"\ngaps below {_floor(p):.0e} (float32 round-off at the optimum) drawn at it"
    title = f"{p.name}: loss at each optimizer's chosen learning rate\n{band}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _place_axes(fig, title_lines=_lines(title))
    return fig


def sensitivity_figure(c: Comparison, p: ProblemResult):
    """Final loss against learning rate; the legend sits outside the axes, beside them."""
    from matplotlib.lines import Line2D

    fig, ax = _new_figure((9, 4.2))
    any_div = False
    finite_all = np.concatenate(
        [r.final_loss[~r.diverged & np.isfinite(r.final_loss)] for r in p.optimizers.values()]
    )
    top = float(_gap(p, finite_all).max()) * 3 if finite_all.size else 1.0
    n = len(p.optimizers)
    for k, (label, r) in enumerate(p.optimizers.items()):
        col = _color(label, c.optimizer_labels)
        y = _gap(p, r.final_loss)
        ok = ~r.diverged & np.isfinite(y)
        with _quiet_nan_warnings():
            mean = np.array(
                [np.mean(y[i][ok[i]]) if ok[i].any() else np.nan for i in range(len(y))]
            )
        ax.plot(r.learning_rates, mean, "-", color=col, lw=1.5, label=label, gid=f"mean:{label}")
        # Each seed a dot, nudged sideways a little so optimizers do not cover each other.
        nudge = 10 ** (0.03 * (k - (n - 1) / 2))
        xs = np.repeat(r.learning_rates[:, None], y.shape[1], axis=1) * nudge
        ax.plot(xs[ok], y[ok], "o", color=col, ms=3, alpha=0.6, gid=f"seeds:{label}")
        if (~ok).any():
            any_div = True
            ax.plot(
                xs[~ok],
                np.full((~ok).sum(), top),
                "x",
                color=col,
                ms=7,
                mew=2,
                gid=f"diverged:{label}",
            )
        best = mean[r.chosen]
        if np.isfinite(best):
            ax.plot(
                r.learning_rate,
                best,
                "*",
                color=col,
                ms=16,
                mec="k",
                mew=0.8,
                zorder=5,
                gid=f"chosen:{label}",
            )
    target = p.problem.target - p.problem.optimum_value
    ax.axhline(target, color="0.3", ls="--", lw=1, gid="target")
    limit = p.stability_limit
    if limit is not None:
        ax.axvline(limit, color="0.3", ls=":", lw=1.2, gid="stability-limit")
    _log_scale(ax, "x")
    _log_scale(ax, "y")
    ax.set_xlabel("learning rate (log scale)")
    zero = p.problem.optimum_value == 0
    ax.set_ylabel("final loss (log scale)" if zero else "final loss − optimum (log scale)")
    ax.set_title(
        f"{p.name}: final loss against learning rate after {p.steps} steps\n"
        f"line: mean of {len(c.seeds)} seeds (dots); star: chosen rate (the lowest final loss;\n"
        "of rates whose every seed ends below the target, the fastest to reach it)",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1))
    labels.append("target")
    if limit is not None:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.2))
        labels.append(f"2/L = {limit:.3g}:\nvanilla's stability limit")
    handles.append(Line2D([], [], color="k", marker="*", ls="", ms=10))
    labels.append("chosen rate")
    if any_div:
        handles.append(Line2D([], [], color="k", marker="x", ls="", ms=7, mew=2))
        labels.append("diverged\n(drawn at the top)")
    # Outside the axes: inside, every corner holds data on some problem.
    legend = ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1 + _LEGEND_GAP, 1.0)
    )
    ax.grid(True, which="major", alpha=0.3)
    _place_axes(fig, title_lines=3, beside=[legend])
    return fig


def _frame(p: ProblemResult) -> tuple[np.ndarray, np.ndarray]:
    """The plotted box ``(lo, hi)`` of the paths figure.

    The box holds the starts, the minima and every point of every path that
    did not diverge (a diverged one flies off to where the loss overflows),
    with a margin, unless that is more than ``_WHOLE_PATH_SPAN`` times wider
    than the box of the middle 90 % of the points (a run that went far off):
    then it is that smaller box. Paths that
    leave the box are cut at its edges (:func:`_clip_path`).
    """
    pts, starts = [], []
    for r in p.optimizers.values():
        path = r.paths[r.chosen]  # (seeds, steps, 2)
        starts.append(path[:, 0])
        flat = path[~r.diverged[r.chosen]].reshape(-1, 2)
        pts.append(flat[np.all(np.isfinite(flat), axis=1)])
    fixed = np.concatenate(
        [np.asarray(p.problem.optimum_params, np.float64).reshape(-1, 2), *starts]
    )
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


def paths_figure(c: Comparison, p: ProblemResult):
    """Each optimizer's paths (one per seed) at its chosen rate over the loss contours."""
    import jax
    import jax.numpy as jnp
    from matplotlib.colors import LogNorm

    lo_xy, hi_xy = _frame(p)
    xs, ys = np.linspace(lo_xy[0], hi_xy[0], 200), np.linspace(lo_xy[1], hi_xy[1], 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    z = np.asarray(jax.jit(jax.vmap(p.problem.loss))(jnp.asarray(grid, jnp.float32)), np.float64)
    z = np.clip(z.reshape(200, 200) - p.problem.optimum_value, 1e-6, 1e30)  # inf: 1e30
    lo = np.floor(2 * np.log10(max(z.min(), 1e-3))) / 2
    hi = max(np.ceil(2 * np.log10(z.max())) / 2, lo + 0.5)
    levels = 10.0 ** np.arange(lo, hi + 0.25, 0.5)  # half a decade apart
    n = len(p.optimizers)
    fig, axes = _new_figure((4.2 * n, 4.4), 1, n, sharex=True, sharey=True, squeeze=False)
    _place_axes(fig, title_lines=3, left=0.55, right=0.95, bottom=0.5, wspace=0.08)
    opt = np.asarray(p.problem.optimum_params, np.float64).reshape(-1, 2)
    cut = False
    for ax, (label, r) in zip(axes[0], p.optimizers.items(), strict=True):
        cs = ax.contourf(xs, ys, z, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.75)
        ax.contour(xs, ys, z, levels=levels, norm=LogNorm(), colors="0.5", linewidths=0.4)
        col = _color(label, c.optimizer_labels)
        # The minimum first, the paths over it, and the ends (small squares) on top:
        # a run that ends at the minimum shows its square inside the star.
        ax.plot(opt[:, 0], opt[:, 1], "*", color="gold", mec="k", ms=18, ls="", zorder=3)
        for j in range(r.paths.shape[1]):
            pj = r.paths[r.chosen, j]
            pj = pj[np.all(np.isfinite(pj), axis=1)]
            if not len(pj):
                continue
            drawn = _clip_path(pj, lo_xy, hi_xy)
            cut = cut or drawn is not pj
            ax.plot(drawn[:, 0], drawn[:, 1], "-", color=col, lw=1.1, alpha=0.8, zorder=4,
                    gid=f"path:{label}:{j}")  # fmt: skip
            ax.plot(pj[0, 0], pj[0, 1], "o", color=col, mec="k", ms=6, zorder=5)
            ax.plot(pj[-1, 0], pj[-1, 1], "s", color=col, mec="k", ms=5, zorder=6,
                    gid=f"end:{label}:{j}")  # fmt: skip
        div = int(r.diverged[r.chosen].sum())
        ax.set_title(
            f"{label}, lr {r.learning_rate:.2g}" + (f" ({div} diverged)" if div else ""),
            fontsize=10,
        )
        ax.set_xlim(lo_xy[0], hi_xy[0])
        ax.set_ylim(lo_xy[1], hi_xy[1])
        ax.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    cbar = fig.colorbar(
        cs,
        ax=axes[0].tolist(),
        shrink=0.9,
        aspect=30,
        ticks=10.0 ** np.arange(np.ceil(lo), np.floor(hi) + 0.5),
    )
    cbar.ax.yaxis.set_major_formatter(_plain_log_formatter()())
    cbar.ax.minorticks_off()
    cbar.set_label("loss − optimum (log scale)" if p.problem.optimum_value else "loss (log scale)")
    note = "; steps that start and end outside the frame are not drawn" if cut else ""
    fig.suptitle(
        f"{p.name}: {p.steps}-step paths at the chosen rates, one per seed\n"
        f"(circle: start, square: end, star: minimum{note})",
        fontsize=10,
    )
    return fig


def profile_figure(c: Comparison):
    """The performance profile of every optimizer, with its AlgoPerf score."""
    fig, ax = _new_figure((7, 4.2))
    taus = np.asarray(c.profile["taus"])
    n = len(c.optimizer_labels)
    for k, label in enumerate(c.optimizer_labels):
        rho = np.asarray(c.profile["rho"][label])
        # A small vertical offset keeps equal curves apart; the score is exact.
        ax.step(
            taus,
            rho + 0.006 * (k - (n - 1) / 2),
            where="post",
            color=_color(label, c.optimizer_labels),
            lw=2,
            label=f"{label} (AlgoPerf score {c.profile['score'][label]:.2f})",
        )
    ax.set_xscale("log")
    ticks = [1, 1.5, 2, 3, 4]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("tau: steps to target / fastest optimizer's steps on that problem")
    ax.set_ylabel(f"fraction of the {len(c.problems)} problems")
    ax.set_title(
        "Performance profile: on what fraction of problems does each optimizer\n"
        "reach the target within a factor tau of the fastest? (higher is better)",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _place_axes(fig, title_lines=2)
    return fig


def limit_formula(limit: dict | None) -> str:
    """The stability limit's formula, as the optimizer stated it, for a legend or a sentence.

    Example:
        >>> limit_formula({"kind": "sharpness", "limit": 20.0, "formula": "2/lr"})
        '2/lr'
        >>> limit_formula(None)
        'no known limit'
    """
    if limit is None:
        return "no known limit"
    return limit.get("formula", "its limit")  # results written before 0.3 hold no formula


def _positive(values: list[np.ndarray]) -> bool:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    return bool(finite.size) and bool(np.all(finite > 0))


def sharpness_figure(c: Comparison, p: ProblemResult):
    """The sharpness along each chosen run against its limit (top), the loss below.

    Curves that coincide (plain descent and a line search at the same rate, the
    constant sharpness of a quadratic) stay visible: the earlier optimizer is
    drawn wider, beneath the later ones.
    """
    fig, (top, bottom) = _new_figure((9, 6.6), 2, 1, sharex=True, height_ratios=[3, 2])
    use_gap, ylabel = _loss_axis(p)
    measured = [(label, r) for label, r in p.optimizers.items() if r.sharpness is not None]
    curves = []
    for k, (label, r) in enumerate(measured):
        run = r.sharpness
        col = _color(label, c.optimizer_labels)
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
        y = _gap(p, run.loss) if use_gap else np.maximum(run.loss, _FLOOR)
        bottom.plot(np.arange(len(y)), y, color=col, lw=width, alpha=0.9, label=label,
                    gid=f"loss:{label}")  # fmt: skip
    log = _positive(curves)
    if log:
        _log_scale(top, "y")
    top.set_ylabel("largest eigenvalue" + (" (log scale)" if log else ""))
    top.grid(True, which="major", alpha=0.3)
    legends = [top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1 + _LEGEND_GAP, 1.0))]
    top.set_title("sharpness (solid) and its stability limit (dashed, same colour)", fontsize=10)
    _log_scale(bottom, "y")
    bottom.set_ylabel(ylabel.replace(" (log scale", "\n(log scale"))
    bottom.set_xlabel("step")
    bottom.grid(True, which="major", alpha=0.3)
    legends.append(
        bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1 + _LEGEND_GAP, 1.0))
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
    _place_axes(fig, title_lines=5, left=1.0, beside=legends, hspace=0.3)
    return fig


def _draw(name: str):
    """The figure ``name`` of a problem is drawn by this function (looked up when called)."""
    return {
        "loss": loss_figure,
        "lr": sensitivity_figure,
        "paths": paths_figure,
        "sharpness": sharpness_figure,
    }[name.split("_", 1)[0]]


def _dpi(name: str) -> int:
    return 80 if name.startswith("paths_") else 100


def _png(fig, name: str) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_dpi(name))
    return buffer.getvalue()


def problem_pngs(c: Comparison, p: ProblemResult) -> dict[str, bytes]:
    """The figures of one problem (those :func:`problem_figure_names` lists) as PNG
    bytes. Of ``c`` only ``optimizer_labels`` and ``seeds`` are read, so they
    can be drawn before the comparison is over (:class:`jaxgd.report.FigureDrawer`)."""
    return {name: _png(_draw(name)(c, p), name) for name in problem_figure_names(p)}


def figure_png(c: Comparison, name: str) -> bytes:
    """The figure ``name`` (one of :func:`figure_names`) as PNG bytes."""
    if name == "performance_profile":
        return _png(profile_figure(c), name)
    p = next(q for q in c.problems if name in problem_figure_names(q))
    return _png(_draw(name)(c, p), name)


def draw_all(
    c: Comparison, directory: pathlib.Path, drawn: Mapping[str, bytes] | None = None
) -> dict[str, pathlib.Path]:
    """Write every figure of :func:`figure_names` into ``directory`` as PNG; name -> path.

    ``drawn``: figures already drawn (name -> PNG bytes, as
    :func:`problem_pngs` gives them), written as they are; the others are drawn here.
    """
    drawn = drawn or {}
    out = {}
    for name in figure_names(c):
        out[name] = pathlib.Path(directory) / f"{name}.png"
        out[name].write_bytes(drawn[name] if name in drawn else figure_png(c, name))
    return out

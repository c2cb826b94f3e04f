"""The figures of curves over steps and rates: ``loss_<problem>``, ``lr_<problem>``
and ``performance_profile`` (see :mod:`jaxgd.report.figures`)."""

from __future__ import annotations

import textwrap

import numpy as np

from jaxgd.comparison import Comparison, ProblemResult
from jaxgd.report._axes import (
    FLOOR,
    LEGEND_GAP,
    color,
    gap,
    gap_floor,
    lines,
    log_scale,
    loss_axis,
    new_figure,
    place_axes,
    quiet_nan_warnings,
    widest_inches,
)

__all__ = [
    "heldout_figure",
    "loss_figure",
    "profile_figure",
    "ratios_figure",
    "sensitivity_figure",
]


def loss_figure(c: Comparison, p: ProblemResult):
    """Loss over steps at each optimizer's chosen rate: median over seeds, band best to worst."""
    use_gap, ylabel = loss_axis(p)
    fig, ax = new_figure((7, 4.2))
    steps = np.arange(p.steps)
    n_seeds = len(c.seeds)
    for label, r in p.optimizers.items():
        curves, diverged = r.curves[r.chosen], r.diverged[r.chosen]  # (n_seeds, steps)
        if r.evaluation is not None:  # the reported seeds
            curves, diverged = r.evaluation.curves, r.evaluation.diverged
            n_seeds = len(r.evaluation.seeds)
        y = gap(p, curves) if use_gap else np.maximum(curves, FLOOR)
        _median_and_band(ax, steps, y, color(label, c.optimizer_labels), label,
                         f"{label} (lr {r.learning_rate:.2g}{_diverged(diverged)})")  # fmt: skip
    target = p.problem.target - p.problem.optimum_value if use_gap else p.problem.target
    ax.axhline(target, color="0.3", ls="--", lw=1, label="target", gid="target")
    if not use_gap and p.problem.optimum_value > 0:
        ax.axhline(p.problem.optimum_value, color="0.3", ls=":", lw=1, label="optimum (full data)")
    log_scale(ax, "y")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    band = f"line: median of {n_seeds} seeds, band: best to worst seed"
    if use_gap and p.problem.optimum_value != 0:
        band += f"\ngaps below {gap_floor(p):.0e} (float32 round-off at the optimum) drawn at it"
    title = f"{p.name}: loss at each optimizer's chosen learning rate\n{band}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    place_axes(fig, title_lines=lines(title))
    return fig


def _diverged(diverged: np.ndarray) -> str:
    div = int(diverged.sum())
    return f", {div} diverged" if div else ""


def _median_and_band(ax, x: np.ndarray, y: np.ndarray, col, label: str, legend: str) -> None:
    """The median over seeds (``gid="median:<label>"``) and, for 2+ seeds, a band from the
    best to the worst seed (``gid="band:<label>"``) of ``y``, ``(n_seeds, len(x))``."""
    with np.errstate(invalid="ignore"), quiet_nan_warnings():
        mid = np.nanmedian(y, axis=0)
        lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
    ax.plot(x, mid, color=col, lw=1.8, label=legend, gid=f"median:{label}")
    if y.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=col, alpha=0.2, lw=0, gid=f"band:{label}")


def heldout_figure(c: Comparison, p: ProblemResult):
    """The held-out loss over steps at each optimizer's chosen rate, over the evaluation
    seeds (median, band best to worst), with the held-out target: where a method that
    fits the training data faster generalises no better, it shows here."""
    fig, ax = new_figure((7, 4.2))
    n_seeds = 0
    for label, r in p.optimizers.items():
        ev = r.evaluation
        steps, y = ev.held_out_steps, np.maximum(ev.held_out_curve, FLOOR)
        _median_and_band(ax, steps, y, color(label, c.optimizer_labels), label,
                         f"{label} (lr {r.learning_rate:.2g}{_diverged(ev.diverged)})")  # fmt: skip
        n_seeds = len(ev.seeds)
    if p.problem.eval_target is not None:
        ax.axhline(p.problem.eval_target, color="0.3", ls="--", lw=1, label="held-out target",
                   gid="eval-target")  # fmt: skip
    log_scale(ax, "y")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out loss (log scale)")
    title = (
        f"{p.name}: loss on the held-out test data at each chosen learning rate\n"
        f"line: median of {n_seeds} evaluation seeds, band: best to worst seed"
    )
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    place_axes(fig, title_lines=lines(title))
    return fig


def _sensitivity_legend(ax, p: ProblemResult, any_div: bool):
    """The legend of :func:`sensitivity_figure`, outside the axes: inside, every corner
    holds data on some problem."""
    from matplotlib.lines import Line2D

    limit = p.stability_limit
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1))
    labels.append("target")
    if limit is not None:
        handles.append(Line2D([], [], color="0.3", ls=":", lw=1.2))
        labels.append(f"{p.stability_formula} = {limit:.3g}:\nvanilla's stability limit")
    handles.append(Line2D([], [], color="k", marker="*", ls="", ms=10))
    labels.append("chosen rate")
    if any_div:
        handles.append(Line2D([], [], color="k", marker="x", ls="", ms=7, mew=2))
        labels.append("diverged\n(drawn at the top)")
    return ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0)
    )


def sensitivity_figure(c: Comparison, p: ProblemResult):
    """Final loss against learning rate; the legend sits outside the axes, beside them."""
    fig, ax = new_figure((9, 4.2))
    any_div = False
    finite_all = np.concatenate(
        [r.final_loss[~r.diverged & np.isfinite(r.final_loss)] for r in p.optimizers.values()]
    )
    top = float(gap(p, finite_all).max()) * 3 if finite_all.size else 1.0
    n = len(p.optimizers)
    for k, (label, r) in enumerate(p.optimizers.items()):
        col = color(label, c.optimizer_labels)
        y = gap(p, r.final_loss)
        ok = ~r.diverged & np.isfinite(y)
        with quiet_nan_warnings():
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
    log_scale(ax, "x")
    log_scale(ax, "y")
    ax.set_xlabel("learning rate (log scale)")
    zero = p.problem.optimum_value == 0
    ax.set_ylabel("final loss (log scale)" if zero else "final loss − optimum (log scale)")
    n = len(c.seeds)
    seeds = "1 tuning seed" if n == 1 else f"mean of {n} tuning seeds"
    ax.set_title(
        f"{p.name}: final loss against learning rate after {p.steps} steps\n"
        f"line: {seeds} (dots); star: chosen rate (the lowest final loss;\n"
        "of rates whose every seed ends below the target, the fastest to reach it)",
        fontsize=10,
    )
    legend = _sensitivity_legend(ax, p, any_div)
    ax.grid(True, which="major", alpha=0.3)
    place_axes(fig, title_lines=3, beside=[legend])
    return fig


def profile_figure(c: Comparison):
    """The performance profile of every optimizer, with its AlgoPerf score."""
    fig, ax = new_figure((7, 4.2))
    taus = np.asarray(c.profile["taus"])
    n = len(c.optimizer_labels)
    for k, label in enumerate(c.optimizer_labels):
        rho = np.asarray(c.profile["rho"][label])
        # rho on AlgoPerf's grid, joined by straight lines as the trapezoid rule of
        # the score joins them (and as AlgoPerf draws it). A small vertical offset
        # keeps equal curves apart.
        ax.plot(
            taus,
            rho + 0.006 * (k - (n - 1) / 2),
            color=color(label, c.optimizer_labels),
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
    place_axes(fig, title_lines=2)
    return fig


def ratios_figure(c: Comparison, p: ProblemResult):
    """Each optimizer against the first, per metric: the paired ratio ``b / a`` over
    the evaluation seeds with its 95 % bootstrap interval as an error bar
    (``gid="ratio:<metric>:<b>"`` the point, ``"interval:<metric>:<b>"`` the bar);
    a line at 1 (no difference). Left of it, ``b`` was lower. Rows without a finite
    ratio (incomparable) are named in the title."""
    from jaxgd.report._tables import METRIC_NAMES

    rows = p.intervals()
    shown = [r for r in rows if np.isfinite(r["ratio"])]
    fig, ax = new_figure((8, max(3.0, 1.2 + 0.45 * len(shown))))
    for y, r in enumerate(shown):
        col = color(r["b"], c.optimizer_labels)
        err = [[r["ratio"] - r["ci_low"]], [r["ci_high"] - r["ratio"]]]
        bar = ax.errorbar([r["ratio"]], [y], xerr=err, fmt="o", color=col, capsize=4)
        bar.lines[0].set_gid(f"ratio:{r['metric']}:{r['b']}")  # the point
        bar.lines[2][0].set_gid(f"interval:{r['metric']}:{r['b']}")  # the bar
    ax.axvline(1.0, color="0.3", ls="--", lw=1, gid="no-difference")
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"{METRIC_NAMES[r['metric']]}: {r['b']} / {r['a']}" for r in shown])
    ax.set_ylim(-0.7, max(len(shown), 1) - 0.3)
    ends = [1.0] + [v for r in shown for v in (r["ci_low"], r["ci_high"]) if v > 0]
    if max(ends) / min(ends) > 10:  # a log axis only where the ratios span a decade
        log_scale(ax, "x")
    ax.set_xlabel("ratio b / a over the paired seeds (< 1: b lower)")
    skipped = [f"{METRIC_NAMES[r['metric']]}: {r['b']} / {r['a']}" for r in rows if r not in shown]
    title = f"{p.name}: paired ratios with 95% bootstrap intervals"
    if skipped:
        title += "\n" + textwrap.fill(
            "incomparable (one reached the target, one not): " + "; ".join(skipped), 60
        )
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    # the left margin fits the longest label (a long metric and optimizer names)
    left = 0.35 + (widest_inches(fig, ax.get_yticklabels()) if shown else 0.0)
    place_axes(fig, title_lines=lines(title), left=max(left, 1.0), right=0.7)
    return fig

"""Why a step overshoots, drawn and said: the ``diagnostics_<problem>`` figure and
its paragraph (with ``compare(diagnostics=...)``).

What is drawn and said arrives as data (:class:`jaxgd.comparison.Diagnosed`:
alpha, its running median and its longest stretch above 1 are the
comparison's); this module only places it.
"""

from __future__ import annotations

import numpy as np

from jaxgd.comparison import Comparison, ProblemResult, long_stretch
from jaxgd.report._axes import LEGEND_GAP, color, new_figure, place_axes, quiet_nan_warnings

__all__ = ["diagnostics_figure", "diagnostics_sentence"]


def _diagnosed(p: ProblemResult):
    return [(label, r) for label, r in p.optimizers.items() if r.diagnostics is not None]


def diagnostics_figure(c: Comparison, p: ProblemResult):
    """Per optimizer, alpha (a running median) against the line alpha = 1 (top) and the
    cosine between successive updates (bottom), at the chosen rate (solid,
    ``gid="alpha:<label>"``, ``"cosine:<label>"``) and one grid step up (dashed,
    ``gid="alpha-up:<label>"``, ``"cosine-up:<label>"``)."""
    fig, (top, bottom) = new_figure((9, 6.6), 2, 1, sharex=True)
    window = 1
    for label, r in _diagnosed(p):
        col = color(label, c.optimizer_labels)
        for run, style, tag in ((r.diagnostics.chosen, "-", ""), (r.diagnostics.up, "--", "-up")):
            if run is None:
                continue
            window = run.window
            name = f"{label}, lr {run.learning_rate:.2g}" + (" (one step up)" if tag else "")
            steps = np.arange(len(run.loss))
            if run.alpha is not None:
                with quiet_nan_warnings():
                    top.plot(steps, run.smoothed_alpha(), style, color=col, lw=1.4, label=name,
                             gid=f"alpha{tag}:{label}")  # fmt: skip
            if run.cosine is not None:
                bottom.plot(steps, run.cosine, style, color=col, lw=1.0, alpha=0.8, label=name,
                            gid=f"cosine{tag}:{label}")  # fmt: skip
    top.axhline(1.0, color="black", lw=1.0, ls=":", gid="alpha-one")
    top.set_ylabel(f"alpha (running median of {window})")
    top.set_title("alpha: 0 lands on the minimum along the step, above 1 overshoots", fontsize=10)
    top.grid(True, alpha=0.3)
    bottom.axhline(0.0, color="black", lw=0.6)
    bottom.set_ylim(-1.05, 1.05)
    bottom.set_ylabel("cosine of successive updates")
    bottom.set_xlabel("step")
    bottom.set_title("cosine: -1 zigzags across a valley, +1 crawls along it", fontsize=10)
    bottom.grid(True, alpha=0.3)
    legends = [  # one legend: the cosine's lines are the same runs, in the same styles
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0))
        for ax in (top if top.get_legend_handles_labels()[0] else bottom,)
    ]
    fig.suptitle(
        f"{p.name}: why a step overshoots, along one run (seed {c.seeds[0]}) of each optimizer\n"
        "at its chosen rate (solid) and one grid step up (dashed); dotted: alpha = 1, the "
        "mirror point",
        fontsize=10,
    )
    place_axes(fig, title_lines=4, left=1.0, beside=legends, hspace=0.3)
    return fig


def _said(run, label: str, where: str) -> str:
    """One run in words: whether it overshoots for a long stretch, and from when."""
    diverged = run.diverged_at()
    found = run.overshoot()
    if found is None:
        return f"{label} {where} ({run.learning_rate:.3g}): alpha not recorded"
    share = "" if np.isnan(found.fraction) else f"; alpha > 1 on {found.fraction:.0%} of its steps"
    end = f", and diverges at step {diverged}" if diverged is not None else ""
    if found.long:
        return (
            f"{label} {where} ({run.learning_rate:.3g}) overshoots: alpha stays above 1 for "
            f"{found.length} steps from step {found.start}{share}{end}"
        )
    if diverged is not None:
        return f"{label} {where} ({run.learning_rate:.3g}) diverges at step {diverged}"
    steps = "step" if found.length == 1 else "steps"
    longest = f", longest stretch above 1: {found.length} {steps}" if found.length else ""
    return f"{label} {where} ({run.learning_rate:.3g}) does not overshoot{longest}{share}"


def diagnostics_sentence(p: ProblemResult) -> list[str]:
    """The paragraph of the figure: per optimizer, whether its chosen rate overshoots and
    whether the rate one grid step up starts to."""
    diagnosed = _diagnosed(p)
    if not diagnosed:
        return []
    parts = []
    for label, r in diagnosed:
        d = r.diagnostics
        text = _said(d.chosen, label, "at its chosen rate")
        if d.up is None:
            text += "; its chosen rate tops its grid"
        else:
            text += "; " + _said(d.up, "one grid step up", "")
        parts.append(text.replace("  (", " (").replace(" ()", "") + ".")
    stretch = long_stretch(p.steps)
    return [
        "Why a step overshoots: Cockpit's alpha, the effective relative step size of each "
        "update (0: it lands on the minimum of the parabola fitted along the step, 1: on its "
        "mirror point, above 1: it climbs), and the cosine between successive updates, along "
        "one run (the first seed) of each optimizer at its chosen rate and one grid step up. "
        f"A run overshoots when alpha's running median stays above 1 for {stretch} steps or "
        "more in a row. " + " ".join(parts),
        "",
    ]

"""What every figure of the report shares: colours, a figure without pyplot, fixed
margins, plain-text log axes, the loss axis and the stability limit's formula.

Figures are made without pyplot (no global state: they may be drawn on a
worker thread, and need no closing) and laid out by fixed margins rather than
a layout engine (which measured every tick label twice more: a third of the
drawing time).
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from collections.abc import Iterator

import numpy as np

from jaxgd.comparison import ProblemResult

__all__ = [
    "FLOOR",
    "LEGEND_GAP",
    "color",
    "gap",
    "gap_floor",
    "limit_formula",
    "lines",
    "log_scale",
    "loss_axis",
    "new_figure",
    "place_axes",
    "plain_log_formatter",
    "positive",
    "quiet_nan_warnings",
    "widest_inches",
]

_COLORS = {"vanilla": "#1f77b4", "momentum": "#ff7f0e", "adam": "#2ca02c"}
_OTHER_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
FLOOR = 1e-12  # log-scale plots show a gap below this as this


def color(label: str, labels: list[str]) -> str:
    """A stable colour per optimizer label."""
    if label in _COLORS:
        return _COLORS[label]
    others = [x for x in labels if x not in _COLORS]
    return _OTHER_COLORS[others.index(label) % len(_OTHER_COLORS)]


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs):
    """A figure and its axes, drawn by Agg: no pyplot, so no global state (the
    figures can be drawn on a worker thread) and nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **kwargs)
    for ax in fig.axes:  # titles at the top: not placed by measuring tick labels at each draw
        ax.set_title("", y=1.0)
    return fig, axes


_TITLE_LINE = 0.19  # inches per line of a fontsize-10 title
LEGEND_GAP = 0.02  # a legend beside the axes starts this far right of them (axes fraction)


def widest_inches(fig, artists) -> float:
    """The width of the widest of ``artists`` (legends, tick labels) in inches, their
    text measured once."""
    renderer = fig.canvas.get_renderer()
    return max(a.get_window_extent(renderer).width for a in artists) / fig.dpi


def place_axes(fig, *, title_lines: int, left: float = 0.9, right: float = 0.15,
                bottom: float = 0.55, beside=(), **spacing) -> None:  # fmt: skip
    """Set the margins (inches) around the axes: a fixed layout instead of a
    layout engine, which measured every tick label two more times per figure
    (a third of the drawing time). ``beside``: legends placed right of the
    axes, which the right margin makes room for."""
    width, height = fig.get_size_inches()
    if beside:
        inner = width - left - right
        extra = widest_inches(fig, beside) + 0.05
        # solve: axes width * LEGEND_GAP + legend <= right margin
        right = right + extra + LEGEND_GAP * (inner - extra) / (1 + LEGEND_GAP)
    top = 0.12 + title_lines * _TITLE_LINE
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        **spacing,
    )


def lines(text: str) -> int:
    return text.count("\n") + 1


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MATH_POWER = re.compile(r"\$\\mathdefault\{(?:([\d.]+)\\times)?10\^\{(-?\d+)\}\}\$")


@functools.cache
def plain_log_formatter():
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


MINOR_TICKS_DECADES = 3
"""A log axis spanning more decades than this has ticks at the powers of ten only."""


@functools.cache
def _few_minor_ticks():
    """matplotlib's minor log locator, giving no ticks on an axis that spans more than
    :data:`MINOR_TICKS_DECADES` decades: there, eight unlabelled ticks a decade (each
    an object matplotlib builds and lays out) took a quarter of the drawing time."""
    from matplotlib.ticker import LogLocator

    class FewMinorTicks(LogLocator):
        def tick_values(self, vmin, vmax):
            low, high = sorted((vmin, vmax))
            if low > 0 and high / low > 10.0**MINOR_TICKS_DECADES:
                return []
            return super().tick_values(vmin, vmax)

    return FewMinorTicks


def log_scale(ax, which: str) -> None:
    """A log scale on ``ax``'s ``which`` axis (``"x"`` or ``"y"``), labelled as
    matplotlib labels one, in plain text (:func:`plain_log_formatter`); minor ticks
    only where it spans a few decades (:func:`_few_minor_ticks`)."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    formatter = plain_log_formatter()
    axis.set_major_formatter(formatter())
    axis.set_minor_formatter(formatter(labelOnlyBase=False))
    axis.set_minor_locator(_few_minor_ticks()(subs="auto"))


def gap_floor(p: ProblemResult) -> float:
    """The smallest gap worth drawing: below float32 resolution at the optimum it is noise."""
    return p.gap_floor  # the comparison's rule (its statistics count gaps below it as equal)


def gap(p: ProblemResult, values: np.ndarray) -> np.ndarray:
    """``values - optimum``, floored for log scales (NaN stays NaN)."""
    return np.maximum(values - p.problem.optimum_value, gap_floor(p))


def loss_axis(p: ProblemResult) -> tuple[bool, str]:
    """Plot the gap to the optimum (True) or the loss itself, and the axis label."""
    if p.batch_size is not None:
        return False, "minibatch loss (log scale)"
    if p.problem.optimum_value == 0:
        return True, "loss (log scale; optimum 0)"
    return True, "loss − optimum (log scale)"


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence NumPy's all-NaN-slice warnings (diverged runs end in NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def limit_formula(limit: dict | None) -> str:
    """The stability limit's formula, as the optimizer stated it, for a legend or a sentence.

    Examples:
        >>> limit_formula({"kind": "sharpness", "limit": 20.0, "formula": "2/lr"})
        '2/lr'
        >>> limit_formula(None)
        'no known limit'
    """
    if limit is None:
        return "no known limit"
    return limit.get("formula", "its limit")  # results written before 0.3 hold no formula


def positive(values: list[np.ndarray]) -> bool:
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    return bool(finite.size) and bool(np.all(finite > 0))

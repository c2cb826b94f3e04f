"""The figure of a learning-rate range test (matplotlib, Agg backend).

Kept apart from :func:`jaxgd.comparison.lr_range_test`, which computes and never draws.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from jaxgd.comparison import LRRangeTest

__all__ = ["draw_lr_range"]


def draw_lr_range(
    result: LRRangeTest,
    path: str | os.PathLike,
    *,
    title: str = "Learning-rate range test",
    marks: dict[str, float] | None = None,
) -> pathlib.Path:
    """Draw the loss against the learning rate (log axes) and write a PNG.

    The curve stops where the run blew up; vertical lines mark the suggested
    rate, the rate at the lowest loss and the blow-up, plus any ``marks``
    (such as the calculus's ``{"2/L": 0.111}``).

    Args:
        result: what :func:`jaxgd.lr_range_test` returned.
        path: the PNG file to write (its folder must exist).
        title: the figure's title.
        marks: more rates to mark, label -> rate.

    Returns:
        The path written.

    Examples:
        >>> import jax, pathlib, tempfile, jaxgd as gd
        >>> booth = gd.problems.get("booth")
        >>> test = gd.lr_range_test(booth.loss, booth.init(jax.random.PRNGKey(0)), gd.sgd,
        ...                         min_lr=1e-4, max_lr=10.0, steps=100)
        >>> png = pathlib.Path(tempfile.mkdtemp()) / "booth.png"
        >>> path = gd.report.draw_lr_range(test, png, marks={"2/L (calculus)": 2 / 18})
        >>> path.stat().st_size > 0
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    lrs, losses, smoothed = result.learning_rates, result.losses, result.smoothed
    shown = np.isfinite(smoothed) & (smoothed > 0)
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    ax.plot(
        lrs[shown],
        np.where(np.isfinite(losses), losses, np.nan)[shown],
        color="0.7",
        lw=1,
        label="loss after the step",
    )
    if not np.array_equal(losses, smoothed, equal_nan=True):
        ax.plot(lrs[shown], smoothed[shown], color="C0", lw=1.5, label="smoothed")
    lines = [("suggested", result.suggested, "C2", "-"), ("lowest loss", result.best, "0.4", ":")]
    if result.blow_up is not None:
        lines.append(("blow-up", result.blow_up, "C3", "--"))
    for i, (label, rate) in enumerate((marks or {}).items()):
        lines.append((label, rate, f"C{4 + i}", "-."))
    for label, rate, color, style in lines:
        ax.axvline(rate, color=color, ls=style, lw=1.2, label=f"{label}: {rate:.3g}")
    ax.set_xscale("log")
    raw = losses[shown & np.isfinite(losses) & (losses > 0)]
    values = np.concatenate([smoothed[shown], raw])
    if values.size and values.min() > 0:
        ax.set_yscale("log")
        # Keep the part before the blow-up readable: the blow-up leaves the frame.
        before = smoothed[shown][lrs[shown] < (result.blow_up or np.inf)]
        top = max(result.initial_loss, before.max() if before.size else values.max())
        ax.set_ylim(values.min() / 2, 4 * top)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside, not over
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""A comparison's tables as text: :func:`summary_table` and :func:`profile_table`.

The plain-text tables printed by the ``jaxgd`` command and the Markdown ones
of the report are these, made of :func:`format_table`, :func:`format_number`,
:func:`format_seconds` and :func:`cost_cells`, and the summary's own columns
(:data:`SUMMARY_HEADERS`, :func:`summary_cells`). The comparison computes the
rows (:meth:`jaxgd.comparison.Comparison.summary`); this module writes them.
"""

from __future__ import annotations

import math
from typing import Any

from jaxgd.comparison import Comparison

__all__ = [
    "COST_HEADERS",
    "SUMMARY_HEADERS",
    "cost_cells",
    "format_number",
    "format_seconds",
    "format_table",
    "profile_table",
    "summary_cells",
    "summary_table",
]


def format_number(x: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, ``-`` for None/NaN, ``never`` for inf.

    Examples:
        >>> format_number(0.000123456), format_number(float("inf")), format_number(None)
        ('0.000123', 'never', '-')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _lr(row: dict[str, Any]) -> str:
    edge = {"lowest": " (grid min!)", "highest": " (grid max!)"}.get(row["grid_edge"], "")
    return f"{row['learning_rate']:.3g}{edge}"


def _steps(row: dict[str, Any], held_out: bool = False) -> str:
    mean, reached = (
        ("steps_to_eval_target_mean", "reached_eval_target")
        if held_out
        else ("steps_to_target_mean", "reached_target")
    )
    if held_out and row["eval_target"] is None:
        return "-"
    if row[reached] == 0:
        return f"never (0/{row['seeds']})"
    return f"{row[mean]:.0f} ({row[reached]}/{row['seeds']})"


def _held_out(row: dict[str, Any]) -> str:
    if not math.isfinite(row["eval_loss_mean"]):
        return "-"
    low, high = (format_number(row[k], 4) for k in ("eval_loss_ci_low", "eval_loss_ci_high"))
    return f"{format_number(row['eval_loss_mean'], 4)} [{low}, {high}]"


SUMMARY_HEADERS = [
    "problem",
    "optimizer",
    "lr",
    "final loss (mean ± std)",
    "held-out loss [95% CI]",
    "steps to target (reached)",
    "steps to held-out target",
    "diverged",
]


def summary_cells(row: dict[str, Any]) -> list[str]:
    """A summary row's :data:`SUMMARY_HEADERS` cells, as text."""
    return [
        row["problem"],
        row["optimizer"],
        _lr(row),
        f"{format_number(row['final_loss_mean'], 4)} ± {format_number(row['final_loss_std'], 2)}",
        _held_out(row),
        _steps(row),
        _steps(row, held_out=True),
        f"{row['diverged']}/{row['seeds']}",
    ]


VERDICT_HEADERS = ["problem", "metric", "b / a", "ratio [95% CI]", "p (Holm)", "verdict"]

METRIC_NAMES = {
    "eval_loss": "held-out loss",
    "final_loss": "training loss",
    "steps_to_target": "steps to target",
    "steps_to_eval_target": "steps to held-out target",
}


def verdict_cells(row: dict[str, Any]) -> list[str]:
    """A :meth:`~jaxgd.comparison.Comparison.pairwise` row's :data:`VERDICT_HEADERS` cells."""
    if row["verdict"] == "incomparable":
        ratio, p = "-", "-"
    else:
        low, high = format_number(row["ci_low"], 3), format_number(row["ci_high"], 3)
        ratio, p = f"{format_number(row['ratio'], 3)} [{low}, {high}]", f"{row['p_value']:.2g}"
    winner = {"a better": row["a"], "b better": row["b"]}.get(row["verdict"])
    verdict = f"{winner} better" if winner else row["verdict"]
    return [
        row["problem"],
        METRIC_NAMES.get(row["metric"], row["metric"]),
        f"{row['b']} / {row['a']}",
        ratio,
        p,
        verdict,
    ]


def verdict_table(
    comparison: Comparison, markdown: bool = False, winners_only: bool = False
) -> str:
    """The paired verdicts (:meth:`jaxgd.comparison.Comparison.pairwise`) as a table;
    ``winners_only`` keeps the rows whose verdict names a winner."""
    rows = comparison.pairwise()
    if winners_only:
        rows = [r for r in rows if r["verdict"] in ("a better", "b better")]
    return format_table(VERDICT_HEADERS, [verdict_cells(r) for r in rows], markdown=markdown)


COST_HEADERS = ["evaluations per step", "time per step", "time to target"]


def format_seconds(seconds: float) -> str:
    """A duration for a table, in a unit that suits it.

    Examples:
        >>> format_seconds(3.2e-5), format_seconds(0.0123), format_seconds(4.56)
        ('32 µs', '12.3 ms', '4.56 s')
        >>> format_seconds(float("nan"))
        '-'
    """
    if not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{1e6 * seconds:.3g} µs"
    if seconds < 1:
        return f"{1e3 * seconds:.3g} ms"
    return f"{seconds:.3g} s"


def cost_cells(row: dict[str, Any]) -> list[str]:
    """A summary row's evaluations per step, time per step and time to target, as text."""
    to_target = row["seconds_to_target"]
    return [
        format_number(row["evaluations_per_step"], 3),
        format_seconds(1e-6 * row["microseconds_per_step"]),
        "never" if row["reached_target"] == 0 else format_seconds(to_target),
    ]


def format_table(headers: list[str], rows: list[list[str]], markdown: bool = True) -> str:
    """A table as Markdown (``markdown=True``) or as aligned plain text.

    Examples:
        >>> print(format_table(["a", "bb"], [["1", "2"]], markdown=False))
        a  bb
        -  --
        1  2
    """
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def summary_table(comparison: Comparison, markdown: bool = False) -> str:
    """The summary (:meth:`jaxgd.comparison.Comparison.summary`) as a table: aligned
    text by default, Markdown if asked.

    Where step costs were measured it also shows the function evaluations
    and the time per step, and the time to reach the target.

    Examples:
        >>> import jaxgd as gd
        >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20)
        >>> gd.report.summary_table(c).splitlines()[0].split("  ")[:2]
        ['problem', 'optimizer']
    """
    headers, cells = SUMMARY_HEADERS, summary_cells
    if comparison.measured_costs:
        headers = [*SUMMARY_HEADERS, *COST_HEADERS]
        cells = lambda row: [*summary_cells(row), *cost_cells(row)]
    return format_table(headers, [cells(r) for r in comparison.summary()], markdown=markdown)


def profile_table(comparison: Comparison, markdown: bool = False) -> str:
    """The AlgoPerf score, the problems solved and the speedup over the reference, per
    optimizer: aligned text by default, Markdown if asked."""
    c = comparison
    n = len(c.problems)
    rows = []
    for label in c.optimizer_labels:
        solved = sum(math.isfinite(p.solved_steps(label)) for p in c.problems)
        sp = c.speedups.get(label, {})
        speed = sp.get("geomean_speedup")
        rows.append(
            [
                label,
                f"{c.profile['score'][label]:.3f}",
                f"{solved}/{n}",
                "-" if speed is None else f"{speed:.2f}x over {sp['problems_compared']}",
            ]
        )
    headers = [
        "optimizer",
        "AlgoPerf score",
        "problems solved (all seeds)",
        f"speedup over {c.reference} (geomean, problems)",
    ]
    return format_table(headers, rows, markdown=markdown)

"""The report as Markdown: protocol, summary, and a section per problem.

:func:`markdown` renders a :class:`jaxgd.comparison.Comparison`; the figures it
links are drawn by :mod:`jaxgd.report.figures` and written beside it by
:func:`jaxgd.report.save`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxgd.comparison import Comparison, ProblemResult
from jaxgd.report._axes import limit_formula
from jaxgd.report._diagnosed import diagnostics_sentence
from jaxgd.report._tables import (
    cost_cells,
    format_number,
    format_table,
    profile_table,
    summary_table,
    verdict_table,
)

__all__ = ["edge_warnings", "machine_line", "markdown", "seeds_line"]


def machine_line(machine: dict[str, Any]) -> str:
    """Where a comparison ran, said once: the devices, the CPUs and the JAX version.

    Examples:
        >>> machine_line({"backend": "cpu", "device_kind": "cpu", "devices": 1, "cpu_count": 2,
        ...               "processor": "x86_64", "jax_version": "0.10.2"})
        '2 CPU cores (x86_64), JAX 0.10.2'
        >>> machine_line({"backend": "gpu", "device_kind": "NVIDIA H100", "devices": 1,
        ...               "cpu_count": 16, "processor": "x86_64", "jax_version": "0.10.2"})
        '1 NVIDIA H100 (gpu), 16 CPU cores, JAX 0.10.2'
    """
    cpus = f"{machine['cpu_count']} CPU cores"
    jax_version = f"JAX {machine['jax_version']}"
    if machine["backend"] == "cpu":
        processor = machine.get("processor")
        return f"{cpus} ({processor}), {jax_version}" if processor else f"{cpus}, {jax_version}"
    devices = f"{machine['devices']} {machine['device_kind']} ({machine['backend']})"
    return f"{devices}, {cpus}, {jax_version}"


def edge_warnings(comparison: Comparison) -> list[str]:
    """One line per choice at an end of its grid (a summary row's ``grid_edge``).

    Examples:
        >>> import jaxgd as gd
        >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.01, 0.02], seeds=1, steps=5)
        >>> gd.report.edge_warnings(c)[0].split(":")[0]
        'vanilla on booth'
    """
    return [
        f"{row['optimizer']} on {row['problem']}: the best rate "
        f"{row['learning_rate']:.3g} is the {row['grid_edge']} of the grid; "
        "the best rate may lie outside it, widen the grid."
        for row in comparison.summary()
        if row["grid_edge"]
    ]


def markdown(comparison: Comparison, figures: dict[str, str] | None = None) -> str:
    """The report as Markdown; ``figures`` (name -> relative path) are embedded.

    Args:
        comparison: what :func:`jaxgd.compare` returned.
        figures: figure name (``loss_booth``, ``performance_profile``, ...) ->
            the path to link; None links none.

    Examples:
        >>> import jaxgd as gd
        >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20)
        >>> gd.report.markdown(c).splitlines()[0]
        '# jaxgd comparison'
    """
    c = comparison
    figures = figures or {}
    lines = [
        "# jaxgd comparison",
        "",
        f"{', '.join(c.optimizer_labels)} on {len(c.problems)} problems, {c.steps} steps per "
        f"run; {c.total_seconds:.1f} s in all on {machine_line(c.machine)}.",
        "",
        seeds_line(c),
        "",
        "## Protocol",
        "",
        c.protocol,
        "",
        "## Summary",
        "",
        "At each optimizer's chosen learning rate, over the evaluation seeds. *held-out "
        "loss*: the loss on the problem's held-out test data after the last update, its "
        "mean and a 95 % bootstrap interval of that mean (- : no held-out data); *steps to "
        "target*: mean over the seeds that reached the training target (how many did, in "
        "brackets), and the same for the held-out target; *diverged*: seeds at the chosen "
        "rate.",
        "",
        summary_table(c, markdown=True),
        "",
    ]
    if c.measured_costs:
        lines += [
            "*evaluations per step*, *time per step*: measured per optimizer at its chosen "
            "rate (see each problem's section); *time to target*: steps to target x time "
            "per step, the comparison in time.",
            "",
        ]
    warnings = edge_warnings(c)
    if warnings:
        lines += ["**Choices at the edge of the grid:**", ""]
        lines += [f"- {w}" for w in warnings] + [""]
    lines += _verdict_section(c)
    lines += ["## Across problems", "", profile_table(c, markdown=True), ""]
    if "performance_profile" in figures:
        lines += [f"![performance profile]({figures['performance_profile']})", ""]
    for p in c.problems:
        lines += _problem_section(p, figures)
    return "\n".join(lines).rstrip() + "\n"


def seeds_line(c: Comparison) -> str:
    """Which seeds chose the rates and which are reported."""

    def listed(seeds):
        seeds = list(seeds)
        if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
            return f"{seeds[0]}-{seeds[-1]}"
        return ", ".join(map(str, seeds))

    tuning = "1 tuning seed" if len(c.seeds) == 1 else f"{len(c.seeds)} tuning seeds"
    return (
        f"Learning rates chosen on {tuning} ({listed(c.seeds)}); every "
        f"figure reported is from {len(c.eval_seeds)} fresh evaluation seeds "
        f"({listed(c.eval_seeds)})."
    )


def _verdict_section(c: Comparison) -> list[str]:
    rows = c.pairwise()
    wins = sum(r["verdict"] in ("a better", "b better") for r in rows)
    return [
        "## Verdicts",
        "",
        f"Each pair of optimizers on each problem and metric, over the {len(c.eval_seeds)} "
        "paired evaluation seeds: *ratio* is the geometric mean of b / a (below 1: b lower, "
        "so better), with its 95 % bootstrap interval; *p* is the paired Wilcoxon test, "
        "Holm-corrected across this table. A winner is named only where the corrected test "
        "and the interval agree and the difference passes 0.1 %; everything else is *no "
        "difference*, and *incomparable* where one reached a target and the other not (read "
        "the loss rows there). How to "
        "read them: docs/guides/statistics.md. "
        f"{wins} of {len(rows)} rows name a winner.",
        "",
        verdict_table(c, markdown=True),
        "",
    ]


def _why(p: ProblemResult) -> list[str]:
    """The curvature's explanation of vanilla's choice, where the minimiser is known."""
    if p.stability_limit is None:
        return []
    why = (
        f"Why: the largest curvature at the minimum is L = {p.curvature:.3g}, so plain "
        f"gradient descent converges there only for rates below {p.stability_formula} = "
        f"{p.stability_limit:.3g}"
    )
    if "vanilla" in p.optimizers:
        chosen = p.optimizers["vanilla"].learning_rate
        why += f"; vanilla chose {chosen:.3g}"
        if chosen > p.stability_limit:
            why += (
                f" (above the limit: in {p.steps} steps it never came close enough "
                "to the minimum for the limit to bite)"
            )
    return [why + ".", ""]


def _rate_table(p: ProblemResult) -> str:
    """Mean final loss per optimizer (rows) and learning rate (columns); chosen in bold."""
    rates = np.unique(np.concatenate([r.learning_rates for r in p.optimizers.values()])).tolist()
    headers = ["optimizer", *(f"{lr:.2g}" for lr in rates)]
    rows = []
    for label, r in p.optimizers.items():
        cells = [label]
        for lr in rates:
            hit = np.flatnonzero(np.isclose(r.learning_rates, lr))
            if not hit.size:
                cells.append("")
                continue
            i = int(hit[0])
            st = r.stats(i)
            cell = format_number(st["final_loss_mean"], 3)
            if st["diverged"]:
                cell = (
                    f"{cell} ({st['diverged']} div.)"
                    if st["diverged"] < r.final_loss.shape[1]
                    else "diverged"
                )
            if i == r.chosen:
                cell = f"**{cell}**"
            cells.append(cell)
        rows.append(cells)
    return format_table(headers, rows)


def _cost_section(p: ProblemResult) -> list[str]:
    """What a step costs at each chosen rate, and the time to target that follows."""
    if not p.measured_costs:
        return []
    rows = [
        [
            row["optimizer"],
            f"{row['learning_rate']:.3g}",
            *cost_cells(row)[:2],
            format_number(row["steps_to_target_mean"], 3),
            cost_cells(row)[2],
        ]  # fmt: skip
        for row in p.rows()
    ]
    headers = ["optimizer", "lr", "evaluations per step", "time per step", "steps to target",
               "time to target"]  # fmt: skip
    searches = [label for label, r in p.optimizers.items() if r.cost and r.cost.line_search]
    said = (
        f"{', '.join(searches)} {'is a line search' if len(searches) == 1 else 'are line searches'}"
        ": each step evaluates the loss at trial points until it falls enough, so "
        if searches
        else ""
    )
    return [
        f"Steps are not time: {said}per optimizer at its chosen rate, the function "
        "evaluations per step (1, plus a line search's trial points, counted over a replay "
        "of the first seed's run) and the wall time per step (one run of the first seed, "
        "compiled first, the best of up to 3 timed runs); time to target = steps to target "
        "x time per step.",
        "",
        format_table(headers, rows),
        "",
    ]


def _sharpness_sentence(p: ProblemResult) -> list[str]:
    """What the sharpness figure shows, and which optimizer sat at or below its limit."""
    if not p.measured_sharpness:
        return []
    said = {"at": [], "below": [], "above": [], None: []}
    for label, r in p.optimizers.items():
        run = r.sharpness
        if run is None:
            continue
        verdict = run.verdict()
        if verdict is None:
            said[None].append(label)
            continue
        late = run.watched[-max(1, len(run.watched) // 3) :]
        median = float(np.median(late[np.isfinite(late)]))
        said[verdict].append(
            f"{label} (median {median:.3g} against {limit_formula(run.limit)}"
            f" = {run.limit['limit']:.3g})"
        )
    parts = [
        f"{phrase} {', '.join(said[key])}"
        for key, phrase in (
            ("at", "at its limit (within 10 %):"),
            ("below", "below it:"),
            ("above", "above it (a step that overshoots along the top eigenvector):"),
        )
        if said[key]
    ]
    verdicts = "; ".join(parts) if parts else "no optimizer with a known limit"
    nolimit = (
        f" No known limit, or no finite record: {', '.join(said[None])}." if said[None] else ""
    )
    every = next(r.sharpness.every for r in p.optimizers.values() if r.sharpness is not None)
    formulas = ", ".join(
        f"{limit_formula(r.sharpness.limit)} for {label}"
        for label, r in p.optimizers.items()
        if r.sharpness is not None and r.sharpness.limit is not None
    )
    return [
        "Sharpness along the run: the figure's top panel shows the largest eigenvalue of the "
        "loss's Hessian (for Adam-type optimizers of the preconditioned Hessian P^-1 H) every "
        f"{every} steps of one run (the first seed) of each optimizer at its chosen rate, "
        "with its stability limit dashed in the same colour"
        + (f" ({formulas})" if formulas else "")
        + "; the bottom panel shows that run's loss on "
        f"the same steps. Over the last third of the records: {verdicts}.{nolimit}",
        "",
    ]


def _shares(p: ProblemResult) -> bool:
    """Whether ``p``'s compile time is a share (jobs on an executor report none)."""
    return bool(p.shares_program_with) and p.compile_seconds > 0


def _shared(p: ProblemResult) -> str:
    """Which problems' sweeps are the same program as ``p``'s (problems without data alike)."""
    return f", shared with {', '.join(p.shares_program_with)}" if p.shares_program_with else ""


def _problem_section(p: ProblemResult, figures: dict[str, str]) -> list[str]:
    batch = "full batch" if p.batch_size is None else f"minibatches of {p.batch_size}"
    lines = [
        f"## {p.name}",
        "",
        f"{p.problem.description}. {p.problem.dimension} parameters, {batch}; "
        f"optimum {format_number(p.problem.optimum_value, 6)}, "
        f"target {format_number(p.problem.target, 6)}. "
        f"The sweep ({p.n_runs} runs, one compiled program{_shared(p)}) compiled in "
        f"{p.compile_seconds:.2f} s{' (its share)' * _shares(p)} and ran "
        f"in {p.run_seconds:.2f} s: "
        f"{1e3 * p.seconds_per_step:.3g} ms per step for all runs, "
        f"{p.microseconds_per_run_step:.3g} µs per run-step.",
        "",
        *_why(p),
        "Mean final loss over seeds at every learning rate (bold: chosen by the protocol; "
        "where every seed ends below the target the fastest rate wins, not the lowest "
        "loss; *div.*: seeds that diverged, left out of the mean):",
        "",
        _rate_table(p),
        "",
        *_cost_section(p),
    ]
    for key, alt in (
        (f"loss_{p.name}", "loss curves"),
        (f"heldout_{p.name}", "held-out loss curves"),
        (f"lr_{p.name}", "learning-rate sensitivity"),
        (f"paths_{p.name}", "paths over contours"),
        (f"ratios_{p.name}", "paired ratios with 95% intervals"),
    ):
        if key in figures:
            lines += [f"![{p.name}: {alt}]({figures[key]})", ""]
    lines += _sharpness_sentence(p)
    if f"sharpness_{p.name}" in figures:
        lines += [f"![{p.name}: sharpness against its limit]({figures[f'sharpness_{p.name}']})", ""]
    lines += diagnostics_sentence(p)
    if f"diagnostics_{p.name}" in figures:
        lines += [f"![{p.name}: alpha and cosine]({figures[f'diagnostics_{p.name}']})", ""]
    return lines

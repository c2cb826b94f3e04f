"""The results of a comparison and their report: Markdown, JSON and PNG figures.

:func:`jaxgd.compare` returns a :class:`Comparison`. ``summary()`` gives one
row per problem x optimizer at the chosen learning rate; ``to_markdown()``
and ``to_json()`` render it; ``save(dir)`` writes ``report.md``,
``results.json`` (schema :data:`SCHEMA`, version :data:`SCHEMA_VERSION`)
and the figures under ``dir/figures/``:

- ``loss_<problem>.png``: loss over steps at each optimizer's chosen rate,
  the median over seeds with a band from the best to the worst seed;
- ``lr_<problem>.png``: final loss against learning rate per optimizer,
  every seed a dot, diverged runs marked with a cross at the top;
- ``paths_<problem>.png`` (2-D problems): each optimizer's paths over the
  loss contours;
- ``performance_profile.png``: the fraction of problems solved within a
  factor tau of the fastest optimizer.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
from typing import Any

import numpy as np

from jaxgd.minimize import Status
from jaxgd.problems import Problem

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Comparison",
    "OptimizerRuns",
    "ProblemResult",
    "check_writable",
    "format_table",
]

SCHEMA = "jaxgd.comparison"
SCHEMA_VERSION = 1

_COLORS = {"vanilla": "#1f77b4", "momentum": "#ff7f0e", "adam": "#2ca02c"}
_OTHER_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_FLOOR = 1e-12  # log-scale plots show a gap below this as this


# --------------------------------------------------------------------------- #
# The data
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(eq=False)
class OptimizerRuns:
    """Every run of one optimizer on one problem: ``(n_rates, n_seeds)`` arrays.

    Attributes:
        learning_rates: the grid, ascending, shape ``(n_rates,)``.
        final_loss: full-data loss after the last update.
        status: :class:`jaxgd.Status` codes.
        steps: updates taken.
        diverged: the run met a non-finite loss or gradient.
        steps_to_target: first step with loss ``<= target``; ``inf`` if never.
        curves: recorded losses, shape ``(n_rates, n_seeds, steps)``.
        paths: recorded params ``(n_rates, n_seeds, steps, 2)`` for 2-D
            problems, else None.
        chosen: the index of the chosen learning rate.
    """

    learning_rates: np.ndarray
    final_loss: np.ndarray
    status: np.ndarray
    steps: np.ndarray
    diverged: np.ndarray
    steps_to_target: np.ndarray
    curves: np.ndarray
    paths: np.ndarray | None
    chosen: int

    @property
    def learning_rate(self) -> float:
        """The chosen learning rate."""
        return float(self.learning_rates[self.chosen])

    @property
    def grid_edge(self) -> str | None:
        """``"lowest"``/``"highest"`` when the choice sits at an end of a grid of 2+ rates."""
        if len(self.learning_rates) < 2:
            return None
        if self.chosen == 0:
            return "lowest"
        if self.chosen == len(self.learning_rates) - 1:
            return "highest"
        return None

    def stats(self, i: int) -> dict[str, Any]:
        """Mean and spread over seeds at rate index ``i`` (diverged runs left out)."""
        ok = ~self.diverged[i] & np.isfinite(self.final_loss[i])
        vals = self.final_loss[i][ok]
        reached = np.isfinite(self.steps_to_target[i])
        return {
            "final_loss_mean": float(vals.mean()) if vals.size else math.nan,
            "final_loss_std": float(vals.std()) if vals.size else math.nan,
            "reached": int(reached.sum()),
            "steps_to_target_mean": float(self.steps_to_target[i][reached].mean())
            if reached.any()
            else math.nan,
            "diverged": int(self.diverged[i].sum()),
        }


@dataclasses.dataclass(eq=False)
class ProblemResult:
    """Every optimizer's runs on one problem, with the timing of its compiled sweep.

    Attributes:
        problem: the :class:`jaxgd.problems.Problem`.
        batch_size: the minibatch size used (None: full batch).
        optimizers: label -> :class:`OptimizerRuns`.
        compile_seconds: tracing and compiling the sweep (all runs, one program).
        run_seconds: running the compiled sweep once.
        n_runs: optimizer x rate x seed runs in the sweep.
        curvature: the largest Hessian eigenvalue ``L`` at the known minimiser
            (None where unknown); plain gradient descent is stable near the
            minimum for rates below ``2 / L``.
    """

    problem: Problem
    batch_size: int | None
    optimizers: dict[str, OptimizerRuns]
    compile_seconds: float
    run_seconds: float
    n_runs: int
    curvature: float | None = None

    @property
    def stability_limit(self) -> float | None:
        """``2 / L``: the largest stable rate of plain gradient descent near the minimum."""
        return None if self.curvature is None else 2.0 / self.curvature

    @property
    def name(self) -> str:
        return self.problem.name

    @property
    def steps(self) -> int:
        return next(iter(self.optimizers.values())).curves.shape[-1]

    @property
    def seconds_per_step(self) -> float:
        """Wall time of one step of the whole sweep (every run advancing once)."""
        return self.run_seconds / self.steps

    @property
    def microseconds_per_run_step(self) -> float:
        """Wall time per step per run: the sweep's step time over its runs."""
        return 1e6 * self.run_seconds / (self.steps * self.n_runs)

    def solved_steps(self, label: str) -> float:
        """Steps to target at the chosen rate: the mean over seeds if all reached, else inf."""
        runs = self.optimizers[label]
        s = runs.steps_to_target[runs.chosen]
        return float(s.mean()) if np.all(np.isfinite(s)) else math.inf

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per optimizer, at its chosen rate."""
        rows = []
        for label, runs in self.optimizers.items():
            st = runs.stats(runs.chosen)
            rows.append(
                {
                    "problem": self.name,
                    "optimizer": label,
                    "learning_rate": runs.learning_rate,
                    "grid_edge": runs.grid_edge,
                    "final_loss_mean": st["final_loss_mean"],
                    "final_loss_std": st["final_loss_std"],
                    "optimum": self.problem.optimum_value,
                    "gap_mean": st["final_loss_mean"] - self.problem.optimum_value,
                    "target": self.problem.target,
                    "steps_to_target_mean": st["steps_to_target_mean"],
                    "reached_target": st["reached"],
                    "seeds": runs.final_loss.shape[1],
                    "diverged": st["diverged"],
                    "diverged_in_grid": int(runs.diverged.sum()),
                    "runs_in_grid": int(runs.diverged.size),
                    "microseconds_per_run_step": self.microseconds_per_run_step,
                    "sweep_compile_seconds": self.compile_seconds,
                }
            )
        return rows


# --------------------------------------------------------------------------- #
# Formatting
# --------------------------------------------------------------------------- #


def _g(x: Any, digits: int = 3) -> str:
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


def _steps(row: dict[str, Any]) -> str:
    if row["reached_target"] == 0:
        return f"never (0/{row['seeds']})"
    return f"{row['steps_to_target_mean']:.0f} ({row['reached_target']}/{row['seeds']})"


_SUMMARY_HEADERS = [
    "problem",
    "optimizer",
    "lr",
    "final loss (mean ± std)",
    "gap to optimum",
    "steps to target (reached)",
    "diverged",
]


def _summary_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["problem"],
        row["optimizer"],
        _lr(row),
        f"{_g(row['final_loss_mean'], 4)} ± {_g(row['final_loss_std'], 2)}",
        _g(row["gap_mean"], 2),
        _steps(row),
        f"{row['diverged']}/{row['seeds']}",
    ]


def format_table(headers: list[str], rows: list[list[str]], markdown: bool = True) -> str:
    """A table as Markdown (``markdown=True``) or as aligned plain text.

    Example:
        >>> print(format_table(["a", "bb"], [["1", "2"]], markdown=False))
        a  bb
        -  --
        1  2
    """
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _json_number(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def check_writable(directory: str | os.PathLike) -> pathlib.Path:
    """Make ``directory`` (and parents) and check a file can be written in it.

    Raises:
        ValueError: naming the folder and why, when it cannot be written.

    Example:
        >>> import tempfile
        >>> check_writable(tempfile.mkdtemp()).is_dir()
        True
    """
    path = pathlib.Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".jaxgd-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"out: cannot write the report folder {str(path)!r} ({err.strerror or err}); "
            "pass a folder you can write to."
        ) from None
    return path


# --------------------------------------------------------------------------- #
# The comparison
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(eq=False)
class Comparison:
    """What :func:`jaxgd.compare` returns: every run, the choices, the profile.

    Attributes:
        problems: one :class:`ProblemResult` per problem, in order.
        optimizer_labels: the optimizers, in order.
        seeds: the seeds used.
        steps: updates per run.
        profile: ``{"taus", "rho", "score"}`` (see
            :func:`jaxgd.compare.performance_profile`).
        speedups: label -> geometric-mean speedup over ``reference``.
        reference: the optimizer speedups are measured against (vanilla).
        machine: where it ran (JAX version, backend, device, CPU count).
        total_seconds: wall time of the whole comparison.
        protocol: the protocol text written into the report.
    """

    problems: list[ProblemResult]
    optimizer_labels: list[str]
    seeds: tuple[int, ...]
    steps: int
    profile: dict[str, Any]
    speedups: dict[str, Any]
    reference: str
    machine: dict[str, Any]
    total_seconds: float
    protocol: str

    def summary(self) -> list[dict[str, Any]]:
        """One row (a dict) per problem x optimizer at its chosen learning rate.

        Keys: ``problem``, ``optimizer``, ``learning_rate`` (chosen),
        ``grid_edge`` (``"lowest"``/``"highest"`` or None), ``final_loss_mean``,
        ``final_loss_std`` (over the non-diverged seeds), ``optimum``,
        ``gap_mean``, ``target``, ``steps_to_target_mean`` (over the seeds that
        reached it; NaN if none), ``reached_target``, ``seeds``, ``diverged``
        (seeds at the chosen rate), ``diverged_in_grid``, ``runs_in_grid``,
        ``microseconds_per_run_step`` and ``sweep_compile_seconds``.
        """
        return [row for p in self.problems for row in p.rows()]

    def summary_table(self, markdown: bool = False) -> str:
        """The summary as a table: aligned text by default, Markdown if asked."""
        return format_table(
            _SUMMARY_HEADERS, [_summary_cells(r) for r in self.summary()], markdown=markdown
        )

    def profile_table(self, markdown: bool = False) -> str:
        """AlgoPerf score and speedup over the reference per optimizer."""
        n = len(self.problems)
        rows = []
        for label in self.optimizer_labels:
            solved = sum(math.isfinite(p.solved_steps(label)) for p in self.problems)
            sp = self.speedups.get(label, {})
            speed = sp.get("geomean_speedup")
            rows.append(
                [
                    label,
                    f"{self.profile['score'][label]:.3f}",
                    f"{solved}/{n}",
                    "-" if speed is None else f"{speed:.2f}x over {sp['problems_compared']}",
                ]
            )
        headers = [
            "optimizer",
            "AlgoPerf score",
            "problems solved (all seeds)",
            f"speedup over {self.reference} (geomean, problems)",
        ]
        return format_table(headers, rows, markdown=markdown)

    def edge_warnings(self) -> list[str]:
        """One line per choice at an end of its grid."""
        out = []
        for row in self.summary():
            if row["grid_edge"]:
                out.append(
                    f"{row['optimizer']} on {row['problem']}: the best rate "
                    f"{row['learning_rate']:.3g} is the {row['grid_edge']} of the grid; "
                    "the best rate may lie outside it, widen the grid."
                )
        return out

    # -- JSON ------------------------------------------------------------- #

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (non-finite numbers become None)."""
        problems = []
        for p in self.problems:
            runs = []
            for label, r in p.optimizers.items():
                for i, lr in enumerate(r.learning_rates):
                    for j, seed in enumerate(self.seeds):
                        stt = r.steps_to_target[i, j]
                        runs.append(
                            {
                                "optimizer": label,
                                "learning_rate": float(lr),
                                "seed": int(seed),
                                "final_loss": _json_number(float(r.final_loss[i, j])),
                                "status": Status(int(r.status[i, j])).name,
                                "diverged": bool(r.diverged[i, j]),
                                "steps": int(r.steps[i, j]),
                                "steps_to_target": int(stt) if math.isfinite(stt) else None,
                            }
                        )
            problems.append(
                {
                    "name": p.name,
                    "description": p.problem.description,
                    "optimum_value": p.problem.optimum_value,
                    "target": p.problem.target,
                    "parameters": p.problem.dimension,
                    "batch_size": p.batch_size,
                    "curvature_at_optimum": p.curvature,
                    "vanilla_stability_limit": p.stability_limit,
                    "compile_seconds": p.compile_seconds,
                    "run_seconds": p.run_seconds,
                    "seconds_per_step": p.seconds_per_step,
                    "microseconds_per_run_step": p.microseconds_per_run_step,
                    "chosen_learning_rates": {
                        label: r.learning_rate for label, r in p.optimizers.items()
                    },
                    "learning_rates": {
                        label: r.learning_rates.tolist() for label, r in p.optimizers.items()
                    },
                    "runs": runs,
                }
            )
        summary = [{k: _json_number(v) for k, v in row.items()} for row in self.summary()]
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": self.machine,
            "protocol": self.protocol,
            "optimizers": self.optimizer_labels,
            "seeds": list(self.seeds),
            "steps": self.steps,
            "total_seconds": self.total_seconds,
            "summary": summary,
            "performance_profile": {
                "taus": self.profile["taus"],
                "rho": self.profile["rho"],
                "algoperf_score": self.profile["score"],
            },
            "speedup_over_reference": {"reference": self.reference, **self.speedups},
            "problems": problems,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    # -- Markdown ---------------------------------------------------------- #

    def to_markdown(self, figures: dict[str, str] | None = None) -> str:
        """The report as Markdown; ``figures`` (name -> relative path) are embedded."""
        figures = figures or {}
        m = self.machine
        lines = [
            "# jaxgd comparison",
            "",
            f"{', '.join(self.optimizer_labels)} on {len(self.problems)} problems; "
            f"{len(self.seeds)} seeds, {self.steps} steps per run; "
            f"{self.total_seconds:.1f} s in all on {m['cpu_count']} CPUs "
            f"({m['backend']}, {m['device_kind']}, JAX {m['jax_version']}).",
            "",
            "## Protocol",
            "",
            self.protocol,
            "",
            "## Summary",
            "",
            "At each optimizer's chosen learning rate. *gap to optimum*: mean final loss minus "
            "the known optimum; *steps to target*: mean over the seeds that reached the target "
            "(how many did, in brackets); *diverged*: seeds at the chosen rate.",
            "",
            self.summary_table(markdown=True),
            "",
        ]
        warnings = self.edge_warnings()
        if warnings:
            lines += ["**Choices at the edge of the grid:**", ""]
            lines += [f"- {w}" for w in warnings] + [""]
        lines += [
            "## Across problems",
            "",
            self.profile_table(markdown=True),
            "",
        ]
        if "performance_profile" in figures:
            lines += [f"![performance profile]({figures['performance_profile']})", ""]
        for p in self.problems:
            lines += self._problem_markdown(p, figures)
        return "\n".join(lines).rstrip() + "\n"

    def _problem_markdown(self, p: ProblemResult, figures: dict[str, str]) -> list[str]:
        batch = "full batch" if p.batch_size is None else f"minibatches of {p.batch_size}"
        lines = [
            f"## {p.name}",
            "",
            f"{p.problem.description}. {p.problem.dimension} parameters, {batch}; "
            f"optimum {_g(p.problem.optimum_value, 6)}, target {_g(p.problem.target, 6)}. "
            f"The sweep ({p.n_runs} runs, one compiled program) compiled in "
            f"{p.compile_seconds:.2f} s and ran in {p.run_seconds:.2f} s: "
            f"{1e3 * p.seconds_per_step:.3g} ms per step for all runs, "
            f"{p.microseconds_per_run_step:.3g} µs per run-step.",
            "",
        ]
        if p.stability_limit is not None:
            why = (
                f"Why: the largest curvature at the minimum is L = {p.curvature:.3g}, so plain "
                f"gradient descent converges there only for rates below 2/L = "
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
            lines += [why + ".", ""]
        headers = ["optimizer", *(f"{lr:.2g}" for lr in self._union_rates(p))]
        rows = []
        for label, r in p.optimizers.items():
            cells = [label]
            for lr in self._union_rates(p):
                hit = np.flatnonzero(np.isclose(r.learning_rates, lr))
                if not hit.size:
                    cells.append("")
                    continue
                i = int(hit[0])
                st = r.stats(i)
                cell = _g(st["final_loss_mean"], 3)
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
        lines += [
            "Mean final loss over seeds at every learning rate (bold: chosen by the protocol; "
            "where every seed ends below the target the fastest rate wins, not the lowest "
            "loss; *div.*: seeds that diverged, left out of the mean):",
            "",
            format_table(headers, rows),
            "",
        ]
        for key, alt in (
            (f"loss_{p.name}", "loss curves"),
            (f"lr_{p.name}", "learning-rate sensitivity"),
            (f"paths_{p.name}", "paths over contours"),
        ):
            if key in figures:
                lines += [f"![{p.name}: {alt}]({figures[key]})", ""]
        return lines

    @staticmethod
    def _union_rates(p: ProblemResult) -> list[float]:
        rates = np.unique(np.concatenate([r.learning_rates for r in p.optimizers.values()]))
        return rates.tolist()

    # -- Files ------------------------------------------------------------- #

    def save(self, directory: str | os.PathLike = "jaxgd-report") -> pathlib.Path:
        """Write ``report.md``, ``results.json`` and ``figures/*.png`` to ``directory``.

        Returns:
            The path of ``report.md``.
        """
        out = check_writable(directory)
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        figures = _draw_all(self, fig_dir)
        rel = {name: f"figures/{path.name}" for name, path in figures.items()}
        (out / "results.json").write_text(self.to_json() + "\n")
        report = out / "report.md"
        report.write_text(self.to_markdown(rel))
        return report


def _color(label: str, labels: list[str]) -> str:
    """A stable colour per optimizer label."""
    if label in _COLORS:
        return _COLORS[label]
    others = [x for x in labels if x not in _COLORS]
    return _OTHER_COLORS[others.index(label) % len(_OTHER_COLORS)]


# --------------------------------------------------------------------------- #
# Figures (matplotlib, Agg backend: no display needed)
# --------------------------------------------------------------------------- #


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def _draw_loss_curves(c: Comparison, p: ProblemResult, path: pathlib.Path) -> None:
    plt = _pyplot()
    use_gap, ylabel = _loss_axis(p)
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
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
        ax.plot(steps, mid, color=col, lw=1.8, label=f"{label} (lr {r.learning_rate:.2g}{extra})")
        if curves.shape[0] > 1:
            ax.fill_between(steps, lo, hi, color=col, alpha=0.2, lw=0)
    target = p.problem.target - p.problem.optimum_value if use_gap else p.problem.target
    ax.axhline(target, color="0.3", ls="--", lw=1, label="target")
    if not use_gap and p.problem.optimum_value > 0:
        ax.axhline(p.problem.optimum_value, color="0.3", ls=":", lw=1, label="optimum (full data)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    band = f"line: median of {len(c.seeds)} seeds, band: best to worst seed"
    if use_gap and p.problem.optimum_value != 0:
        band += f"\ngaps below {_floor(p):.0e} (float32 round-off at the optimum) drawn at it"
    ax.set_title(f"{p.name}: loss at each optimizer's chosen learning rate\n{band}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=100)
    plt.close(fig)


class _quiet_nan_warnings:  # noqa: N801 - used as a context manager
    """Silence NumPy's all-NaN-slice warnings (diverged runs end in NaN)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _draw_sensitivity(c: Comparison, p: ProblemResult, path: pathlib.Path) -> None:
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
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
        ax.plot(r.learning_rates, mean, "-", color=col, lw=1.5, label=label)
        # Each seed a dot, nudged sideways a little so optimizers do not cover each other.
        nudge = 10 ** (0.03 * (k - (n - 1) / 2))
        xs = np.repeat(r.learning_rates[:, None], y.shape[1], axis=1) * nudge
        ax.plot(xs[ok], y[ok], "o", color=col, ms=3, alpha=0.6)
        if (~ok).any():
            any_div = True
            ax.plot(xs[~ok], np.full((~ok).sum(), top), "x", color=col, ms=7, mew=2)
        best = mean[r.chosen]
        if np.isfinite(best):
            ax.plot(r.learning_rate, best, "*", color=col, ms=16, mec="k", mew=0.8, zorder=5)
    target = p.problem.target - p.problem.optimum_value
    ax.axhline(target, color="0.3", ls="--", lw=1)
    limit = p.stability_limit
    if limit is not None:
        ax.axvline(limit, color="0.3", ls=":", lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
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
        labels.append(f"2/L = {limit:.3g}: vanilla's stability limit")
    handles.append(Line2D([], [], color="k", marker="*", ls="", ms=10))
    labels.append("chosen rate")
    if any_div:
        handles.append(Line2D([], [], color="k", marker="x", ls="", ms=7, mew=2))
        labels.append("diverged (drawn at the top)")
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.grid(True, which="major", alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _contour_box(p: ProblemResult) -> tuple[float, float, float, float]:
    """A box holding the starts, the minima and most of every path (wild excursions cut)."""
    pts, starts = [], []
    for r in p.optimizers.values():
        path = r.paths[r.chosen]  # (seeds, steps, 2)
        starts.append(path[:, 0])
        flat = path.reshape(-1, 2)
        pts.append(flat[np.all(np.isfinite(flat), axis=1)])
    pts = np.concatenate(pts)
    fixed = np.concatenate(
        [np.asarray(p.problem.optimum_params, np.float64).reshape(-1, 2), *starts]
    )
    fixed = fixed[np.all(np.isfinite(fixed), axis=1)]
    lo = np.minimum(np.percentile(pts, 5, axis=0), fixed.min(axis=0))
    hi = np.maximum(np.percentile(pts, 95, axis=0), fixed.max(axis=0))
    span = np.maximum(hi - lo, 1.0)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def _draw_paths(c: Comparison, p: ProblemResult, path: pathlib.Path) -> None:
    import jax
    import jax.numpy as jnp

    plt = _pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogFormatterSciNotation

    x0, x1, y0, y1 = _contour_box(p)
    xs, ys = np.linspace(x0, x1, 200), np.linspace(y0, y1, 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    z = np.asarray(jax.vmap(p.problem.loss)(jnp.asarray(grid, jnp.float32)), np.float64)
    z = np.maximum(z.reshape(200, 200) - p.problem.optimum_value, 1e-6)
    lo = np.floor(2 * np.log10(max(z.min(), 1e-3))) / 2
    hi = np.ceil(2 * np.log10(z.max())) / 2
    levels = 10.0 ** np.arange(lo, hi + 0.25, 0.5)  # half a decade apart
    n = len(p.optimizers)
    fig, axes = plt.subplots(
        1, n, figsize=(4.2 * n, 4.4), layout="constrained", sharex=True, sharey=True, squeeze=False
    )
    opt = np.asarray(p.problem.optimum_params, np.float64).reshape(-1, 2)
    for ax, (label, r) in zip(axes[0], p.optimizers.items(), strict=True):
        cs = ax.contourf(xs, ys, z, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.75)
        ax.contour(xs, ys, z, levels=levels, norm=LogNorm(), colors="0.5", linewidths=0.4)
        col = _color(label, c.optimizer_labels)
        for j in range(r.paths.shape[1]):
            pj = r.paths[r.chosen, j]
            pj = pj[np.all(np.isfinite(pj), axis=1)]
            if not len(pj):
                continue
            ax.plot(pj[:, 0], pj[:, 1], "-", color=col, lw=1.3, alpha=0.9)
            ax.plot(pj[0, 0], pj[0, 1], "o", color=col, mec="k", ms=6)
            ax.plot(pj[-1, 0], pj[-1, 1], "s", color=col, mec="k", ms=5)
        ax.plot(opt[:, 0], opt[:, 1], "*", color="gold", mec="k", ms=14, ls="")
        div = int(r.diverged[r.chosen].sum())
        ax.set_title(
            f"{label}, lr {r.learning_rate:.2g}" + (f" ({div} diverged)" if div else ""),
            fontsize=10,
        )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
    axes[0][0].set_ylabel("y")
    cbar = fig.colorbar(
        cs, ax=axes[0].tolist(), shrink=0.9, aspect=30, ticks=10.0 ** np.arange(lo, hi + 0.5)
    )
    cbar.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
    cbar.ax.minorticks_off()
    cbar.set_label("loss − optimum (log scale)" if p.problem.optimum_value else "loss (log scale)")
    fig.suptitle(
        f"{p.name}: {p.steps}-step paths at the chosen rates, one per seed "
        "(circle: start, square: end, star: minimum)",
        fontsize=10,
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _draw_profile(c: Comparison, path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_all(c: Comparison, directory: pathlib.Path) -> dict[str, pathlib.Path]:
    """Draw every figure into ``directory``; name -> path."""
    out = {}
    for p in c.problems:
        out[f"loss_{p.name}"] = directory / f"loss_{p.name}.png"
        _draw_loss_curves(c, p, out[f"loss_{p.name}"])
        out[f"lr_{p.name}"] = directory / f"lr_{p.name}.png"
        _draw_sensitivity(c, p, out[f"lr_{p.name}"])
        if all(r.paths is not None for r in p.optimizers.values()):
            out[f"paths_{p.name}"] = directory / f"paths_{p.name}.png"
            _draw_paths(c, p, out[f"paths_{p.name}"])
    out["performance_profile"] = directory / "performance_profile.png"
    _draw_profile(c, out["performance_profile"])
    return out

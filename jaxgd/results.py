"""The results of a comparison: plain data, its summary tables and its JSON.

:func:`jaxgd.compare` computes a :class:`Comparison`; :mod:`jaxgd.report`
renders it (Markdown and figures). This module imports neither: it holds the
runs (:class:`OptimizerRuns` per optimizer, :class:`ProblemResult` per
problem), the per-problem summary rows, the plain-text tables printed by the
``jaxgd`` command, and the JSON written as ``results.json`` (schema
:data:`SCHEMA`, version :data:`SCHEMA_VERSION`), which :func:`load` reads back.

Beside the sweep, a comparison may measure each optimizer once more at its
chosen rate: what a step costs (:class:`StepCost`: function evaluations and
wall time per step, with a line search in the comparison or with
``curvature=True``) and the sharpness along the run (:class:`SharpnessRun`,
with ``curvature=True``).
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
    "SCHEMA_VERSIONS",
    "Comparison",
    "OptimizerRuns",
    "ProblemResult",
    "SharpnessRun",
    "StepCost",
    "cost_cells",
    "format_number",
    "format_seconds",
    "format_table",
    "load",
]

SCHEMA = "jaxgd.comparison"
SCHEMA_VERSION = 2
"""Version 2 adds, per problem, ``step_costs`` and ``sharpness`` (None when not
measured) and, per summary row, ``evaluations_per_step``,
``microseconds_per_step`` and ``seconds_to_target``; the rest is version 1's."""
SCHEMA_VERSIONS = (1, 2)
"""The versions :func:`load` reads (a version 1 file lacks version 2's additions)."""


# --------------------------------------------------------------------------- #
# The data
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(eq=False)
class StepCost:
    """What one step of an optimizer costs at its chosen rate (seed 0's run).

    Attributes:
        evaluations_per_step: function evaluations per step: 1 (the loss and
            gradient at the params) plus, for a line search, the mean number
            of trial points it evaluated (optax's ``num_linesearch_steps``,
            read from the state every step of a replay of the run).
        microseconds_per_step: wall time of a step, from a timed run of the
            whole loop (compiled first, timed after; the best of a few).
        line_search: the optimizer's state holds ``num_linesearch_steps``.
    """

    evaluations_per_step: float
    microseconds_per_step: float
    line_search: bool

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "evaluations_per_step": _json_number(self.evaluations_per_step),
            "microseconds_per_step": _json_number(self.microseconds_per_step),
            "line_search": self.line_search,
        }


@dataclasses.dataclass(eq=False)
class SharpnessRun:
    """The sharpness along one run at the chosen rate (seed 0), against the limit.

    Attributes:
        every: steps between two records (``curvature_every``).
        steps: the recorded steps, shape ``(n_records,)``.
        sharpness: the largest Hessian eigenvalue there (NaN after a divergence).
        preconditioned: for Adam-type optimizers the largest eigenvalue of
            ``P^-1 H`` (see :mod:`jaxgd.sharpness`), else None.
        loss: the loss at every step of that run, shape ``(steps,)``.
        limit: :func:`jaxgd.sharpness.stability_limit` of the optimizer at
            its rate, ``{"kind": "sharpness" | "preconditioned", "limit":
            float}``, or None (no known limit: optax optimizers, line
            searches, Nesterov, RMSprop, Adagrad).
    """

    every: int
    steps: np.ndarray
    sharpness: np.ndarray
    preconditioned: np.ndarray | None
    loss: np.ndarray
    limit: dict[str, Any] | None

    @property
    def watched(self) -> np.ndarray:
        """The sharpness the limit bounds: the preconditioned one where the limit is of
        that kind, else the plain one."""
        if self.limit is not None and self.limit["kind"] == "preconditioned":
            return self.preconditioned
        return self.sharpness

    def verdict(self) -> str | None:
        """``"at"``, ``"below"`` or ``"above"`` the limit over the last third of the
        records (their median within 10 % of the limit is "at"); None without a limit
        or a finite record.

        Example:
            >>> run = SharpnessRun(1, np.arange(3), np.array([5.0, 9.5, 10.2]), None,
            ...                    np.ones(3), {"kind": "sharpness", "limit": 10.0})
            >>> run.verdict()
            'at'
        """
        if self.limit is None:
            return None
        late = self.watched[-max(1, len(self.watched) // 3) :]
        late = late[np.isfinite(late)]
        if not late.size:
            return None
        ratio = float(np.median(late)) / self.limit["limit"]
        return "below" if ratio < 0.9 else "above" if ratio > 1.1 else "at"

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (NaN becomes None)."""

        def listed(a):
            return None if a is None else [_json_number(float(x)) for x in a]

        return {
            "every": self.every,
            "steps": [int(s) for s in self.steps],
            "sharpness": listed(self.sharpness),
            "preconditioned": listed(self.preconditioned),
            "loss": listed(self.loss),
            "limit": self.limit,
        }


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
        cost: what a step costs at the chosen rate, when measured (see
            :class:`StepCost`), else None.
        sharpness: the sharpness along a run at the chosen rate, when
            measured (see :class:`SharpnessRun`), else None.
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
    cost: StepCost | None = None
    sharpness: SharpnessRun | None = None

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

    @property
    def measured_costs(self) -> bool:
        """Whether each optimizer's step cost was measured (see :class:`StepCost`)."""
        return any(r.cost is not None for r in self.optimizers.values())

    @property
    def measured_sharpness(self) -> bool:
        """Whether the sharpness was recorded along the chosen runs (:class:`SharpnessRun`)."""
        return any(r.sharpness is not None for r in self.optimizers.values())

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
            cost = runs.cost
            us = math.nan if cost is None else cost.microseconds_per_step
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
                    "evaluations_per_step": math.nan if cost is None else cost.evaluations_per_step,
                    "microseconds_per_step": us,
                    "seconds_to_target": 1e-6 * us * st["steps_to_target_mean"],
                }
            )
        return rows


# --------------------------------------------------------------------------- #
# Formatting
# --------------------------------------------------------------------------- #


def format_number(x: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, ``-`` for None/NaN, ``never`` for inf.

    Example:
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
        f"{format_number(row['final_loss_mean'], 4)} ± {format_number(row['final_loss_std'], 2)}",
        format_number(row["gap_mean"], 2),
        _steps(row),
        f"{row['diverged']}/{row['seeds']}",
    ]


_COST_HEADERS = ["evaluations per step", "time per step", "time to target"]


def format_seconds(seconds: float) -> str:
    """A duration for a table, in a unit that suits it.

    Example:
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


# --------------------------------------------------------------------------- #
# The comparison
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(eq=False)
class Comparison:
    """What :func:`jaxgd.compare` returns: every run, the choices, the profile.

    ``summary()`` gives the rows, ``summary_table()`` / ``profile_table()``
    the text tables, ``to_json()`` the JSON; ``gd.report.save(comparison,
    dir)`` writes the report folder and ``gd.report.markdown(comparison)``
    the Markdown.

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
        ``microseconds_per_run_step`` and ``sweep_compile_seconds``; where the
        step cost was measured (else NaN): ``evaluations_per_step``,
        ``microseconds_per_step`` (one run alone) and ``seconds_to_target``
        (``steps_to_target_mean`` steps at that time each).
        """
        return [row for p in self.problems for row in p.rows()]

    @property
    def measured_costs(self) -> bool:
        """Whether any problem's step costs were measured (see :class:`StepCost`)."""
        return any(p.measured_costs for p in self.problems)

    def summary_table(self, markdown: bool = False) -> str:
        """The summary as a table: aligned text by default, Markdown if asked.

        Where step costs were measured it also shows the function evaluations
        and the time per step, and the time to reach the target.
        """
        headers, cells = _SUMMARY_HEADERS, _summary_cells
        if self.measured_costs:
            headers = [*_SUMMARY_HEADERS, *_COST_HEADERS]
            cells = lambda row: [*_summary_cells(row), *cost_cells(row)]
        return format_table(headers, [cells(r) for r in self.summary()], markdown=markdown)

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
                    "step_costs": {
                        label: r.cost.to_dict() for label, r in p.optimizers.items() if r.cost
                    }
                    if p.measured_costs
                    else None,
                    "sharpness": {
                        label: r.sharpness.to_dict()
                        for label, r in p.optimizers.items()
                        if r.sharpness
                    }
                    if p.measured_sharpness
                    else None,
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
        """:meth:`to_dict` as a JSON string (what ``results.json`` holds)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` back: the dict :meth:`Comparison.to_dict` wrote.

    Reads every version of :data:`SCHEMA_VERSIONS`; a version 1 file has no
    ``step_costs`` or ``sharpness`` (read them with ``.get``).

    Raises:
        ValueError: the file is missing, is not JSON, or is not a jaxgd
            comparison of a schema version this jaxgd reads.

    Example:
        >>> import json, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
        >>> _ = path.write_text(json.dumps({"schema": SCHEMA, "schema_version": 1, "steps": 5}))
        >>> load(path)["steps"]
        5
    """
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{str(path)!r} is not a jaxgd results.json ({type(err).__name__}: {err}); "
            "pass the results.json of a jaxgd report."
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(
            f"{str(path)!r} is not a jaxgd comparison (no schema {SCHEMA!r}); "
            "pass the results.json of a jaxgd report."
        )
    if data.get("schema_version") not in SCHEMA_VERSIONS:
        raise ValueError(
            f"{str(path)!r} has schema version {data.get('schema_version')!r}; this jaxgd "
            f"reads versions {', '.join(map(str, SCHEMA_VERSIONS))}: rerun the comparison "
            "with this jaxgd."
        )
    return data

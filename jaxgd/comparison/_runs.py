"""One problem's runs: every optimizer's sweep, and what was measured at the chosen rate.

:class:`ProblemResult` holds one :class:`OptimizerRuns` per optimizer (its
``(n_rates, n_seeds)`` arrays and its chosen rate) and gives the summary rows;
an optimizer's chosen rate carries its :class:`Evaluation` (the runs from the
evaluation seeds, which the summary reports) and may carry its
:class:`StepCost` and :class:`SharpnessRun`. Plain data: each turns into JSON-ready data with
:func:`jaxgd.comparison._schema.json_number`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

import jaxgd.comparison._statistics as statistics
from jaxgd.comparison._evaluation import Evaluation
from jaxgd.comparison._schema import json_number
from jaxgd.problems import Problem

GAP_FLOOR = 1e-12
"""Gaps to the optimum below this are drawn and compared as this."""

__all__ = ["GAP_FLOOR", "Contours", "OptimizerRuns", "ProblemResult", "SharpnessRun", "StepCost"]


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
            "evaluations_per_step": json_number(self.evaluations_per_step),
            "microseconds_per_step": json_number(self.microseconds_per_step),
            "line_search": self.line_search,
        }


@dataclasses.dataclass(eq=False)
class SharpnessRun:
    """The sharpness along one run at the chosen rate (seed 0), against the limit.

    Attributes:
        every: steps between two records (``sharpness_every``).
        steps: the recorded steps, shape ``(n_records,)``.
        sharpness: the largest Hessian eigenvalue there (NaN after a divergence).
        preconditioned: for Adam-type optimizers the largest eigenvalue of
            ``P^-1 H`` (see :func:`jaxgd.optimizers.stability_limit`), else None.
        loss: the loss at every step of that run, shape ``(steps,)``.
        limit: :func:`jaxgd.optimizers.stability_limit` of the optimizer at
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

        Examples:
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
            return None if a is None else [json_number(float(x)) for x in a]

        return {
            "every": self.every,
            "steps": [int(s) for s in self.steps],
            "sharpness": listed(self.sharpness),
            "preconditioned": listed(self.preconditioned),
            "loss": listed(self.loss),
            "limit": self.limit,
        }


@dataclasses.dataclass(eq=False)
class Contours:
    """The loss over the frame of a 2-D problem's paths: what the paths figure draws
    its contours from (computed by the comparison; the report computes nothing).

    Not part of the JSON: a comparison read back from ``results.json`` has none,
    and its paths figure draws the paths without contours.

    Attributes:
        lo: the frame's lower corner ``(x, y)``, the paths figure's axis limits.
        hi: its upper corner.
        x: the grid along x, from ``lo[0]`` to ``hi[0]``, shape ``(n,)``.
        y: the grid along y, shape ``(m,)``.
        gap: the loss minus the optimum at each grid point, shape ``(m, n)``,
            clipped to ``[1e-6, 1e30]`` (an overflow is ``1e30``).
    """

    lo: np.ndarray
    hi: np.ndarray
    x: np.ndarray
    y: np.ndarray
    gap: np.ndarray


@dataclasses.dataclass(eq=False)
class OptimizerRuns:
    """Every tuning run of one optimizer on one problem: ``(n_rates, n_seeds)``
    arrays, and the evaluation runs at the rate they chose.

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
        chosen: the index of the chosen learning rate (chosen on these,
            the tuning seeds).
        evaluation: the chosen rate run again from the evaluation seeds (see
            :class:`Evaluation`; what the summary reports), or None when the
            comparison had none.
        cost: what a step costs at the chosen rate, when measured (see
            :class:`StepCost`), else None.
        sharpness: the sharpness along a run at the chosen rate, when
            measured (see :class:`SharpnessRun`), else None.
        diagnostics: alpha and the cosine along a run at the chosen rate and
            one grid step up, with ``compare(diagnostics=...)`` (see
            :class:`jaxgd.comparison.Diagnosed`), else None.
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
    evaluation: Evaluation | None = None
    cost: StepCost | None = None
    sharpness: SharpnessRun | None = None
    diagnostics: Any = None  # jaxgd.comparison._diagnosed.Diagnosed

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
        compile_seconds: tracing, lowering and compiling the sweep (all runs, one
            program), or loading it from ``jaxgd compare``'s caches. (``compare``
            traces a problem while the one before it compiles and runs on another
            thread, so the compile times of a comparison may add up to more than
            the wall time they took.)
        run_seconds: running the compiled sweep once (one sweep at a time).
        n_runs: optimizer x rate x seed runs in the sweep.
        curvature: the largest Hessian eigenvalue ``L`` at the known minimiser
            (None where unknown); plain gradient descent is stable near the
            minimum for rates below :attr:`stability_limit` (``2 / L``).
        vanilla_limit: plain gradient descent's stability limit as the
            optimizer states it at rate 1 (``{"kind", "limit", "formula"}``
            of :func:`jaxgd.optimizers.stability_limit`), None where not asked.
        contours: the loss over the paths figure's frame (2-D problems; see
            :class:`Contours`), else None.
        shares_program_with: the other problems whose sweeps are the same
            compiled program (problems without data alike: see
            :func:`jaxgd.comparison._groups.program_groups`); then
            ``compile_seconds`` is this problem's share.
    """

    problem: Problem
    batch_size: int | None
    optimizers: dict[str, OptimizerRuns]
    compile_seconds: float
    run_seconds: float
    n_runs: int
    curvature: float | None = None
    vanilla_limit: dict[str, Any] | None = None
    contours: Contours | None = None
    shares_program_with: tuple[str, ...] = ()

    @property
    def stability_limit(self) -> float | None:
        """The largest stable rate of plain gradient descent near the minimum (``2 / L``).

        Plain descent states its limit on the sharpness as ``c / lr``
        (:attr:`vanilla_limit`, at rate 1: ``c``), so at curvature ``L`` the
        rate must stay below ``c / L``. None where ``L`` or the limit is unknown.
        """
        if self.curvature is None or self.vanilla_limit is None:
            return None
        return self.vanilla_limit["limit"] / self.curvature

    @property
    def stability_formula(self) -> str | None:
        """:attr:`stability_limit` as a formula: the optimizer's own with the rate and
        the curvature swapped (``2/lr`` -> ``2/L``); None where there is no limit."""
        if self.stability_limit is None:
            return None
        return self.vanilla_limit["formula"].replace("lr", "L")

    @property
    def gap_floor(self) -> float:
        """The smallest gap to the optimum that is not float32 round-off: ``4 eps32
        |optimum|``, at least ``1e-12`` (the figures draw smaller gaps at it, the
        paired statistics count gaps below it as equal)."""
        return max(GAP_FLOOR, 4 * float(np.finfo(np.float32).eps) * abs(self.problem.optimum_value))

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

    @property
    def measured_diagnostics(self) -> bool:
        """Whether the instruments were recorded at the chosen rates (``compare(diagnostics=)``)."""
        return any(r.diagnostics is not None for r in self.optimizers.values())

    def solved_steps(self, label: str) -> float:
        """Steps to target at the chosen rate, the mean over seeds if all reached it,
        else inf: on the evaluation seeds, to the held-out target where the problem
        has one (:meth:`Evaluation.solved_steps`); without evaluation seeds, on the
        tuning seeds to the training target."""
        runs = self.optimizers[label]
        if runs.evaluation is not None:
            return runs.evaluation.solved_steps()
        s = runs.steps_to_target[runs.chosen]
        return float(s.mean()) if np.all(np.isfinite(s)) else math.inf

    def paired_metrics(self, metrics) -> dict[str, dict[str, np.ndarray]] | None:
        """label -> the evaluation seeds' ``metrics`` (those this problem has), the
        table :func:`jaxgd.comparison.pairwise` reads; None without evaluation seeds."""
        if any(r.evaluation is None for r in self.optimizers.values()):
            return None
        optimum, floor = self.problem.optimum_value, self.gap_floor
        return {
            label: {k: v for k, v in r.evaluation.metrics(optimum, floor).items() if k in metrics}
            for label, r in self.optimizers.items()
        }

    def intervals(self, metrics=("eval_loss", "final_gap", "steps_to_target")) -> list[dict]:
        """Each optimizer against the first, on this problem alone: the rows of
        :func:`jaxgd.comparison.pairwise` (ratio and 95 % interval, as in the
        comparison's table; the p-values here are not corrected across problems).
        What the ``ratios_<problem>`` figure draws; empty without evaluation seeds."""
        table = self.paired_metrics(metrics)
        if table is None or len(table) < 2:
            return []
        present = [m for m in metrics if any(m in v for v in table.values())]
        return statistics.pairwise({self.name: table}, present, baseline=next(iter(table)))

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per optimizer, at its chosen rate (the evaluation seeds'
        figures where there are some, else the tuning seeds')."""
        rows = []
        for label, runs in self.optimizers.items():
            st = runs.stats(runs.chosen)
            if runs.evaluation is not None:
                st = runs.evaluation.summary()
            cost = runs.cost
            us = math.nan if cost is None else cost.microseconds_per_step
            # Time: the measured step time, else the sweep's time per run-step.
            per_step = self.microseconds_per_run_step if cost is None else us
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
                    "seeds": runs.final_loss.shape[1]
                    if runs.evaluation is None
                    else len(runs.evaluation.seeds),
                    "tuning_seeds": runs.final_loss.shape[1],
                    "eval_loss_mean": st.get("eval_loss_mean", math.nan),
                    "eval_loss_ci_low": st.get("eval_loss_ci_low", math.nan),
                    "eval_loss_ci_high": st.get("eval_loss_ci_high", math.nan),
                    "eval_target": self.problem.eval_target,
                    "steps_to_eval_target_mean": st.get("steps_to_eval_target_mean", math.nan),
                    "reached_eval_target": st.get("reached_eval_target", 0),
                    "seconds_to_eval_target": 1e-6
                    * per_step
                    * st.get("steps_to_eval_target_mean", math.nan),
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

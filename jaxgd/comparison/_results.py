"""The whole comparison: what :func:`jaxgd.compare` returns, its tables and its JSON."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

from jaxgd.run._api import Status
from jaxgd.comparison._runs import ProblemResult
from jaxgd.comparison._schema import SCHEMA, SCHEMA_VERSION, json_number
from jaxgd.comparison._tables import COST_HEADERS, SUMMARY_HEADERS, cost_cells, format_table, summary_cells

__all__ = ["Comparison"]


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
            :func:`jaxgd.comparison._engine.performance_profile`).
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
        headers, cells = SUMMARY_HEADERS, summary_cells
        if self.measured_costs:
            headers = [*SUMMARY_HEADERS, *COST_HEADERS]
            cells = lambda row: [*summary_cells(row), *cost_cells(row)]
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
                                "final_loss": json_number(float(r.final_loss[i, j])),
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
        summary = [{k: json_number(v) for k, v in row.items()} for row in self.summary()]
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

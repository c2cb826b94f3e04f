"""The whole comparison: what :func:`jaxgd.compare` returns, and its JSON.

Its tables are rendering: :func:`jaxgd.report.summary_table` and
:func:`jaxgd.report.profile_table` write them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import jaxgd.comparison._statistics as statistics
from jaxgd.comparison._runs import OptimizerRuns, ProblemResult
from jaxgd.comparison._schema import SCHEMA, SCHEMA_VERSION, json_number
from jaxgd.run import Status

__all__ = ["PAIRWISE_METRICS", "Comparison"]

PAIRWISE_METRICS = ("eval_loss", "final_gap", "steps_to_target", "steps_to_eval_target")
"""The metrics :meth:`Comparison.pairwise` compares by default (all lower-is-better)."""


@dataclasses.dataclass(eq=False)
class Comparison:
    """What :func:`jaxgd.compare` returns: every run, the choices, the profile.

    ``summary()`` gives the rows, ``to_json()`` the JSON;
    ``gd.report.summary_table(comparison)`` / ``gd.report.profile_table(comparison)``
    the text tables, ``gd.report.save(comparison, dir)`` the report folder and
    ``gd.report.markdown(comparison)`` the Markdown.

    Attributes:
        problems: one :class:`ProblemResult` per problem, in order.
        optimizer_labels: the optimizers, in order.
        seeds: the tuning seeds (each optimizer's rate is chosen on them).
        eval_seeds: the evaluation seeds (the chosen rates run again from
            them; the summary and :meth:`pairwise` report them).
        steps: updates per run.
        profile: ``{"taus", "rho", "score", "exact_area"}`` (see
            :func:`jaxgd.comparison.performance_profile`).
        speedups: label -> geometric-mean speedup over ``reference``.
        reference: the optimizer speedups are measured against (vanilla).
        machine: where it ran (JAX version, backend, device, CPU count).
        total_seconds: wall time of the whole comparison.
        protocol: the protocol text written into the report.
    """

    problems: list[ProblemResult]
    optimizer_labels: list[str]
    seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    steps: int
    profile: dict[str, Any]
    speedups: dict[str, Any]
    reference: str
    machine: dict[str, Any]
    total_seconds: float
    protocol: str

    def summary(self) -> list[dict[str, Any]]:
        """One row (a dict) per problem x optimizer at its chosen learning rate.

        The figures are over the evaluation seeds (the rate was chosen on
        the tuning seeds). Keys: ``problem``, ``optimizer``,
        ``learning_rate`` (chosen), ``grid_edge`` (``"lowest"``/``"highest"``
        or None), ``final_loss_mean``, ``final_loss_std`` (over the
        non-diverged seeds), ``optimum``, ``gap_mean``, ``target``,
        ``steps_to_target_mean`` (over the seeds that reached it; NaN if
        none), ``reached_target``, ``seeds`` (evaluation seeds),
        ``tuning_seeds``, the held-out figures (NaN where the problem has no
        held-out data): ``eval_loss_mean`` (the held-out loss at the final
        params) with ``eval_loss_ci_low``/``eval_loss_ci_high`` (a 95 %
        bootstrap interval of that mean), ``eval_target``,
        ``steps_to_eval_target_mean``, ``reached_eval_target`` and
        ``seconds_to_eval_target``; ``diverged`` (seeds at the chosen rate),
        ``diverged_in_grid``, ``runs_in_grid``,
        ``microseconds_per_run_step`` and ``sweep_compile_seconds``; where the
        step cost was measured (else NaN): ``evaluations_per_step``,
        ``microseconds_per_step`` (one run alone) and ``seconds_to_target``
        (``steps_to_target_mean`` steps at that time each). ``seconds_to_eval_target``
        takes the measured step time where there is one, else the sweep's
        time per run-step.
        """
        return [row for p in self.problems for row in p.rows()]

    def pairwise(
        self,
        metrics: tuple[str, ...] = PAIRWISE_METRICS,
        *,
        baseline: str | None = None,
        alpha: float = 0.05,
        n_boot: int = statistics.DEFAULT_BOOTSTRAPS,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Paired statistics of every problem, metric and pair of optimizers.

        The evaluation seeds pair the runs (seed ``i`` of ``a`` and of ``b``
        start alike and see the same minibatches). One row per problem,
        metric and pair, with keys ``problem``, ``a``, ``b``, ``metric``,
        ``ratio`` (geometric mean of ``b / a`` over the paired seeds),
        ``ci_low``/``ci_high`` (its 95 % bootstrap interval, resampled with
        the fixed ``seed``), ``p_value`` (paired Wilcoxon signed-rank test,
        Holm-corrected across the table), ``p_raw``, ``n`` and ``verdict``
        (``"a better"``, ``"b better"``, ``"no difference"`` or
        ``"incomparable"``); the rules are in :mod:`jaxgd.comparison.statistics`'s
        docs and ``docs/guides/statistics.md``.

        Args:
            metrics: of ``"eval_loss"`` (final held-out loss; problems without
                held-out data have no row), ``"final_gap"`` (final training
                loss above the optimum, floored at float32's resolution there:
                :attr:`ProblemResult.gap_floor`), ``"steps_to_target"`` and
                ``"steps_to_eval_target"``
                (a run that never reached it is ``inf``: a pair where one
                reached it and one not is ``"incomparable"``, read the loss
                rows there). All lower-is-better. A diverged run's losses are
                ``inf``.
            baseline: compare only this optimizer against each other one.
            alpha: the level of the corrected tests (intervals at ``1 - alpha``).
            n_boot: bootstrap resamples per row.
            seed: the resampling seed (the same comparison gives the same rows).

        Raises:
            ValueError: an unknown metric; a comparison without evaluation seeds.

        Examples:
            >>> import jaxgd as gd
            >>> c = gd.compare(["booth"], ["vanilla", "adam"], learning_rates=[0.01, 0.1],
            ...                seeds=1, eval_seeds=6, steps=100)
            >>> row = c.pairwise(["final_gap"])[0]
            >>> row["a"], row["b"], row["metric"], row["n"]
            ('vanilla', 'adam', 'final_gap', 6)
        """
        unknown = [m for m in metrics if m not in PAIRWISE_METRICS]
        if unknown or isinstance(metrics, str):
            raise ValueError(
                f"Comparison.pairwise: unknown metrics {unknown or metrics!r}; pass a tuple of "
                f"{', '.join(PAIRWISE_METRICS)}."
            )
        table = {p.name: p.paired_metrics(metrics) for p in self.problems}
        if any(v is None for v in table.values()):
            raise ValueError(
                "Comparison.pairwise: this comparison has no evaluation seeds; run "
                "gd.compare again with evaluation seeds (eval_seeds: on by default)."
            )
        present = [m for m in metrics if any(m in v for t in table.values() for v in t.values())]
        # The JSON, the report and the command line each ask for the same table: it is
        # computed once per arguments (the problems' numbers do not change once compared).
        memo = self.__dict__.setdefault("_pairwise_memo", {})
        key = (tuple(present), baseline, alpha, n_boot, seed)
        if key not in memo:
            memo[key] = statistics.pairwise(
                table, present, baseline=baseline, alpha=alpha, n_boot=n_boot, seed=seed
            )
        return [dict(row) for row in memo[key]]

    @property
    def measured_costs(self) -> bool:
        """Whether any problem's step costs were measured (see :class:`StepCost`)."""
        return any(p.measured_costs for p in self.problems)

    # -- JSON ------------------------------------------------------------- #

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (non-finite numbers become None)."""
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": self.machine,
            "protocol": self.protocol,
            "optimizers": self.optimizer_labels,
            "seeds": list(self.seeds),
            "eval_seeds": list(self.eval_seeds),
            "steps": self.steps,
            "total_seconds": self.total_seconds,
            "summary": [{k: json_number(v) for k, v in row.items()} for row in self.summary()],
            "performance_profile": {
                "taus": self.profile["taus"],
                "rho": self.profile["rho"],
                "algoperf_score": self.profile["score"],
            },
            "speedup_over_reference": {"reference": self.reference, **self.speedups},
            "pairwise": [{k: json_number(v) for k, v in row.items()} for row in self.pairwise()],
            "problems": [_problem_dict(p, self.seeds) for p in self.problems],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (what ``results.json`` holds)."""
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)


def _run_dicts(label: str, r: OptimizerRuns, seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """One optimizer's runs on one problem, one dict per rate x seed."""
    runs = []
    for i, lr in enumerate(r.learning_rates):
        for j, seed in enumerate(seeds):
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
    return runs


def _measured_dicts(p: ProblemResult) -> dict[str, Any]:
    """The step costs, sharpness and diagnostics runs at the chosen rates (None where
    not measured)."""
    costs = {label: r.cost.to_dict() for label, r in p.optimizers.items() if r.cost}
    sharpness = {label: r.sharpness.to_dict() for label, r in p.optimizers.items() if r.sharpness}
    evaluation = {
        label: r.evaluation.to_dict() for label, r in p.optimizers.items() if r.evaluation
    }
    return {
        "evaluation": evaluation or None,
        "step_costs": costs if p.measured_costs else None,
        "sharpness": sharpness if p.measured_sharpness else None,
        "diagnostics": {
            label: r.diagnostics.to_dict() for label, r in p.optimizers.items() if r.diagnostics
        }
        or None,
    }


def _problem_dict(p: ProblemResult, seeds: tuple[int, ...]) -> dict[str, Any]:
    """One problem's part of :meth:`Comparison.to_dict` (its contours are left out)."""
    return {
        "name": p.name,
        "description": p.problem.description,
        "optimum_value": p.problem.optimum_value,
        "target": p.problem.target,
        "eval_target": p.problem.eval_target,
        "parameters": p.problem.dimension,
        "batch_size": p.batch_size,
        "curvature_at_optimum": p.curvature,
        "vanilla_stability_limit": p.stability_limit,
        "compile_seconds": p.compile_seconds,
        "shares_program_with": list(p.shares_program_with),
        "run_seconds": p.run_seconds,
        "seconds_per_step": p.seconds_per_step,
        "microseconds_per_run_step": p.microseconds_per_run_step,
        "chosen_learning_rates": {label: r.learning_rate for label, r in p.optimizers.items()},
        "learning_rates": {label: r.learning_rates.tolist() for label, r in p.optimizers.items()},
        "runs": [row for label, r in p.optimizers.items() for row in _run_dicts(label, r, seeds)],
        **_measured_dicts(p),
    }

"""The evaluation runs: each optimizer's chosen setting, run again from fresh seeds.

After a problem's sweep has chosen each optimizer's learning rate on the
tuning seeds, :func:`jaxgd.compare` runs the chosen setting again from the
evaluation seeds, which are the ones reported (DeepOBS's protocol: tune,
then re-run on fresh seeds, so the choice does not flatter the report). The
runs reuse the sweep's compiled program: its ``n_rates x n_seeds`` slots per
optimizer hold evaluation runs at the chosen rate (:func:`slot_seeds`), so
no second program is compiled. :class:`Evaluation` holds what they
measured, per evaluation seed: the training figures and, where the problem
has held-out data, the held-out ones. Plain NumPy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from jaxgd.comparison._protocol import steps_to_target
from jaxgd.comparison._schema import json_number
from jaxgd.comparison._statistics import mean_interval
from jaxgd.run import Status

__all__ = ["EVAL_RECORDS", "Evaluation", "eval_every", "evaluation", "slot_seeds"]

EVAL_RECORDS = 100
"""About how many times a run of a comparison evaluates the held-out loss."""


def eval_every(steps: int) -> int:
    """Steps between two held-out evaluations in a comparison: about 100 records.

    Examples:
        >>> eval_every(500), eval_every(40)
        (5, 1)
    """
    return max(1, steps // EVAL_RECORDS)


def slot_seeds(eval_seeds: tuple[int, ...], slots: int, calls: int) -> np.ndarray:
    """The seed of every slot of every evaluation call: ``(calls, slots)``.

    The evaluation seeds fill the slots in order; the slots left over repeat
    the last seed (their runs are dropped, :func:`evaluation` keeps the first
    ``len(eval_seeds)``).

    Examples:
        >>> slot_seeds((7, 8, 9), slots=2, calls=2).tolist()
        [[7, 8], [9, 9]]
    """
    seeds = np.asarray(eval_seeds, np.int64)
    padded = np.concatenate([seeds, np.full(calls * slots - seeds.size, seeds[-1])])
    return padded.reshape(calls, slots)


@dataclasses.dataclass(eq=False)
class Evaluation:
    """One optimizer's runs at its chosen rate from the evaluation seeds: ``(n_seeds,)``.

    Attributes:
        seeds: the evaluation seeds, in order (seed ``i`` of every optimizer
            pairs with seed ``i`` of every other: the same start and minibatches).
        final_loss: the training loss after the last update (``inf`` where
            the run diverged).
        diverged: the run met a non-finite loss or gradient.
        status: :class:`jaxgd.Status` codes.
        steps_to_target: first step with training loss ``<= target``.
        curves: the training losses, ``(n_seeds, steps)``.
        held_out: the held-out loss ``loss(final params, test_data)``
            (``inf`` where diverged), or None (no held-out data).
        held_out_curve: the held-out loss at the steps :attr:`held_out_steps`,
            ``(n_seeds, n_records)``, or None.
        held_out_steps: every :attr:`every` steps from step 0, then the last
            step (the returned params: :attr:`held_out`), or None.
        every: steps between two held-out records.
        steps_to_eval_target: first recorded step with held-out loss ``<=
            eval_target`` (one of :attr:`held_out_steps`; ``inf`` if never), or
            None (no held-out target).
    """

    seeds: tuple[int, ...]
    final_loss: np.ndarray
    diverged: np.ndarray
    status: np.ndarray
    steps_to_target: np.ndarray
    curves: np.ndarray
    held_out: np.ndarray | None
    held_out_curve: np.ndarray | None
    held_out_steps: np.ndarray | None
    every: int
    steps_to_eval_target: np.ndarray | None

    def metrics(self) -> dict[str, np.ndarray]:
        """The per-seed metrics the paired statistics compare, all lower-is-better:
        ``final_loss``, ``steps_to_target`` and, with held-out data, ``eval_loss``
        and (with a held-out target) ``steps_to_eval_target``."""
        out = {"final_loss": self.final_loss, "steps_to_target": self.steps_to_target}
        if self.held_out is not None:
            out["eval_loss"] = self.held_out
        if self.steps_to_eval_target is not None:
            out["steps_to_eval_target"] = self.steps_to_eval_target
        return out

    def summary(self, seed: int = 0) -> dict[str, Any]:
        """Means, spreads and 95 % intervals of the mean over the evaluation seeds
        (diverged runs left out of the loss means; their count is ``diverged``)."""
        ok = ~self.diverged
        reached = np.isfinite(self.steps_to_target)
        row = {
            "final_loss_mean": _mean(self.final_loss[ok]),
            "final_loss_std": _std(self.final_loss[ok]),
            "reached": int(reached.sum()),
            "steps_to_target_mean": _mean(self.steps_to_target[reached]),
            "diverged": int(self.diverged.sum()),
            "eval_loss_mean": math.nan,
            "eval_loss_ci_low": math.nan,
            "eval_loss_ci_high": math.nan,
            "reached_eval_target": 0,
            "steps_to_eval_target_mean": math.nan,
        }
        if self.held_out is not None:
            held = self.held_out[ok & np.isfinite(self.held_out)]
            low, high = mean_interval(held, seed=seed)
            row.update(eval_loss_mean=_mean(held), eval_loss_ci_low=low, eval_loss_ci_high=high)
        if self.steps_to_eval_target is not None:
            hit = np.isfinite(self.steps_to_eval_target)
            row["reached_eval_target"] = int(hit.sum())
            row["steps_to_eval_target_mean"] = _mean(self.steps_to_eval_target[hit])
        return row

    def solved_steps(self) -> float:
        """Steps to the target the profile uses: the held-out one where the problem has
        one, else the training one; the mean over seeds if all reached it, else inf."""
        s = self.steps_to_target if self.steps_to_eval_target is None else self.steps_to_eval_target
        return float(s.mean()) if np.all(np.isfinite(s)) else math.inf

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data, one dict per evaluation seed (NaN and inf become None)."""

        def number(a, j):
            return None if a is None else json_number(float(a[j]))

        return {
            "every": self.every,
            "runs": [
                {
                    "seed": int(seed),
                    "final_loss": number(self.final_loss, j),
                    "status": Status(int(self.status[j])).name,
                    "diverged": bool(self.diverged[j]),
                    "steps_to_target": number(self.steps_to_target, j),
                    "eval_loss": number(self.held_out, j),
                    "steps_to_eval_target": number(self.steps_to_eval_target, j),
                }
                for j, seed in enumerate(self.seeds)
            ],
        }


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else math.nan


def _std(a: np.ndarray) -> float:
    return float(a.std()) if a.size else math.nan


def evaluation(
    outs: list[dict[str, np.ndarray]],
    seeds: tuple[int, ...],
    target: float,
    eval_target: float | None,
    every: int,
    steps: int,
) -> Evaluation:
    """One optimizer's :class:`Evaluation` from the outputs of its evaluation calls
    (each ``(n_rates, n_seeds)`` slots, filled as :func:`slot_seeds` says)."""
    m = len(seeds)

    def flat(key):
        if key not in outs[0]:
            return None
        parts = [np.asarray(o[key]) for o in outs]
        return np.concatenate([p.reshape(-1, *p.shape[2:]) for p in parts])[:m]

    final = flat("final_loss").astype(np.float64)
    status = flat("status").astype(np.int64)
    diverged = (status == Status.DIVERGED) | ~np.isfinite(final)
    curves = flat("curve").astype(np.float64)
    to_target = np.where(diverged, np.inf, steps_to_target(curves, target))
    held_out = flat("eval_loss")
    held_curve = flat("eval_curve")
    to_eval, held_steps = None, None
    if held_out is not None:
        held_out = held_out.astype(np.float64)
        held_curve = np.concatenate([held_curve.astype(np.float64), held_out[:, None]], axis=1)
        held_steps = np.append(every * np.arange(held_curve.shape[1] - 1), steps)
        held_out = np.where(diverged, np.inf, held_out)
        if eval_target is not None:
            first = steps_to_target(held_curve, eval_target)  # an index into held_steps
            at = held_steps[np.minimum(first, len(held_steps) - 1).astype(int)]
            to_eval = np.where(diverged | ~np.isfinite(first), np.inf, at)
    return Evaluation(
        seeds=tuple(seeds),
        final_loss=np.where(diverged, np.inf, final),
        diverged=diverged,
        status=status,
        steps_to_target=to_target,
        curves=curves,
        held_out=held_out,
        held_out_curve=held_curve,
        held_out_steps=held_steps,
        every=every,
        steps_to_eval_target=to_eval,
    )

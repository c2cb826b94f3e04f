"""Every static decision of a run, made once: the :class:`~jaxgd.run._state.Spec`.

From checked arguments (:class:`jaxgd.run._checks.Call`) the plan decides
what the compiled program depends on: the history's layout (refused before
allocating what cannot fit in memory), how the steps are driven
(:class:`~jaxgd.run._state.LoopKind` and the steps per loop iteration) and the
backend's knob (a select or a cond around the update). The loop and the step
read the spec; they decide nothing of this themselves.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import optax

from jaxgd._host import memory_bytes, tree_bytes
from jaxgd._partition import Static
from jaxgd.optimizers import Optimizer
from jaxgd.run._batches import take_rows
from jaxgd.run._checks import Call
from jaxgd.run._state import LoopKind, Spec

__all__ = ["MAX_HISTORY", "eval_period", "history_layout", "inner_steps", "loop_kind", "plan"]

MAX_HISTORY = 1_000_000
"""Entries a history holds at most unless ``history_every`` says otherwise."""

_INNER_STEPS = 32  # guarded steps per iteration under jit/vmap and on accelerators
_UNROLL_BYTES = 4 << 20
"""Params up to this size run two steps per loop iteration on a CPU, larger ones
one: on a 2-core CPU two steps per iteration took 0.83-0.98x the time of one
from 16 to 65536 float32 params, the same at 1M, and 1.1x at 10M
(benchmarks/results/speed.md)."""
_UNROLL_MOST = 2  # runs of at most this many steps are written out, without a loop


def plan(call: Call, loss: Static, optimizer: Static, gather=take_rows) -> Spec:
    """The spec of a checked ``call`` whose loss and optimizer split into these
    static parts; ``gather`` takes a minibatch's rows (a mesh run's gathers on
    the devices owning them)."""
    params = call.params
    evaluated = (
        0 if call.eval_out is None else 8 + tree_bytes(call.eval_out[1] if call.has_aux else ())
    )
    per_leaf = "update_ratio" in call.diagnostics  # the instruments' entries, about
    evaluated += 8 * (len(call.diagnostics) + per_leaf * len(jax.tree.leaves(params)))
    stride, length = history_layout(
        call.history_every, call.steps, params, call.record_params, evaluated
    )
    inner = inner_steps(call.traced, params)
    return Spec(
        loss=loss,
        optimizer=optimizer,
        steps=call.steps,
        has_data=call.data is not None,
        batch_size=call.batch_size,
        n_examples=call.n_examples,
        record_params=call.record_params,
        has_aux=call.has_aux,
        extra_args=isinstance(call.optimizer, optax.GradientTransformationExtraArgs | Optimizer),
        gather=gather,
        loop=loop_kind(call.steps, inner, fixed_length=call.traced and call.no_rule),
        inner_steps=inner,
        select_update=jax.default_backend() != "cpu",
        history_stride=stride,
        history_length=length,
        sharpness_every=call.sharpness_every,
        sharpness_iters=call.sharpness_iters,
        eval_every=eval_period(call.eval_every, stride),
        diagnostics=call.diagnostics,
    )


def loop_kind(steps: int, inner: int, *, fixed_length: bool) -> LoopKind:
    """How the steps are driven. ``fixed_length``: under jit/vmap with no rule that
    stops a run early (a sweep that only stops on divergence): every step is
    taken anyway, as one masked scan."""
    if fixed_length:
        return LoopKind.FIXED_SCAN
    if steps <= _UNROLL_MOST:
        return LoopKind.UNROLLED
    return LoopKind.WHILE_INNER if inner > _UNROLL_MOST else LoopKind.WHILE


def inner_steps(traced_call: bool, params: Any) -> int:
    """Steps per iteration of the run's while loop (see :mod:`jaxgd.run._loop`)."""
    if traced_call or jax.default_backend() != "cpu":
        return _INNER_STEPS
    return 2 if tree_bytes(params) <= _UNROLL_BYTES else 1


def eval_period(every: int, stride: int) -> int:
    """Steps between two evaluations on the held-out data (0: none): the multiples of
    both ``eval_every`` and the history's stride, as only those steps have an entry.

    Examples:
        >>> eval_period(10, 1), eval_period(10, 4), eval_period(0, 4)
        (10, 20, 0)
    """
    return math.lcm(every, stride) if every else 0


def history_layout(
    every: int | None, steps: int, params: Any, record_params: bool, evaluated: int = 0
):
    """``(stride, entries)`` of the history, refused before allocating what cannot fit
    (``evaluated``: the bytes an entry of the held-out evaluation adds, about)."""
    stride = -(-steps // MAX_HISTORY) if every is None else every
    length = -(-steps // stride)
    per_entry = 2 * 8 + evaluated
    if record_params:
        per_entry += tree_bytes(params)
    need = length * per_entry
    have = memory_bytes()
    if have and need > have // 2:
        raise ValueError(
            f"minimize: the history of {length} entries would need {need / 2**30:.1f} GiB, over "
            f"half the {have / 2**30:.1f} GiB of memory; record fewer entries with "
            f"history_every={-(-need * stride // (have // 4))} or more"
            + (", or pass record_params=False" if record_params else "")
            + "."
        )
    return stride, length

"""The values a compiled run is made of: its static :class:`Spec`, the
:class:`Carry` between two steps, what every step reads (:class:`Inputs`), the
rejoined loss and optimizer (:class:`Run`) and the end-of-segment
:class:`Finish`.

Plain data: nothing here computes. :mod:`jaxgd.run._plan` decides the spec,
:mod:`jaxgd.run._body` steps the carry, :mod:`jaxgd.run._loop` drives it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxgd._partition import Static, combine
from jaxgd.run._batches import take_rows
from jaxgd.run._result import History

__all__ = ["Carry", "Finish", "Inputs", "LoopKind", "Run", "Spec", "rejoin"]


class LoopKind(enum.Enum):
    """How the steps of a segment are driven (decided once, by the plan)."""

    UNROLLED = "unrolled"
    """One or two steps written out one after the other: no loop's own cost."""
    WHILE = "while"
    """A ``while_loop`` of ``inner_steps`` (1 or 2) steps written out per iteration:
    a run called from Python on a CPU."""
    WHILE_INNER = "while_inner"
    """A ``while_loop`` whose body is a ``fori_loop`` of ``inner_steps`` guarded
    steps: under ``vmap``/``jit`` and on accelerators, where each iteration of
    the outer loop costs a select of the whole carry or a wait on the host."""
    FIXED_SCAN = "fixed_scan"
    """All the steps as one ``scan`` of guarded steps: under ``vmap``/``jit``
    with no rule that stops a run early (a sweep, which stops only where it
    diverges)."""


class Spec(NamedTuple):
    """The static description of a run: what the compiled program depends on."""

    loss: Static  # the loss's compiled-in part (its traced leaves are an argument)
    optimizer: Static  # likewise for the optimizer
    steps: int
    has_data: bool
    batch_size: int | None
    n_examples: int
    record_params: bool
    has_aux: bool = False
    extra_args: bool = False  # the optimizer's update wants value=, grad=, value_fn=
    gather: Callable[[Any, jax.Array], Any] = take_rows  # a minibatch's rows from the data
    loop: LoopKind = LoopKind.WHILE  # how the steps are driven
    inner_steps: int = 2  # steps per while-loop iteration (WHILE, WHILE_INNER)
    select_update: bool = False  # a select instead of a cond around the update (accelerators)
    history_stride: int = 1  # steps between two history entries
    history_length: int = 0  # entries in the history (0: ceil(steps / history_stride))
    sharpness_every: int = 0  # > 0: record the sharpness every this many steps
    sharpness_iters: int = 20  # power iterations per record (warm-started)
    eval_every: int = 0  # > 0: the loss on the held-out data every this many steps
    # (a multiple of history_stride, see jaxgd.run._plan.eval_period)
    diagnostics: tuple[str, ...] = ()  # the instruments of jaxgd.run._diagnostics (in its order)


class Carry(NamedTuple):
    """The whole state of a run between two steps."""

    step: jax.Array  # updates taken so far
    params: Any
    opt_state: Any
    status: jax.Array  # RUNNING or a Status code
    history: History
    probe: Any = None  # with sharpness_every: the last top eigenvectors (warm starts)
    last_update: Any = None  # with alpha or the cosine: jaxgd.run._diagnostics.LastUpdate


class Inputs(NamedTuple):
    """What every step of a segment reads besides the carry."""

    data: Any  # the full data (None without data)
    order: Any  # the minibatch rows of each step (None: full batch)
    tol: Any
    target: Any
    eval_data: Any = None  # the held-out data (None: no evaluation)


class Finish(NamedTuple):
    """The full-data evaluation at the end of a segment (what ``Result`` adds to the carry)."""

    loss: jax.Array
    status: jax.Array
    aux: Any


class Run(NamedTuple):
    """The traced inputs of a run, rejoined with the static ones."""

    loss: Callable[..., Any]
    optimizer: Any


def rejoin(spec: Spec, traced) -> Run:
    """The loss and the optimizer from their traced leaves and the spec's static parts."""
    loss_leaves, optimizer_leaves = traced
    return Run(combine(loss_leaves, spec.loss), combine(optimizer_leaves, spec.optimizer))

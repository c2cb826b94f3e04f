"""The compiled loop: the step of :mod:`jaxgd.run._body`, driven until the run stops.

After the last step the final params are evaluated once more (on the full
data) to give ``Result.loss`` and the final status. A diverged run keeps the
params at which the first non-finite value appeared: those came from finite
params and a finite gradient, so they are finite, and nothing before them is
lost. (One exception: an update so large that ``params + update`` overflows
float32 itself, above 3.4e38, leaves inf in the params; the status is still
``DIVERGED``. Guarding against it would cost a copy of the params every step.)
The bookkeeping (history, gradient norm, stopping rules) is in the params'
precision, at least float32: a float64 run's gradient norm overflows only
above float64's range.

In minibatch runs the stopping rules see what each step computes: the
minibatch's loss and gradient. ``Result.loss`` is always the full-data loss.

This module knows no files, devices, progress bars, reports or optimizer
classes. What it needs from above comes in the static
:class:`~jaxgd.run._state.Spec` (decided by :mod:`jaxgd.run._plan`: the
minibatch ``gather``, the :class:`~jaxgd.run._state.LoopKind` that picks one
of the four drivers below) and, through ``stop_at``, where a chunk of a longer
run ends. The loss and the optimizer arrive split into traced leaves and a
static rest (:mod:`jaxgd._partition`).

The programs: :func:`whole_run` (a run in one call, returning its
``Result``), :func:`first_segment` and :func:`next_segment` (a run in
segments; :func:`finish` evaluates a run that a segment other than the last
ended) and :func:`start` (the state to resume a checkpoint into).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

import jaxgd.run._body as body
from jaxgd.run._batches import batch_indices
from jaxgd.run._result import Result
from jaxgd.run._state import Carry, Finish, Inputs, LoopKind, Spec, rejoin

__all__ = [
    "finish",
    "first_segment",
    "minibatch_order",
    "next_segment",
    "result_of",
    "start",
    "whole_run",
]

Step = Callable[..., Carry]  # body.step with spec, run and inputs bound: (carry, live, index)
Running = Callable[[Carry], jax.Array]


def _fixed_scan(spec: Spec, step: Step, running: Running, carry: Carry) -> Carry:
    """All the steps, guarded, as one scan: for runs that go to the end anyway
    (a vmapped sweep without tol or target stops only where it diverges).

    Under vmap a while_loop selects its whole carry, history buffers included,
    wherever its condition is evaluated; a scan has no condition. (Stacking
    each step's entry as the scan's output instead of writing it into the
    carry measured no faster, and rounds the loss differently.) A stopped
    run's steps change nothing, as in the loop.
    """

    def scanned(c: Carry, index) -> tuple[Carry, None]:
        return step(c, running(c), index), None

    at_steps = jnp.arange(spec.steps, dtype=jnp.int32)
    return jax.lax.scan(scanned, carry, at_steps)[0]


def _unrolled(spec: Spec, step: Step, running: Running, carry: Carry) -> Carry:
    """A run of one or two steps, as the loop would take them, without the loop's own cost."""
    c = carry
    for i in range(spec.steps):
        c = c if i == 0 else jax.lax.optimization_barrier(c)
        c = step(c, running(c))
    return c


def _while(spec: Spec, step: Step, running: Running, carry: Carry) -> Carry:
    """A while loop of ``inner_steps`` (1 or 2) steps written out per iteration.

    One small run on a CPU: two steps per iteration pay the loop's own cost
    (its condition, the copies at its back edge) once per two steps. The
    barrier keeps XLA from fusing one step into the next, which would round
    differently from the one-step loop (and from optax's loop). For large
    params one step per iteration is faster (the plan's ``_UNROLL_BYTES``);
    the values are the same. The loop condition guarantees the first step is
    live; further steps in the same iteration are guarded (no-ops once the
    run has stopped).
    """

    def steps(c: Carry) -> Carry:
        c = step(c)
        for _ in range(spec.inner_steps - 1):
            c = jax.lax.optimization_barrier(c)
            c = step(c, running(c))
        return c

    return jax.lax.while_loop(running, steps, carry)


def _while_inner(spec: Spec, step: Step, running: Running, carry: Carry) -> Carry:
    """A while loop whose body is a fori_loop of ``inner_steps`` guarded steps.

    Under vmap the loop condition differs per run, so while_loop selects the
    whole carry (history buffers included) every iteration; on a GPU each
    iteration waits for the condition on the host. An inner loop of guarded
    steps pays either once per inner_steps steps, at the price of up to
    inner_steps - 1 idle steps at the very end.
    """

    def steps(c: Carry) -> Carry:
        c = step(c)
        guarded = lambda _, c: step(c, running(c))  # noqa: E731
        return jax.lax.fori_loop(0, spec.inner_steps - 1, guarded, c)

    return jax.lax.while_loop(running, steps, carry)


_DRIVERS = {
    LoopKind.FIXED_SCAN: _fixed_scan,
    LoopKind.UNROLLED: _unrolled,
    LoopKind.WHILE: _while,
    LoopKind.WHILE_INNER: _while_inner,
}


def _advance(spec: Spec, run, carry: Carry, data, order, tol, target, stop_at, eval_data) -> Carry:
    """Run steps until the run stops or ``carry.step == stop_at`` (``order``: the
    run's :func:`minibatch_order`)."""
    step = functools.partial(body.step, spec, run, Inputs(data, order, tol, target, eval_data))
    running = functools.partial(body.running, stop_at)
    return _DRIVERS[spec.loop](spec, step, running, carry)


def _order(spec: Spec, key) -> jax.Array | None:
    if spec.batch_size is None:
        return None
    return batch_indices(spec.n_examples, spec.batch_size, spec.steps, key)


@functools.partial(jax.jit, static_argnums=0)
def minibatch_order(spec: Spec, key) -> jax.Array | None:
    """Row ``k``: the examples of step ``k``'s minibatch, for the whole budget
    (:func:`~jaxgd.run._batches.batch_indices` from the run's ``key``); None
    without minibatches. A run in segments draws it once and hands it to each
    (drawn in every segment, a budget of 400,000 steps cost each segment 0.7 s
    whatever its length: a run stopped by ``tol`` early crawled a step at a time)."""
    return _order(spec, key)


@functools.partial(jax.jit, static_argnums=0)
def start(spec: Spec, traced, params, data, eval_data=None, begin=(None, None)) -> Carry:
    """The state before the first step (a chunked run's starting point);
    ``begin``: the ``(opt_state, state)`` to start from (None: the defaults)."""
    return body.start(spec, rejoin(spec, traced), params, data, eval_data, *begin)


def _varying_with(carry: Carry, inputs) -> Carry:
    """``carry``, its arrays marked as varying wherever ``inputs`` vary (what makes one
    run differ from another: its params, its loss's and optimizer's traced leaves,
    its minibatch order): the same values.

    Under ``jax.vmap``, a loop whose carry starts partly unbatched (the step
    count, the history buffers, the optimizer's zeros) has its body batched
    twice: once as the carry starts, and again once the first pass finds that
    the whole carry varies from run to run. Marked (a ``select`` whose false
    predicate XLA folds away), the carry is batched from the start, as it ends:
    the body is batched once, and tracing a vmapped sweep takes about a third
    less time. A weakly typed leaf is left as it is (a ``select`` would make
    it strongly typed, and change how it promotes), and so is a key. Outside
    ``vmap`` the values and the compiled code are the same; tracing pays a few
    operations per leaf (a model of 300 arrays under Adam: about 10-20 % more
    time to lower, once).
    """
    arrays = [x for x in jax.tree.leaves(inputs) if hasattr(x, "dtype") and x.size]
    if not arrays:
        return carry
    nonzero = [jnp.ravel(jax.random.key_data(x) if _is_key(x) else x)[0] != 0 for x in arrays]
    witness = functools.reduce(jnp.logical_or, nonzero)  # any dtype: a bool, cast per leaf

    def mark(x):
        if not hasattr(x, "dtype") or _is_key(x) or jax.typeof(x).weak_type:
            return x
        varying = jnp.broadcast_to(witness.astype(x.dtype), x.shape)
        return jax.lax.select(jnp.zeros(x.shape, bool), varying, x)

    return jax.tree.map(mark, carry)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _first_segment(
    spec: Spec, traced, params, data, order, tol, target, stop_at, last, eval_data, begin
):
    run = rejoin(spec, traced)
    carry = body.start(spec, run, params, data, eval_data, *begin)
    # Not the data (it may be sharded); the minibatch order varies with the key.
    carry = _varying_with(carry, (traced, params, order))
    carry = _advance(spec, run, carry, data, order, tol, target, stop_at, eval_data)
    return carry, body.finish(spec, run, carry, data, tol, target) if last else None


@functools.partial(jax.jit, static_argnums=(0, 8))
def first_segment(
    spec: Spec,
    traced,
    params,
    data,
    order,
    tol,
    target,
    stop_at,
    last=True,
    eval_data=None,
    begin=(None, None),
):
    """Start a run and take its steps up to ``stop_at``: ``(carry, finish)``
    (``order``: the run's :func:`minibatch_order`).

    With ``last=False`` (a segment that ``stop_at`` ends before the run's
    end) ``finish`` is None: the full-data evaluation of :func:`finish` is
    only needed once the run is over. ``eval_data``: the held-out data
    (with ``spec.eval_every``); ``begin``: see :func:`start`.
    """
    return _first_segment(
        spec, traced, params, data, order, tol, target, stop_at, last, eval_data, begin
    )


@functools.partial(jax.jit, static_argnums=0)
def whole_run(
    spec: Spec, traced, params, data, key, tol, target, eval_data=None, begin=(None, None)
) -> Result:
    """A whole run in one program: its :class:`Result` (``begin``: see :func:`start`)."""
    steps, order = spec.steps, _order(spec, key)
    carry, finish = _first_segment(
        spec, traced, params, data, order, tol, target, steps, True, eval_data, begin
    )
    return result_of(carry, finish)


def result_of(carry: Carry, finish: Finish) -> Result:
    """A :class:`Result` from a segment's carry and its full-data evaluation."""
    return Result(
        params=carry.params,
        loss=finish.loss,
        steps=carry.step,
        status=finish.status,
        history=carry.history,
        aux=finish.aux,
        state=carry.state,
        opt_state=carry.opt_state,
    )


def next_segment(
    spec: Spec, traced, carry: Carry, data, order, tol, target, stop_at, last=True, eval_data=None
):
    """Take a started run's steps up to ``stop_at``: ``(carry, finish)`` (see
    :func:`first_segment` for ``last``).

    The carry's arrays but its step and status are donated: the new carry
    reuses their memory (the params and the optimizer state are updated in
    place rather than copied), so ``carry`` cannot be used afterwards but for
    ``carry.step`` and ``carry.status``.
    """
    counters = (carry.step, carry.status)
    rest = carry._replace(step=None, status=None)
    return _next_segment(
        spec, traced, counters, rest, data, order, tol, target, stop_at, last, eval_data
    )


@functools.partial(jax.jit, static_argnums=(0, 9), donate_argnums=3)
def _next_segment(
    spec: Spec, traced, counters, rest: Carry, data, order, tol, target, stop_at, last, eval_data
):
    run = rejoin(spec, traced)
    carry = rest._replace(step=counters[0], status=counters[1])
    carry = _advance(spec, run, carry, data, order, tol, target, stop_at, eval_data)
    return carry, body.finish(spec, run, carry, data, tol, target) if last else None


@functools.partial(jax.jit, static_argnums=0)
def finish(spec: Spec, traced, carry: Carry, data, tol, target) -> Finish:
    """The full-data evaluation of a segment's carry (a run that a segment
    with ``last=False`` ended, or one interrupted there)."""
    return body.finish(spec, rejoin(spec, traced), carry, data, tol, target)

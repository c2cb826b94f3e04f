"""The compiled loop: evaluate, record, stop rules, update.

Each step ``k`` (from 0):

1. evaluate ``loss(params_k)`` and ``g_k = grad loss(params_k)`` (on the
   ``k``-th minibatch when ``batch_size`` is given) and record them in the
   history;
2. stop with ``DIVERGED`` if either is not finite, ``REACHED_TARGET`` if the
   loss is ``<= target``, ``CONVERGED`` if ``|g_k| <= tol``;
3. otherwise ``params_{k+1} = params_k + update(g_k)``.

After the last step the final params are evaluated once more (on the full
data) to give ``Result.loss`` and the final status. A diverged run keeps the
params at which the first non-finite value appeared: those came from finite
params and a finite gradient, so they are finite, and nothing before them is
lost. (One exception: an update so large that ``params + update`` overflows
float32 itself, above 3.4e38, leaves inf in the params; the status is still
``DIVERGED``. Guarding against it would cost a copy of the params every step.)
A gradient whose norm overflows float32 counts as non-finite.

In minibatch runs the stopping rules see what each step computes: the
minibatch's loss and gradient. ``Result.loss`` is always the full-data loss.

This module knows no files, devices, progress bars or reports. What it needs
from above comes in the static :class:`Spec`: the minibatch ``gather`` (a
mesh run hands one that gathers on the devices owning the rows) and, through
``stop_at``, where a chunk of a longer run ends. The loss and the optimizer
arrive split into traced leaves and a static rest (:mod:`jaxgd._partition`).

The programs: :func:`whole_run` (a run in one call, returning its
``Result``), :func:`first_segment` and :func:`next_segment` (a run in
segments; :func:`finish` evaluates a run that a segment other than the last
ended) and :func:`start` (the state to resume a checkpoint into). The steps
run in a ``while_loop`` (one or two per iteration on a CPU, or 32 guarded ones
under ``vmap``/``jit`` and on accelerators), or, for a run without a stopping rule
under ``vmap``/``jit`` (``Spec.fixed_length``: a sweep, which stops only where
it diverges), as one ``lax.scan`` of guarded steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxgd.calculus import hessian_matvec, top_eigenvalue
from jaxgd._partition import Static, combine
from jaxgd.run._batches import batch_indices, take_rows
from jaxgd.run._result import RUNNING, History, Result, Status

__all__ = [
    "Carry",
    "Finish",
    "Spec",
    "finish",
    "first_segment",
    "next_segment",
    "result_of",
    "start",
    "whole_run",
]


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
    inner_steps: int = 2  # steps per while-loop iteration (see _advance)
    select_update: bool = False  # a select instead of a cond around the update (accelerators)
    history_stride: int = 1  # steps between two history entries
    history_length: int = 0  # entries in the history (0: ceil(steps / history_stride))
    sharpness_every: int = 0  # > 0: record the sharpness every this many steps
    sharpness_iters: int = 20  # power iterations per record (warm-started)
    fixed_length: bool = False  # one segment of all the steps as a masked scan (see _advance)


class Carry(NamedTuple):
    """The whole state of a run between two steps."""

    step: jax.Array  # updates taken so far
    params: Any
    opt_state: Any
    status: jax.Array  # RUNNING or a Status code
    history: History
    probe: Any = None  # with sharpness_every: the last top eigenvectors (warm starts)


class Finish(NamedTuple):
    """The full-data evaluation at the end of a segment (what ``Result`` adds to the carry)."""

    loss: jax.Array
    status: jax.Array
    aux: Any


class _Run(NamedTuple):
    """The traced inputs of a run, rejoined with the static ones."""

    loss: Callable[..., Any]
    optimizer: Any


def _rejoin(spec: Spec, traced) -> _Run:
    loss_leaves, optimizer_leaves = traced
    return _Run(combine(loss_leaves, spec.loss), combine(optimizer_leaves, spec.optimizer))


def classify(loss, grad_norm, tol, target, otherwise):
    """The status after seeing ``loss`` and ``grad_norm`` (``otherwise`` if no rule fires)."""
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    return jnp.where(
        ~finite,
        Status.DIVERGED,
        jnp.where(
            loss <= target,
            Status.REACHED_TARGET,
            jnp.where(grad_norm <= tol, Status.CONVERGED, otherwise),
        ),
    ).astype(jnp.int32)


def _history_dtype(params):
    leaves = jax.tree.leaves(params)
    return jnp.result_type(jnp.float32, *(leaf.dtype for leaf in leaves))


def _data_is_finite(data):
    checks = [
        jnp.all(jnp.isfinite(a))
        for a in jax.tree.leaves(data)
        if jnp.issubdtype(a.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def _length(spec: Spec) -> int:
    return spec.history_length or -(-spec.steps // spec.history_stride)


def _init_carry(spec: Spec, run: _Run, params, data) -> Carry:
    """The state before the first step; a run whose data holds NaN or inf is
    over before it starts (``DIVERGED`` at step 0, the initial params kept)."""
    length = _length(spec)
    nan = jnp.full((length,), jnp.nan, _history_dtype(params))
    path = curvature = preconditioned = probe = None
    if spec.record_params:
        path = jax.tree.map(lambda p: jnp.full((length, *p.shape), jnp.nan, p.dtype), params)
    opt_state = run.optimizer.init(params)
    if spec.sharpness_every:
        curvature = nan
        flat = ravel_pytree(params)[0]
        start = jax.random.normal(jax.random.PRNGKey(0), flat.shape, flat.dtype)
        probe = (start, start)
        if _preconditioner(run, params, opt_state) is not None:
            preconditioned = nan
    return Carry(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=opt_state,
        status=jnp.where(_data_is_finite(data), RUNNING, Status.DIVERGED).astype(jnp.int32),
        history=History(
            loss=nan,
            grad_norm=nan,
            params=path,
            sharpness=curvature,
            preconditioned=preconditioned,
            stride=spec.history_stride,
        ),
        probe=probe,
    )


def _preconditioner(run: _Run, grads, opt_state):
    """The optimizer's preconditioner for this step (None for a rule without one,
    and for optax's optimizers, which do not answer ``preconditioner``)."""
    preconditioner = getattr(run.optimizer, "preconditioner", None)
    return None if preconditioner is None else preconditioner(grads, opt_state)


def _measure(spec: Spec, run: _Run, c: Carry, batch, grads):
    """The sharpness at ``c.params`` (and the preconditioned one for Adam), warm-started."""
    loss = lambda p: _loss_fn(spec, run)(p, batch)[0]
    matvec = hessian_matvec(loss, c.params)
    plain, plain_vector = top_eigenvalue(matvec, c.probe[0], spec.sharpness_iters)
    p = _preconditioner(run, grads, c.opt_state)
    if p is None:
        return (plain, plain_vector), (jnp.nan, c.probe[1])
    scale = jax.lax.rsqrt(p)  # P^-1/2 H P^-1/2 has the eigenvalues of P^-1 H, and is symmetric
    value, vector = top_eigenvalue(
        lambda v: scale * matvec(scale * v), c.probe[1], spec.sharpness_iters
    )
    return (plain, plain_vector), (value, vector)


def _loss_fn(spec: Spec, run: _Run):
    """``f(params, batch) -> (loss, aux)`` whatever the loss's own signature."""

    def f(params, batch):
        out = run.loss(params, batch) if spec.has_data else run.loss(params)
        return out if spec.has_aux else (out, None)

    return f


def _evaluate(spec: Spec, run: _Run, params, batch):
    """Loss, aux, gradient and gradient norm at ``params``."""
    (loss, aux), grads = jax.value_and_grad(_loss_fn(spec, run), has_aux=True)(params, batch)
    grad_norm = optax.tree.norm(jax.tree.map(lambda g: g.astype(jnp.float32), grads))
    return loss, aux, grads, grad_norm


_UNROLL_MOST = 2  # inner steps written out one after the other; more run as a fori_loop


def _advance(spec: Spec, run: _Run, carry: Carry, data, key, tol, target, stop_at) -> Carry:
    """Run steps until the run stops or ``carry.step == stop_at``."""
    if spec.batch_size is not None:
        indices = batch_indices(spec.n_examples, spec.batch_size, spec.steps, key)
    loss_fn = _loss_fn(spec, run)

    def batch_at(step):
        return data if spec.batch_size is None else spec.gather(data, indices[step])

    def running(c: Carry):
        return (c.status == RUNNING) & (c.step < stop_at)

    def entry(at):
        """The history entry of step ``at`` (past the end, so dropped, if it has none)."""
        if spec.history_stride == 1:
            return at
        return jnp.where(at % spec.history_stride == 0, at // spec.history_stride, _length(spec))

    def put(buffer, at, value):
        return (
            None if buffer is None else buffer.at[at].set(value.astype(buffer.dtype), mode="drop")
        )

    def record(h: History, at, loss, grad_norm, params, curvature=None) -> History:
        at = entry(at)
        return History(
            loss=put(h.loss, at, loss),
            grad_norm=put(h.grad_norm, at, grad_norm),
            params=None
            if h.params is None
            else jax.tree.map(lambda path, p: path.at[at].set(p, mode="drop"), h.params, params),
            sharpness=h.sharpness if curvature is None else put(h.sharpness, at, curvature[0]),
            preconditioned=h.preconditioned
            if curvature is None
            else put(h.preconditioned, at, curvature[1]),
            stride=h.stride,
        )

    def curvature_at(c: Carry, batch, grads, at):
        """The sharpness where ``at`` is a multiple of ``sharpness_every`` (else NaN),
        and the eigenvectors to warm-start the next measurement from."""
        nan = jnp.asarray(jnp.nan, c.history.sharpness.dtype)

        def measure(_):
            (plain, v), (pre, w) = _measure(spec, run, c, batch, grads)
            return (plain.astype(nan.dtype), jnp.asarray(pre, nan.dtype)), (v, w)

        due = (at % spec.sharpness_every == 0) & (at < spec.steps)
        return jax.lax.cond(due, measure, lambda _: ((nan, nan), c.probe), None)

    def step(c: Carry, live=None, index=None) -> Carry:
        """One step; with ``live`` (a traced bool), a no-op where it is False.

        ``index``: the step a fixed-length scan is at (the same for every run
        of a vmapped sweep, equal to ``c.step`` while the run is live).
        """
        batch = batch_at(c.step)
        loss, _, grads, grad_norm = _evaluate(spec, run, c.params, batch)
        status = classify(loss, grad_norm, tol, target, RUNNING)
        at = c.step
        if live is not None:  # a stopped run keeps its status; its writes are dropped
            status = jnp.where(live, status, c.status)
            at = jnp.where(live, c.step, spec.steps)
        probe = c.probe
        curvature = None
        if spec.sharpness_every:
            # In a scan, due by its index rather than ``at``: unbatched under
            # vmap, so the measurement stays a cond instead of running every
            # step. A stopped run's value is dropped (``at``), its probe kept.
            curvature, probe = curvature_at(c, batch, grads, at if index is None else index)
            if live is not None and index is not None:
                probe = jax.tree.map(lambda a, b: jnp.where(live, a, b), probe, c.probe)
        history = record(c.history, at, loss, grad_norm, c.params, curvature)
        go = status == RUNNING
        if live is not None:
            go = go & live

        def update(params_and_state):
            params, opt_state = params_and_state
            extra = {}
            if spec.extra_args:  # optax's line searches and L-BFGS evaluate the loss themselves
                extra = dict(
                    value=loss,
                    grad=grads,
                    value_fn=lambda p: loss_fn(p, batch)[0],
                )
            updates, new_state = run.optimizer.update(grads, opt_state, params, **extra)
            return optax.apply_updates(params, updates), new_state

        # On a CPU a cond, not where(go, new, old): the update then writes params
        # and state in place, as a plain optax step does. With where(), XLA:CPU
        # fuses the new moments into both the select and the params update, so
        # both read the old moments after they are overwritten, and it copies
        # params, mu and nu every step (3 extra passes over memory). On a GPU a
        # cond waits for its predicate on the host every step, and where() is
        # faster (H100: 1000 small Adam steps 21 -> 18 ms, the 10M-param step
        # 1.43x -> 1.25x the bare Adam kernel; benchmarks/speed.py). Under vmap
        # the cond becomes that select anyway, with the same values.
        if spec.select_update:
            new = update((c.params, c.opt_state))
            params, opt_state = jax.tree.map(
                lambda a, b: jnp.where(go, a, b), new, (c.params, c.opt_state)
            )
        else:
            params, opt_state = jax.lax.cond(go, update, lambda ps: ps, (c.params, c.opt_state))
        return Carry(
            step=c.step + go.astype(jnp.int32),
            params=params,
            opt_state=opt_state,
            status=status,
            history=history,
            probe=probe,
        )

    if spec.fixed_length:
        # All the steps, guarded, as one scan: for runs that go to the end
        # anyway (a vmapped sweep without tol or target stops only where it
        # diverges). Under vmap a while_loop selects its whole carry, history
        # buffers included, wherever its condition is evaluated; a scan has no
        # condition. (Stacking each step's entry as the scan's output instead
        # of writing it into the carry measured no faster, and rounds the loss
        # differently.) A stopped run's steps change nothing, as in the loop.
        def scanned(c: Carry, index) -> tuple[Carry, None]:
            return step(c, running(c), index), None

        at_steps = jnp.arange(spec.steps, dtype=jnp.int32)
        return jax.lax.scan(scanned, carry, at_steps)[0]

    if spec.steps <= _UNROLL_MOST:  # as the loop would, without the loop's own cost
        c = carry
        for i in range(spec.steps):
            c = c if i == 0 else jax.lax.optimization_barrier(c)
            c = step(c, running(c))
        return c

    def steps(c: Carry) -> Carry:
        # The loop condition guarantees the first step is live; further steps
        # in the same iteration are guarded (no-ops once the run has stopped).
        c = step(c)
        if spec.inner_steps > _UNROLL_MOST:
            # Under vmap the loop condition differs per run, so while_loop selects
            # the whole carry (history buffers included) every iteration; on a GPU
            # each iteration waits for the condition on the host. An inner loop
            # of guarded steps pays either once per inner_steps steps, at the
            # price of up to inner_steps - 1 idle steps at the very end.
            guarded = lambda _, c: step(c, running(c))
            return jax.lax.fori_loop(0, spec.inner_steps - 1, guarded, c)
        # One small run on a CPU: two steps per iteration pay the loop's own
        # cost (its condition, the copies at its back edge) once per two
        # steps. The barrier keeps XLA from fusing one step into the next,
        # which would round differently from the one-step loop (and from
        # optax's loop). For large params one step per iteration is faster
        # (see jaxgd.minimize's _UNROLL_BYTES); the values are the same.
        for _ in range(spec.inner_steps - 1):
            c = jax.lax.optimization_barrier(c)
            c = step(c, running(c))
        return c

    return jax.lax.while_loop(running, steps, carry)


def _finish(spec: Spec, run: _Run, carry: Carry, data, tol, target) -> Finish:
    """Evaluate the params on the full data and settle the status."""
    loss, aux, _, grad_norm = _evaluate(spec, run, carry.params, data)
    done = (carry.status == RUNNING) & (carry.step >= spec.steps)
    status = jnp.where(done, classify(loss, grad_norm, tol, target, Status.MAX_STEPS), carry.status)
    return Finish(loss=loss, status=status.astype(jnp.int32), aux=aux)


@functools.partial(jax.jit, static_argnums=0)
def start(spec: Spec, traced, params, data) -> Carry:
    """The state before the first step (a chunked run's starting point)."""
    return _init_carry(spec, _rejoin(spec, traced), params, data)


def _first_segment(spec: Spec, traced, params, data, key, tol, target, stop_at, last):
    run = _rejoin(spec, traced)
    carry = _init_carry(spec, run, params, data)
    carry = _advance(spec, run, carry, data, key, tol, target, stop_at)
    return carry, _finish(spec, run, carry, data, tol, target) if last else None


@functools.partial(jax.jit, static_argnums=(0, 8))
def first_segment(spec: Spec, traced, params, data, key, tol, target, stop_at, last=True):
    """Start a run and take its steps up to ``stop_at``: ``(carry, finish)``.

    With ``last=False`` (a segment that ``stop_at`` ends before the run's
    end) ``finish`` is None: the full-data evaluation of :func:`finish` is
    only needed once the run is over.
    """
    return _first_segment(spec, traced, params, data, key, tol, target, stop_at, last)


@functools.partial(jax.jit, static_argnums=0)
def whole_run(spec: Spec, traced, params, data, key, tol, target) -> Result:
    """A whole run in one program: its :class:`Result` (and nothing a next
    segment would need, such as the optimizer state: fewer outputs to make)."""
    carry, finish = _first_segment(spec, traced, params, data, key, tol, target, spec.steps, True)
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
    )


def next_segment(spec: Spec, traced, carry: Carry, data, key, tol, target, stop_at, last=True):
    """Take a started run's steps up to ``stop_at``: ``(carry, finish)`` (see
    :func:`first_segment` for ``last``).

    The carry's arrays but its step and status are donated: the new carry
    reuses their memory (the params and the optimizer state are updated in
    place rather than copied), so ``carry`` cannot be used afterwards but for
    ``carry.step`` and ``carry.status``.
    """
    counters = (carry.step, carry.status)
    rest = carry._replace(step=None, status=None)
    return _next_segment(spec, traced, counters, rest, data, key, tol, target, stop_at, last)


@functools.partial(jax.jit, static_argnums=(0, 9), donate_argnums=3)
def _next_segment(spec: Spec, traced, counters, rest: Carry, data, key, tol, target, stop_at, last):
    run = _rejoin(spec, traced)
    carry = rest._replace(step=counters[0], status=counters[1])
    carry = _advance(spec, run, carry, data, key, tol, target, stop_at)
    return carry, _finish(spec, run, carry, data, tol, target) if last else None


@functools.partial(jax.jit, static_argnums=0)
def finish(spec: Spec, traced, carry: Carry, data, tol, target) -> Finish:
    """The full-data evaluation of a segment's carry (a run that a segment
    with ``last=False`` ended, or one interrupted there)."""
    return _finish(spec, _rejoin(spec, traced), carry, data, tol, target)

"""One step of a run, written once: evaluate, record, stop rules, update.

Each step ``k`` (from 0):

1. evaluate ``loss(params_k)`` and ``g_k = grad loss(params_k)`` (on the
   ``k``-th minibatch when ``batch_size`` is given) and record them in the
   history (:meth:`jaxgd.History.record`), with, where due, the sharpness and
   the loss on the held-out data;
2. stop with ``DIVERGED`` if either is not finite, ``REACHED_TARGET`` if the
   loss is ``<= target``, ``CONVERGED`` if ``|g_k| <= tol``;
3. otherwise ``params_{k+1} = params_k + update(g_k)``.

:func:`start` is the carry before the first step and :func:`finish` the
full-data evaluation after the last. Every function takes what it needs as
arguments (the static :class:`~jaxgd.run._state.Spec`, the rejoined
:class:`~jaxgd.run._state.Run`, the :class:`~jaxgd.run._state.Inputs`): the
drivers of :mod:`jaxgd.run._loop` bind them and loop. The optimizer is asked
for what it knows through its protocol (``update``, ``init`` and, where it
has one, ``preconditioner``), never by its class.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

import jaxgd.run._diagnostics as instruments
from jaxgd.calculus import hessian_matvec, top_eigenvalue
from jaxgd.run._examples import MeanOverExamples
from jaxgd.run._result import RUNNING, History, Status, bookkeeping_dtype
from jaxgd.run._state import Carry, Finish, Inputs, Run, Spec

__all__ = ["classify", "finish", "running", "start", "step"]


def classify(loss, grad_norm, tol, target, otherwise):
    """The status after seeing ``loss`` and ``grad_norm`` (``otherwise`` if no rule fires)."""
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    code = lambda status: jnp.int32(status)  # noqa: E731 - int32, never int64 under x64
    return jnp.where(
        ~finite,
        code(Status.DIVERGED),
        jnp.where(
            loss <= target,
            code(Status.REACHED_TARGET),
            jnp.where(grad_norm <= tol, code(Status.CONVERGED), otherwise),
        ),
    ).astype(jnp.int32)


def _data_is_finite(data):
    checks = [
        jnp.all(jnp.isfinite(a))
        for a in jax.tree.leaves(data)
        if jnp.issubdtype(a.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def _eval_buffers(spec: Spec, run: Run, params, eval_data, length: int, state=None):
    """``(eval_loss, eval_aux)``: NaN-filled history buffers for the held-out
    evaluation (aux leaves that cannot hold NaN are kept as floats)."""
    dtype = bookkeeping_dtype(params)
    out = jax.eval_shape(lambda p, b: _loss_and_aux(spec, run, p, b, state), params, eval_data)

    def buffer(a):
        kept = a.dtype if jnp.issubdtype(a.dtype, jnp.inexact) else dtype
        return jnp.full((length, *a.shape), jnp.nan, kept)

    return jnp.full((length,), jnp.nan, dtype), jax.tree.map(buffer, out[1])


def start(spec: Spec, run: Run, params, data, eval_data=None, opt_state=None, state=None) -> Carry:
    """The state before the first step; a run whose data holds NaN or inf is
    over before it starts (``DIVERGED`` at step 0, the initial params kept).
    ``opt_state``: the optimizer state to go on from (None: ``init(params)``);
    ``state``: the model state (with ``spec.has_state``)."""
    length = spec.history_length or -(-spec.steps // spec.history_stride)
    nan = jnp.full((length,), jnp.nan, bookkeeping_dtype(params))
    path = curvature = preconditioned = probe = eval_loss = eval_aux = None
    if spec.record_params:
        path = jax.tree.map(lambda p: jnp.full((length, *p.shape), jnp.nan, p.dtype), params)
    if opt_state is None:
        opt_state = run.optimizer.init(params)
    if spec.sharpness_every:
        curvature = nan
        flat = ravel_pytree(params)[0]
        first = jax.random.normal(jax.random.PRNGKey(0), flat.shape, flat.dtype)
        probe = (first, first)
        if _preconditioner(run, params, opt_state) is not None:
            preconditioned = nan
    if spec.eval_every:
        eval_loss, eval_aux = _eval_buffers(spec, run, params, eval_data, length, state)
    dtype = bookkeeping_dtype(params)
    diagnosed = instruments.buffers(spec.diagnostics, params, length, dtype)
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
            eval_loss=eval_loss,
            eval_aux=eval_aux,
            **diagnosed,
            stride=spec.history_stride,
        ),
        probe=probe,
        last_update=instruments.start(spec.diagnostics, params, dtype),
        state=state,
    )


def _preconditioner(run: Run, grads, opt_state):
    """The optimizer's preconditioner for this step (None for a rule without one,
    and for optax's optimizers, which do not answer ``preconditioner``)."""
    preconditioner = getattr(run.optimizer, "preconditioner", None)
    return None if preconditioner is None else preconditioner(grads, opt_state)


def _call_loss(spec: Spec, run: Run, params, batch, state):
    """``((loss, aux), new_state)`` at ``params`` whatever the loss's own
    signature (``new_state`` is ``state`` for a loss without one)."""
    if spec.has_state:  # rebuilt in the current trace (NNX Variables remember theirs)
        state = jax.tree.map(lambda a: a, state)
    args = ((state,) if spec.has_state else ()) + ((batch,) if spec.has_data else ())
    out = run.loss(params, *args)
    out, new_state = out if spec.has_state else (out, state)
    return (out if spec.has_aux else (out, None)), new_state


def _loss_and_aux(spec: Spec, run: Run, params, batch, state=None):
    """``(loss, aux)`` at ``params`` (the model state it returns is dropped)."""
    return _call_loss(spec, run, params, batch, state)[0]


def _evaluate(spec: Spec, run: Run, params, batch, state=None):
    """Loss, aux, gradient, gradient norm and the new model state at ``params``."""

    def f(p, b):
        (loss, aux), new_state = _call_loss(spec, run, p, b, state)
        return loss, (aux, new_state)

    (loss, (aux, new_state)), grads = jax.value_and_grad(f, has_aux=True)(params, batch)
    return loss, aux, grads, _grad_norm(params, grads), new_state


def _grad_norm(params, grads) -> jax.Array:
    dtype = bookkeeping_dtype(params)
    return optax.tree.norm(jax.tree.map(lambda g: g.astype(dtype), grads))


def _noise_gives_step(spec: Spec, run: Run) -> bool:
    """Whether the noise scale's per-example pass gives the step its loss and gradient:
    recorded every step, of a loss said to be a mean over examples
    (:func:`jaxgd.run.mean_over_examples`, which returns one scalar: no aux, no
    model state)."""
    return (
        "noise_scale" in spec.diagnostics
        and spec.history_stride == 1
        and isinstance(run.loss, MeanOverExamples)
    )


def _measure(spec: Spec, run: Run, c: Carry, batch, grads):
    """The sharpness at ``c.params`` (and the preconditioned one for Adam), warm-started."""
    loss = lambda p: _loss_and_aux(spec, run, p, batch, c.state)[0]  # noqa: E731
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


def _sharpness_at(spec: Spec, run: Run, c: Carry, batch, grads, at):
    """The sharpness where ``at`` is a multiple of ``sharpness_every`` (else NaN),
    and the eigenvectors to warm-start the next measurement from."""
    nan = jnp.asarray(jnp.nan, c.history.sharpness.dtype)

    def measure(_):
        (plain, v), (pre, w) = _measure(spec, run, c, batch, grads)
        return (plain.astype(nan.dtype), jnp.asarray(pre, nan.dtype)), (v, w)

    due = (at % spec.sharpness_every == 0) & (at < spec.steps)
    return jax.lax.cond(due, measure, lambda _: ((nan, nan), c.probe), None)


def _evaluation_at(spec: Spec, run: Run, c: Carry, eval_data, at):
    """``(loss, aux)`` on the held-out data where ``at`` is a multiple of
    ``eval_every`` (else NaN), in the history's dtypes."""
    history = c.history
    like = (history.eval_loss, history.eval_aux)

    def evaluate(_):
        out = _loss_and_aux(spec, run, c.params, eval_data, c.state)
        return jax.tree.map(lambda buffer, v: v.astype(buffer.dtype), like, out)

    def skip(_):
        return jax.tree.map(lambda buffer: jnp.full(buffer.shape[1:], jnp.nan, buffer.dtype), like)

    due = (at % spec.eval_every == 0) & (at < spec.steps)
    return jax.lax.cond(due, evaluate, skip, None)


def _update(spec: Spec, run: Run, c: Carry, batch, loss, grads, go):
    """``(params, opt_state)`` after the update where ``go``, unchanged elsewhere."""

    def update(params_and_state):
        params, opt_state = params_and_state
        extra = {}
        if spec.extra_args:  # optax's line searches and L-BFGS evaluate the loss themselves
            extra = dict(
                value=loss,
                grad=grads,
                value_fn=lambda p: _loss_and_aux(spec, run, p, batch, c.state)[0],
            )
        updates, new_state = run.optimizer.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), new_state

    # On a CPU a cond, not where(go, new, old): the update then writes params
    # and state in place, as a plain optax step does. With where(), XLA:CPU
    # fuses the new moments into both the select and the params update, so
    # both read the old moments after they are overwritten, and it copies
    # params, mu and nu every step (3 extra passes over memory). On a GPU a
    # cond waits for its predicate on the host every step, and where() is
    # faster (benchmarks/results/speed.md). Under vmap the cond becomes that
    # select anyway, with the same values. The plan chooses (Spec.select_update).
    if spec.select_update:
        new = update((c.params, c.opt_state))
        return jax.tree.map(lambda a, b: jnp.where(go, a, b), new, (c.params, c.opt_state))
    return jax.lax.cond(go, update, lambda ps: ps, (c.params, c.opt_state))


def _batch_at(spec: Spec, inputs: Inputs, at):
    """The batch of step ``at``: the data, or its ``at``-th minibatch."""
    if spec.batch_size is None:
        return inputs.data
    return spec.gather(inputs.data, inputs.order[at])


def running(stop_at, c: Carry):
    """Whether the run goes on: no rule has fired and ``stop_at`` is not reached."""
    return (c.status == RUNNING) & (c.step < stop_at)


def step(spec: Spec, run: Run, inputs: Inputs, c: Carry, live=None, index=None) -> Carry:
    """One step; with ``live`` (a traced bool), a no-op where it is False.

    ``index``: the step a fixed-length scan is at (the same for every run
    of a vmapped sweep, equal to ``c.step`` while the run is live).
    """
    batch = _batch_at(spec, inputs, c.step)
    noise = None
    if _noise_gives_step(spec, run):  # one backward pass a step, not two
        loss, grads, noise = instruments.noise_and_step(run.loss.example_loss, c.params, batch)
        grad_norm, new_state = _grad_norm(c.params, grads), c.state
    else:
        loss, _, grads, grad_norm, new_state = _evaluate(spec, run, c.params, batch, c.state)
    status = classify(loss, grad_norm, inputs.tol, inputs.target, RUNNING)
    at = c.step
    if live is not None:  # a stopped run keeps its status; its writes are dropped
        status = jnp.where(live, status, c.status)
        at = jnp.where(live, c.step, spec.steps)
    probe = c.probe
    sharpness = None
    if spec.sharpness_every:
        # In a scan, due by its index rather than ``at``: unbatched under
        # vmap, so the measurement stays a cond instead of running every
        # step. A stopped run's value is dropped (``at``), its probe kept.
        sharpness, probe = _sharpness_at(spec, run, c, batch, grads, at if index is None else index)
        if live is not None and index is not None:
            probe = jax.tree.map(lambda a, b: jnp.where(live, a, b), probe, c.probe)
    evaluation = None
    if spec.eval_every:  # due by the scan's index too; a stopped run's value dropped (``at``)
        evaluation = _evaluation_at(spec, run, c, inputs.eval_data, at if index is None else index)
    history = c.history.record(at, loss, grad_norm, c.params, sharpness, evaluation)
    go = status == RUNNING
    if live is not None:
        go = go & live
    params, opt_state = _update(spec, run, c, batch, loss, grads, go)
    if spec.has_state:  # the state moves on with the params (kept where the run stopped)
        new_state = jax.tree.map(lambda a, b: jnp.where(go, a, b), new_state, c.state)
    last_update = c.last_update
    if spec.diagnostics:
        history, last_update = _diagnose(
            spec, run, c, batch, history, (loss, grads, params, opt_state, go, at), index, noise
        )
    return Carry(
        step=c.step + go.astype(jnp.int32),
        params=params,
        opt_state=opt_state,
        status=status,
        history=history,
        probe=probe,
        last_update=last_update,
        state=new_state,
    )


def _diagnose(spec: Spec, run: Run, c: Carry, batch, history, seen, index, noise=None):
    """The instruments of :mod:`jaxgd.run._diagnostics` on this step: ``seen`` is
    ``(loss, grads)`` at ``c.params``, the params and optimizer state after the
    update, whether it was taken and the step's entry ``at``. The noise scale
    (``noise`` where the step's evaluation made it) is due by the scan's index
    (as the sharpness), so that under vmap it is computed only at entries; the
    effective learning rate is read from the two states."""
    loss, grads, params, opt_state, go, at = seen
    rate = None
    if "effective_lr" in spec.diagnostics:
        rate = instruments.effective_lr(run.optimizer, c.opt_state, opt_state)
    if noise is not None:
        noise = noise.astype(history.loss.dtype)
    elif "noise_scale" in spec.diagnostics:
        loss_of = lambda p, b: _loss_and_aux(spec, run, p, b, c.state)[0]  # noqa: E731
        due_at = at if index is None else index
        noise = instruments.noise_scale_at(
            loss_of, c.params, batch, due_at, spec.history_stride, spec.steps, history.loss.dtype
        )
    return instruments.observe(
        spec.diagnostics, history, c.last_update, c.params, params, loss, grads, go, at,
        spec.steps, noise, rate,
    )  # fmt: skip


def finish(spec: Spec, run: Run, carry: Carry, data: Any, tol, target) -> Finish:
    """Evaluate the params on the full data, with the last model state (the
    state this evaluation returns is dropped), and settle the status."""
    loss, aux, _, grad_norm, _ = _evaluate(spec, run, carry.params, data, carry.state)
    done = (carry.status == RUNNING) & (carry.step >= spec.steps)
    status = jnp.where(done, classify(loss, grad_norm, tol, target, Status.MAX_STEPS), carry.status)
    return Finish(loss=loss, status=status.astype(jnp.int32), aux=aux)

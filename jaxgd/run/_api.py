"""``gd.minimize``: check the arguments, plan the run, execute it.

:func:`minimize` first asks the warm-call memory (:mod:`jaxgd.run._warm`) for
a call like this one seen before; otherwise :func:`_minimize_cold` checks
every argument (:mod:`jaxgd.run._checks`: nothing compiles before a bad
argument is reported), splits the loss and the optimizer into traced values
and a compiled-in rest (:mod:`jaxgd._partition`), places a mesh run's arrays
(:mod:`jaxgd.distributed`), plans the static :class:`~jaxgd.run._state.Spec`
(:mod:`jaxgd.run._plan`) and executes it: one compiled call under
``jit``/``vmap`` (:mod:`jaxgd.run._loop`), a remembered plain call, or
compiled segments from Python (:mod:`jaxgd.run._segments`: checkpoints,
progress, Ctrl-C).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax

from jaxgd import distributed
from jaxgd._partition import partition
from jaxgd.run._batches import take_rows
from jaxgd.run._checks import Call, check_call
from jaxgd.run._examples import MeanOverExamples
from jaxgd.run._fingerprint import digest, fingerprint
from jaxgd.run._loop import whole_run
from jaxgd.run._plan import plan
from jaxgd.run._result import History, Result, Status
from jaxgd.run._segments import RunInterrupted, run_in_segments
from jaxgd.run._threaded import stateless
from jaxgd.run._warm import CALLS

__all__ = ["History", "Result", "RunInterrupted", "Status", "minimize"]


def minimize(
    loss: Callable[..., Any],
    params: Any,
    optimizer: Any,
    *,
    steps: int,
    data: Any = None,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    tol: float | None = None,
    target: float | None = None,
    has_aux: bool = False,
    state: Any = None,
    opt_state: Any = None,
    eval_data: Any = None,
    eval_every: int | None = None,
    diagnostics: tuple[str, ...] = (),
    record_params: bool = False,
    history_every: int | None = None,
    sharpness_every: int | None = None,
    sharpness_iters: int = 20,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    mesh: jax.sharding.Mesh | None = None,
) -> Result:
    """Minimise ``loss`` from ``params`` with ``optimizer``, in one compiled loop.

    Args:
        loss: ``loss(params)``, or ``loss(params, batch)`` when ``data`` is
            given; returns a float scalar, or ``(scalar, aux)`` with
            ``has_aux=True``. It may be a pytree (``jax.tree_util.Partial``,
            an Equinox module, a callable dataclass): its array and float
            leaves are traced, so new values reuse the compiled program.
        params: the starting point, a pytree of floating-point arrays.
        optimizer: a jaxgd optimizer (``gd.adam(1e-2)``) or any optax
            ``GradientTransformation`` (those that need the loss, such as
            ``optax.lbfgs`` and the line searches, are handed ``value``,
            ``grad`` and ``value_fn``; in minibatch runs ``value_fn``
            evaluates the current batch). jaxgd optimizers are traced values,
            so a new learning rate reuses the compiled program; so is an
            optax optimizer's step size (the rest of it is compiled in).
        steps: the most updates to take (>= 1, at most 2**31 - 1).
        data: a pytree of arrays with a leading example axis, passed to
            ``loss`` as ``batch``.
        batch_size: draw minibatches of this many examples (a fresh
            permutation every epoch, from ``key``); None for full batch.
        key: PRNG key of the minibatch order; required with ``batch_size``.
        tol: stop with ``CONVERGED`` once the gradient norm is ``<= tol``.
        target: stop with ``REACHED_TARGET`` once the loss is ``<= target``.
        has_aux: the loss returns ``(loss, aux)``; ``Result.aux`` is the aux
            at the returned params, on the full data.
        state: a model state the loss reads and updates (batch statistics,
            RNG counters: a pytree of arrays, such as the rest of
            ``nnx.split(model, nnx.Param, ...)`` or an ``eqx.nn.State``).
            The loss is then called ``loss(params, state[, batch])`` and
            returns ``(value, new_state)``, or ``((value, aux), new_state)``
            with ``has_aux``; the gradient is taken with respect to params
            only, and each step's ``new_state`` is the next step's
            ``state`` (kept where the run stops). ``Result.state`` is the
            state after the last step; ``Result.loss``, ``Result.aux`` and the
            held-out evaluations are computed with the state of their step,
            and the state those evaluations return is dropped. None: a loss
            without state.
        opt_state: the optimizer state to start from, e.g. ``result.opt_state``
            of an earlier run (with ``params=result.params``): the run goes on
            where that one ended, its step count included (schedules, Adam's
            bias correction), so 120 steps and then 80 more end with the bits
            of 200 steps in one call (full-batch; a minibatch run draws its
            order afresh from ``key``). None: ``optimizer.init(params)``.
        eval_data: held-out examples, a pytree like ``data`` (the same
            structure and trailing shapes, any number of examples): every
            ``eval_every`` steps the loss is evaluated on all of it (never
            minibatched) as ``loss(params, eval_data)`` and recorded in
            ``history.eval_loss`` (with ``has_aux``, the aux in
            ``history.eval_aux``). Needs ``data`` and ``eval_every``. With a
            ``mesh`` it is split over the data axis like ``data`` (its rows
            must divide by the axis size; in several processes, this
            process's rows). Off (None) it costs nothing: the compiled
            program is the one without it.
        eval_every: steps between two evaluations on ``eval_data`` (a
            positive integer; required with it). Only steps that are
            multiples of ``history.stride`` have an entry, so the loss is
            evaluated at the multiples of both (their least common
            multiple): ``eval_every=10`` with ``history_every=4`` evaluates
            at steps 0, 20, 40, ...
        diagnostics: instruments that say why a step overshoots, any of
            ``("alpha", "cosine", "update_ratio", "noise_scale",
            "effective_lr")``, each
            recorded at every history entry in ``history.<name>`` (``NaN``
            where undefined): the effective relative step size of the update
            taken (Cockpit's alpha: above 1 the step overshoots; on a
            quadratic ``lr * lambda - 1``), the cosine between successive
            updates, ``|update| / |params|`` per leaf (a pytree), and the
            gradient noise scale ``tr(Sigma) / |G|^2`` of the step's batch
            from per-example gradients (needs ``data`` with two or more
            examples a batch). ``"effective_lr"`` records the effective
            learning rate ``d * lr`` of the update taken, for the optimizers
            that adapt it (``optax.contrib.prodigy``,
            ``optax.contrib.dadapt_adamw``, alone or in optax's wrappers),
            read from their state (:func:`jaxgd.optimizers.effective_lr`);
            another optimizer is refused. Alpha reuses the next step's
            evaluation, so alpha and the cosine cost a few dot products a
            step; the noise scale costs one gradient per example of the
            batch (about one more backward pass a step; none more for a loss
            made by :func:`jaxgd.run.mean_over_examples` recorded every
            step, whose step takes its gradient from that pass). Off
            (``()``) they cost nothing. Estimators and biases:
            :mod:`jaxgd.run._diagnostics` and the diagnostics guide.
        record_params: keep the parameter path in ``history.params``.
        history_every: record every this many steps (default: every step up
            to a million entries, then ``ceil(steps / 1e6)``); ``1`` records
            every step whatever the budget. ``history.stride`` says which.
        sharpness_every: every this many steps, record the sharpness (the
            largest Hessian eigenvalue at the current params) in
            ``history.sharpness`` (NaN between), by ``sharpness_iters``
            power iterations on Hessian-vector products warm-started from the
            previous eigenvector; for an optimizer with a preconditioner
            (jaxgd's Adam) also the preconditioned sharpness in
            ``history.preconditioned``. In minibatch runs it is the current
            batch's. Each optimizer states its limit
            (:func:`jaxgd.optimizers.stability_limit`: ``2/lr`` for gradient
            descent). Off (None) it costs nothing;
            on, each record costs about ``4 * sharpness_iters`` gradients,
            twice that where the curvature of largest magnitude is negative
            (a shifted pass finds the largest eigenvalue) and under ``vmap``.
            Only steps that are multiples of ``history.stride`` are kept.
        sharpness_iters: power iterations per record (default 20).
        checkpoint: a path (a folder jaxgd owns): run in compiled chunks and
            write the whole run state there after each (atomically, with
            orbax-checkpoint; see :mod:`jaxgd.checkpoint`). If a checkpoint
            of the same run is already there, resume from it: the resumed run
            ends with the same bits as an uninterrupted one. A checkpoint of
            another run, or a path another live run holds, is an error.
        checkpoint_every: steps per chunk (default ``ceil(steps / 10)``).
        progress: show a tqdm progress bar.
        mesh: a :class:`jax.sharding.Mesh` (``jax.make_mesh`` or
            ``gd.distributed.data_mesh()``): split the data's examples over
            its data axis, replicate params and optimizer state, and let XLA
            all-reduce the gradient. The result equals the one-device run to
            float round-off. The number of examples and ``batch_size`` must
            divide by the data axis size. In a multi-process run
            (``gd.distributed.initialize()``) ``data`` is this process's
            rows. See :mod:`jaxgd.distributed`.

    Returns:
        A :class:`Result`. Works under ``jax.vmap`` (over params, optimizer
        hyperparameters, keys, ``tol``, ``target``, data or the loss's
        traced leaves) and ``jax.jit``.

    Raises:
        RunInterrupted: Ctrl-C during a run called from Python; its
            ``result`` holds the run so far (a subclass of
            ``KeyboardInterrupt``).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda p: jnp.sum((p - 3.0) ** 2)
        >>> result = gd.minimize(loss, jnp.zeros(2), gd.sgd(0.25), steps=100, tol=1e-5)
        >>> gd.Status(int(result.status)).name, int(result.steps)  # each step halves the error
        ('CONVERGED', 20)
        >>> result.params.round(4)
        Array([3., 3.], dtype=float32)
    """
    call = Call(
        loss=loss,
        params=params,
        optimizer=optimizer,
        steps=steps,
        data=data,
        batch_size=batch_size,
        key=key,
        tol=tol,
        target=target,
        has_aux=has_aux,
        state=state,
        opt_state=opt_state,
        record_params=record_params,
        history_every=history_every,
        sharpness_every=sharpness_every,
        sharpness_iters=sharpness_iters,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=progress,
        mesh=mesh,
        eval_data=eval_data,
        eval_every=eval_every,
        diagnostics=diagnostics,
    )
    return CALLS.run(call, _minimize_cold)


def _minimize_cold(call: Call, memo: tuple | None) -> Result:
    """Check, plan and execute ``call``; a plain one (``memo`` from the warm-call
    memory) is remembered, so that the next like it skips the checks. A mesh
    run is placed and run in its mesh's context (inside ``jax.set_mesh``)."""
    with distributed.mesh_context(call.mesh):
        return _checked_run(check_call(call), memo)


def _checked_run(call: Call, memo: tuple | None) -> Result:
    """Split, place, plan and execute a checked ``call``."""
    loss_traced, loss_static = partition(call.loss)
    optimizer_traced, optimizer_static = partition(call.optimizer)
    params, key, tol, target, eval_data = (
        call.params,
        call.key,
        call.tol,
        call.target,
        call.eval_data,
    )
    begin = (call.opt_state, call.state)  # what the run starts from besides params
    gather = take_rows
    if call.mesh is not None and call.data is not None:  # without data nothing is split
        placed, gather = distributed.place_run(
            call.mesh,
            call.n_examples,
            call.batch_size,
            (optimizer_traced, loss_traced, params, key, tol, target, begin),
            caller="minimize",
        )
        optimizer_traced, loss_traced, params, key, tol, target, begin = placed
    spec = plan(call, loss_static, optimizer_static, gather)
    traced = (loss_traced, optimizer_traced)
    if call.traced:  # under jit or vmap: one compiled program, no Python in between
        return whole_run(spec, traced, params, call.data, key, tol, target, eval_data, begin)
    if memo is not None:
        seen = CALLS.remember(memo, spec, params, call.data, key, eval_data)
        return seen.execute(memo[1], params, call.data, key, tol, target, eval_data)
    return run_in_segments(
        spec,
        traced,
        params,
        call.data,
        key,
        tol,
        target,
        checkpoint=None if call.checkpoint is None else os.fspath(call.checkpoint),
        every=call.checkpoint_every,
        fingerprint=None if call.checkpoint is None else lambda: _fingerprint(call, spec),
        progress=call.progress,
        eval_data=eval_data,
        begin=begin,
    )


def _fingerprint(call: Call, spec) -> dict:
    """What a checkpoint of ``call`` must agree on to be resumed (computed, and
    compiled, only under the checkpoint's lock)."""

    def loss_fn(p, batch):
        loss = stateless(call.loss, call.state)
        out = loss(p, batch) if call.data is not None else loss(p)
        return out if call.has_aux else (out, None)

    settings = {
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "tol": float(call.tol),
        "target": float(call.target),
        "has_aux": spec.has_aux,
        "record_params": spec.record_params,
        "history_every": spec.history_stride,
        "checkpoint_every": call.checkpoint_every,
    }
    if call.eval_data is not None:  # absent when off: older checkpoints still resume
        settings["eval_every"] = call.eval_every
    if call.diagnostics:  # likewise
        settings["diagnostics"] = list(call.diagnostics)
    if call.sharpness_every:  # likewise (0: off, as the checks leave it)
        settings["sharpness_every"] = call.sharpness_every
        settings["sharpness_iters"] = call.sharpness_iters
    if isinstance(call.loss, MeanOverExamples):  # its step may come from the per-example pass
        settings["mean_over_examples"] = True
    for name in ("state", "opt_state"):  # what the run starts from, absent when not given
        if getattr(call, name) is not None:
            settings[name] = digest(getattr(call, name))
    return fingerprint(
        loss_fn, call.optimizer, call.params, call.data, call.key, settings, call.eval_data
    )

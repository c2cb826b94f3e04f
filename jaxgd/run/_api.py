"""``gd.minimize``: check the arguments, place them, run the compiled loop.

The loop itself is :mod:`jaxgd.run._loop`; this module is the public entry
that prepares it: every argument is checked first (:mod:`jaxgd.run._checks`,
nothing compiles before a bad argument is reported), the loss and the
optimizer are split into traced values and a compiled-in rest
(:mod:`jaxgd._partition`), a mesh run places its arrays and hands the loop
its minibatch gather (:mod:`jaxgd.distributed`), and the run goes as one
compiled call under ``jit``/``vmap`` or as compiled segments from Python
(:mod:`jaxgd.run._segments`: checkpoints, progress, Ctrl-C).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd import checkpoint as _checkpoint
from jaxgd import distributed as distributed
from jaxgd.optimizers import Optimizer, check_optimizer
from jaxgd._partition import partition
from jaxgd.run import _checks as checks, _warm as warm_calls
from jaxgd.run._batches import take_rows
from jaxgd.run._segments import RunInterrupted, run_in_segments
from jaxgd.run._fingerprint import fingerprint
from jaxgd.run._loop import Spec, whole_run
from jaxgd.run._result import History, Result, Status

__all__ = ["History", "Result", "RunInterrupted", "Status", "minimize"]

MAX_HISTORY = 1_000_000
"""Entries a history holds at most unless ``history_every`` says otherwise."""

_INNER_STEPS = 32  # see loop._advance; measured in benchmarks/speed.py (sweep, GPU run loop)
_UNROLL_BYTES = 4 << 20
"""Params up to this size run two steps per loop iteration on a CPU, larger ones
one: on the 2-core CPU of benchmarks/speed.py, two steps per iteration took
0.83-0.98x the time of one from 16 to 65536 float32 params, the same at 1M,
and 1.1x at 10M (the 10M-param Adam step)."""


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
            so a new learning rate reuses the compiled program; optax ones
            are compiled in.
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
        record_params: keep the parameter path in ``history.params``.
        history_every: record every this many steps (default: every step up
            to a million entries, then ``ceil(steps / 1e6)``); ``1`` records
            every step whatever the budget. ``history.stride`` says which.
        sharpness_every: every this many steps, record the sharpness (the
            largest Hessian eigenvalue at the current params) in
            ``history.sharpness`` (NaN between), by ``sharpness_iters``
            power iterations on Hessian-vector products warm-started from the
            previous eigenvector; for jaxgd's Adam also the preconditioned
            sharpness in ``history.preconditioned``. In minibatch runs it is
            the current batch's. See :mod:`jaxgd.optimizers._stability` for the limits
            (``2/lr`` for gradient descent). Off (None) it costs nothing;
            on, each record costs about ``4 * sharpness_iters`` gradients.
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

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda p: jnp.sum((p - 3.0) ** 2)
        >>> result = gd.minimize(loss, jnp.zeros(2), gd.sgd(0.25), steps=100, tol=1e-5)
        >>> gd.Status(int(result.status)).name, int(result.steps)  # each step halves the error
        ('CONVERGED', 20)
        >>> result.params.round(4)
        Array([3., 3.], dtype=float32)
    """
    plain = checkpoint is None and checkpoint_every is None and progress is False and mesh is None
    signature = leaves = None
    if plain:  # a call like one seen before: its checks passed, only values are checked again
        signature, leaves = warm_calls.signature(
            loss,
            params,
            optimizer,
            data,
            key,
            steps,
            batch_size,
            has_aux,
            record_params,
            history_every,
            sharpness_every,
            sharpness_iters,
        )
        seen = warm_calls.recall(signature)
        if seen is not None:
            off = seen.off  # a rule switched off, placed once
            tol = off if tol is None else checks.check_threshold("tol", tol, nonnegative=True)
            if target is None:
                target = off
            else:
                target = checks.check_threshold("target", target, nonnegative=False)
            if seen.convert:
                params, data = checks.check_params(params), checks.check_data(data)[0]
                checks.warn_if_not_finite(data)
            elif not checks.all_finite(leaves[seen.data], seen.finite):
                checks.warn_if_not_finite(data)
            return seen.run(leaves, params, data, key, tol, target)
    if not callable(loss):
        raise TypeError(f"minimize: loss must be a function loss(params[, batch]), got {loss!r}.")
    check_optimizer(optimizer, "minimize")
    steps = checks.check_positive_int("minimize", "steps", steps, most=checks.MAX_STEPS)
    has_aux = checks.check_bool("minimize", "has_aux", has_aux)
    record_params = checks.check_bool("minimize", "record_params", record_params)
    progress = checks.check_bool("minimize", "progress", progress)
    params = checks.check_params(params)
    data, n_examples = checks.check_data(data)
    if mesh is not None:  # the data split over the mesh: in several processes, the global rows
        mesh = distributed.auto_mesh(mesh)
        distributed.data_axis(mesh)
        if data is not None:
            data = distributed.shard_data(data, mesh)
            n_examples = jax.tree.leaves(data)[0].shape[0]
    batch_size = _check_batch_size(batch_size, data, n_examples)
    key = checks.check_key(key, required=batch_size is not None, why="a minibatch run")
    checks.check_order_size(steps, batch_size, n_examples)
    no_rule = tol is None and target is None
    tol = checks.check_threshold("tol", tol, nonnegative=True)
    target = checks.check_threshold("target", target, nonnegative=False)
    traced_call = checks.is_traced(loss, params, optimizer, data, key, tol, target)
    every = _check_chunking(checkpoint, checkpoint_every, progress, traced_call, steps)
    stride, length = _history_layout(history_every, steps, params, record_params)
    sharpness_every = _check_curvature(sharpness_every, sharpness_iters)
    _check_schedule(optimizer, steps)
    checks.check_loss_output(loss, params, data, batch_size, has_aux=has_aux)
    checks.warn_if_not_finite(data)

    loss_traced, loss_static = partition(loss)
    optimizer_traced, optimizer_static = partition(optimizer)
    gather = take_rows
    if mesh is not None and data is not None:  # without data there is nothing to split
        (optimizer_traced, loss_traced, params, key, tol, target), gather = distributed.place_run(
            mesh, n_examples, batch_size, (optimizer_traced, loss_traced, params, key, tol, target)
        )
    spec = Spec(
        loss=loss_static,
        optimizer=optimizer_static,
        steps=steps,
        has_data=data is not None,
        batch_size=batch_size,
        n_examples=n_examples,
        record_params=record_params,
        has_aux=has_aux,
        extra_args=isinstance(optimizer, optax.GradientTransformationExtraArgs | Optimizer),
        gather=gather,
        inner_steps=_inner_steps(traced_call, params),
        select_update=jax.default_backend() != "cpu",
        history_stride=stride,
        history_length=length,
        sharpness_every=sharpness_every,
        sharpness_iters=sharpness_iters,
        # Under jit/vmap with no rule that stops a run early (a sweep that only
        # stops on divergence): every step is taken anyway, as one masked scan.
        fixed_length=traced_call and no_rule,
    )
    traced = (loss_traced, optimizer_traced)
    if traced_call:  # under jit or vmap: one compiled program, no Python in between
        return whole_run(spec, traced, params, data, key, tol, target)
    if signature is not None:
        seen = warm_calls.SeenCall.of(spec, leaves, params, data, key)
        warm_calls.remember(signature, seen)
        return seen.run(leaves, params, data, key, tol, target)
    run_id = None
    if checkpoint is not None:
        run_id = lambda: _fingerprint(  # noqa: E731 - computed under the checkpoint's lock
            loss, has_aux, optimizer, params, data, key, spec, tol, target, every
        )
    return run_in_segments(
        spec,
        traced,
        params,
        data,
        key,
        tol,
        target,
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        every=every,
        fingerprint=run_id,
        progress=progress,
    )


def _prepared(loss, params, optimizer, *, steps: int, data=None, key=None) -> tuple:
    """``(spec, traced, params, data, key, tol, target)`` of a plain call
    (no tol, target or options), as the compiled programs of :mod:`jaxgd.run._loop`
    take them: for diagnostics such as ``benchmarks/speed.py``, which lowers
    them to read the compiled loop. Runs the call once to have them."""
    jax.block_until_ready(minimize(loss, params, optimizer, steps=steps, data=data, key=key))
    options = (steps, None, False, False, None, None, 20)
    signature, leaves = warm_calls.signature(loss, params, optimizer, data, key, *options)
    seen = warm_calls.SEEN[signature]
    data = checks.check_data(data)[0]
    params = checks.check_params(params)
    return seen.spec, seen.traced(leaves), params, data, seen.key, seen.off, seen.off


def _inner_steps(traced_call: bool, params: Any) -> int:
    """Steps per iteration of the run's while loop (see :func:`jaxgd.run._loop._advance`)."""
    if traced_call or jax.default_backend() != "cpu":
        return _INNER_STEPS
    size = sum(np.size(p) * np.dtype(p.dtype).itemsize for p in jax.tree.leaves(params))
    return 2 if size <= _UNROLL_BYTES else 1


def _check_batch_size(batch_size: Any, data: Any, n_examples: int) -> int | None:
    if batch_size is None:
        return None
    if data is None:
        raise ValueError("minimize: batch_size needs data to draw minibatches from; pass data=.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"minimize: batch_size must be an integer, got {batch_size!r}.")
    if not 1 <= batch_size <= n_examples:
        raise ValueError(
            f"minimize: batch_size must be between 1 and the number of examples ({n_examples}), "
            f"got {batch_size}; pass batch_size=None for full-batch descent."
        )
    return int(batch_size)


def _check_chunking(path, every, progress, traced_call, steps) -> int | None:
    """Steps between two checkpoints (None: no checkpoint)."""
    if path is None and every is not None:
        raise ValueError(
            "minimize: checkpoint_every needs checkpoint=PATH, the folder to write the run to."
        )
    if traced_call and (path is not None or progress):
        raise ValueError(
            "minimize: checkpoint= and progress= run Python between compiled chunks, so they "
            "cannot be used inside jax.vmap or jax.jit; call minimize directly."
        )
    if path is None:
        return None
    try:  # a file, or a folder holding what jaxgd did not write, is never written to
        _checkpoint.check_path(path)
    except ValueError as err:
        raise ValueError(f"minimize: {err}") from None
    if every is None:
        return -(-steps // 10)
    return checks.check_positive_int("minimize", "checkpoint_every", every)


def _check_curvature(every: Any, iters: Any) -> int:
    checks.check_positive_int("minimize", "sharpness_iters", iters)
    if every is None:
        return 0
    return checks.check_positive_int("minimize", "sharpness_every", every)


def _history_layout(every: Any, steps: int, params: Any, record_params: bool) -> tuple[int, int]:
    """``(stride, entries)`` of the history, refused before allocating what cannot fit."""
    if every is None:
        stride = -(-steps // MAX_HISTORY)
    else:
        stride = checks.check_positive_int("minimize", "history_every", every)
    length = -(-steps // stride)
    per_entry = 2 * 8
    if record_params:
        per_entry += sum(np.size(p) * np.dtype(p.dtype).itemsize for p in jax.tree.leaves(params))
    need = length * per_entry
    have = _memory_bytes()
    if need > have // 2:
        raise ValueError(
            f"minimize: the history of {length} entries would need {need / 2**30:.1f} GiB, over "
            f"half the {have / 2**30:.1f} GiB of memory; record fewer entries with "
            f"history_every={-(-need * stride // (have // 4))} or more"
            + (", or pass record_params=False" if record_params else "")
            + "."
        )
    return stride, length


def _memory_bytes() -> int:
    """The memory of the default device (host memory for the CPU)."""
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend reports it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


_SCHEDULE_PROBES = 1 << 16  # schedule values checked before a run (all of them for short runs)


def _check_schedule(optimizer: Any, steps: int) -> None:
    """A learning-rate schedule that turns negative (or NaN) within the run is refused."""
    schedule = getattr(optimizer, "learning_rate", None)
    if not callable(schedule) or checks.is_traced(optimizer):
        return
    at = np.unique(np.linspace(0, steps - 1, min(steps, _SCHEDULE_PROBES)).astype(np.int64))
    with jax.ensure_compile_time_eval():
        values = np.asarray(jax.vmap(schedule)(jnp.asarray(at, jnp.int32)), np.float64)
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"minimize: the learning-rate schedule gives {values[i]:.4g} at step {at[i]} (of "
            f"{steps}); a rate must stay a finite number >= 0 through the run: clip it, e.g. "
            "optax.schedules' end_value, or shorten steps."
        )


def _fingerprint(loss, has_aux, optimizer, params, data, key, spec, tol, target, every) -> dict:
    def loss_fn(p, batch):
        out = loss(p, batch) if data is not None else loss(p)
        return out if has_aux else (out, None)

    return fingerprint(
        loss_fn,
        optimizer,
        params,
        data,
        key,
        {
            "steps": spec.steps,
            "batch_size": spec.batch_size,
            "tol": float(tol),
            "target": float(target),
            "has_aux": spec.has_aux,
            "record_params": spec.record_params,
            "history_every": spec.history_stride,
            "checkpoint_every": every,
        },
    )

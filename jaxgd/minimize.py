"""``gd.minimize``: check the arguments, place them, run the compiled loop.

The loop itself is :mod:`jaxgd.run.loop`; this module is the public entry
that prepares it: every argument is checked first (:mod:`jaxgd.run.checks`,
nothing compiles before a bad argument is reported), the loss and the
optimizer are split into traced values and a compiled-in rest
(:mod:`jaxgd.partition`), a mesh run places its arrays and hands the loop
its minibatch gather (:mod:`jaxgd.distributed`), and the run goes as one
compiled call under ``jit``/``vmap`` or as compiled segments from Python
(:mod:`jaxgd.run.chunks`: checkpoints, progress, Ctrl-C).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd import checkpoint as _checkpoint
from jaxgd import distributed
from jaxgd.optimizers import Optimizer, check_optimizer
from jaxgd.partition import Static, partition
from jaxgd.run import checks, chunks
from jaxgd.run.batches import take_rows
from jaxgd.run.chunks import RunInterrupted, run_in_segments
from jaxgd.run.fingerprint import fingerprint
from jaxgd.run.loop import Spec, whole_run
from jaxgd.run.result import History, Result, Status

__all__ = ["History", "Result", "RunInterrupted", "Status", "minimize"]

MAX_HISTORY = 1_000_000
"""Entries a history holds at most unless ``history_every`` says otherwise."""

_INNER_STEPS = 32  # see loop._advance; measured in benchmarks/speed.py (sweep, GPU run loop)


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
    curvature_every: int | None = None,
    curvature_iters: int = 20,
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
        curvature_every: every this many steps, record the sharpness (the
            largest Hessian eigenvalue at the current params) in
            ``history.curvature`` (NaN between), by ``curvature_iters``
            power iterations on Hessian-vector products warm-started from the
            previous eigenvector; for jaxgd's Adam also the preconditioned
            sharpness in ``history.preconditioned``. In minibatch runs it is
            the current batch's. See :mod:`jaxgd.sharpness` for the limits
            (``2/lr`` for gradient descent). Off (None) it costs nothing;
            on, each record costs about ``4 * curvature_iters`` gradients.
            Only steps that are multiples of ``history.stride`` are kept.
        curvature_iters: power iterations per record (default 20).
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
        options = (steps, batch_size, has_aux, record_params, history_every, curvature_every)
        signature, leaves = _signature(
            loss, params, optimizer, data, key, *options, curvature_iters
        )
        seen = _SEEN.get(signature) if signature is not None else None
        if seen is not None:
            _SEEN.move_to_end(signature)
            off = seen.off  # a rule switched off, placed once
            tol = off if tol is None else checks.check_threshold("tol", tol, nonnegative=True)
            if target is None:
                target = off
            else:
                target = checks.check_threshold("target", target, nonnegative=False)
            if seen.convert:
                params, data = checks.check_params(params), checks.check_data(data)[0]
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
    curvature_every = _check_curvature(curvature_every, curvature_iters)
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
        inner_steps=_INNER_STEPS if traced_call or jax.default_backend() != "cpu" else 1,
        select_update=jax.default_backend() != "cpu",
        history_stride=stride,
        history_length=length,
        curvature_every=curvature_every,
        curvature_iters=curvature_iters,
        # Under jit/vmap with no rule that stops a run early (a sweep that only
        # stops on divergence): every step is taken anyway, as one masked scan.
        fixed_length=traced_call and no_rule,
    )
    traced = (loss_traced, optimizer_traced)
    if traced_call:  # under jit or vmap: one compiled program, no Python in between
        return whole_run(spec, traced, params, data, key, tol, target)
    if signature is not None:
        seen = _Seen.of(spec, leaves, params, data, key)
        _SEEN[signature] = seen
        if len(_SEEN) > _SEEN_MOST:
            _SEEN.popitem(last=False)
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


# --------------------------------------------------------------------------- #
# Calls seen before: the per-call cost of a warm call
# --------------------------------------------------------------------------- #

_SEEN: collections.OrderedDict = collections.OrderedDict()  # signature -> _Seen
_SEEN_MOST = 32  # calls remembered (each holds its loss and optimizer, as jit's cache does)


_KINDS: dict[type, str] = {}  # leaf type -> "array", "numpy", "scalar", "static" or "tracer"


def _kind(kind: type) -> str:
    if issubclass(kind, jax.core.Tracer):
        return "tracer"
    if issubclass(kind, jax.Array):
        return "array"
    if issubclass(kind, np.ndarray):
        return "numpy"
    return "scalar" if kind is not bool and issubclass(kind, _SCALARS) else "static"


_SCALARS = (np.generic, float, complex)  # traced leaves besides arrays (see jaxgd.partition)


def _describe(leaf: Any) -> Any:
    """What the checks saw of a leaf: type, shape and dtype of a traced value,
    the value itself (by identity for objects) of a static one."""
    kind = type(leaf)
    what = _KINDS.get(kind) or _KINDS.setdefault(kind, _kind(kind))
    if what == "array":
        return (kind, leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False))
    if what == "numpy":
        return (kind, leaf.shape, leaf.dtype)
    if what == "scalar":
        return kind
    if what == "tracer":
        raise TypeError  # under jit or vmap: not remembered
    return (kind, leaf)  # compiled in: by value (ints, strings) or identity (functions)


def _signature(loss, params, optimizer, data, key, *options) -> tuple[Any, list]:
    """``(signature, leaves)``: the signature holds everything the argument checks
    of a plain call depend on, but the values of ``tol``, ``target`` and the
    arrays (checked on every call); None (not remembered) under jit or vmap or
    for an unhashable argument. ``leaves``: those of ``(loss, params,
    optimizer, data, key)``."""
    leaves, treedef = jax.tree.flatten((loss, params, optimizer, data, key))
    try:
        described = tuple(_describe(leaf) for leaf in leaves)
        signature = (treedef, described, tuple((type(o), o) for o in options))
        hash(signature)
    except (TypeError, AttributeError):  # an unhashable or unusual leaf: checked afresh
        return None, leaves
    return signature, leaves


class _Seen(NamedTuple):
    """A plain call whose checks passed: what a call with the same signature needs."""

    spec: Spec
    split: tuple[int, int, int]  # leaves of the loss, the params and the optimizer
    convert: bool  # params or data hold leaves that are not JAX arrays yet
    key: Any  # the key when none is passed (a device array, made once)
    one_call: bool  # the whole run is one compiled call (else segments, see run_in_segments)
    rule: Callable  # what decided one_call (chunks.first_length; decided afresh if replaced)
    numbers: bool  # the traced leaves of the loss and optimizer are all Python or NumPy numbers
    placed: list  # [those numbers, the same on the device] of the last call
    off: Any  # tol or target None: -inf, on the device

    @classmethod
    def of(cls, spec: Spec, leaves: list, params: Any, data: Any, key: Any) -> _Seen:
        split = (len(spec.loss.leaves), len(jax.tree.leaves(params)), len(spec.optimizer.leaves))
        given = leaves[split[0] : split[0] + split[1]] + jax.tree.leaves(data)
        return cls(
            spec=spec,
            split=split,
            convert=not all(isinstance(leaf, jax.Array) for leaf in given),
            key=jnp.asarray(key) if isinstance(key, np.ndarray) else None,
            one_call=chunks.first_length(spec, params, data) >= spec.steps,
            rule=chunks.first_length,
            numbers=all(
                s is not None or type(leaf) in (float, complex) or isinstance(leaf, np.generic)
                for leaf, s in zip(
                    leaves[: split[0]] + leaves[sum(split[:2]) : sum(split)],
                    spec.loss.leaves + spec.optimizer.leaves,
                    strict=True,
                )
            ),
            placed=[None, None],
            off=jnp.asarray(checks.check_threshold("tol", None, nonnegative=True)),
        )

    def traced(self, leaves: list) -> tuple[list, list]:
        """The traced leaves of the loss and of the optimizer, from the signature's leaves."""
        n_loss, n_params, n_optimizer = self.split
        at = n_loss + n_params
        return (
            _traced(leaves[:n_loss], self.spec.loss),
            _traced(leaves[at : at + n_optimizer], self.spec.optimizer),
        )

    def run(self, leaves: list, params: Any, data: Any, key: Any, tol: Any, target: Any) -> Result:
        """The run of checked arguments (``leaves``: the signature's)."""
        spec = self.spec
        traced = self.traced(leaves)
        if self.numbers:  # hyperparameters as Python numbers: placed once per new value
            numbers = tuple(traced[0] + traced[1])
            if self.placed[0] != numbers:
                self.placed[:] = [numbers, jax.device_put(traced)]
            traced = self.placed[1]
        key = self.key if key is None else key
        one_call = self.one_call
        if chunks.first_length is not self.rule:
            one_call = chunks.first_length(spec, params, data) >= spec.steps
        if one_call:  # one compiled call, returned without waiting for it
            return whole_run(spec, traced, params, data, key, tol, target)
        return run_in_segments(spec, traced, params, data, key, tol, target)


def _prepared(loss, params, optimizer, *, steps: int, data=None, key=None) -> tuple:
    """``(spec, traced, params, data, key, tol, target)`` of a plain call
    (no tol, target or options), as the compiled programs of :mod:`jaxgd.run.loop`
    take them: for diagnostics such as ``benchmarks/speed.py``, which lowers
    them to read the compiled loop. Runs the call once to have them."""
    jax.block_until_ready(minimize(loss, params, optimizer, steps=steps, data=data, key=key))
    options = (steps, None, False, False, None, None, 20)
    signature, leaves = _signature(loss, params, optimizer, data, key, *options)
    seen = _SEEN[signature]
    data = checks.check_data(data)[0]
    params = checks.check_params(params)
    return seen.spec, seen.traced(leaves), params, data, seen.key, seen.off, seen.off


def _traced(leaves: list, static: Static) -> list:
    """The traced leaves, as :func:`jaxgd.partition.partition` gives them."""
    return [leaf if s is None else None for leaf, s in zip(leaves, static.leaves, strict=True)]


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
    checks.check_positive_int("minimize", "curvature_iters", iters)
    if every is None:
        return 0
    return checks.check_positive_int("minimize", "curvature_every", every)


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

"""The run loop: gradient descent as one compiled XLA program.

:func:`minimize` evaluates the loss and its gradient, records them, decides
whether to stop, and applies the optimizer's update, all inside one
``lax.while_loop``. It returns a :class:`Result` that says how the run ended
(:class:`Status`) and holds the whole trajectory (:class:`History`).

Each step ``k`` (from 0):

1. evaluate ``loss(params_k)`` and ``g_k = grad loss(params_k)`` (on the
   ``k``-th minibatch when ``batch_size`` is given) and record them in
   ``history.loss[k]`` and ``history.grad_norm[k]``;
2. stop with ``DIVERGED`` if either is not finite, ``REACHED_TARGET`` if the
   loss is ``<= target``, ``CONVERGED`` if ``|g_k| <= tol``;
3. otherwise ``params_{k+1} = params_k + update(g_k)``.

After ``steps`` updates the final params are evaluated once more (on the full
data) to give ``Result.loss`` and the final status. A diverged run keeps the
params at which the first non-finite value appeared: those came from finite
params and a finite gradient, so they are finite, and nothing before them is
lost. (One exception: an update so large that ``params + update`` overflows
float32 itself, above 3.4e38, leaves inf in the params; the status is still
``DIVERGED``. Guarding against it would cost a copy of the params every step.)
A gradient whose norm overflows float32 counts as non-finite.

In minibatch runs the stopping rules see what each step computes: the
minibatch's loss and gradient. ``Result.loss`` is always the full-data loss.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd import checkpoint as _checkpoint
from jaxgd.optimizers import Optimizer, check_optimizer

__all__ = ["History", "Result", "Status", "minimize"]


class Status(enum.IntEnum):
    """How a run ended. ``Result.status`` holds the int code (an array, so it
    survives ``vmap``); ``Status(int(result.status))`` names it."""

    MAX_STEPS = 0
    """All ``steps`` updates were taken without meeting a stopping rule."""
    CONVERGED = 1
    """The gradient norm fell to ``tol`` or below."""
    REACHED_TARGET = 2
    """The loss fell to ``target`` or below."""
    DIVERGED = 3
    """The loss or the gradient stopped being finite."""


_RUNNING = -1  # the status of a run still going (internal)


class History(NamedTuple):
    """The trajectory of a run, one entry per step (``NaN`` after the run stopped).

    Attributes:
        loss: ``loss[k]`` is the loss at ``params_k`` (the minibatch loss in
            minibatch runs), shape ``(steps,)``.
        grad_norm: the global L2 norm of the gradient at ``params_k``.
        params: ``params_k`` with a leading ``(steps,)`` axis on every leaf when
            ``record_params=True``, else ``None``.
    """

    loss: jax.Array
    grad_norm: jax.Array
    params: Any = None


class Result(NamedTuple):
    """What :func:`minimize` returns.

    Attributes:
        params: the final params (the last good ones if the run diverged).
        loss: the loss at ``params`` on the full data.
        steps: the number of updates taken.
        status: the :class:`Status` code as an int32 array.
        history: the recorded :class:`History`.
    """

    params: Any
    loss: jax.Array
    steps: jax.Array
    status: jax.Array
    history: History


class _Carry(NamedTuple):
    """The whole state of a run between two steps."""

    step: jax.Array  # updates taken so far
    params: Any
    opt_state: Any
    status: jax.Array  # _RUNNING or a Status code
    history: History


# --------------------------------------------------------------------------- #
# The compiled loop
# --------------------------------------------------------------------------- #


class _Spec(NamedTuple):
    """The static description of a run: what the compiled program depends on."""

    loss: Callable[..., jax.Array]
    optax_optimizer: Any  # an optax GradientTransformation, or None for a jaxgd one
    steps: int
    has_data: bool
    batch_size: int | None
    n_examples: int
    record_params: bool
    mesh: Any = None  # a jax.sharding.Mesh: a data-parallel run (see jaxgd.distributed)
    inner_steps: int = 1  # > 1: guarded steps per while-loop iteration (see _advance)


def _classify(loss, grad_norm, tol, target, otherwise):
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


def _init_carry(spec: _Spec, optimizer, params, data) -> _Carry:
    """The state before the first step; a run whose data holds NaN or inf is
    over before it starts (``DIVERGED`` at step 0, the initial params kept)."""
    dtype = _history_dtype(params)
    nan = jnp.full((spec.steps,), jnp.nan, dtype)
    path = None
    if spec.record_params:
        path = jax.tree.map(lambda p: jnp.full((spec.steps, *p.shape), jnp.nan, p.dtype), params)
    return _Carry(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        status=jnp.where(_data_is_finite(data), _RUNNING, Status.DIVERGED).astype(jnp.int32),
        history=History(loss=nan, grad_norm=nan, params=path),
    )


def _batch_indices(spec: _Spec, key):
    """Row ``k`` holds the example indices of step ``k``'s minibatch.

    The examples are cut into ``batch_size`` contiguous strata (stratum ``j``
    holds rows ``floor(j n / b)`` up to ``floor((j + 1) n / b)``) and every
    minibatch takes one example from each stratum, in an order that is a fresh
    random permutation of the stratum every epoch (all drawn from ``key``).
    So every example is seen once per epoch (twice for one example of each
    short stratum when ``b`` does not divide ``n``), and a minibatch does not
    depend on how the rows are split over devices: a device that holds whole
    strata draws its part of every minibatch from its own rows.
    """
    n, bs = spec.n_examples, spec.batch_size
    per_epoch = -(-n // bs)  # steps per epoch: the longest stratum
    epochs = -(-spec.steps // per_epoch)
    starts = (jnp.arange(bs + 1) * n) // bs
    sizes = starts[1:] - starts[:-1]

    # A random order of each stratum for each epoch: argsort of random bits
    # (one batched sort; ties, rare, keep index order, so it is a permutation).
    # One draw for all epochs compiles about 3x faster than a
    # jax.random.permutation per stratum (XLA:CPU compiles threefry slowly).
    bits = jax.random.bits(key, (epochs, bs, per_epoch))
    order = jnp.argsort(bits, axis=-1).transpose(0, 2, 1).reshape(epochs * per_epoch, bs)
    return (starts[:-1] + order % sizes).astype(jnp.int32)


def _evaluate(spec: _Spec, params, batch):
    """Loss, gradient and gradient norm at ``params``."""
    args = (batch,) if spec.has_data else ()
    loss, grads = jax.value_and_grad(spec.loss)(params, *args)
    grad_norm = optax.tree.norm(jax.tree.map(lambda g: g.astype(jnp.float32), grads))
    return loss, grads, grad_norm


_UNROLL = 2  # steps per while-loop iteration (the same values for any choice)


def _advance(spec: _Spec, optimizer, carry: _Carry, data, key, tol, target, stop_at) -> _Carry:
    """Run steps until the run stops or ``carry.step == stop_at``."""
    if spec.batch_size is not None:
        indices = _batch_indices(spec, key)

    def batch_at(step):
        if spec.batch_size is None:
            return data
        if spec.mesh is not None:  # each device gathers its part from its own rows
            from jaxgd.distributed import _local_minibatch

            return _local_minibatch(spec.mesh, data, indices[step], spec.n_examples)
        return jax.tree.map(lambda a: jnp.take(a, indices[step], axis=0), data)

    def running(c: _Carry):
        return (c.status == _RUNNING) & (c.step < stop_at)

    def step(c: _Carry, live=None) -> _Carry:
        """One step; with ``live`` (a traced bool), a no-op where it is False."""
        loss, grads, grad_norm = _evaluate(spec, c.params, batch_at(c.step))
        status = _classify(loss, grad_norm, tol, target, _RUNNING)
        at = c.step
        if live is not None:  # a stopped run keeps its status; its writes are dropped
            status = jnp.where(live, status, c.status)
            at = jnp.where(live, c.step, spec.steps)
        h = c.history
        dtype = h.loss.dtype
        history = History(
            loss=h.loss.at[at].set(loss.astype(dtype), mode="drop"),
            grad_norm=h.grad_norm.at[at].set(grad_norm.astype(dtype), mode="drop"),
            params=None
            if h.params is None
            else jax.tree.map(lambda path, p: path.at[at].set(p, mode="drop"), h.params, c.params),
        )
        go = status == _RUNNING
        if live is not None:
            go = go & live

        def update(params_and_state):
            params, opt_state = params_and_state
            updates, new_state = optimizer.update(grads, opt_state, params)
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
        if jax.default_backend() != "cpu":
            new = update((c.params, c.opt_state))
            params, opt_state = jax.tree.map(
                lambda a, b: jnp.where(go, a, b), new, (c.params, c.opt_state)
            )
        else:
            params, opt_state = jax.lax.cond(go, update, lambda ps: ps, (c.params, c.opt_state))
        return _Carry(
            step=c.step + go.astype(jnp.int32),
            params=params,
            opt_state=opt_state,
            status=status,
            history=history,
        )

    def steps(c: _Carry) -> _Carry:
        # The loop condition guarantees the first step is live; further steps
        # in the same iteration are guarded (no-ops once the run has stopped).
        c = step(c)
        if spec.inner_steps > 1:
            # Under vmap the loop condition differs per run, so while_loop selects
            # the whole carry (history buffers included) every iteration; on a GPU
            # each iteration waits for the condition on the host. An inner loop
            # of guarded steps pays either once per inner_steps steps, at the
            # price of up to inner_steps - 1 idle steps at the very end.
            guarded = lambda _, c: step(c, running(c))
            return jax.lax.fori_loop(0, spec.inner_steps - 1, guarded, c)
        # One run: two steps per iteration pay the loop's own cost (its
        # condition, the copies at its back edge) once per two steps. The
        # barrier keeps XLA from fusing one step into the next, which would
        # round differently from the one-step loop (and from optax's loop).
        for _ in range(_UNROLL - 1):
            c = jax.lax.optimization_barrier(c)
            c = step(c, running(c))
        return c

    return jax.lax.while_loop(running, steps, carry)


def _finish(spec: _Spec, carry: _Carry, data, tol, target) -> Result:
    """Evaluate the final params on the full data and settle the status."""
    loss, _, grad_norm = _evaluate(spec, carry.params, data)
    status = jnp.where(
        carry.status == _RUNNING,
        _classify(loss, grad_norm, tol, target, Status.MAX_STEPS),
        carry.status,
    )
    return Result(
        params=carry.params,
        loss=loss,
        steps=carry.step,
        status=status.astype(jnp.int32),
        history=carry.history,
    )


def _optimizer_of(spec: _Spec, optimizer):
    return spec.optax_optimizer if optimizer is None else optimizer


@functools.partial(jax.jit, static_argnums=0)
def _run(spec: _Spec, optimizer, params, data, key, tol, target) -> Result:
    """The whole run, one compiled program."""
    optimizer = _optimizer_of(spec, optimizer)
    carry = _init_carry(spec, optimizer, params, data)
    carry = _advance(spec, optimizer, carry, data, key, tol, target, spec.steps)
    return _finish(spec, carry, data, tol, target)


@functools.partial(jax.jit, static_argnums=0)
def _start(spec: _Spec, optimizer, params, data) -> _Carry:
    return _init_carry(spec, _optimizer_of(spec, optimizer), params, data)


@functools.partial(jax.jit, static_argnums=0)
def _run_chunk(spec: _Spec, optimizer, carry, data, key, tol, target, stop_at) -> _Carry:
    optimizer = _optimizer_of(spec, optimizer)
    return _advance(spec, optimizer, carry, data, key, tol, target, stop_at)


@functools.partial(jax.jit, static_argnums=0)
def _finish_chunks(spec: _Spec, carry, data, tol, target) -> Result:
    return _finish(spec, carry, data, tol, target)


def _run_in_chunks(
    spec, optimizer, params, data, key, tol, target, every, path, fingerprint, progress
):
    """The same run as ``_run``, as compiled chunks of ``every`` steps.

    After each chunk the whole run state is written to ``path`` (if given);
    a compatible checkpoint already at ``path`` is resumed from. Chunks end
    at multiples of ``every``, so a resumed run replays exactly the compiled
    calls an uninterrupted one makes, and ends with the same bits.
    """
    # The run holds its checkpoint: a second live run of the same path is refused.
    with _checkpoint.lock(path) if path is not None else contextlib.nullcontext():
        return _run_chunks_locked(
            spec, optimizer, params, data, key, tol, target, every, path, fingerprint, progress
        )


def _run_chunks_locked(
    spec, optimizer, params, data, key, tol, target, every, path, fingerprint, progress
):
    spec = spec._replace(inner_steps=_chunk_inner_steps(spec.inner_steps, every))
    carry = _start(spec, optimizer, params, data)
    if path is not None and _checkpoint.exists(path):
        carry = _resume(path, carry, fingerprint)
    bar = _progress_bar(spec.steps, int(carry.step)) if progress else None
    try:
        while int(carry.status) == _RUNNING and int(carry.step) < spec.steps:
            before = int(carry.step)
            stop_at = min((before // every + 1) * every, spec.steps)
            carry = _run_chunk(spec, optimizer, carry, data, key, tol, target, stop_at)
            if path is not None:
                _checkpoint.save(path, carry, metadata={"fingerprint": fingerprint})
            if bar is not None:
                bar.update(int(carry.step) - before)
                bar.set_postfix(loss=f"{float(carry.history.loss[before]):.4g}")
    finally:
        if bar is not None:
            bar.close()
    return _finish_chunks(spec, carry, data, tol, target)


def _resume(path, carry, fingerprint):
    found = _checkpoint.load_metadata(path).get("fingerprint")
    if found != fingerprint:
        differs = sorted(
            k
            for k in set(found or {}) | set(fingerprint)
            if (found or {}).get(k) != fingerprint.get(k)
        )
        raise ValueError(
            f"minimize: the checkpoint at {os.fspath(path)!r} belongs to another run (it differs "
            f"in: {', '.join(differs)}); delete it or pass another checkpoint= path to start "
            "afresh."
        )
    return _checkpoint.load(path, like=carry)


def _progress_bar(total, initial):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="minimize", leave=False)


def _digest(tree) -> str | None:
    """SHA-256 of a pytree's leaves (values, shapes, dtypes); None for arrays
    this process cannot read whole (data sharded over several processes)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if not getattr(leaf, "is_fully_addressable", True):
            return None
        a = np.asarray(leaf)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _function_id(f) -> str:
    """A function's name and a hash of its code and of the values it closes over
    (numbers, strings, arrays, and the same of the functions it closes over),
    so that ``optax.sgd(0.1)`` and ``optax.sgd(0.01)`` differ."""
    h = hashlib.sha256()

    def visit(obj, depth):
        if depth > 8:
            return
        if isinstance(obj, bool | int | float | complex | str | bytes | type(None)):
            h.update(repr(obj).encode())
        elif isinstance(obj, np.ndarray | jax.Array | np.generic):
            h.update(_digest(obj).encode() if _digest(obj) else b"?")
        elif isinstance(obj, tuple | list):
            for item in obj:
                visit(item, depth + 1)
        elif callable(obj):
            code = getattr(obj, "__code__", None)
            if code is not None:
                h.update(code.co_code + repr((code.co_consts, code.co_names)).encode())
            for cell in getattr(obj, "__closure__", None) or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    visit(cell.cell_contents, depth + 1)
            for part in ("func", "args", "keywords", "init", "update"):  # partials, optax
                if hasattr(obj, part) and not isinstance(getattr(obj, part), type):
                    visit(getattr(obj, part), depth + 1)
        elif isinstance(obj, dict):
            for k in sorted(obj, key=repr):
                h.update(repr(k).encode())
                visit(obj[k], depth + 1)

    visit(f, 0)
    name = getattr(f, "__qualname__", type(f).__name__)
    return f"{name}:{h.hexdigest()[:16]}"


def _fingerprint(spec: _Spec, optimizer, params, data, key, tol, target, every) -> dict:
    """What a checkpoint must agree on to be resumed: the run's configuration.

    Covered: the loss's code and the values it closes over, the optimizer's
    kind and hyperparameters (a jaxgd schedule by its values at a few steps,
    an optax optimizer by the code and values of its closures), the starting
    params, the data and the key (by hash), and every other argument.
    """

    def shapes(tree):
        return [
            [jax.tree_util.keystr(p), list(np.shape(a)), str(a.dtype)]
            for p, a in jax.tree_util.tree_leaves_with_path(tree)
        ]

    def schedule_values(schedule):
        probes = sorted({0, 1, 10, 100, spec.steps // 2, spec.steps - 1})
        return [float(schedule(jnp.asarray(t, jnp.int32))) for t in probes]

    if isinstance(optimizer, Optimizer):
        leaves, (leaf_names, static) = optimizer._tree_flatten()
        hyper = {n: np.asarray(v).tolist() for n, v in zip(leaf_names, leaves, strict=True)}
        hyper.update({n: schedule_values(v) if callable(v) else repr(v) for n, v in static})
        name = type(optimizer).__name__
    else:
        name = f"optax:{_function_id(spec.optax_optimizer.update)}"
        hyper = {"initial_state": _digest(spec.optax_optimizer.init(params))}
    key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return {
        "loss": _function_id(spec.loss),
        "optimizer": name,
        "hyperparameters": hyper,
        "params": shapes(params),
        "initial_params": _digest(params),
        "data": shapes(data) if data is not None else None,
        "data_values": _digest(data) if data is not None else None,
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "key": np.asarray(key_data).tolist(),
        "tol": float(tol),
        "target": float(target),
        "record_params": spec.record_params,
        "checkpoint_every": every,
    }


# --------------------------------------------------------------------------- #
# The public entry point: checks first, then the compiled run
# --------------------------------------------------------------------------- #


def minimize(
    loss: Callable[..., jax.Array],
    params: Any,
    optimizer: Any,
    *,
    steps: int,
    data: Any = None,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    tol: float | None = None,
    target: float | None = None,
    record_params: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    mesh: jax.sharding.Mesh | None = None,
) -> Result:
    """Minimise ``loss`` from ``params`` with ``optimizer``, in one compiled loop.

    Args:
        loss: ``loss(params)``, or ``loss(params, batch)`` when ``data`` is
            given; returns a scalar.
        params: the starting point, a pytree of floating-point arrays.
        optimizer: a jaxgd optimizer (``gd.adam(1e-2)``) or any optax
            ``GradientTransformation``. jaxgd optimizers are traced values, so
            a new learning rate reuses the compiled program; optax ones are
            compiled in.
        steps: the most updates to take (>= 1).
        data: a pytree of arrays with a leading example axis, passed to
            ``loss`` as ``batch``.
        batch_size: draw minibatches of this many examples (a fresh
            permutation every epoch, from ``key``); None for full batch.
        key: PRNG key of the minibatch order; required with ``batch_size``.
        tol: stop with ``CONVERGED`` once the gradient norm is ``<= tol``.
        target: stop with ``REACHED_TARGET`` once the loss is ``<= target``.
        record_params: keep the parameter path in ``history.params``.
        checkpoint: a directory path (jaxgd creates it): run in compiled chunks
            and write the whole run state there after each (orbax-checkpoint,
            atomically; see :mod:`jaxgd.checkpoint`). The run holds a lock on it,
            so a second live run of the same path is refused.
            If a checkpoint of the same run is already there, resume from it:
            the resumed run ends with the same bits as an uninterrupted one.
            A checkpoint of another run is an error (delete it to start afresh).
        checkpoint_every: steps per chunk (default ``ceil(steps / 10)``).
        progress: show a tqdm progress bar over the chunks (chunks of
            ``ceil(steps / 100)`` steps unless ``checkpoint_every`` is given).
        mesh: a :class:`jax.sharding.Mesh` (``gd.distributed.data_mesh()``):
            split the data's examples over its data axis, replicate params and
            optimizer state, and let XLA all-reduce the gradient. The result
            equals the one-device run to float round-off. The number of
            examples and ``batch_size`` must divide by the data axis size. In
            a multi-process run (``gd.distributed.initialize()``) ``data`` is
            this process's rows. See :mod:`jaxgd.distributed`.

    Returns:
        A :class:`Result`. Works under ``jax.vmap`` (over params, optimizer
        hyperparameters, keys, ``tol``, ``target`` or data).

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda p: jnp.sum((p - 3.0) ** 2)
        >>> result = gd.minimize(loss, jnp.zeros(2), gd.sgd(0.25), steps=100, tol=1e-5)
        >>> gd.Status(int(result.status)).name, int(result.steps)  # each step halves the error
        ('CONVERGED', 20)
        >>> result.params.round(4)
        Array([3., 3.], dtype=float32)
    """
    if mesh is not None:
        from jaxgd import distributed

        data = distributed._place_data(data, mesh)
    spec, params, data, key, tol, target = _check_run(
        loss, params, optimizer, steps, data, batch_size, key, tol, target, record_params
    )
    dynamic = optimizer if isinstance(optimizer, Optimizer) else None
    if mesh is not None:
        spec, (dynamic, params, key, tol, target) = distributed._on_mesh(
            spec, mesh, (dynamic, params, key, tol, target)
        )
    every = _check_chunking(checkpoint, checkpoint_every, progress, steps, params, optimizer)
    if every is None:
        return _run(spec, dynamic, params, data, key, tol, target)
    fingerprint = None
    if checkpoint is not None:
        fingerprint = _fingerprint(spec, optimizer, params, data, key, tol, target, every)
    return _run_in_chunks(
        spec, dynamic, params, data, key, tol, target, every, checkpoint, fingerprint, progress
    )


def _check_chunking(path, every, progress, steps, params, optimizer):
    """Chunk length for a checkpointed or progress-reporting run (None: one program)."""
    if not isinstance(progress, bool):
        raise TypeError(f"minimize: progress must be True or False, got {progress!r}.")
    if path is None and every is None and not progress:
        return None
    if path is None and every is not None:
        raise ValueError(
            "minimize: checkpoint_every needs checkpoint=PATH, the file to write the run to."
        )
    if _is_traced(params, optimizer):
        raise ValueError(
            "minimize: checkpoint= and progress= run Python between compiled chunks, so they "
            "cannot be used inside jax.vmap or jax.jit; call minimize directly."
        )
    if path is not None:
        try:
            _checkpoint.check_path(path)
        except ValueError as err:
            raise ValueError(f"minimize: {err}") from None
    if every is None:
        return -(-steps // (10 if path is not None else 100))
    if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
        raise ValueError(f"minimize: checkpoint_every must be a positive integer, got {every!r}.")
    return int(every)


def _check_run(loss, params, optimizer, steps, data, batch_size, key, tol, target, record_params):
    """Check every argument a user passes, before anything is traced or compiled."""
    if not callable(loss):
        raise TypeError(f"minimize: loss must be a function loss(params[, batch]), got {loss!r}.")
    check_optimizer(optimizer, "minimize")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"minimize: steps must be a positive integer, got {steps!r}.")
    steps = int(steps)
    if not isinstance(record_params, bool):
        raise TypeError(f"minimize: record_params must be True or False, got {record_params!r}.")
    params = _check_params(params)
    data, n_examples = _check_data(data)
    batch_size, key = _check_batching(batch_size, key, data, n_examples)
    tol = _check_threshold("tol", tol, nonnegative=True)
    target = _check_threshold("target", target, nonnegative=False)
    spec = _Spec(
        loss=loss,
        optax_optimizer=None if isinstance(optimizer, Optimizer) else optimizer,
        steps=steps,
        has_data=data is not None,
        batch_size=batch_size,
        n_examples=n_examples,
        record_params=record_params,
        inner_steps=_inner_steps(params, optimizer, data, key),
    )
    _check_loss_output(spec, params, data, batch_size)
    return spec, params, data, key, tol, target


_INNER_STEPS = 32  # see _advance; measured in benchmarks/speed.py (sweep, run loop on a GPU)


def _is_traced(*trees) -> bool:
    """Whether any leaf is being traced (minimize called under vmap or jit)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _inner_steps(*trees) -> int:
    """Steps per while-loop iteration: many under vmap or jit (a sweep, most
    likely) and on accelerators, whose while loops wait for the condition on
    the host every iteration; one (unrolled by two) for a single run on a CPU."""
    return _INNER_STEPS if _is_traced(*trees) or jax.default_backend() != "cpu" else 1


def _chunk_inner_steps(inner: int, every: int) -> int:
    """The largest divisor of the chunk length up to ``inner``: chunks then
    end on an iteration boundary and no guarded step idles at a chunk's end."""
    return max(d for d in range(1, min(inner, every) + 1) if every % d == 0)


def _as_array(a):
    return a if isinstance(a, jax.Array) else jnp.asarray(a)


def _check_params(params):
    leaves_with_path = jax.tree_util.tree_leaves_with_path(params)
    if not leaves_with_path:
        raise ValueError(
            "minimize: params has no arrays; pass the starting point, e.g. jnp.zeros(3)."
        )
    for path, leaf in leaves_with_path:
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            where = f"params{jax.tree_util.keystr(path)}"
            raise TypeError(
                f"minimize: {where} has dtype {dtype}; gradient descent needs floating-point "
                f"params: pass jnp.asarray(..., dtype=jnp.float32)."
            )
    return jax.tree.map(_as_array, params)


def _check_data(data):
    if data is None:
        return None, 0
    leaves_with_path = jax.tree_util.tree_leaves_with_path(data)
    if not leaves_with_path:
        raise ValueError("minimize: data has no arrays; pass None for a loss without data.")
    sizes = {}
    for path, leaf in leaves_with_path:
        shape = np.shape(leaf)
        where = f"data{jax.tree_util.keystr(path)}"
        if len(shape) == 0:
            raise ValueError(
                f"minimize: {where} is a scalar; every data array needs a leading example axis "
                "(close over constants in the loss instead)."
            )
        sizes[where] = shape[0]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{w}: {n}" for w, n in sizes.items())
        raise ValueError(
            f"minimize: data arrays disagree on the number of examples ({listing}); every "
            "leaf needs the same leading axis."
        )
    return jax.tree.map(_as_array, data), next(iter(sizes.values()))


def _check_batching(batch_size, key, data, n_examples):
    if batch_size is None:
        return None, np.zeros((2,), np.uint32) if key is None else key
    if data is None:
        raise ValueError("minimize: batch_size needs data to draw minibatches from; pass data=.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"minimize: batch_size must be an integer, got {batch_size!r}.")
    if not 1 <= batch_size <= n_examples:
        raise ValueError(
            f"minimize: batch_size must be between 1 and the number of examples ({n_examples}), "
            f"got {batch_size}; pass batch_size=None for full-batch descent."
        )
    if key is None:
        raise ValueError(
            "minimize: a minibatch run needs key= (a jax.random.PRNGKey) to shuffle the data; "
            "e.g. key=jax.random.PRNGKey(0)."
        )
    if not isinstance(key, jax.Array) or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,)
    ):
        raise TypeError(f"minimize: key must be a jax.random key, got {key!r}.")
    return int(batch_size), key


def _check_threshold(name, value, *, nonnegative):
    if value is None:
        return np.float32(-np.inf)  # a NumPy scalar: no device work on every call
    if not isinstance(value, jax.core.Tracer):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"minimize: {name} must be a number, got {value!r}.") from None
        if np.isnan(v) or (nonnegative and v < 0):
            rule = "a number >= 0" if nonnegative else "a number (not NaN)"
            raise ValueError(
                f"minimize: {name} must be {rule}, got {value!r}; or None to switch it off."
            )
    return jnp.asarray(value, jnp.float32)


# The checks run on every call, so the two that cost most are cached: tracing
# the loss (keyed by the loss and the argument shapes) and scanning the data for
# NaN (keyed by the array object: jax arrays are immutable). A repeated call,
# as in a sweep or a benchmark, then spends microseconds here, not milliseconds.
_LOSS_OUTPUTS: dict = {}
_FINITE: dict[int, tuple[weakref.ref, bool]] = {}
_all_finite = jax.jit(lambda a: jnp.all(jnp.isfinite(a)))


def _loss_output(loss, params, args):
    """``jax.eval_shape(loss, params, *args)``, cached by the argument types."""
    leaves, treedef = jax.tree.flatten((params, args))
    if _is_traced(leaves):
        return jax.eval_shape(loss, params, *args)
    key = (loss, treedef, tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in leaves))
    try:
        out = _LOSS_OUTPUTS.get(key)
    except TypeError:  # an unhashable loss: nothing to cache by
        return jax.eval_shape(loss, params, *args)
    if out is None:
        out = jax.eval_shape(loss, params, *args)
        if len(_LOSS_OUTPUTS) > 256:
            _LOSS_OUTPUTS.clear()
        _LOSS_OUTPUTS[key] = out
    return out


def _is_finite(a) -> bool:
    """Whether the array ``a`` holds no NaN or inf (remembered while ``a`` lives)."""
    hit = _FINITE.get(id(a))
    if hit is not None and hit[0]() is a:
        return hit[1]
    with jax.ensure_compile_time_eval():  # concrete data inside an outer jit: run it now
        ok = bool(_all_finite(a))
    try:
        key = id(a)
        ref = weakref.ref(a, lambda _, k=key: _FINITE.pop(k, None))
    except TypeError:
        return ok
    _FINITE[id(a)] = (ref, ok)
    return ok


def _check_loss_output(spec: _Spec, params, data, batch_size):
    """Trace ``loss`` abstractly (no compiling) to check it returns a float scalar."""
    if data is None:
        args = ()
    elif batch_size is None:
        args = (data,)
    else:
        args = (
            jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype), data),
        )
    try:
        out = _loss_output(spec.loss, params, args)
    except jax.errors.JAXTypeError as err:  # e.g. float() or `if` on a traced value
        raise TypeError(
            "minimize: the loss must be traceable by JAX: no float(), .item() or Python `if` "
            "on values that depend on params or data (use jnp.where for branches); JAX's own "
            "message, with the line, is in the exception's cause."
        ) from err
    except TypeError as err:
        call = "loss(params, batch)" if data is not None else "loss(params)"
        raise TypeError(
            f"minimize: calling the loss as {call} failed: {err}. With data= the loss is called "
            "with (params, batch); without data, with params alone."
        ) from err
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"minimize: the loss must return a floating-point scalar, got shape {shape} and dtype "
            f"{dtype}; reduce it, e.g. with jnp.mean(...)."
        )
    if data is not None:
        bad = [
            f"data{jax.tree_util.keystr(p)}"
            for p, a in jax.tree_util.tree_leaves_with_path(data)
            if not isinstance(a, jax.core.Tracer)
            and jnp.issubdtype(a.dtype, jnp.inexact)
            and not _is_finite(a)
        ]
        if bad:
            warnings.warn(
                f"minimize: {', '.join(bad)} holds NaN or inf; the run stops at step 0 with status "
                "DIVERGED and the initial params. Clean the data first.",
                stacklevel=4,
            )

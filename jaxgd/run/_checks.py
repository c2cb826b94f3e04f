"""The argument checks of a run alone, before anything is traced or compiled.

The generic checks (counts, flags, thresholds, keys, params, data) live in
:mod:`jaxgd._checks` and are called from here with the caller's name; this
module holds what only a run asks: the minibatch size and order, checkpoints
and progress, the sharpness options, the held-out evaluation and the
learning-rate schedule; the checks that look at values (the loss's output,
the data's finiteness) are in :mod:`jaxgd.run._values`.
:func:`check_call` runs them all in order on one :class:`Call`. Each check
names the argument and says the fix; the docs' error table lists them and
``tests/test_errors.py`` calls each one. The
checks that cost most (tracing the loss abstractly, scanning the data for
NaN) are remembered for the arguments they saw, so a repeated call, as in a
sweep or a benchmark, spends microseconds here; ``jaxgd.clear_caches()``
forgets them.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxgd.run._threaded as threaded
from jaxgd import _checks as generic
from jaxgd import checkpoint as _checkpoint
from jaxgd import distributed
from jaxgd.optimizers import ADAPTS_ITS_RATE, check_optimizer, why_no_effective_lr
from jaxgd.run._diagnostics import NAMES as INSTRUMENTS
from jaxgd.run._values import check_loss_output, example_args, warn_if_not_finite

__all__ = ["Call", "check_call"]

CALLER = "minimize"
MAX_STEPS = 2**31 - 1  # the step counter is an int32


class Call(NamedTuple):
    """The arguments of one ``minimize`` call; :func:`check_call` returns them
    checked and normalised, with what the checks learnt."""

    loss: Any
    params: Any
    optimizer: Any
    steps: Any
    data: Any = None
    batch_size: Any = None
    key: Any = None
    tol: Any = None
    target: Any = None
    has_aux: Any = False
    record_params: Any = False
    history_every: Any = None
    sharpness_every: Any = None  # checked: 0 for off
    sharpness_iters: Any = 20
    checkpoint: Any = None
    checkpoint_every: Any = None  # checked: steps between two checkpoints (None: none)
    progress: Any = False
    mesh: Any = None
    eval_data: Any = None
    eval_every: Any = None  # checked: 0 for off
    diagnostics: Any = ()  # checked: a tuple of jaxgd.run._diagnostics.NAMES, in its order
    state: Any = None  # the model state the loss threads (None: a loss without one)
    opt_state: Any = None  # the optimizer state to go on from (None: init(params))
    n_examples: int = 0  # learnt by the checks: examples in the data (all processes')
    traced: bool = False  # called under jit or vmap
    no_rule: bool = True  # neither tol nor target: only divergence stops a run early
    eval_out: Any = None  # learnt by the checks: the loss's abstract output on eval_data

    @property
    def plain(self) -> bool:
        """No checkpoint, progress or mesh: a call the warm-call memory may remember."""
        return (
            self.checkpoint is None
            and self.checkpoint_every is None
            and self.progress is False
            and self.mesh is None
            and self.state is None
            and self.opt_state is None
        )

    @property
    def options(self) -> tuple:
        """The arguments a plain call's checks depend on besides its arrays and
        ``tol``/``target`` (which are checked every call): part of the warm-call
        signature (``jaxgd.run._warm``)."""
        return _options(self)


# How the warm-call memory treats each field of a Call (tests/run checks that
# every field is named once, so a new argument cannot be forgotten here).
ARRAYS = ("loss", "params", "optimizer", "data", "key", "eval_data")  # described by their leaves
PER_CALL = ("tol", "target")  # checked on every call, warm or cold
OPTIONS = (
    "steps",
    "batch_size",
    "has_aux",
    "record_params",
    "history_every",
    "sharpness_every",
    "sharpness_iters",
    "eval_every",
    "diagnostics",
)
NOT_PLAIN = (  # never remembered
    "checkpoint",
    "checkpoint_every",
    "progress",
    "mesh",
    "state",
    "opt_state",
)
LEARNT = ("n_examples", "traced", "no_rule", "eval_out")  # filled in by check_call
_options = operator.attrgetter(*OPTIONS)


def check_call(call: Call) -> Call:
    """Check every argument of ``call`` (in this order: the first error found is raised)."""
    generic.function(CALLER, call.loss, "loss(params[, batch])")
    check_optimizer(call.optimizer, CALLER)
    steps = generic.positive_int(CALLER, "steps", call.steps, most=MAX_STEPS)
    has_aux = generic.boolean(CALLER, "has_aux", call.has_aux)
    record_params = generic.boolean(CALLER, "record_params", call.record_params)
    progress = generic.boolean(CALLER, "progress", call.progress)
    params = generic.float_params(CALLER, call.params)
    data, n_examples = generic.example_data(CALLER, call.data)
    mesh = call.mesh
    if mesh is not None:  # the data split over the mesh: in several processes, the global rows
        mesh = distributed.auto_mesh(mesh)
        distributed.data_axis(mesh)
        if data is not None:
            data = distributed.shard_data(data, mesh, caller=CALLER)
            n_examples = jax.tree.leaves(data)[0].shape[0]
    eval_data, eval_every = _check_eval(call.eval_data, call.eval_every, data, mesh)
    batch_size = _check_batch_size(call.batch_size, data, n_examples)
    key = generic.prng_key(CALLER, call.key, required=batch_size is not None, why="a minibatch run")
    _check_order_size(steps, batch_size, n_examples)
    tol = generic.threshold(CALLER, "tol", call.tol, nonnegative=True)
    target = generic.threshold(CALLER, "target", call.target, nonnegative=False)
    threaded_in = (call.state, call.opt_state)
    traced = generic.under_transformation() or generic.is_traced(
        call.loss, params, call.optimizer, data, key, tol, target, eval_data, threaded_in
    )
    _check_reverse_mode(call.tol, call.target)
    every = _check_chunking(call.checkpoint, call.checkpoint_every, progress, traced, steps)
    history_every = call.history_every
    if history_every is not None:
        history_every = generic.positive_int(CALLER, "history_every", history_every)
    sharpness_every = _check_sharpness(call.sharpness_every, call.sharpness_iters)
    diagnostics = _check_diagnostics(call.diagnostics, data, batch_size, n_examples)
    _check_effective_lr(diagnostics, call.optimizer, params)
    _check_schedule(call.optimizer, steps)
    opt_state = threaded.check_opt_state(call.optimizer, params, call.opt_state)
    loss = threaded.stateless(call.loss, call.state)  # (params[, batch]) -> value
    check_loss_output(loss, params, data, batch_size, has_aux=has_aux)
    threaded.check_new_state(call.loss, params, call.state, example_args(data, batch_size))
    eval_out = _check_eval_output(loss, params, eval_data, has_aux)
    warn_if_not_finite(data, stacklevel=5)  # the user's call: minimize, cold path, here
    warn_if_not_finite(eval_data, stacklevel=5, name="eval_data")
    return call._replace(
        params=params,
        steps=steps,
        data=data,
        batch_size=batch_size,
        key=key,
        tol=tol,
        target=target,
        has_aux=has_aux,
        record_params=record_params,
        history_every=history_every,
        sharpness_every=sharpness_every,
        checkpoint_every=every,
        progress=progress,
        mesh=mesh,
        eval_data=eval_data,
        eval_every=eval_every,
        diagnostics=diagnostics,
        opt_state=opt_state,
        n_examples=n_examples,
        traced=traced,
        no_rule=call.tol is None and call.target is None,
        eval_out=eval_out,
    )


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


MAX_ORDER_BYTES = 1 << 30  # the minibatch order table of a run (int32 rows), at most


def _check_order_size(steps: int, batch_size: int | None, n_examples: int) -> None:
    """A minibatch run's order table (one row of indices a step) must fit."""
    if batch_size is None:
        return
    per_epoch = -(-n_examples // batch_size)
    need = 4 * batch_size * per_epoch * -(-steps // per_epoch)
    if need > MAX_ORDER_BYTES:
        most = MAX_ORDER_BYTES // (4 * batch_size)
        raise ValueError(
            f"minimize: the minibatch order of {steps} steps of batch_size {batch_size} would "
            f"need {need / 2**30:.1f} GiB; run at most {most} steps per call and go on from "
            "where it ended with another: minimize(loss, result.params, optimizer, "
            "opt_state=result.opt_state, key=<a new key>, ...) (and state=result.state with a "
            "model state)."
        )


def _check_chunking(path, every, progress, traced, steps) -> int | None:
    """Steps between two checkpoints (None: no checkpoint)."""
    if path is None and every is not None:
        raise ValueError(
            "minimize: checkpoint_every needs checkpoint=PATH, the folder to write the run to."
        )
    if traced and (path is not None or progress):
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
    return generic.positive_int(CALLER, "checkpoint_every", every)


def _check_sharpness(every: Any, iters: Any) -> int:
    """``sharpness_every`` as an int (0: off); ``sharpness_iters`` a positive int."""
    generic.positive_int(CALLER, "sharpness_iters", iters)
    if every is None:
        return 0
    return generic.positive_int(CALLER, "sharpness_every", every)


def _check_diagnostics(names: Any, data: Any, batch_size, n_examples: int) -> tuple:
    """The instruments asked for, in their order; the noise scale needs examples,
    two or more a batch."""
    names = generic.choices(CALLER, "diagnostics", names, INSTRUMENTS)
    if "noise_scale" not in names:
        return names
    rows = n_examples if batch_size is None else batch_size
    if data is None or rows < 2:
        raise ValueError(
            "minimize: diagnostics 'noise_scale' compares the gradients of the examples of a "
            "batch, so it needs data= with two or more examples a batch (batch_size >= 2); "
            f"{'a loss of params alone has none' if data is None else f'this run has {rows}'}."
        )
    return names


def _check_effective_lr(names: tuple, optimizer: Any, params: Any) -> None:
    """``effective_lr`` is read from the state of an optimizer that adapts its rate."""
    if "effective_lr" not in names:
        return
    why = why_no_effective_lr(optimizer, jax.eval_shape(optimizer.init, params))
    if why is not None:
        labels = ", ".join(f"optax.contrib.{label}" for label in ADAPTS_ITS_RATE)
        raise ValueError(
            f"minimize: diagnostics 'effective_lr' reads the rate d * lr an optimizer adapts "
            f"from its state, and this optimizer has none: {why}. It is recorded for {labels} "
            "(alone or inside optax.chain or optax.inject_hyperparams); for another optimizer "
            "drop 'effective_lr' from diagnostics (its rate is the learning_rate you gave it)."
        )


def _check_eval(eval_data: Any, every: Any, data: Any, mesh: Any) -> tuple[Any, int]:
    """``(eval_data, eval_every)``: the held-out examples (split over the mesh's
    data axis like ``data``) and the steps between two evaluations (0: off)."""
    if eval_data is None:
        if every is not None:
            raise ValueError(
                "minimize: eval_every needs eval_data=, the held-out examples to evaluate the "
                "loss on (a pytree like data, with a leading example axis)."
            )
        return None, 0
    if data is None:
        raise ValueError(
            "minimize: eval_data is passed to the loss as loss(params, eval_data), in place of "
            "a batch, so it needs a loss of (params, batch) and its training data= too."
        )
    if every is None:
        raise ValueError(
            "minimize: eval_data needs eval_every=K, the steps between two evaluations of the "
            "loss on it (each one evaluates all of eval_data): e.g. eval_every=100."
        )
    every = generic.positive_int(CALLER, "eval_every", every)
    eval_data = generic.example_data(CALLER, eval_data, name="eval_data")[0]
    if mesh is not None:
        eval_data = distributed.shard_data(eval_data, mesh, caller=CALLER, name="eval_data")
    return eval_data, every


def _check_eval_output(loss: Any, params: Any, eval_data: Any, has_aux: bool) -> Any:
    """The loss traced abstractly on the whole ``eval_data`` (None: no evaluation)."""
    if eval_data is None:
        return None
    try:
        return check_loss_output(loss, params, eval_data, None, has_aux=has_aux)
    except Exception as err:  # the loss took the training data: eval_data is what differs
        raise ValueError(
            f"minimize: the loss cannot be evaluated on eval_data ({type(err).__name__}: "
            f"{str(err).rstrip('.')}); eval_data is passed whole as loss(params, eval_data), so "
            "give it the structure of data, every leaf with a leading example axis and the shape "
            "of data's leaf after it."
        ) from err


def _check_reverse_mode(tol: Any, target: Any) -> None:
    """``jax.grad`` through a run that a rule may stop early is refused: its loop
    is a ``while_loop``, which reverse mode cannot differentiate."""
    if (tol is None and target is None) or not generic.in_reverse_mode():
        return
    given = " and ".join(name for name, v in (("tol", tol), ("target", target)) if v is not None)
    raise ValueError(
        f"minimize: jax.grad (reverse mode) cannot differentiate a run that {given} may stop "
        "early: its length depends on the values, so it runs as a while loop. Drop "
        f"{given} (a fixed-length run of all steps is differentiated exactly), or use "
        "forward mode (jax.jvp, jax.jacfwd), which works with them."
    )


_SCHEDULE_PROBES = 1 << 16  # schedule values checked before a run (all of them for short runs)


def _check_schedule(optimizer: Any, steps: int) -> None:
    """A learning-rate schedule that turns negative (or NaN) within the run is refused."""
    schedule = getattr(optimizer, "learning_rate", None)
    if not callable(schedule) or generic.is_traced(optimizer):
        return
    at = np.unique(np.linspace(0, steps - 1, min(steps, _SCHEDULE_PROBES)).astype(np.int64))
    try:
        with jax.ensure_compile_time_eval():
            values = np.asarray(jax.vmap(schedule)(jnp.asarray(at, jnp.int32)), np.float64)
    except jax.errors.JAXTypeError:  # a schedule of traced values (jax.grad over a rate)
        return
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"minimize: the learning-rate schedule gives {values[i]:.4g} at step {at[i]} (of "
            f"{steps}); a rate must stay a finite number >= 0 through the run: clip it, e.g. "
            "optax.schedules' end_value, or shorten steps."
        )

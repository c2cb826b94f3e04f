"""What a run returns: how it ended (:class:`Status`), the trajectory
(:class:`History`) and the final point (:class:`Result`)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["History", "Result", "Status", "bookkeeping_dtype"]


def bookkeeping_dtype(params: Any) -> Any:
    """The bookkeeping's precision (history, gradient norm, stopping rules, the
    instruments): the params' own, at least float32 (bfloat16 and float16 runs
    record float32, float64 runs float64, so that their gradient norm does not
    overflow)."""
    return jnp.result_type(jnp.float32, *(leaf.dtype for leaf in jax.tree.leaves(params)))


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
    INTERRUPTED = 4
    """Stopped by Ctrl-C between two chunks of the run (see ``RunInterrupted``)."""


RUNNING = -1
"""The status of a run still going (never returned)."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class History:
    """The trajectory of a run: entry ``i`` is step ``i * stride`` (``NaN`` after the run stopped).

    A run of ``steps`` steps records every step (``stride`` 1) up to a
    million entries; a longer run records every ``stride``-th step, so that a
    budget of 10^9 steps does not allocate 10^9 entries
    (``minimize(history_every=...)`` sets the stride).

    Attributes:
        loss: the loss at the recorded steps' params (the minibatch loss in
            minibatch runs).
        grad_norm: the global L2 norm of the gradient there.
        params: the params at the recorded steps, with a leading axis on
            every leaf, when ``record_params=True``; else ``None``.
        sharpness: the largest eigenvalue of the loss's Hessian every
            ``sharpness_every`` steps (``NaN`` between), when asked for;
            else ``None``. For adaptive optimizers see ``preconditioned``.
        preconditioned: the preconditioned sharpness, the largest eigenvalue
            of ``P^-1 H`` with the optimizer's preconditioner ``P``
            (:meth:`jaxgd.Optimizer.preconditioner`), at the same steps, for
            optimizers that have one (Adam's); else ``None``.
        eval_loss: the loss on the held-out ``eval_data`` (whole, never
            minibatched) at the recorded params every ``eval_every`` steps
            that are also entries (multiples of both), ``NaN`` between; with
            ``eval_every`` unset, ``None``.
        eval_aux: with ``has_aux=True`` and ``eval_data``, the loss's aux
            there, at the same entries: its pytree with a leading entry axis
            on every leaf (``NaN`` between; integer and bool leaves are kept
            as floats, so that they can hold ``NaN``); else ``None``.
        alpha: with ``diagnostics=("alpha", ...)``, the effective relative
            step size of the update taken at each recorded step (Cockpit's
            alpha: 0 lands on the minimum of the quadratic fitted along the
            step, 1 on its mirror point, above 1 overshoots); ``NaN`` where
            no update was taken and at the last step. See
            :mod:`jaxgd.run._diagnostics` and the diagnostics guide.
        cosine: with ``"cosine"``, the cosine between the update taken at
            the step and the one before (``NaN`` at step 0 and next to a
            zero update): near -1 the run zigzags, near +1 it crawls.
        update_ratio: with ``"update_ratio"``, ``|update| / |params|`` per
            leaf: a pytree like the params with one value per entry.
        noise_scale: with ``"noise_scale"``, the simple gradient noise
            scale ``tr(Sigma) / |G|^2`` of the step's batch (McCandlish et
            al. 2018), from per-example gradients.
        effective_lr: with ``"effective_lr"``, the effective learning rate
            ``d * lr`` of the update taken at the step, for the optimizers
            that adapt it (Prodigy's, D-Adaptation's): see
            :func:`jaxgd.optimizers.effective_lr`.
        stride: steps between two entries (static).
    """

    loss: jax.Array
    grad_norm: jax.Array
    params: Any = None
    sharpness: jax.Array | None = None
    preconditioned: jax.Array | None = None
    eval_loss: jax.Array | None = None
    eval_aux: Any = None
    alpha: jax.Array | None = None
    cosine: jax.Array | None = None
    update_ratio: Any = None
    noise_scale: jax.Array | None = None
    effective_lr: jax.Array | None = None
    stride: int = dataclasses.field(default=1, metadata={"static": True})

    @property
    def step(self) -> np.ndarray:
        """The step number of each entry: ``arange(len) * stride``."""
        return np.arange(np.shape(self.loss)[-1]) * self.stride

    def entry(self, step):
        """The entry of step ``step`` (the history's length, which writes drop,
        for a step that has none)."""
        if self.stride == 1:
            return step
        return jnp.where(step % self.stride == 0, step // self.stride, self.loss.shape[0])

    def record(self, step, loss, grad_norm, params, sharpness=None, evaluation=None) -> History:
        """This history with step ``step``'s entry written (inside the compiled loop).

        A step that is not a multiple of ``stride``, or past the end, has no
        entry: its writes are dropped. ``sharpness``: ``(plain,
        preconditioned)`` where measured; ``evaluation``: ``(eval_loss,
        eval_aux)`` on the held-out data (None leaves those entries as they are).
        """
        at = self.entry(step)

        def put(buffer, value):
            if buffer is None:
                return None
            return buffer.at[at].set(value.astype(buffer.dtype), mode="drop")

        return History(
            loss=put(self.loss, loss),
            grad_norm=put(self.grad_norm, grad_norm),
            params=None
            if self.params is None
            else jax.tree.map(lambda path, p: path.at[at].set(p, mode="drop"), self.params, params),
            sharpness=self.sharpness if sharpness is None else put(self.sharpness, sharpness[0]),
            preconditioned=self.preconditioned
            if sharpness is None
            else put(self.preconditioned, sharpness[1]),
            eval_loss=self.eval_loss if evaluation is None else put(self.eval_loss, evaluation[0]),
            eval_aux=self.eval_aux
            if evaluation is None
            else jax.tree.map(put, self.eval_aux, evaluation[1]),
            alpha=self.alpha,
            cosine=self.cosine,
            update_ratio=self.update_ratio,
            noise_scale=self.noise_scale,
            effective_lr=self.effective_lr,
            stride=self.stride,
        )


class Result(NamedTuple):
    """What :func:`jaxgd.minimize` returns.

    Attributes:
        params: the final params (the last good ones if the run diverged).
        loss: the loss at ``params`` on the full data.
        steps: the number of updates taken.
        status: the :class:`Status` code as an int32 array.
        history: the recorded :class:`History`.
        aux: with ``has_aux=True``, the loss's auxiliary output at ``params``
            (on the full data); else ``None``.
        state: with ``minimize(state=...)``, the model state after the last
            step (the one ``loss`` and ``aux`` were evaluated with); else ``None``.
        opt_state: the optimizer state after the last step: pass it back as
            ``minimize(opt_state=...)`` with ``params=result.params`` to go on
            (its step count drives schedules and bias corrections), or to
            ``optax.contrib.schedule_free_eval_params(result.opt_state,
            result.params)``.
    """

    params: Any
    loss: jax.Array
    steps: jax.Array
    status: jax.Array
    history: History
    aux: Any = None
    state: Any = None
    opt_state: Any = None

"""A compiled training step for people who write their own loop.

:func:`minimize` runs the whole descent as one compiled program. When the loop
has to stay in Python (a data loader, logging, early stopping of your own),
:func:`make_step` gives the next best thing: one compiled call per step that
evaluates the loss and its gradient, applies the optimizer's update, and
**donates** the params and optimizer-state buffers, so XLA writes the new
params and state over the old ones in place instead of allocating fresh
memory every step. For a large model that halves the memory the step needs
and saves the time of the allocations.

Donation has one rule for the caller: the params and state passed in are
consumed (their buffers are deleted); keep only what the step returns::

    params, state, loss = step(params, state, batch)  # never reuse the old ones
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgd import _checks as checks
from jaxgd._partition import Static, combine, partition
from jaxgd.optimizers import Optimizer, check_optimizer

__all__ = ["Step", "make_step"]


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(5, 6))
def _step(
    has_aux, loss_static, optimizer_static, loss_traced, optimizer_traced, params, state, *batch
):
    """One step; the loss's and optimizer's traced leaves are arguments, the rest compiled in."""
    loss = combine(loss_traced, loss_static)
    optimizer = combine(optimizer_traced, optimizer_static)
    value, grads = jax.value_and_grad(loss, has_aux=has_aux)(params, *batch)
    extra = {}
    if isinstance(optimizer, optax.GradientTransformationExtraArgs | Optimizer):
        # optax's line searches and L-BFGS evaluate the loss themselves
        scalar = (lambda p: loss(p, *batch)[0]) if has_aux else (lambda p: loss(p, *batch))
        extra = dict(value=value[0] if has_aux else value, grad=grads, value_fn=scalar)
    updates, state = optimizer.update(grads, state, params, **extra)
    return optax.apply_updates(params, updates), state, value


@functools.partial(jax.jit, static_argnums=0)
def _init(optimizer_static, optimizer_traced, params):
    return combine(optimizer_traced, optimizer_static).init(params)


@dataclasses.dataclass(frozen=True)
class Step:
    """A compiled training step (build it with :func:`make_step`).

    Attributes:
        loss: the loss, ``loss(params, *batch) -> scalar`` (or ``(scalar, aux)``).
        optimizer: the jaxgd optimizer or optax ``GradientTransformation``.
        has_aux: the loss returns ``(scalar, aux)``; the step then returns
            ``(params, state, (loss, aux))``.
    """

    loss: Callable[..., Any]
    optimizer: Any
    has_aux: bool = False
    _loss_parts: tuple[list[Any], Static] = dataclasses.field(init=False, repr=False)
    _optimizer_parts: tuple[list[Any], Static] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Traced values become device arrays once, here: Python floats would be
        # copied to the device on every call (about 10 us each on a GPU).
        loss_traced, loss_static = partition(self.loss)
        optimizer_traced, optimizer_static = partition(self.optimizer)
        on_device = lambda leaves: [None if x is None else jnp.asarray(x) for x in leaves]
        object.__setattr__(self, "_loss_parts", (on_device(loss_traced), loss_static))
        object.__setattr__(
            self, "_optimizer_parts", (on_device(optimizer_traced), optimizer_static)
        )

    def init(self, params: Any) -> Any:
        """The optimizer state for ``params`` (fresh buffers, safe to donate)."""
        traced, static = self._optimizer_parts
        return _init(static, traced, params)

    def __call__(self, params: Any, state: Any, *batch: Any) -> tuple[Any, Any, Any]:
        """Take one step.

        Args:
            params: the current params; **donated**: their buffers are reused
                for the result and must not be used again.
            state: the current optimizer state; donated likewise.
            *batch: passed to the loss after the params (not donated).

        Returns:
            ``(new_params, new_state, loss)``, where ``loss`` is the loss at
            the params passed in (before the update), as optax loops report it
            (``(loss, aux)`` with ``has_aux=True``).
        """
        loss_traced, loss_static = self._loss_parts
        optimizer_traced, optimizer_static = self._optimizer_parts
        return _step(
            self.has_aux,
            loss_static,
            optimizer_static,
            loss_traced,
            optimizer_traced,
            params,
            state,
            *batch,
        )


def make_step(loss: Callable[..., Any], optimizer: Any, *, has_aux: bool = False) -> Step:
    """A compiled ``step(params, state, *batch) -> (params, state, loss)`` for your own loop.

    The step evaluates ``loss`` and its gradient at ``params``, asks the
    optimizer for the update and adds it, all in one compiled XLA call. The
    params and state buffers are donated (``jax.jit(..., donate_argnums=...)``):
    the new values are written in place of the old ones, so the step needs no
    new memory for them and the arrays passed in are deleted afterwards.

    The compiled program depends only on ``loss``, the optimizer's kind and the
    shapes and dtypes of the arguments: a second ``make_step(loss, gd.adam(lr))``
    with another learning rate (or other betas, eps ...) reuses it without
    compiling; so does a pytree loss (``jax.tree_util.Partial``, an Equinox
    module) with new array or float values, and an optax optimizer with a new
    step size (its other numbers, held in its closures, are compiled in).

    Args:
        loss: ``loss(params, *batch)``, returning a floating-point scalar.
        optimizer: a jaxgd optimizer (``gd.adam(1e-3)``) or an optax
            ``GradientTransformation``.
        has_aux: the loss returns ``(loss, aux)`` (``jax.grad``'s convention).

    Returns:
        A :class:`Step`: call it as ``params, state, loss = step(params,
        state, *batch)``; ``step.init(params)`` builds the starting state.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda p, x: jnp.sum((p - x) ** 2)
        >>> step = gd.make_step(loss, gd.sgd(0.25))
        >>> params = jnp.zeros(2)
        >>> state = step.init(params)
        >>> for _ in range(3):
        ...     params, state, value = step(params, state, jnp.array([4.0, -4.0]))
        >>> params  # each step halves the distance to x: 4, 2, 1, then 0.5 to go
        Array([ 3.5, -3.5], dtype=float32)
        >>> value  # the loss before the last step: 2 * 1**2
        Array(2., dtype=float32)
    """
    checks.function("make_step", loss, "loss(params, *batch)")
    check_optimizer(optimizer, "make_step")
    has_aux = checks.boolean("make_step", "has_aux", has_aux)
    return Step(loss=loss, optimizer=optimizer, has_aux=has_aux)

"""The effective learning rate ``d * lr`` of the optimizers that adapt it, read
from their state: D-Adaptation's and Prodigy's.

``optax.contrib.dadapt_adamw`` and ``optax.contrib.prodigy`` keep ``D``, their
estimate of the distance to the solution, in a state field ``estim_lr``
(``estim_lr0`` at first, never decreasing). Their update at step ``t`` (the
state's ``count``) scales Adam's step by ``d * lr_t * bc_t``: ``d`` the state's
``estim_lr`` *before* the update, ``lr_t = learning_rate(count)`` the
schedule's rate (the number given, when it is one) and ``bc_t = sqrt(1 -
b2^(t+1)) / (1 - b1^(t+1))`` Adam's bias correction. The effective learning
rate is ``d * lr_t``: the D the update used times the rate the schedule gave
it, without the bias correction (Adam's rate is quoted without it too; the
PyTorch ports log the same ``d * lr``). ``estim_lr`` alone is ``d``, equal to
``d * lr`` only at the recommended ``learning_rate=1.0``.

Found by the state's shape, not its class: any ``NamedTuple`` in the state
with fields ``estim_lr`` and ``count`` (so optax's wrappers are seen through:
``optax.chain``, ``optax.inject_hyperparams``, ``optax.contrib`` ones). The
rate ``lr_t``: inside ``optax.inject_hyperparams``, the ``learning_rate`` of the
new state's ``hyperparams`` (the rate that update used); otherwise the
``learning_rate`` the update function closes over (optax's contrib optimizers
hold it there), found as jaxgd's traced/static rule sees optax's closures
(:func:`jaxgd._partition.closures`): the function defined in the module that
defines the state's type.

Not recorded: Mechanic (its learned scale ``sum(s)`` multiplies the whole
displacement from the start, ``x_0 + sum(s) * sum of base updates``, not one
step), DoG and DoWG (their rate ``r_t / sqrt(G_t)`` is computed inside the
update from two fields and ``eps``, not carried), COCOB (a bet per
coordinate, no scalar rate).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxgd._partition import closures

__all__ = ["ADAPTS_ITS_RATE", "effective_lr", "why_no_effective_lr"]

ADAPTS_ITS_RATE = ("dadapt_adamw", "prodigy")
"""The registry's labels whose state carries ``d`` (``estim_lr``)."""


def _is_d_state(x: Any) -> bool:
    fields = getattr(x, "_fields", None) if isinstance(x, tuple) else None
    return fields is not None and "estim_lr" in fields and "count" in fields


def _injected_rate(state: Any, new_state: Any) -> Any:
    """``new_state.hyperparams["learning_rate"]`` of an ``inject_hyperparams``
    state (the rate its update used), else None."""
    hyperparams = getattr(state, "hyperparams", None)
    if not hasattr(state, "inner_state") or not isinstance(hyperparams, dict):
        return None
    return new_state.hyperparams["learning_rate"] if "learning_rate" in hyperparams else None


def _found(state: Any, new_state: Any, rate: Any = None) -> list[tuple[Any, Any]]:
    """``(d_state, injected rate or None)`` of each D-adapting state, depth first."""
    if _is_d_state(state):
        return [(state, rate)]
    rate = _injected_rate(state, new_state) if rate is None else rate
    if isinstance(state, dict):
        pairs = [(state[k], new_state[k]) for k in state]
    elif isinstance(state, tuple | list):
        pairs = list(zip(state, new_state, strict=True))
    else:
        return []
    return [found for s, n in pairs for found in _found(s, n, rate)]


def _closed_rate(optimizer: Any, d_state: Any) -> Any:
    """The ``learning_rate`` closed over by the function of ``d_state``'s module (None: none)."""
    module = type(d_state).__module__
    for fn, cells in closures(optimizer):
        if fn.__module__ == module and "learning_rate" in cells:
            return cells["learning_rate"]
    return None


def why_no_effective_lr(optimizer: Any, state: Any) -> str | None:
    """Why ``optimizer`` has no effective learning rate to read from ``state``
    (its own, or ``jax.eval_shape`` of its ``init``), or None where it has one."""
    found = _found(state, state)
    if not found:
        return "its state carries no d (no NamedTuple with fields estim_lr and count)"
    if len(found) > 1:
        return f"its state carries {len(found)} d's (one rate a step is recorded)"
    d_state, injected = found[0]
    if injected is None and _closed_rate(optimizer, d_state) is None:
        return (
            f"its {type(d_state).__name__} carries d, but no learning_rate was found for it "
            "(neither in an optax.inject_hyperparams state nor closed over by its update)"
        )
    return None


def effective_lr(optimizer: Any, state: Any, new_state: Any) -> jax.Array:
    """``d * lr``, the effective learning rate of the update of ``optimizer`` from
    ``state`` to ``new_state`` (the D it used times the schedule's rate at its step,
    without Adam's bias correction), for ``optax.contrib.dadapt_adamw`` and
    ``optax.contrib.prodigy``, alone or inside optax's wrappers.

    Raises:
        ValueError: the optimizer's state carries no ``d`` (see
            :func:`why_no_effective_lr`).

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> opt = optax.contrib.prodigy(0.5, estim_lr0=1e-3)
        >>> state = opt.init(jnp.ones(2))
        >>> float(effective_lr(opt, state, state))  # d0 * lr
        0.0005
    """
    why = why_no_effective_lr(optimizer, state)
    if why is not None:
        raise ValueError(f"effective_lr: {why}; it is read from {', '.join(ADAPTS_ITS_RATE)}.")
    d_state, rate = _found(state, new_state)[0]
    if rate is None:
        rate = _closed_rate(optimizer, d_state)
    if callable(rate):
        rate = rate(d_state.count)
    d = jnp.asarray(d_state.estim_lr)
    return (d * jnp.asarray(rate, d.dtype)).astype(d.dtype)

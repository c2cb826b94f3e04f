"""The optimizers of ``optax.contrib``, by label, as they run in ``minimize`` and ``compare``.

Each is optax's own transformation; jaxgd's loop hands every
``GradientTransformationExtraArgs`` ``value=``, ``grad=`` and ``value_fn=``
(the loss at the current batch). Three need more than that, and get it here,
through an adaptor that only renames what the loop already passes:

- ``sophia`` takes the loss as ``obj_fn=`` (its Hutchinson estimate of the
  Hessian's diagonal): it is handed ``value_fn``;
- ``sam`` (sharpness-aware minimisation, opaque mode) takes ``grad_fn(params, i)``
  to take its ascent step inside one update: the gradient of ``value_fn``;
- ``mechanic`` wraps a base optimizer (``optax.contrib.mechanize``): SGD at
  ``learning_rate``, whose scale it learns.

:data:`NOT_RUN` says which exports do not fit an unconstrained minimisation,
and why. ``docs/guides/optimizers.md`` has the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from optax import contrib

__all__ = ["CONTRIB", "NOT_RUN"]


def _sophia(learning_rate: Any, **options: Any) -> optax.GradientTransformationExtraArgs:
    """``optax.contrib.sophia``, its ``obj_fn`` the loop's ``value_fn``."""
    inner = contrib.sophia(learning_rate, **options)

    def update(updates, state, params=None, *, value_fn=None, **extra):
        if value_fn is None:
            raise ValueError(
                "sophia: update needs value_fn= (the loss of params, for its Hessian estimate); "
                "jaxgd.minimize passes it, a hand loop must too."
            )
        return inner.update(updates, state, params, obj_fn=value_fn)

    return optax.GradientTransformationExtraArgs(inner.init, update)


def _sam(
    learning_rate: Any, rho: float = 0.05, sync_period: int = 2, **options: Any
) -> optax.GradientTransformationExtraArgs:
    """``optax.contrib.sam`` in opaque mode: SGD at ``learning_rate`` from the point
    ``rho`` up the normalised gradient; ``grad_fn`` is the gradient of ``value_fn``."""
    adversary = optax.chain(contrib.normalize(), optax.sgd(rho))
    inner = contrib.sam(
        optax.sgd(learning_rate), adversary, sync_period=sync_period, opaque_mode=True, **options
    )

    def update(updates, state, params=None, *, value_fn=None, **extra):
        if value_fn is None:
            raise ValueError(
                "sam: update needs value_fn= (the loss of params, for the ascent step's "
                "gradient); jaxgd.minimize passes it, a hand loop must too."
            )
        grad_fn = lambda p, _: jax.grad(value_fn)(p)  # noqa: E731
        return inner.update(updates, state, params, grad_fn=grad_fn)

    return optax.GradientTransformationExtraArgs(inner.init, update)


def _mechanic(learning_rate: Any = 1.0, **options: Any) -> optax.GradientTransformationExtraArgs:
    """``optax.contrib.mechanize(optax.sgd(learning_rate))``: Mechanic learns SGD's scale."""
    return contrib.mechanize(optax.sgd(learning_rate), **options)


CONTRIB: dict[str, Callable[..., Any]] = {
    "acprop": contrib.acprop,
    "ademamix": contrib.ademamix,
    "adopt": contrib.adopt,
    "cocob": contrib.cocob,
    "dadapt_adamw": contrib.dadapt_adamw,
    "dog": contrib.dog,
    "dowg": contrib.dowg,
    "galore": contrib.galore,
    "madgrad": contrib.madgrad,
    "mechanic": _mechanic,
    "momo": contrib.momo,
    "momo_adam": contrib.momo_adam,
    "muon": contrib.muon,
    "prodigy": contrib.prodigy,
    "sam": _sam,
    "schedule_free_adamw": contrib.schedule_free_adamw,
    "schedule_free_sgd": contrib.schedule_free_sgd,
    "simplified_ademamix": contrib.simplified_ademamix,
    "sophia": _sophia,
}
"""Label -> factory ``factory(learning_rate, **options)`` of every ``optax.contrib``
optimizer that runs in ``minimize`` (optax 0.2.8's exports)."""

NOT_RUN: dict[str, str] = {
    "dpsgd": "differentially private SGD clips per-example gradients: it needs a gradient "
    "per example (a leading batch axis on every leaf), not the batch's mean gradient",
    "schedule_free": "a wrapper (schedule_free_adamw and schedule_free_sgd are listed)",
    "reduce_on_plateau": "a learning-rate scale driven by the loss, not an optimizer: chain "
    "it after one (optax.chain(optax.sgd(lr), reduce_on_plateau())); minimize passes value=",
}
"""The ``optax.contrib`` exports that are not optimizers of an unconstrained
minimisation, and why (the ``scale_by_*``, ``normalize``, ``hutchinson_*``,
``split_real_and_imaginary`` and ``differentially_private_aggregate`` exports are
building blocks of the above, not optimizers)."""

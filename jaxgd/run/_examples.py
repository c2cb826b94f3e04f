"""A loss that is a mean over examples, said so: :func:`mean_over_examples`.

jaxgd asks nothing of how a loss treats its batch: a sum, a penalty on the
params, a normalisation across the batch are all fine. A loss built by
:func:`mean_over_examples` says more: it is the mean of one function over the
examples, so the mean of the per-example gradients *is* the step's gradient.
The noise scale (``minimize(diagnostics=("noise_scale",))``), which needs
the per-example gradients anyway, then gives the step its loss and gradient
from the same pass instead of a second backward pass of its own, where it is
recorded every step (a history stride of 1, the default up to a million
steps; with a longer stride the step computes its own gradient as usual).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["MeanOverExamples", "mean_over_examples"]


@dataclasses.dataclass(frozen=True)
class MeanOverExamples:
    """``loss(params, batch) = mean_i example_loss(params, example_i)``, the examples
    being the rows of every leaf of ``batch`` (made by :func:`mean_over_examples`).
    A pytree: a ``Partial`` as ``example_loss`` keeps its values traced."""

    example_loss: Callable[[Any, Any], jax.Array]

    def __call__(self, params: Any, batch: Any) -> jax.Array:
        losses = jax.vmap(self.example_loss, (None, 0))(params, batch)
        if not isinstance(losses, jax.Array):
            raise TypeError(
                "mean_over_examples: example_loss must return one scalar per example, got "
                f"{jax.tree.map(lambda a: getattr(a, 'shape', a), losses)} for a batch: a "
                "loss with aux outputs or a model state is not a mean over examples, pass it "
                "to minimize as it is"
            )
        if losses.ndim != 1:
            raise TypeError(
                "mean_over_examples: example_loss must return one scalar per example, got "
                f"shape {losses.shape[1:]} per example: reduce it to a scalar (its .sum() or "
                "jnp.squeeze)"
            )
        return jnp.mean(losses)


jax.tree_util.register_dataclass(MeanOverExamples, data_fields=["example_loss"], meta_fields=[])


def mean_over_examples(example_loss: Callable[[Any, Any], jax.Array]) -> MeanOverExamples:
    """The batch loss that is the mean of ``example_loss(params, example)`` over the
    rows of the batch (``jax.vmap`` over the leading axis of each data leaf).

    Use it as any loss. With the noise scale on and recorded every step, the
    step's loss and gradient come from the per-example pass the noise scale
    makes anyway (one backward pass a step, not two: see the diagnostics guide).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> loss = gd.run.mean_over_examples(lambda w, e: (e[0] * w - e[1]) ** 2)
        >>> float(loss(2.0, jnp.array([[1.0, 1.0], [2.0, 1.0]])))  # (1 + 9) / 2
        5.0
    """
    if not callable(example_loss):
        raise TypeError(
            f"mean_over_examples: example_loss must be a function (params, example) -> a "
            f"scalar, got {type(example_loss).__name__}"
        )
    return MeanOverExamples(example_loss)

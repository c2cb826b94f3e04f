"""Pure models, each an ``init(key) -> params`` and an ``apply(params, x)``.

Params are dicts of arrays (``{"w": ..., "b": ...}``), so partial derivatives
come back with the same names. Models return raw scores (logits) where a loss
turns them into probabilities: :func:`jaxgd.problems.losses.binary_cross_entropy` and
:func:`jaxgd.problems.losses.softmax_cross_entropy` take logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxgd._checks import positive_int

__all__ = ["Model", "linear", "logistic", "mlp", "softmax"]


class Model(NamedTuple):
    """A pure model: ``init(key) -> params`` and ``apply(params, x) -> outputs``."""

    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    name: str = "model"

    def __call__(self, params: Any, x: jax.Array) -> jax.Array:
        return self.apply(params, x)


def _dense_init(key, n_in, n_out, scale):
    w = scale * jax.random.normal(key, (n_in,) if n_out is None else (n_in, n_out))
    b = jnp.zeros(() if n_out is None else (n_out,))
    return {"w": w, "b": b}


def linear(n_features: int, n_outputs: int | None = None) -> Model:
    """``x @ w + b``: one output per example when ``n_outputs`` is None.

    Params start small and random (``w ~ N(0, 1/n_features)``), ``b = 0``.

    Examples:
        >>> import jax, jaxgd as gd
        >>> model = gd.problems.models.linear(3)
        >>> params = model.init(jax.random.PRNGKey(0))
        >>> params["w"].shape, model(params, jax.numpy.ones((5, 3))).shape
        ((3,), (5,))
    """
    positive_int("linear", "n_features", n_features)
    if n_outputs is not None:
        positive_int("linear", "n_outputs", n_outputs)
    scale = 1.0 / jnp.sqrt(n_features)
    return Model(
        init=lambda key: _dense_init(key, n_features, n_outputs, scale),
        apply=lambda params, x: x @ params["w"] + params["b"],
        name="linear",
    )


def logistic(n_features: int) -> Model:
    """Logistic regression: the logit ``x @ w + b`` of the positive class.

    Examples:
        >>> import jax, jaxgd as gd
        >>> model = gd.problems.models.logistic(4)
        >>> model(model.init(jax.random.PRNGKey(0)), jax.numpy.zeros((2, 4)))
        Array([0., 0.], dtype=float32)
    """
    return linear(n_features)._replace(name="logistic")


def softmax(n_features: int, n_classes: int) -> Model:
    """Multinomial logistic regression: class logits ``x @ W + b``.

    Examples:
        >>> import jax, jaxgd as gd
        >>> model = gd.problems.models.softmax(64, 10)
        >>> model(model.init(jax.random.PRNGKey(0)), jax.numpy.ones((2, 64))).shape
        (2, 10)
    """
    positive_int("softmax", "n_classes", n_classes)
    return linear(n_features, n_classes)._replace(name="softmax")


def mlp(
    sizes: Sequence[int],
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
) -> Model:
    """A multilayer perceptron: dense layers with ``activation`` between them.

    ``sizes = (n_in, hidden..., n_out)``; weights start with LeCun-normal scale
    ``1/sqrt(fan_in)``, biases at zero; the last layer is linear (logits).
    Params are ``{"layer0": {"w", "b"}, "layer1": ...}``.

    Examples:
        >>> import jax, jaxgd as gd
        >>> model = gd.problems.models.mlp((64, 32, 10))
        >>> params = model.init(jax.random.PRNGKey(0))
        >>> sorted(params), model(params, jax.numpy.ones((3, 64))).shape
        (['layer0', 'layer1'], (3, 10))
    """
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least (n_in, n_out), got {sizes!r}.")
    for s in sizes:
        positive_int("mlp", "every entry of sizes", s)
    n_layers = len(sizes) - 1

    def init(key):
        keys = jax.random.split(key, n_layers)
        return {
            f"layer{i}": _dense_init(keys[i], sizes[i], sizes[i + 1], 1.0 / jnp.sqrt(sizes[i]))
            for i in range(n_layers)
        }

    def apply(params, x):
        for i in range(n_layers):
            layer = params[f"layer{i}"]
            x = x @ layer["w"] + layer["b"]
            if i < n_layers - 1:
                x = activation(x)
        return x

    return Model(init=init, apply=apply, name="mlp")

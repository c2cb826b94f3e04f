"""The registry of the descent variants by label: ``names()`` and ``get(label)``.

The one list of optimizers the comparison, the CLI and the tests sweep.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from jaxgd.optimizers._base import Optimizer
from jaxgd.optimizers._rules import adagrad, adam, adamw, armijo, momentum, rmsprop, sgd

__all__ = ["get", "names"]

_REGISTRY: dict[str, Callable[..., Optimizer]] = {
    "vanilla": sgd,
    "momentum": momentum,
    "nesterov": functools.partial(momentum, nesterov=True),
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "armijo": armijo,
}


def names() -> list[str]:
    """The registered optimizer labels, in registry order.

    Examples:
        >>> import jaxgd as gd
        >>> gd.optimizers.names()
        ['vanilla', 'momentum', 'nesterov', 'adam', 'adamw', 'rmsprop', 'adagrad', 'armijo']
    """
    return list(_REGISTRY)


def get(label: str) -> Callable[..., Optimizer]:
    """The factory registered as ``label``: ``factory(learning_rate, **hyperparameters)``.

    Examples:
        >>> import jaxgd as gd
        >>> gd.optimizers.get("nesterov")(0.1, beta=0.8)
        momentum(learning_rate=0.1, beta=0.8, nesterov=True)
    """
    if not isinstance(label, str) or label not in _REGISTRY:
        raise ValueError(
            f"gd.optimizers.get: unknown optimizer {label!r}; known optimizers: "
            f"{', '.join(names())} (gd.optimizers.names() lists them)."
        )
    return _REGISTRY[label]

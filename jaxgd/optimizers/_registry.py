"""The registry of the descent variants by label: ``names()`` and ``get(label)``.

The one list of optimizers the comparison, the CLI and the tests sweep: jaxgd's
own rules, then (``names(contrib=True)``) the ``optax.contrib`` optimizers
(:mod:`._contrib`), which ``get`` and ``jaxgd compare --optimizers`` accept alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jaxgd.optimizers._base import Optimizer
from jaxgd.optimizers._contrib import CONTRIB
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


def names(contrib: bool = False) -> list[str]:
    """The registered optimizer labels, in registry order: jaxgd's rules, and with
    ``contrib=True`` also the ``optax.contrib`` optimizers (optax's own transformations).

    Examples:
        >>> import jaxgd as gd
        >>> gd.optimizers.names()
        ['vanilla', 'momentum', 'nesterov', 'adam', 'adamw', 'rmsprop', 'adagrad', 'armijo']
        >>> gd.optimizers.names(contrib=True)[8:11]
        ['acprop', 'ademamix', 'adopt']
    """
    return [*_REGISTRY, *CONTRIB] if contrib else list(_REGISTRY)


def get(label: str) -> Callable[..., Any]:
    """The factory registered as ``label``: ``factory(learning_rate, **hyperparameters)``.

    Examples:
        >>> import jaxgd as gd
        >>> gd.optimizers.get("nesterov")(0.1, beta=0.8)
        momentum(learning_rate=0.1, beta=0.8, nesterov=True)
    """
    if isinstance(label, str) and label in CONTRIB:
        return CONTRIB[label]
    if not isinstance(label, str) or label not in _REGISTRY:
        raise ValueError(
            f"gd.optimizers.get: unknown optimizer {label!r}; known optimizers: "
            f"{', '.join(names())} (gd.optimizers.names() lists them; "
            f"names(contrib=True) adds optax.contrib's)."
        )
    return _REGISTRY[label]

"""What is traced and what is compiled in: one rule for every object a run is handed.

A compiled program depends on its *static* inputs (a change compiles a new
program) and takes its *traced* inputs as values (a change reuses the
program). The loss, the optimizer and anything else a user hands to
:func:`jaxgd.minimize` or :func:`jaxgd.make_step` go through the same split,
as ``equinox.filter_jit`` and optimistix's ``closure_to_pytree`` do:

* the object is flattened as a pytree (``jax.tree_util``): a plain function
  is one leaf; a ``jax.tree_util.Partial``, an Equinox module, a registered
  dataclass or a jaxgd optimizer has the values it holds as leaves;
* array leaves (``jax.Array``, NumPy arrays and scalars) and Python floats
  and complex numbers are **traced**: a new learning rate, a new ``lam`` in
  ``Partial(loss, lam=0.1)`` or a new closed-over data array compiles
  nothing, and can be ``vmap``-ped over;
* everything else (functions, Python ints and bools, strings) is **static**
  and compiled in: it usually decides the program's shape.

A function that closes over an array (``lambda p: loss(p, X)``) has the
array baked into the program as a constant: pass large arrays as ``data=``
or as a ``Partial`` argument instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

__all__ = ["Static", "combine", "is_traced_leaf", "partition"]

_BY_VALUE = (int, bool, str, bytes, type(None))


def is_traced_leaf(leaf: Any) -> bool:
    """Whether a pytree leaf is a value the program takes (not compiled in).

    Example:
        >>> import jax.numpy as jnp
        >>> [is_traced_leaf(x) for x in (jnp.ones(2), 0.1, 3, True, print)]
        [True, True, False, False, False]
    """
    if isinstance(leaf, bool):
        return False
    return isinstance(leaf, jax.Array | np.ndarray | np.generic | float | complex)


class _Leaf:
    """A static leaf, hashed by value where that is safe, else by identity."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _key(self) -> Any:
        return (type(self.value), self.value) if isinstance(self.value, _BY_VALUE) else None

    def __hash__(self) -> int:
        key = self._key()
        return hash(key) if key is not None else id(self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Leaf):
            return NotImplemented
        key = self._key()
        return self.value is other.value or (key is not None and key == other._key())


@dataclasses.dataclass(frozen=True)
class Static:
    """The compiled-in part of an object: its tree structure and static leaves.

    Hashable, so it can be part of a ``jax.jit`` static argument; two objects
    that differ only in traced leaves have equal ``Static`` parts.
    """

    treedef: Any
    leaves: tuple[_Leaf | None, ...]


def partition(obj: Any) -> tuple[list[Any], Static]:
    """Split ``obj`` into its traced leaves and its static rest.

    Returns:
        ``(traced, static)``: ``traced`` is the list of traced leaves (None
        where a leaf is static), to pass to a compiled function as an
        argument; ``static`` is hashable and goes into its static arguments.
        :func:`combine` puts the two together again.

    Example:
        >>> import jax.numpy as jnp
        >>> from jax.tree_util import Partial
        >>> loss = lambda p, lam: lam * jnp.sum(p**2)
        >>> traced, static = partition(Partial(loss, 0.5))
        >>> traced  # the function is static (part of the tree's structure), lam is traced
        [0.5]
        >>> static == partition(Partial(loss, 2.0))[1]  # same program for another lam
        True
    """
    leaves, treedef = jax.tree.flatten(obj)
    traced = [leaf if is_traced_leaf(leaf) else None for leaf in leaves]
    static = tuple(None if is_traced_leaf(leaf) else _Leaf(leaf) for leaf in leaves)
    return traced, Static(treedef, static)


def combine(traced: list[Any], static: Static) -> Any:
    """The object :func:`partition` split (with ``traced`` possibly tracers)."""
    leaves = [t if s is None else s.value for t, s in zip(traced, static.leaves, strict=True)]
    return jax.tree.unflatten(static.treedef, leaves)

"""What is traced and what is compiled in: one rule for every object a run is handed.

A compiled program depends on its *static* inputs (a change compiles a new
program) and takes its *traced* inputs as values (a change reuses the
program). The loss, the optimizer and anything else a user hands to
`jaxgd.minimize` or `jaxgd.make_step` go through the same split,
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

An optax ``GradientTransformation`` is a pair of functions whose
hyperparameters live in their closures; `partition` sees through them,
as optimistix does (``equinox.internal.closure_to_pytree``): each closure
becomes a pytree node whose cells are its children. Arrays held in a closure
are traced, and so is the step size (a cell named ``learning_rate`` or
``step_size``, as in ``optax.scale``), so a new optax learning rate compiles
nothing and ``compare`` can ``vmap`` an optax factory over rates. Other Python
numbers in a closure (``b1``, ``eps``) stay compiled in, as optax folds them
(``1 - b1`` in float64), so optax's numbers are kept bit for bit.

A function that closes over an array (``lambda p: loss(p, X)``) has the
array baked into the program as a constant: pass large arrays as ``data=``
or as a ``Partial`` argument instead.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import jax
import numpy as np
import optax

__all__ = ["Static", "closures", "combine", "is_traced_leaf", "partition", "see_through"]

_BY_VALUE = (int, bool, str, bytes, type(None))


def is_traced_leaf(leaf: Any) -> bool:
    """Whether a pytree leaf is a value the program takes (not compiled in).

    Examples:
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
        `combine` puts the two together again.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jax.tree_util import Partial
        >>> loss = lambda p, lam: lam * jnp.sum(p**2)
        >>> traced, static = partition(Partial(loss, 0.5))
        >>> traced  # the function is static (part of the tree's structure), lam is traced
        [0.5]
        >>> static == partition(Partial(loss, 2.0))[1]  # same program for another lam
        True
    """
    leaves, treedef = jax.tree.flatten(see_through(obj))
    traced = [leaf if is_traced_leaf(leaf) else None for leaf in leaves]
    static = tuple(None if is_traced_leaf(leaf) else _Leaf(leaf) for leaf in leaves)
    return traced, Static(treedef, static)


def combine(traced: list[Any], static: Static) -> Any:
    """The object `partition` split (with ``traced`` possibly tracers)."""
    leaves = [t if s is None else s.value for t, s in zip(traced, static.leaves, strict=True)]
    return jax.tree.unflatten(static.treedef, leaves)


# --------------------------------------------------------------------------- #
# Seeing through optax's closures
# --------------------------------------------------------------------------- #

_STEP_SIZES = frozenset({"learning_rate", "step_size"})  # closure cells traced when numbers


def see_through(obj: Any) -> Any:
    """``obj`` with each optax ``GradientTransformation``'s functions made pytrees.

    The functions (``init``, ``update``, and those their closures hold) become
    `_Closure` nodes that call as the functions do and have their
    closure cells as children (see the module's docstring for which are
    traced). Anything else is returned as it is.

    Examples:
        >>> import jax, optax
        >>> jax.tree.leaves(see_through(optax.sgd(0.1)))  # the step size, -0.1
        [-0.1]
        >>> jax.tree.structure(see_through(optax.sgd(0.2))) == jax.tree.structure(
        ...     see_through(optax.sgd(0.1)))  # the same program
        True
    """
    is_transformation = lambda x: isinstance(x, optax.GradientTransformation)
    if not any(map(is_transformation, jax.tree.leaves(obj, is_leaf=is_transformation))):
        return obj
    convert = lambda x: _convert(x, False, set()) if is_transformation(x) else x
    return jax.tree.map(convert, obj, is_leaf=is_transformation)


def _convert(value: Any, traced_numbers: bool, seen: set[int]) -> Any:
    """``value`` (a closure cell's content) with its functions made `_Closure`
    nodes, looking into tuples (optax's ``chain`` holds its transformations
    in one); its Python numbers kept as leaves (``traced_numbers``) or
    compiled in. Anything else is held as it is: arrays are traced, and a
    mutable object (a list, a dict) is compiled in by identity, never copied,
    so what the function does to it is seen outside."""
    if isinstance(value, _Closure):
        return value  # seen through already
    if isinstance(value, types.FunctionType):
        return _Closure.of(value, seen)
    if isinstance(value, float | complex | np.generic) and not isinstance(value, bool):
        return value if traced_numbers else _Fixed(value)
    if isinstance(value, tuple):
        items = [_convert(v, traced_numbers, seen) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, jax.Array | np.ndarray) or not _is_node(value):
        return value
    return _Held(value)


def _is_node(value: Any) -> bool:
    """Whether ``value`` is a pytree node (flattening would rebuild it)."""
    return jax.tree.structure(value) != jax.tree.structure(0)


@jax.tree_util.register_static
class _Held:
    """A container held in a closure, compiled in by identity (a leafless node)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Held) and self.value is other.value


@jax.tree_util.register_static
class _Fixed:
    """A number held in a closure and compiled in (a leafless pytree node)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _key(self) -> Any:
        return type(self.value), getattr(self.value, "dtype", None), self.value

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Fixed) and self._key() == other._key()


class _Code:
    """What compiles a function in, besides its closure: code, globals, defaults."""

    __slots__ = ("fn",)

    def __init__(self, fn: types.FunctionType) -> None:
        self.fn = fn

    def _key(self) -> Any:
        fn = self.fn
        defaults = tuple(map(_Leaf, fn.__defaults__ or ()))
        kwdefaults = tuple((k, _Leaf(v)) for k, v in (fn.__kwdefaults__ or {}).items())
        return fn.__code__, id(fn.__globals__), defaults, kwdefaults

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Code) and self._key() == other._key()


class _Closure:
    """A function whose closure cells are pytree children: it calls as the
    function does, rebuilt with whatever values the cells hold now (tracers
    inside a compiled program)."""

    __slots__ = ("code", "cells", "__weakref__")

    def __init__(self, code: _Code, cells: tuple[Any, ...]) -> None:
        self.code = code
        self.cells = cells

    @classmethod
    def of(cls, fn: types.FunctionType, seen: set[int]) -> Any:
        if fn.__closure__ is None:  # keyed by its code: optax makes local ones afresh
            return cls(_Code(fn), ())
        if id(fn) in seen:  # a function that holds itself: compiled in
            return fn
        try:
            contents = [cell.cell_contents for cell in fn.__closure__]
        except ValueError:  # an empty cell: the function stays as it is, compiled in
            return fn
        seen = seen | {id(fn)}
        names = fn.__code__.co_freevars
        cells = tuple(
            _convert(c, name in _STEP_SIZES, seen) for name, c in zip(names, contents, strict=True)
        )
        return cls(_Code(fn), cells)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self.code.fn
        is_fixed = lambda x: isinstance(x, _Fixed | _Held)
        cells = jax.tree.map(lambda x: x.value if is_fixed(x) else x, self.cells, is_leaf=is_fixed)
        closure = tuple(map(types.CellType, cells)) if fn.__closure__ else None
        rebuilt = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, closure
        )
        rebuilt.__kwdefaults__ = fn.__kwdefaults__
        return rebuilt(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<closure of {self.code.fn.__qualname__}>"


jax.tree_util.register_pytree_node(
    _Closure,
    lambda c: (c.cells, c.code),
    lambda code, cells: _Closure(code, tuple(cells)),
)


def closures(obj: Any) -> list[tuple[types.FunctionType, dict[str, Any]]]:
    """Each function `see_through` makes a pytree node of in ``obj``, depth first,
    with its closure cells by name as the node holds them (numbers, arrays or
    tracers; a function held in a cell, such as a schedule, callable).

    Examples:
        >>> import optax
        >>> [(fn.__name__, cells["step_size"]) for fn, cells in closures(optax.sgd(0.1))
        ...  if "step_size" in cells]
        [('update_fn', -0.1)]
    """
    found: list[tuple[types.FunctionType, dict[str, Any]]] = []
    is_closure = lambda x: isinstance(x, _Closure)  # noqa: E731

    def visit(tree: Any) -> None:
        for node in jax.tree.leaves(tree, is_leaf=is_closure):
            if is_closure(node):
                fn = node.code.fn
                found.append((fn, dict(zip(fn.__code__.co_freevars, node.cells, strict=False))))
                visit(node.cells)

    visit(see_through(obj))
    return found

"""The one home of argument checks shared by every floor.

Each takes the name of the function the user called (``caller``), raises
before anything compiles, names the argument and says the fix: counts and
flags, stopping thresholds, PRNG keys, params, data, the loss itself. The
checks of one wing alone live in that wing (``jaxgd/run/_checks.py``) and
call these. Imports nothing of jaxgd, so the maths modules can use it too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "boolean",
    "choices",
    "example_data",
    "float_params",
    "function",
    "is_traced",
    "positive_int",
    "prng_key",
    "threshold",
]


def positive_int(caller: str, name: str, value: Any, *, most: int | None = None) -> int:
    """``value`` as a Python int >= 1 (NumPy and 0-d JAX integers accepted).

    Examples:
        >>> positive_int("minimize", "steps", 3)
        3
        >>> positive_int("minimize", "steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: minimize: steps must be a positive integer, got 0.
    """
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer) and value.ndim == 0:
        value = value.item() if jnp.issubdtype(value.dtype, jnp.integer) else value
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive integer, got {value!r}.")
    if most is not None and value > most:
        raise ValueError(
            f"{caller}: {name} must be at most {most} (the step counter is an int32), got "
            f"{value}; run a longer descent as several calls of at most {most} steps, each "
            "starting from the params the last one returned (result.params)."
        )
    return int(value)


def boolean(caller: str, name: str, value: Any) -> bool:
    """``value`` if it is True or False (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{caller}: {name} must be True or False, got {value!r}.")
    return value


def choices(caller: str, name: str, value: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    """``value``, names from ``known`` (a tuple or list of them, or one name), as a
    tuple in ``known``'s order without repeats.

    Examples:
        >>> choices("minimize", "diagnostics", ["cosine", "alpha"], ("alpha", "cosine"))
        ('alpha', 'cosine')
        >>> choices("minimize", "diagnostics", ("alfa",), ("alpha", "cosine"))
        Traceback (most recent call last):
        ...
        ValueError: minimize: diagnostics names 'alfa', which is not one of 'alpha', 'cosine'.
    """
    listed = ", ".join(map(repr, known))
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, tuple | list) or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"{caller}: {name} must be a tuple of names from {listed}, got {value!r}; "
            f"e.g. {name}=({known[0]!r},)."
        )
    for n in names:
        if n not in known:
            raise ValueError(f"{caller}: {name} names {n!r}, which is not one of {listed}.")
    return tuple(n for n in known if n in names)


def function(caller: str, value: Any, expected: str) -> Any:
    """``value`` if it can be called (``expected``: how it is called, for the message)."""
    if not callable(value):
        raise TypeError(f"{caller}: loss must be a function {expected}, got {value!r}.")
    return value


def is_traced(*trees: Any) -> bool:
    """Whether any leaf is being traced (the caller runs under vmap or jit)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def _as_array(a):
    if isinstance(a, jax.Array):
        return a
    if isinstance(a, float | int | complex):  # a strongly typed array, as numpy would give
        return jnp.asarray(a, dtype=jnp.result_type(type(a)))
    return jnp.asarray(a)


def _list_hint(caller: str, where: str, leaf: Any) -> None:
    if isinstance(leaf, list | tuple) or not hasattr(leaf, "shape") and not np.isscalar(leaf):
        raise TypeError(
            f"{caller}: {where} is a {type(leaf).__name__}, not an array; pass "
            f"np.asarray(...) (or jnp.asarray) of it."
        )


def _whole_model_hint(caller: str, where: str, leaf: Any) -> str:
    """What to pass instead of a whole model (RNG counters, functions, ints in params)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is None and isinstance(leaf, int | bool):
        dtype = jnp.result_type(type(leaf))
    what = f"has dtype {dtype}" if dtype is not None else f"is a {type(leaf).__name__}"
    return (
        f"{caller}: {where} {what}; gradient descent needs floating-point params: pass "
        "jnp.asarray(..., dtype=jnp.float32) for numbers. If params is a whole model, pass "
        "only its trainable arrays: eqx.partition(model, eqx.is_inexact_array) (Equinox) or "
        "nnx.split(model, nnx.Param, ...) (Flax NNX), and close over the rest in the loss."
    )


def float_params(caller: str, params: Any) -> Any:
    """Floating-point arrays, at least one; returned as JAX arrays."""
    leaves_with_path = jax.tree_util.tree_leaves_with_path(params)
    if not leaves_with_path:
        raise ValueError(
            f"{caller}: params has no arrays; pass the starting point, e.g. jnp.zeros(3)."
        )
    for path, leaf in leaves_with_path:
        where = f"params{jax.tree_util.keystr(path)}"
        if isinstance(leaf, list):
            _list_hint(caller, where, leaf)
        if isinstance(leaf, int | float) and not isinstance(leaf, bool):
            dtype = jnp.result_type(type(leaf))
        else:
            dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(_whole_model_hint(caller, where, leaf))
    return jax.tree.map(_as_array, params)


def example_data(caller: str, data: Any, *, name: str = "data") -> tuple[Any, int]:
    """Arrays with one common, non-zero leading example axis: ``(data, n_examples)``
    (``name``: the argument, named in the messages)."""
    if data is None:
        return None, 0
    leaves_with_path = jax.tree_util.tree_leaves_with_path(data)
    if not leaves_with_path:
        raise ValueError(f"{caller}: {name} has no arrays; pass None for a loss without data.")
    sizes = {}
    for path, leaf in leaves_with_path:
        where = f"{name}{jax.tree_util.keystr(path)}"
        if not hasattr(leaf, "shape"):
            if any(isinstance(k, jax.tree_util.SequenceKey) for k in path):
                raise TypeError(
                    f"{caller}: {name}{jax.tree_util.keystr(path[:1])} is a Python list or tuple "
                    "of numbers, not an array; pass np.asarray(...) of it (a tuple of arrays, "
                    "such as (x, y), is fine)."
                )
            if np.isscalar(leaf):
                raise ValueError(
                    f"{caller}: {where} is a scalar; every data array needs a leading example "
                    "axis (close over constants in the loss instead)."
                )
            _list_hint(caller, where, leaf)
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"{caller}: {where} is a scalar; every data array needs a leading example axis "
                "(close over constants in the loss instead)."
            )
        sizes[where] = shape[0]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{w}: {n}" for w, n in sizes.items())
        raise ValueError(
            f"{caller}: {name} arrays disagree on the number of examples ({listing}); every "
            "leaf needs the same leading axis."
        )
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(
            f"{caller}: {name} has 0 examples (the leading axis is empty); pass at least one "
            "example, or data=None for a loss without data."
        )
    return jax.tree.map(_as_array, data), n


def prng_key(caller: str, key: Any, *, required: bool, why: str) -> Any:
    """A JAX PRNG key (typed, or the raw ``uint32[2]`` of ``jax.random.PRNGKey``)."""
    if key is None:
        if required:
            raise ValueError(
                f"{caller}: {why} needs key= (a jax.random.PRNGKey) ; e.g. "
                "key=jax.random.PRNGKey(0)."
            )
        return np.zeros((2,), np.uint32)
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if (
        isinstance(key, jax.Array | np.ndarray)
        and key.shape == (2,)
        and jnp.issubdtype(key.dtype, jnp.unsignedinteger)
    ):
        return key
    raise TypeError(
        f"{caller}: key must be a jax.random key (jax.random.PRNGKey(0) or jax.random.key(0)), "
        f"got {key!r}; an integer seed goes through jax.random.PRNGKey(seed)."
    )


def threshold(caller: str, name: str, value: Any, *, nonnegative: bool) -> Any:
    """``value`` as a float32 scalar (``-inf`` for None: the rule is off)."""
    if value is None:
        return np.float32(-np.inf)  # a NumPy scalar: no device work on every call
    if not isinstance(value, jax.core.Tracer):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{caller}: {name} must be a number, got {value!r}.") from None
        if np.isnan(v) or (nonnegative and v < 0):
            rule = "a number >= 0" if nonnegative else "a number (not NaN)"
            raise ValueError(
                f"{caller}: {name} must be {rule}, got {value!r}; or None to switch it off."
            )
        return np.float32(v)
    return jnp.asarray(value, jnp.float32)

"""Every argument check of a run, before anything is traced or compiled.

Each check names the argument and says the fix; the README's error table
lists them and ``tests/test_errors.py`` calls each one. The checks that cost
most (tracing the loss abstractly, scanning the data for NaN) are remembered
for the arguments they saw, so a repeated call, as in a sweep or a
benchmark, spends microseconds here.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd._checks import boolean, positive_int

__all__ = [
    "all_finite",
    "check_aux_output",
    "check_bool",
    "check_data",
    "check_key",
    "check_loss_output",
    "check_params",
    "check_positive_int",
    "check_threshold",
    "is_traced",
]

MAX_STEPS = 2**31 - 1  # the step counter is an int32

check_positive_int = positive_int  # the shared checks, under the names the run layer uses
check_bool = boolean


def is_traced(*trees: Any) -> bool:
    """Whether any leaf is being traced (minimize called under vmap or jit)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


MAX_ORDER_BYTES = 1 << 30  # the minibatch order table of a run (int32 rows), at most


def check_order_size(steps: int, batch_size: int | None, n_examples: int) -> None:
    """A minibatch run's order table (one row of indices a step) must fit."""
    if batch_size is None:
        return
    per_epoch = -(-n_examples // batch_size)
    need = 4 * batch_size * per_epoch * -(-steps // per_epoch)
    if need > MAX_ORDER_BYTES:
        most = MAX_ORDER_BYTES // (4 * batch_size)
        raise ValueError(
            f"minimize: the minibatch order of {steps} steps of batch_size {batch_size} would "
            f"need {need / 2**30:.1f} GiB; run at most {most} steps per call and go on from a "
            "checkpoint= (each call resumes where the last ended)."
        )


def _as_array(a):
    if isinstance(a, jax.Array):
        return a
    if isinstance(a, float | int | complex):  # a strongly typed array, as numpy would give
        return jnp.asarray(a, dtype=jnp.result_type(type(a)))
    return jnp.asarray(a)


def _list_hint(where: str, leaf: Any) -> None:
    if isinstance(leaf, list | tuple) or not hasattr(leaf, "shape") and not np.isscalar(leaf):
        raise TypeError(
            f"minimize: {where} is a {type(leaf).__name__}, not an array; pass "
            f"np.asarray(...) (or jnp.asarray) of it."
        )


def _whole_model_hint(where: str, leaf: Any) -> str:
    """What to pass instead of a whole model (RNG counters, functions, ints in params)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is None and isinstance(leaf, int | bool):
        dtype = jnp.result_type(type(leaf))
    what = f"has dtype {dtype}" if dtype is not None else f"is a {type(leaf).__name__}"
    return (
        f"minimize: {where} {what}; gradient descent needs floating-point params: pass "
        "jnp.asarray(..., dtype=jnp.float32) for numbers. If params is a whole model, pass "
        "only its trainable arrays: eqx.partition(model, eqx.is_inexact_array) (Equinox) or "
        "nnx.split(model, nnx.Param, ...) (Flax NNX), and close over the rest in the loss."
    )


def check_params(params: Any) -> Any:
    """Floating-point arrays, at least one; returned as JAX arrays."""
    leaves_with_path = jax.tree_util.tree_leaves_with_path(params)
    if not leaves_with_path:
        raise ValueError(
            "minimize: params has no arrays; pass the starting point, e.g. jnp.zeros(3)."
        )
    for path, leaf in leaves_with_path:
        where = f"params{jax.tree_util.keystr(path)}"
        if isinstance(leaf, list):
            _list_hint(where, leaf)
        if isinstance(leaf, int | float) and not isinstance(leaf, bool):
            dtype = jnp.result_type(type(leaf))
        else:
            dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(_whole_model_hint(where, leaf))
    return jax.tree.map(_as_array, params)


def check_data(data: Any) -> tuple[Any, int]:
    """Arrays with one common, non-zero leading example axis: ``(data, n_examples)``."""
    if data is None:
        return None, 0
    leaves_with_path = jax.tree_util.tree_leaves_with_path(data)
    if not leaves_with_path:
        raise ValueError("minimize: data has no arrays; pass None for a loss without data.")
    sizes = {}
    for path, leaf in leaves_with_path:
        where = f"data{jax.tree_util.keystr(path)}"
        if not hasattr(leaf, "shape"):
            if any(isinstance(k, jax.tree_util.SequenceKey) for k in path):
                raise TypeError(
                    f"minimize: data{jax.tree_util.keystr(path[:1])} is a Python list or tuple "
                    "of numbers, not an array; pass np.asarray(...) of it (a tuple of arrays, "
                    "such as (x, y), is fine)."
                )
            if np.isscalar(leaf):
                raise ValueError(
                    f"minimize: {where} is a scalar; every data array needs a leading example "
                    "axis (close over constants in the loss instead)."
                )
            _list_hint(where, leaf)
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"minimize: {where} is a scalar; every data array needs a leading example axis "
                "(close over constants in the loss instead)."
            )
        sizes[where] = shape[0]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{w}: {n}" for w, n in sizes.items())
        raise ValueError(
            f"minimize: data arrays disagree on the number of examples ({listing}); every "
            "leaf needs the same leading axis."
        )
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(
            "minimize: data has 0 examples (the leading axis is empty); pass at least one "
            "example, or data=None for a loss without data."
        )
    return jax.tree.map(_as_array, data), n


def check_key(key: Any, *, required: bool, why: str) -> Any:
    """A JAX PRNG key (typed, or the raw ``uint32[2]`` of ``jax.random.PRNGKey``)."""
    if key is None:
        if required:
            raise ValueError(
                f"minimize: {why} needs key= (a jax.random.PRNGKey) ; e.g. "
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
        f"minimize: key must be a jax.random key (jax.random.PRNGKey(0) or jax.random.key(0)), "
        f"got {key!r}; an integer seed goes through jax.random.PRNGKey(seed)."
    )


def check_threshold(name: str, value: Any, *, nonnegative: bool) -> Any:
    if value is None:
        return np.float32(-np.inf)  # a NumPy scalar: no device work on every call
    if not isinstance(value, jax.core.Tracer):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"minimize: {name} must be a number, got {value!r}.") from None
        if np.isnan(v) or (nonnegative and v < 0):
            rule = "a number >= 0" if nonnegative else "a number (not NaN)"
            raise ValueError(
                f"minimize: {name} must be {rule}, got {value!r}; or None to switch it off."
            )
        return np.float32(v)
    return jnp.asarray(value, jnp.float32)


# --------------------------------------------------------------------------- #
# The loss's output, traced abstractly (no compiling), remembered per loss
# --------------------------------------------------------------------------- #

_OUTPUTS: dict[int, tuple[weakref.ref, dict]] = {}  # id(loss) -> (ref, {arg shapes: out})


def _remembered(store: dict, obj: Any) -> dict | None:
    """The dict remembered for ``obj`` while it lives (None if it cannot be weakly held)."""
    hit = store.get(id(obj))
    if hit is not None and hit[0]() is obj:
        return hit[1]
    try:
        key = id(obj)
        ref = weakref.ref(obj, lambda _, k=key: store.pop(k, None))
    except TypeError:
        return None
    memo: dict = {}
    store[key] = (ref, memo)
    return memo


def _loss_output(loss, params, args):
    """``jax.eval_shape(loss, params, *args)``, remembered by the argument types
    for as long as ``loss`` lives (nothing is kept alive by the memory)."""
    leaves, treedef = jax.tree.flatten((loss, params, args))
    if is_traced(leaves):
        return jax.eval_shape(loss, params, *args)
    memo = _remembered(_OUTPUTS, loss)
    key = (treedef, tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in leaves))
    try:
        hit = None if memo is None else memo.get(key)
    except TypeError:  # an unhashable leaf type
        memo, hit = None, None
    if hit is None:
        hit = jax.eval_shape(loss, params, *args)
        if memo is not None:
            if len(memo) > 16:
                memo.clear()
            memo[key] = hit
    return hit


def check_loss_output(loss, params, data, batch_size, *, has_aux: bool, caller: str = "minimize"):
    """Trace ``loss`` abstractly to check it returns a float scalar (with ``has_aux``:
    a pair whose first part is one); returns the abstract output."""
    if data is None:
        args = ()
    elif batch_size is None:
        args = (data,)
    else:
        args = (
            jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype), data),
        )
    call = "loss(params, batch)" if data is not None else "loss(params)"
    try:
        out = _loss_output(loss, params, args)
    except jax.errors.JAXTypeError as err:  # e.g. float() or `if` on a traced value
        raise TypeError(
            f"{caller}: the loss must be traceable by JAX: no float(), .item() or Python `if` "
            "on values that depend on params or data (use jnp.where for branches); JAX's own "
            "message, with the line, is in the exception's cause."
        ) from err
    except TypeError as err:
        if _is_signature_error(err, loss, 1 + len(args)):
            raise TypeError(
                f"{caller}: calling the loss as {call} failed: {err}. With data= the loss is "
                "called with (params, batch); without data, with params alone."
            ) from err
        raise
    return check_aux_output(out, has_aux=has_aux, caller=caller)


def _is_signature_error(err: TypeError, loss, n_args: int) -> bool:
    """Whether ``err`` says the loss cannot be called with ``n_args`` arguments
    (rather than a TypeError raised inside the loss's body)."""
    import inspect

    try:
        inspect.signature(loss).bind(*range(n_args))
    except TypeError:
        return True
    except ValueError:  # no signature to read (a builtin): judge by the message
        return "argument" in str(err)
    return False


def check_aux_output(out: Any, *, has_aux: bool, caller: str) -> Any:
    """``out`` (abstract) is a float scalar, or with ``has_aux`` a ``(scalar, aux)`` pair."""
    if has_aux:
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise ValueError(
                f"{caller}: with has_aux=True the loss must return a pair (loss, aux), got "
                f"{_describe(out)}."
            )
        value = out[0]
    else:
        if isinstance(out, tuple | list):
            raise ValueError(
                f"{caller}: the loss returned a {type(out).__name__} of {len(out)}; if it "
                "returns (loss, aux), pass has_aux=True."
            )
        value = out
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    constant = getattr(value, "weak_type", False)  # a Python number, not computed from params
    if constant or shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        if constant or isinstance(value, float | int):
            raise ValueError(
                f"{caller}: the loss returned a Python float (a number not computed from "
                "params), not a JAX array: it must compute with jnp on its arguments "
                "(jnp.sum, jnp.mean, ...) so that it can be differentiated."
            )
        raise ValueError(
            f"{caller}: the loss must return a floating-point scalar, got {_describe(value)}; "
            "reduce it, e.g. with jnp.mean(...)."
        )
    return out


def _describe(value: Any) -> str:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if dtype is None:
        return f"a {type(value).__name__}"
    return f"shape {shape} and dtype {dtype}"


# --------------------------------------------------------------------------- #
# Data holding NaN or inf: a warning, checked once per array
# --------------------------------------------------------------------------- #

_FINITE: dict[int, tuple[weakref.ref, dict]] = {}
_all_finite = jax.jit(lambda a: jnp.all(jnp.isfinite(a)))


def _is_finite(a) -> bool:
    """Whether the array ``a`` holds no NaN or inf (remembered while ``a`` lives)."""
    memo = _remembered(_FINITE, a)
    if memo is not None and "ok" in memo:
        return memo["ok"]
    with jax.ensure_compile_time_eval():  # concrete data inside an outer jit: run it now
        ok = bool(_all_finite(a))
    if memo is not None:
        memo["ok"] = ok
    return ok


def _finite_or_unchecked(a) -> bool:
    """Whether ``a`` needs no warning: finite, not floating-point, traced, or
    not held here (the rows of other processes)."""
    return (
        isinstance(a, jax.core.Tracer)
        or not getattr(a, "is_fully_addressable", True)
        or not jnp.issubdtype(a.dtype, jnp.inexact)
        or _is_finite(a)
    )


def all_finite(arrays: list, last: list) -> bool:
    """Whether :func:`warn_if_not_finite` has nothing to say about data with these
    leaves (JAX arrays). ``last`` (a list the caller keeps, empty at first)
    remembers the last arrays found finite while they all live: the same
    arrays again are known finite at the cost of comparing their ids."""
    ids = tuple(map(id, arrays))
    if last and last[0] == ids:
        return True
    if not all(_finite_or_unchecked(a) for a in arrays):
        return False
    try:  # while all of them live, their ids are theirs: a death forgets them
        forget = lambda _: last.clear()  # noqa: E731
        refs = [weakref.ref(a, forget) for a in arrays]
    except TypeError:  # not weakly referenceable: not remembered
        return True
    last[:] = [ids, refs]
    return True


def warn_if_not_finite(data: Any) -> None:
    if data is None:
        return
    bad = [
        f"data{jax.tree_util.keystr(p)}"
        for p, a in jax.tree_util.tree_leaves_with_path(data)
        if not _finite_or_unchecked(a)
    ]
    if bad:
        warnings.warn(
            f"minimize: {', '.join(bad)} holds NaN or inf; the run stops at step 0 with status "
            "DIVERGED and the initial params. Clean the data first.",
            stacklevel=4,
        )

"""Checks that look at values, each remembered for the objects it saw: what the
loss returns (traced abstractly, no compiling) and whether the data holds NaN
or inf. A repeated call, as in a sweep or a benchmark, spends microseconds
here; ``jaxgd.clear_caches()`` forgets them.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd import _checks as generic
from jaxgd._host import register_cache

__all__ = ["all_finite", "check_aux_output", "check_loss_output", "warn_if_not_finite"]

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
    if generic.is_traced(leaves):
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
register_cache(_OUTPUTS.clear)
register_cache(_FINITE.clear)


@register_cache
def _forget() -> None:
    """Forget the remembered loss outputs and finite arrays (``jaxgd.clear_caches``)."""
    _OUTPUTS.clear()
    _FINITE.clear()


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


def warn_if_not_finite(data: Any, stacklevel: int = 4, name: str = "data") -> None:
    """Warn that the data (``name``: ``"data"`` or ``"eval_data"``) holds NaN or inf
    (``stacklevel``: the user's call, from a warm call's
    :meth:`~jaxgd.run._warm.SeenCall.run`)."""
    if data is None:
        return
    bad = [
        f"{name}{jax.tree_util.keystr(p)}"
        for p, a in jax.tree_util.tree_leaves_with_path(data)
        if not _finite_or_unchecked(a)
    ]
    if not bad:
        return
    if name == "data":
        effect = "the run stops at step 0 with status DIVERGED and the initial params"
    else:
        effect = "every held-out loss (history.eval_loss) will be NaN or inf"
    warnings.warn(
        f"minimize: {', '.join(bad)} holds NaN or inf; {effect}. Clean the data first.",
        stacklevel=stacklevel,
    )

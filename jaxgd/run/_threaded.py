"""What a run threads from step to step besides the params, checked before
anything compiles: the optimizer state to go on from (``opt_state=``) and the
model state a loss reads and returns (``state=``: batch statistics, RNG
counters).

With ``state=s0`` the loss is called ``loss(params, state[, batch])`` and
returns ``(value, new_state)``, or ``((value, aux), new_state)`` with
``has_aux``; :func:`stateless` gives the value checks of
:mod:`jaxgd.run._values` a loss of the usual form to look at, and
:func:`check_new_state` checks the state part.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

__all__ = ["check_new_state", "check_opt_state", "stateless"]

CALLER = "minimize"


def _abstract(leaf: Any) -> str:
    """A leaf's dtype and shape, as ``float32[3]`` (a Python number: the dtype JAX
    gives it, so ``state=0`` is like the ``int32`` the loss returns)."""
    try:
        dtype = leaf.dtype if hasattr(leaf, "dtype") else jax.dtypes.result_type(leaf)
    except TypeError:  # not a number: its type
        return type(leaf).__name__
    return f"{dtype}{list(np.shape(leaf))}"


def _difference(expected: Any, given: Any) -> str | None:
    """Where ``given`` differs from ``expected`` in structure, shapes or dtypes,
    in words (the first leaf that differs, by its path); None where it does not."""
    want, given_leaves = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (expected, given))
    want_tree, given_tree = jax.tree.structure(expected), jax.tree.structure(given)
    if want_tree != given_tree:
        return f"the structure {want_tree} expected, {given_tree} given"
    for (path, a), (_, b) in zip(want, given_leaves, strict=True):
        if _abstract(a) != _abstract(b):
            where = jax.tree_util.keystr(path) or "the state"
            return f"{where}: {_abstract(a)} expected, {_abstract(b)} given"
    return None


def check_opt_state(optimizer: Any, params: Any, opt_state: Any) -> Any:
    """``opt_state`` if it is a state of ``optimizer`` for ``params`` (the
    structure, shapes and dtypes of ``optimizer.init(params)``)."""
    if opt_state is None:
        return None
    expected = jax.eval_shape(optimizer.init, params)
    if (differs := _difference(expected, opt_state)) is not None:
        raise ValueError(
            f"{CALLER}: opt_state is not a state of this optimizer for these params (like "
            f"optimizer.init(params) but for {differs}); pass result.opt_state of a run with "
            "the same optimizer and params=result.params, or opt_state=None to start afresh."
        )
    return opt_state


def _drop_state(loss, state, params, *args):
    # Rebuilt here, inside whatever traces this call: a state of objects that
    # remember the trace they were made in (Flax NNX's Variables) may then be
    # updated by the loss as it is inside the compiled loop.
    state = jax.tree.map(lambda a: a, state)
    out = loss(params, state, *args)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ValueError(
            f"{CALLER}: with state= the loss must return (value, new_state), or ((value, aux), "
            "new_state) with has_aux=True; got "
            + (
                f"a {type(out).__name__} of {len(out)}."
                if isinstance(out, tuple | list)
                else "one value."
            )
        )
    return out[0]


def stateless(loss: Any, state: Any) -> Any:
    """``loss`` as ``(params[, batch]) -> value`` with ``state`` bound (None: ``loss``)."""
    if state is None:
        return loss
    return functools.partial(_drop_state, loss, state)


def check_new_state(loss: Any, params: Any, state: Any, args: tuple) -> None:
    """The state ``loss(params, state, *args)`` returns is like ``state``
    (``args``: :func:`jaxgd.run._values.example_args`)."""
    if state is None:
        return
    out = jax.eval_shape(lambda p, s, *a: loss(p, s, *a)[1], params, state, *args)
    if (differs := _difference(state, out)) is not None:
        raise ValueError(
            f"{CALLER}: the loss's new_state must have the structure, shapes and dtypes of "
            f"state= (it differs: {differs}); return the updated state, e.g. "
            "nnx.state(model, ...) of the model the loss ran."
        )

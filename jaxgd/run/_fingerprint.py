"""A run's fingerprint: what a checkpoint must agree on to be resumed.

A checkpoint belongs to one run: the same loss, optimizer, starting point,
data, key and settings. Functions cannot be compared across processes (their
code and what they read change with the Python version and the globals), so
the fingerprint compares what they *compute* where it matters: the loss
value and gradient at the starting params, and the optimizer's first update
there. A changed constant the loss reads, a changed field of a callable loss
object, or another learning rate in an optax optimizer all change those
numbers, and the old run is not resumed.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd._partition import combine, partition

__all__ = ["digest", "fingerprint"]


def digest(tree: Any) -> str | None:
    """SHA-256 of a pytree's leaves (values, shapes, dtypes); None for arrays
    this process cannot read whole (data sharded over several processes)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if not getattr(leaf, "is_fully_addressable", True):
            return None
        a = np.asarray(leaf)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _probe(loss_fn, optimizer_static, optimizer_traced, params, data):
    """The loss value and gradient at ``params`` and the optimizer's first update."""
    optimizer = combine(optimizer_traced, optimizer_static)
    (value, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, data)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    return value, grads, updates


def _shapes(tree: Any) -> list:
    return [
        [jax.tree_util.keystr(p), list(np.shape(a)), str(a.dtype)]
        for p, a in jax.tree_util.tree_leaves_with_path(tree)
    ]


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", type(obj).__name__)


def fingerprint(
    loss_fn: Any,
    optimizer: Any,
    params: Any,
    data: Any,
    key: Any,
    settings: dict,
    eval_data: Any = None,
) -> dict:
    """The fingerprint of a run (JSON-able), ``settings`` (steps, tol, ...) included.

    ``loss_fn(params, data) -> (loss, aux)`` is the run's loss with its
    calling convention settled; ``optimizer`` a jaxgd or optax optimizer;
    ``eval_data`` the held-out data (its keys are absent when None, so that
    the fingerprint of a run without it is what it was before it existed).
    """
    traced, static = partition(optimizer)
    value, grads, updates = _probe(loss_fn, static, traced, params, data)
    hyper = [np.asarray(t).tolist() for t in traced if t is not None]
    schedule = getattr(optimizer, "learning_rate", None)
    if callable(schedule):  # a jaxgd optimizer's schedule: its values along the run
        steps = settings.get("steps", 1)
        probes = jnp.asarray(sorted({0, 1, 10, 100, steps // 2, steps - 1}), jnp.int32)
        hyper.append(np.asarray(jax.vmap(schedule)(probes)).tolist())
    key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    held_out = {}
    if eval_data is not None:
        held_out = {"eval_data": _shapes(eval_data), "eval_data_values": digest(eval_data)}
    return {
        "optimizer": _name(optimizer)
        if not isinstance(optimizer, optax.GradientTransformation)
        else f"optax:{_name(optimizer.update)}",
        "hyperparameters": hyper,
        "loss_at_start": digest((value, grads)),
        "optimizer_update_at_start": digest(updates),
        "params": _shapes(params),
        "initial_params": digest(params),
        "data": _shapes(data) if data is not None else None,
        "data_values": digest(data) if data is not None else None,
        "key": np.asarray(key_data).tolist(),
        **held_out,
        **settings,
    }

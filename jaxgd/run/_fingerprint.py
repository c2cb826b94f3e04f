"""A run's fingerprint: what a checkpoint must agree on to be resumed.

A checkpoint belongs to one run: the same loss, optimizer, starting point,
data, key and settings. Functions cannot be compared by identity across
processes, so the fingerprint compares **the programs they trace to**:

* ``loss_program``: the jaxpr of the loss's value and gradient, traced at the
  run's params and at a batch of the run's shape, with the values of the
  constants it closes over;
* ``optimizer_program``: the jaxpr of the optimizer's ``init`` and two
  ``update`` steps, with the optimizer's traced hyperparameters as inputs
  (their values are ``hyperparameters``) and its compiled-in numbers
  (optax's ``momentum``, ``b1``, ``eps``, a weight decay, a schedule's
  constants) written into the program as literals;
* the numbers it computes at the start (``loss_at_start``,
  ``optimizer_update_at_start``: the loss, gradient and two updates there),
  which also catch what a program only names (a host callback's result).

Why this is sound: a compiled run is a deterministic function of those two
programs, their constants, the traced hyperparameters, the params, the data,
the key and the settings, and the fingerprint holds all of them (their
digests). Two runs whose results could differ therefore differ in one of
them, whatever the params: ``optax.sgd(0.01, momentum=0.9)`` and
``momentum=0.5`` trace to programs with different literals; a loss gaining
``sum(p**4)`` traces to more operations even though its value and gradient
at ``p = 0`` are unchanged; weight decay adds its operations even when the
params it multiplies are zero. A probe of values at a few points could not
promise this (a change can hide at every point probed). A changed global the
loss reads, or a field of a callable loss object, is traced into the program
too. The converse does not hold: the same run traced by another JAX version
may print another program, and is then refused (delete the checkpoint, or
finish the run with the version that started it).
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd._partition import combine, partition

__all__ = ["digest", "fingerprint"]


def digest(tree: Any) -> str | None:
    """SHA-256 of a pytree's leaves (values, shapes, dtypes); None for arrays
    this process cannot read whole (data sharded over several processes). A typed
    PRNG key (a Flax NNX model's dropout key, for one) counts by its key data and
    the name of its implementation."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if not getattr(leaf, "is_fully_addressable", True):
            return None
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            h.update(f"key<{jax.random.key_impl(leaf)}>".encode())
            leaf = jax.random.key_data(leaf)
        a = np.asarray(leaf)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _two_updates(optimizer_static, optimizer_traced, params, grads):
    """The optimizer's first two updates (the second sees the state the first left:
    momentum, second moments, a step count)."""
    optimizer = combine(optimizer_traced, optimizer_static)
    state = optimizer.init(params)
    first, state = optimizer.update(grads, state, params)
    second, _ = optimizer.update(grads, state, params)
    return first, second


@functools.partial(jax.jit, static_argnums=(0, 1))
def _probe(loss_fn, optimizer_static, optimizer_traced, params, data):
    """The loss value and gradient at ``params`` and the optimizer's first two updates."""
    (value, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, data)
    updates = _two_updates(optimizer_static, optimizer_traced, params, grads)
    return value, grads, updates


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # a Python object's address, named in a program


def _program(fn, *args) -> str:
    """SHA-256 of the jaxpr ``fn`` traces to at ``args`` (arrays or shapes) and of
    the constants it closes over."""
    closed = jax.make_jaxpr(fn)(*args)
    # Never coloured (JAX colours str(jaxpr) inside IPython, which would make a notebook's
    # fingerprint differ from a script's for the same run).
    text = closed.jaxpr.pretty_print(use_color=False)
    h = hashlib.sha256(_ADDRESS.sub(" at 0x?", text).encode())
    h.update(str(digest([c for c in closed.consts if hasattr(c, "shape")])).encode())
    return h.hexdigest()


def _batch_like(data: Any, batch_size: int | None) -> Any:
    """The shapes of one step's batch (the whole data without minibatches)."""
    if data is None or not batch_size:
        return data
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct((min(batch_size, a.shape[0]), *a.shape[1:]), a.dtype),
        data,
    )


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
    loss_program = _program(
        jax.value_and_grad(loss_fn, has_aux=True),
        params,
        _batch_like(data, settings.get("batch_size")),
    )
    optimizer_program = _program(functools.partial(_two_updates, static), traced, params, params)
    key_data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    held_out = {}
    if eval_data is not None:
        held_out = {"eval_data": _shapes(eval_data), "eval_data_values": digest(eval_data)}
    return {
        "optimizer": _name(optimizer)
        if not isinstance(optimizer, optax.GradientTransformation)
        else f"optax:{_name(optimizer.update)}",
        "hyperparameters": hyper,
        "optimizer_program": optimizer_program,
        "loss_program": loss_program,
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

"""Calls seen before: what makes a warm ``minimize`` call cheap.

A plain call (no checkpoint, progress or mesh) whose arguments have the same
structure, shapes, dtypes and compiled-in parts as one of the last
:data:`MOST` calls skips the checks they passed: only ``tol``, ``target`` and
the data's finiteness are checked again (:func:`jaxgd.minimize`), and
learning rates given as Python numbers are placed on the device once per new
value. Each remembered call holds its loss and optimizer, as ``jax.jit``'s
own cache of compiled programs does.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd.partition import Static
from jaxgd.run import checks, chunks
from jaxgd.run.chunks import run_in_segments
from jaxgd.run.loop import Spec, whole_run
from jaxgd.run.result import Result

__all__ = ["MOST", "SEEN", "SeenCall", "signature", "traced_leaves"]


SEEN: collections.OrderedDict = collections.OrderedDict()  # signature -> SeenCall
MOST = 32  # calls remembered (each holds its loss and optimizer, as jit's cache does)


_KINDS: dict[type, str] = {}  # leaf type -> "array", "numpy", "scalar", "static" or "tracer"


def _kind(kind: type) -> str:
    if issubclass(kind, jax.core.Tracer):
        return "tracer"
    if issubclass(kind, jax.Array):
        return "array"
    if issubclass(kind, np.ndarray):
        return "numpy"
    return "scalar" if kind is not bool and issubclass(kind, _SCALARS) else "static"


_SCALARS = (np.generic, float, complex)  # traced leaves besides arrays (see jaxgd.partition)


def _describe(leaf: Any) -> Any:
    """What the checks saw of a leaf: type, shape and dtype of a traced value,
    the value itself (by identity for objects) of a static one."""
    kind = type(leaf)
    what = _KINDS.get(kind) or _KINDS.setdefault(kind, _kind(kind))
    if what == "array":
        return (kind, leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False))
    if what == "numpy":
        return (kind, leaf.shape, leaf.dtype)
    if what == "scalar":
        return kind
    if what == "tracer":
        raise TypeError  # under jit or vmap: not remembered
    return (kind, leaf)  # compiled in: by value (ints, strings) or identity (functions)


def signature(loss, params, optimizer, data, key, *options) -> tuple[Any, list]:
    """``(signature, leaves)``: the signature holds everything the argument checks
    of a plain call depend on, but the values of ``tol``, ``target`` and the
    arrays (checked on every call); None (not remembered) under jit or vmap or
    for an unhashable argument. ``leaves``: those of ``(loss, params,
    optimizer, data, key)``."""
    leaves, treedef = jax.tree.flatten((loss, params, optimizer, data, key))
    try:
        described = tuple(_describe(leaf) for leaf in leaves)
        signature = (treedef, described, tuple((type(o), o) for o in options))
        hash(signature)
    except (TypeError, AttributeError):  # an unhashable or unusual leaf: checked afresh
        return None, leaves
    return signature, leaves


class SeenCall(NamedTuple):
    """A plain call whose checks passed: what a call with the same signature needs."""

    spec: Spec
    split: tuple[int, int, int]  # leaves of the loss, the params and the optimizer
    convert: bool  # params or data hold leaves that are not JAX arrays yet
    key: Any  # the key when none is passed (a device array, made once)
    one_call: bool  # the whole run is one compiled call (else segments, see run_in_segments)
    rule: Callable  # what decided one_call (chunks.first_length; decided afresh if replaced)
    numbers: bool  # the traced leaves of the loss and optimizer are all Python or NumPy numbers
    placed: list  # [those numbers, the same on the device] of the last call
    off: Any  # tol or target None: -inf, on the device

    @classmethod
    def of(cls, spec: Spec, leaves: list, params: Any, data: Any, key: Any) -> SeenCall:
        split = (len(spec.loss.leaves), len(jax.tree.leaves(params)), len(spec.optimizer.leaves))
        given = leaves[split[0] : split[0] + split[1]] + jax.tree.leaves(data)
        return cls(
            spec=spec,
            split=split,
            convert=not all(isinstance(leaf, jax.Array) for leaf in given),
            key=jnp.asarray(key) if isinstance(key, np.ndarray) else None,
            one_call=chunks.first_length(spec, params, data) >= spec.steps,
            rule=chunks.first_length,
            numbers=all(
                s is not None or type(leaf) in (float, complex) or isinstance(leaf, np.generic)
                for leaf, s in zip(
                    leaves[: split[0]] + leaves[sum(split[:2]) : sum(split)],
                    spec.loss.leaves + spec.optimizer.leaves,
                    strict=True,
                )
            ),
            placed=[None, None],
            off=jnp.asarray(checks.check_threshold("tol", None, nonnegative=True)),
        )

    def traced(self, leaves: list) -> tuple[list, list]:
        """The traced leaves of the loss and of the optimizer, from the signature's leaves."""
        n_loss, n_params, n_optimizer = self.split
        at = n_loss + n_params
        return (
            traced_leaves(leaves[:n_loss], self.spec.loss),
            traced_leaves(leaves[at : at + n_optimizer], self.spec.optimizer),
        )

    def run(self, leaves: list, params: Any, data: Any, key: Any, tol: Any, target: Any) -> Result:
        """The run of checked arguments (``leaves``: the signature's)."""
        spec = self.spec
        traced = self.traced(leaves)
        if self.numbers:  # hyperparameters as Python numbers: placed once per new value
            numbers = tuple(traced[0] + traced[1])
            if self.placed[0] != numbers:
                self.placed[:] = [numbers, jax.device_put(traced)]
            traced = self.placed[1]
        key = self.key if key is None else key
        one_call = self.one_call
        if chunks.first_length is not self.rule:
            one_call = chunks.first_length(spec, params, data) >= spec.steps
        if one_call:  # one compiled call, returned without waiting for it
            return whole_run(spec, traced, params, data, key, tol, target)
        return run_in_segments(spec, traced, params, data, key, tol, target)


def traced_leaves(leaves: list, static: Static) -> list:
    """The traced leaves, as :func:`jaxgd.partition.partition` gives them."""
    return [leaf if s is None else None for leaf, s in zip(leaves, static.leaves, strict=True)]

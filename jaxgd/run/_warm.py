"""Calls seen before: what makes a warm ``minimize`` call cheap.

A plain call (no checkpoint, progress or mesh) whose arguments have the same
structure, shapes, dtypes and compiled-in parts as one of the last
:data:`MOST` calls skips the checks they passed: only ``tol``, ``target`` and
the data's finiteness are checked again (:meth:`SeenCall.run`), and
learning rates given as Python numbers are placed on the device once per new
value. Each remembered call holds its loss and optimizer, as ``jax.jit``'s
own cache of compiled programs does.

**Recompiling only for a new object.** A cold call whose signature equals a
remembered one's up to the identity of its compiled-in functions (a new
lambda, a ``functools.partial`` or a schedule made again with the same code)
compiles again for nothing but that new object, at the cost of a compile
each call: it is warned of once per such call, naming which object (of the
loss or the optimizer) and the fix (define it once, or pass its values in a
``jax.tree_util.Partial``, whose arguments are traced).

Everything remembered lives in one :class:`WarmCalls`, :data:`CALLS`, which
``jaxgd.clear_caches()`` empties: :func:`jaxgd.minimize` asks it for a call
it remembers (:meth:`WarmCalls.recall`) and otherwise runs the cold path,
which hands the checked call back (:meth:`WarmCalls.remember`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import operator
import types
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxgd.run._segments as chunks
import jaxgd.run._values as checks
from jaxgd import _checks as generic
from jaxgd._host import agree, register_cache
from jaxgd._partition import Static, see_through
from jaxgd.optimizers import Optimizer
from jaxgd.run._loop import whole_run
from jaxgd.run._result import History, Result
from jaxgd.run._state import Spec

__all__ = ["CALLS", "MOST", "SeenCall", "WarmCalls", "traced_leaves"]

CALLER = "minimize"
MOST = 32  # calls remembered (each holds its loss and optimizer, as jit's cache does)


_SCALARS = (np.generic, float, complex)  # traced leaves besides arrays (see jaxgd._partition)


class _Plan(NamedTuple):
    """Where the leaves of one sequence of leaf types are, by what describes them."""

    arrays: Callable[[list], tuple]  # the JAX arrays: by their abstract value
    numpy: Callable[[list], tuple]  # the NumPy arrays: by shape and dtype
    static: Callable[[list], tuple]  # the compiled-in leaves: by value or identity
    # (the numbers, traced, are described by their type alone)


def _plan(kinds: tuple[type, ...]) -> _Plan | None:
    """The plan of these leaf types (None with a tracer: under jit or vmap)."""
    where: dict[str, list[int]] = {"arrays": [], "numpy": [], "static": []}
    for i, kind in enumerate(kinds):
        if issubclass(kind, jax.core.Tracer):
            return None
        if issubclass(kind, jax.Array):
            where["arrays"].append(i)
        elif issubclass(kind, np.ndarray):
            where["numpy"].append(i)
        elif kind is bool or not issubclass(kind, _SCALARS):
            where["static"].append(i)
    return _Plan(**{name: _getter(at) for name, at in where.items()})


_AVAL = operator.attrgetter("aval")  # shape, dtype and weak type, interned: cheap to compare
_SHAPE_DTYPE = operator.attrgetter("shape", "dtype")


class WarmCalls:
    """The calls remembered, the plans of their leaf types and one compiled
    runner per spec: every cache of a warm ``minimize``, behind one boundary."""

    def __init__(self) -> None:
        self.plans: dict[tuple[type, ...], _Plan | None] = {}  # leaf types -> their plan
        self.seen: collections.OrderedDict = collections.OrderedDict()  # signature -> SeenCall
        self.runners: collections.OrderedDict = collections.OrderedDict()  # spec -> its runner
        # a signature up to its functions' identities -> the last signature seen with it
        self.same_code: collections.OrderedDict = collections.OrderedDict()
        self.warned: set = set()  # those warned of (once each)

    def clear(self) -> None:
        """Forget everything (``jaxgd.clear_caches``)."""
        self.plans.clear()
        self.seen.clear()
        self.runners.clear()
        self.same_code.clear()
        self.warned.clear()

    def signature(
        self, loss, params, optimizer, data, key, options, eval_data=None
    ) -> tuple[Any, list]:
        """``(signature, leaves)``: the signature holds everything the argument checks
        of a plain call depend on, but the values of ``tol``, ``target`` and the
        arrays (checked on every call): the tree structure, each leaf's type, each
        array's abstract value (shape, dtype, weak type), each compiled-in leaf's
        value, and the options with their types (``True`` is not ``1``). None
        (not remembered) under jit or vmap. ``leaves``: those of ``(loss, params,
        optimizer, data, key, eval_data)``. A signature that cannot be hashed is
        never remembered."""
        if not isinstance(optimizer, Optimizer):  # jaxgd's hold no optax closures
            optimizer = see_through(optimizer)
        leaves, treedef = jax.tree.flatten((loss, params, optimizer, data, key, eval_data))
        kinds = tuple(map(type, leaves))
        try:
            plan = self.plans[kinds]
        except KeyError:
            if len(self.plans) > 4 * MOST:
                self.plans.clear()
            plan = self.plans[kinds] = _plan(kinds)
        if plan is None:
            return None, leaves
        try:
            arrays = tuple(map(_AVAL, plan.arrays(leaves)))
            numpy = tuple(map(_SHAPE_DTYPE, plan.numpy(leaves)))
        except AttributeError:  # an unusual array: checked afresh
            return None, leaves
        described = (treedef, kinds, arrays, numpy, plan.static(leaves), tuple(map(type, options)))
        return (*described, options), leaves

    def run(self, call: Any, cold: Callable[[Any, tuple | None], Result]) -> Result:
        """``call`` (a :class:`jaxgd.run._checks.Call`) run as the remembered call
        like it, or else by ``cold(call, memo)``, which checks, plans and
        executes it (and, for a plain call, remembers it with ``memo``)."""
        if not call.plain or generic.under_transformation():  # traced: never remembered
            return cold(call, None)
        loss, params, optimizer, data, key = (
            call.loss,
            call.params,
            call.optimizer,
            call.data,
            call.key,
        )
        seen, memo = self.recall(loss, params, optimizer, data, key, call.options, call.eval_data)
        if seen is None:
            return cold(call, memo)
        return seen.run(memo[1], params, data, key, call.tol, call.target, call.eval_data)

    def recall(
        self, loss, params, optimizer, data, key, options, eval_data=None
    ) -> tuple[SeenCall | None, tuple]:
        """``(seen, memo)``: the call remembered with these arguments (None: not
        seen, or not rememberable), and what :meth:`remember` needs of them."""
        signature, leaves = self.signature(loss, params, optimizer, data, key, options, eval_data)
        seen = None
        if signature is not None:
            try:
                seen = self.seen.get(signature)
            except TypeError:  # an unhashable compiled-in leaf
                signature = None
        if seen is not None:
            self.seen.move_to_end(signature)
        elif signature is not None:
            self._note_same_code(signature, leaves, loss)
        return seen, (signature, leaves)

    def _note_same_code(self, signature: tuple, leaves: list, loss: Any) -> None:
        """Warn (once) where a call compiles again only because a compiled-in
        function of it is a new object with the same code as one seen before."""
        static = signature[4]
        loose = (
            _loose_treedef(signature[0]),
            *signature[1:4],
            tuple(map(_same_code, static)),
            *signature[5:],
        )
        try:
            before = self.same_code.get(loose)
        except TypeError:  # an unhashable part: nothing to compare
            return
        self.same_code[loose] = signature
        self.same_code.move_to_end(loose)
        if len(self.same_code) > MOST:
            self.same_code.popitem(last=False)
        if before is None or before == signature or loose in self.warned:
            return
        self.warned.add(loose)
        n_loss = len(jax.tree.leaves(loss))
        at = [i for i, leaf in enumerate(leaves) if any(leaf is s for s in static)]
        new = [
            ("the loss" if i < n_loss else "the optimizer", leaf)
            for i, leaf in zip(at, static, strict=False)
            if not any(leaf is old for old in before[4])
        ]
        parts = zip(signature[0].children(), before[0].children(), strict=False)
        new += [  # functions held in the tree's nodes: (loss, params, optimizer, ...)
            (where, _node_function(now))
            for where, (now, then) in zip(("the loss", None, "the optimizer"), parts, strict=False)
            if where and now != then
        ]
        warnings.warn(_recompiling_message(new), UserWarning, stacklevel=5)

    def remember(
        self, memo: tuple, spec: Spec, params: Any, data: Any, key: Any, eval_data: Any = None
    ) -> SeenCall:
        """The :class:`SeenCall` of a checked plain call (``memo``: from :meth:`recall`),
        remembered under its signature (the oldest of :data:`MOST` calls goes)."""
        signature, leaves = memo
        seen = SeenCall.of(spec, leaves, params, data, key, self.runner(spec), eval_data)
        if signature is not None:
            try:
                self.seen[signature] = seen
            except TypeError:  # an unhashable compiled-in leaf: checked afresh every call
                return seen
            if len(self.seen) > MOST:
                self.seen.popitem(last=False)
        return seen

    def runner(self, spec: Spec) -> Callable[..., tuple]:
        """:func:`jaxgd.run._loop.whole_run` with ``spec`` bound, jitted: the same
        program, but a call dispatches without hashing and comparing the spec (a
        static argument) every time, and returns plain tuples (see
        :func:`_whole_run_as_tuples`). One per spec, shared by the remembered calls
        of that spec (so a spec compiles once, as in ``whole_run``'s own cache)."""
        run = self.runners.get(spec)
        if run is None:
            run = self.runners[spec] = jax.jit(functools.partial(_whole_run_as_tuples, spec))
            if len(self.runners) > MOST:
                self.runners.popitem(last=False)
        else:
            self.runners.move_to_end(spec)
        return run


class SeenCall(NamedTuple):
    """A plain call whose checks passed: what a call with the same signature needs."""

    spec: Spec
    split: tuple[int, int, int]  # leaves of the loss, the params and the optimizer
    convert: bool  # params or data hold leaves that are not JAX arrays yet
    key: Any  # the key when none is passed (a device array, made once)
    one_call: list  # [the whole run is one compiled call] (else segments, see
    # run_in_segments): where it is no longer than a first segment would be
    numbers: Callable | None  # the traced leaves of the loss and optimizer from the
    # signature's leaves, where they are all Python or NumPy numbers (else None)
    placed: list  # [those numbers, the same on the device] of the last call
    off: Any  # tol or target None: -inf, on the device
    data: slice  # where the data's leaves are among the signature's leaves
    finite: list  # the data last found finite (see checks.all_finite)
    whole_run: Callable  # loop.whole_run with the spec bound (see WarmCalls.runner)

    @classmethod
    def of(
        cls, spec, leaves: list, params, data, key, whole_run: Callable, eval_data=None
    ) -> SeenCall:
        split = (len(spec.loss.leaves), len(jax.tree.leaves(params)), len(spec.optimizer.leaves))
        at = sum(split)
        n_data = len(jax.tree.leaves(data))
        held_out = jax.tree.leaves(eval_data)  # the last of the signature's leaves
        given = leaves[split[0] : split[0] + split[1]] + leaves[at : at + n_data] + held_out
        traced_at = [i for i, s in enumerate(spec.loss.leaves) if s is None] + [
            split[0] + split[1] + i for i, s in enumerate(spec.optimizer.leaves) if s is None
        ]
        numbers = all(
            type(leaves[i]) in (float, complex) or isinstance(leaves[i], np.generic)
            for i in traced_at
        )
        return cls(
            spec=spec,
            split=split,
            convert=not all(isinstance(leaf, jax.Array) for leaf in given),
            key=jnp.asarray(key) if isinstance(key, np.ndarray) else None,
            # One decision for all the processes of a run (each times its own steps).
            one_call=[
                bool(agree(chunks.first_length(spec, params, data, eval_data) >= spec.steps))
            ],
            numbers=_getter(traced_at) if numbers else None,
            placed=[None, None],
            off=jnp.asarray(generic.threshold(CALLER, "tol", None, nonnegative=True)),
            data=slice(at, at + n_data),
            finite=[],
            whole_run=whole_run,
        )

    def traced(self, leaves: list) -> tuple[list, list]:
        """The traced leaves of the loss and of the optimizer, from the signature's leaves."""
        n_loss, n_params, n_optimizer = self.split
        at = n_loss + n_params
        return (
            traced_leaves(leaves[:n_loss], self.spec.loss),
            traced_leaves(leaves[at : at + n_optimizer], self.spec.optimizer),
        )

    def run(
        self, leaves: list, params: Any, data: Any, key: Any, tol: Any, target: Any, eval_data=None
    ) -> Result:
        """The run of a call like this one: the values its signature leaves out
        (``tol``, ``target``, the data's finiteness) are checked as a cold call
        checks them, then :meth:`execute`."""
        off = self.off  # a rule switched off, placed once
        tol = off if tol is None else generic.threshold(CALLER, "tol", tol, nonnegative=True)
        if target is None:
            target = off
        else:
            target = generic.threshold(CALLER, "target", target, nonnegative=False)
        if self.convert:
            params = generic.float_params(CALLER, params)
            data = generic.example_data(CALLER, data)[0]
            eval_data = generic.example_data(CALLER, eval_data, name="eval_data")[0]
            checks.warn_if_not_finite(data)
        elif not checks.all_finite(leaves[self.data], self.finite):
            checks.warn_if_not_finite(data)
        checks.warn_if_not_finite(eval_data, name="eval_data")  # each array scanned once
        return self.execute(leaves, params, data, key, tol, target, eval_data)

    def execute(self, leaves: list, params, data, key, tol, target, eval_data=None) -> Result:
        """The run of checked arguments (``leaves``: the signature's; ``eval_data``:
        the held-out data, None without)."""
        spec = self.spec
        if self.numbers is not None:  # hyperparameters as numbers: placed once per new value
            numbers, placed = self.numbers(leaves), self.placed
            if placed[0] != numbers:
                placed[:] = [numbers, jax.device_put(self.traced(leaves))]
            traced = placed[1]
        else:
            traced = self.traced(leaves)
        key = self.key if key is None else key
        if self.one_call[0]:  # one compiled call, returned without waiting for it
            out = self.whole_run(traced, params, data, key, tol, target, eval_data)
            return _as_result(out, spec.history_stride)
        result = chunks.run_in_segments(
            spec, traced, params, data, key, tol, target, eval_data=eval_data
        )
        self.one_call[0] = bool(agree(bool(chunks.measured_short(spec))))  # timed now
        return result


CALLS = WarmCalls()
register_cache(CALLS.clear)


_HISTORY_ARRAYS = tuple(
    f.name for f in dataclasses.fields(History) if not f.metadata.get("static", False)
)


def _whole_run_as_tuples(spec: Spec, *args: Any) -> tuple:
    """``whole_run(spec, *args)`` with the ``Result`` and its ``History`` as plain
    tuples: a jit call builds plain tuples of its outputs in C++, but calls
    Python to build a NamedTuple or dataclass (measured: 2-3 us of a 40 us
    call); :func:`_as_result` builds them once, directly."""
    result = whole_run.__wrapped__(spec, *args)
    history = tuple(getattr(result.history, name) for name in _HISTORY_ARRAYS)
    return tuple(result._replace(history=history))


def _as_result(out: tuple, stride: int) -> Result:
    """The :class:`Result` of :func:`_whole_run_as_tuples`'s ``out``."""
    params, loss, steps, status, history, *rest = out
    return Result(params, loss, steps, status, History(*history, stride=stride), *rest)


def _same_value(value: Any, depth: int) -> Any:
    """A closure cell's content, for :func:`_same_code`: numbers and strings by
    value, functions by their code, arrays by shape and dtype, else its type."""
    if value is None or isinstance(value, int | float | complex | str | bytes | bool):
        return value
    if callable(value):
        return _same_code(value, depth + 1)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return ("array", tuple(value.shape), str(value.dtype))
    return type(value)


def _cell(cell: Any, depth: int) -> Any:
    try:
        return _same_value(cell.cell_contents, depth)
    except ValueError:  # an empty cell
        return None


def _same_code(leaf: Any, depth: int = 0) -> Any:
    """A compiled-in leaf up to its identity: a function by its code and the values
    it closes over or has as defaults (``lambda p, f=f: f(p)``), a
    ``functools.partial`` by its function and its arguments' types (those a
    ``jax.tree_util.Partial`` would trace). Three levels deep at most (a function
    may close over itself)."""
    if depth > 3:
        return type(leaf)
    if isinstance(leaf, types.FunctionType):
        cells = tuple(_cell(c, depth) for c in leaf.__closure__ or ())
        keywords = sorted((leaf.__kwdefaults__ or {}).items())
        defaults = [*(leaf.__defaults__ or ()), *(v for _, v in keywords)]
        defaults = tuple(_same_value(d, depth) for d in defaults)
        return ("function", leaf.__code__, cells, defaults)
    if isinstance(leaf, functools.partial):
        kind = lambda v: _same_code(v, depth + 1) if callable(v) else type(v)  # noqa: E731
        keywords = tuple(sorted((k, kind(v)) for k, v in leaf.keywords.items()))
        return ("partial", kind(leaf.func), tuple(map(kind, leaf.args)), keywords)
    wrapped = getattr(leaf, "fn", None)  # a wrapper of a function (a jaxgd schedule node)
    if isinstance(wrapped, types.FunctionType | functools.partial):
        return (type(leaf), _same_code(wrapped, depth + 1))
    return leaf


def _loose_treedef(treedef: Any) -> Any:
    """A tree structure up to the identity of the functions its nodes hold (a jaxgd
    optimizer's schedule)."""
    data = treedef.node_data()
    if data is None:
        return None
    kind, aux = data
    aux = _same_code(aux) if callable(aux) else aux
    return (kind, aux, tuple(map(_loose_treedef, treedef.children())))


def _node_function(treedef: Any) -> Any:
    """The first function a node of ``treedef`` holds (None: none)."""
    data = treedef.node_data()
    if data is not None and callable(data[1]) and not isinstance(data[1], type):
        return getattr(data[1], "fn", data[1])
    found = (_node_function(child) for child in treedef.children())
    return next((f for f in found if f is not None), None)


def _recompiling_message(new: list[tuple[str, Any]]) -> str:
    """Why a call compiled again: its new objects (where, object), named, with the fix."""
    said = []
    for where, leaf in new:
        if isinstance(leaf, functools.partial):
            what = "a new functools.partial"
        elif getattr(leaf, "__name__", "") == "<lambda>":
            what = "a new lambda"
        else:
            what = f"a new {getattr(leaf, '__qualname__', type(leaf).__name__)} object"
        said.append(f"{where} holds {what} with the same code as before")
    return (
        f"minimize: this call compiles again (as every call like it will) only because "
        f"{'; '.join(said) or 'a compiled-in object is new'}: jit compares functions by "
        "identity. Define the loss, the schedule and the optimizer once and pass the same "
        "objects, or pass the values that change in a jax.tree_util.Partial (its "
        "arguments are traced: a new value compiles nothing)."
    )


def _getter(at: list[int]) -> Callable[[list], tuple]:
    """``leaves -> tuple(leaves[i] for i in at)``, at C speed."""
    if len(at) > 1:
        return operator.itemgetter(*at)
    if at:
        i = at[0]
        return lambda leaves: (leaves[i],)
    return lambda leaves: ()


def traced_leaves(leaves: list, static: Static) -> list:
    """The traced leaves, as :func:`jaxgd._partition.partition` gives them."""
    return [leaf if s is None else None for leaf, s in zip(leaves, static.leaves, strict=True)]

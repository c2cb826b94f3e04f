"""Problems that share one sweep program, their losses picked by index.

On a CPU, problems without data (nor held-out data) alike are swept by one
program (:func:`program_groups`): the same shapes and dtypes of start and
loss, paths drawn alike, minimisers alike, and all named by the catalogue or
none (a program the program cache keeps holds only problems it names). The
textbook functions are such problems: two numbers each. Their losses and
starts are picked by the problem's index, an argument, through
``lax.switch`` (under ``vmap`` the index is the same for every run, so it
stays one branch taken per call). The program is traced and compiled once
instead of once per problem (the default comparison: five textbook
problems, one program). A problem's loss is then compiled inside its
branch, not fused with the update around it: its numbers equal those of
the problem swept alone to float round-off (an ulp here and there, which a
chaotic or diverging run amplifies). Its runs are the same bits in any
group (two problems or five, one optimizer or three), the curvature at its
minimiser the same to round-off; jobs on an executor group alike, and give a
one-process run's bits. On a GPU every problem keeps its own program: a
``switch`` inside the loop would read its index back to the host at every
step.

:func:`switched` is the problem a shared program sweeps for a traced index;
:func:`grid_loss` evaluates a group's losses on a grid of points (the paths
figure's contours) with one compiled program per group, as the sweep does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxgd import problems as _problems
from jaxgd.comparison._checks import is_2d
from jaxgd.comparison._landscape import minimiser

__all__ = ["grid_loss", "program_groups", "switched"]


def program_groups(problems) -> list[tuple[_problems.Problem, ...]]:
    """``problems`` in the groups that share a sweep program, in order of first
    appearance: those without data (nor held-out data) whose starts have the same
    shapes and dtypes, drawn paths alike, minimisers alike (see the module
    docstring); every other problem alone.

    Examples:
        >>> import jaxgd as gd
        >>> groups = program_groups([gd.problems.get(n) for n in ("booth", "student_marks",
        ...                          "rosenbrock")])
        >>> [[p.name for p in g] for g in groups]
        [['booth', 'rosenbrock'], ['student_marks']]
    """
    cpu = jax.default_backend() == "cpu"  # see the module docstring
    groups: dict[Any, list] = {}
    for i, problem in enumerate(problems):
        shared = cpu and problem.data is None and problem.test_data is None
        groups.setdefault(_signature(problem) if shared else i, []).append(problem)
    return [tuple(group) for group in groups.values()]


def _signature(problem) -> tuple:
    """What a program shared by problems without data is built for (nothing computed):
    the start's and the loss's shapes and dtypes, the drawn path, the minimiser's
    shapes, and whether the catalogue names the problem (a program the program
    cache keeps holds only problems it names)."""
    start = jax.eval_shape(problem.init, jax.ShapeDtypeStruct((2,), np.uint32))
    at = minimiser(problem)
    try:
        value = _shapes(jax.eval_shape(problem.loss, start))
    except Exception:  # noqa: BLE001 - a loss that fails: alone, where minimize says why
        return ("alone", id(problem))
    named = _problems.catalogue_entry(problem) is not None
    at = None if at is None else _shapes(at)
    return ("shared", _shapes(start), value, is_2d(problem), at, named)


def _shapes(tree) -> tuple:
    """``tree``'s structure and its leaves' shapes and dtypes."""
    leaves = [
        (np.shape(a), str(getattr(a, "dtype", type(a).__name__))) for a in jax.tree.leaves(tree)
    ]
    return jax.tree.structure(tree), tuple(leaves)


def switched(group, which) -> _problems.Problem:
    """``group[which]`` for a program shared by ``group``: its loss and start picked
    by the traced index ``which`` (the rest of the problem is only read on the host);
    a group of one is its problem.

    The loss is a :class:`jax.tree_util.Partial` of the index, so the index
    enters :func:`jaxgd.minimize`'s compiled run as a traced leaf (a closure
    over it would leak the outer trace into the inner one)."""
    if len(group) == 1:
        return group[0]
    return dataclasses.replace(
        group[0],
        loss=jax.tree_util.Partial(_Picked(tuple(p.loss for p in group)), which),
        init=jax.tree_util.Partial(_Picked(tuple(p.init for p in group)), which),
    )


@dataclasses.dataclass(frozen=True)
class _Picked:
    """``(which, *args) -> functions[which](*args)``, through ``lax.switch``; equal
    for equal functions (one group's programs are alike)."""

    functions: tuple[Callable[..., Any], ...]

    def __call__(self, which, *args):
        return jax.lax.switch(which, self.functions, *args)


def grid_loss(group: tuple[_problems.Problem, ...]) -> Callable[[Any, jax.Array], jax.Array] | None:
    """``(which, points) -> group[which]``'s loss at each point, compiled once for the
    group (its losses picked by index, as in the group's sweep program): for a group
    of several problems whose paths are drawn; None for the others (each problem's
    own loss then, :func:`jaxgd.comparison._landscape.contours`)."""
    if len(group) == 1 or not is_2d(group[0]):
        return None

    def losses(which, points):
        return jax.vmap(switched(group, which).loss)(points)

    return jax.jit(losses)

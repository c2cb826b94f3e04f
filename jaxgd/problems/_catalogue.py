"""The catalogue's registry: :class:`Problem`, :func:`register`, and what reads it.

The problems themselves live in flat catalogue files, one builder each
(:mod:`._textbook`, :mod:`._real_data`); importing them registers them, in
the order ``names()`` lists them.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["Problem", "catalogue_entry", "device_array", "get", "names", "register", "summary"]


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """One minimisation problem.

    Attributes:
        name: the catalogue name.
        loss: ``loss(params)``, or ``loss(params, batch)`` when ``data`` is set.
        init: ``init(key) -> params``, a seeded start near the standard one.
        data: a pytree of arrays with a leading example axis, or None.
        optimum_value: the minimum of the loss (or the best known value).
        optimum_params: a minimiser where known, else None.
        target: the loss that counts as solved (for steps-to-target).
        description: one line for listings and reports.
        batch_size: the minibatch size comparisons use by default (None:
            full-batch gradient descent).
        test_data: held-out data of the same structure as ``data``, never
            trained on (``loss(params, test_data)`` is the held-out loss), or
            None (a textbook function has none).
        eval_target: the held-out loss that counts as solved (for steps and
            time to the held-out target), or None.
    """

    name: str
    loss: Callable[..., jax.Array]
    init: Callable[[jax.Array], Any]
    data: Any
    optimum_value: float
    optimum_params: Any
    target: float
    description: str
    batch_size: int | None = None
    test_data: Any = None
    eval_target: float | None = None

    @property
    def dimension(self) -> int:
        """The number of scalar parameters (from the shapes ``init`` gives)."""
        shapes = jax.eval_shape(self.init, _KEY_SHAPE)
        return int(sum(np.prod(s.shape, dtype=int) for s in jax.tree.leaves(shapes)))


_CATALOGUE: dict[str, Callable[..., Problem]] = {}
_BUILT: weakref.WeakKeyDictionary[Problem, tuple] = weakref.WeakKeyDictionary()


def register(builder: Callable[..., Problem]) -> Callable[..., Problem]:
    """Add ``builder`` to the catalogue; what it builds remembers how (:func:`catalogue_entry`)."""

    @functools.wraps(builder)
    def build(*args: Any, **options: Any) -> Problem:
        problem = builder(*args, **options)
        _BUILT[problem] = (builder.__name__, args, tuple(sorted(options.items())))
        return problem

    _CATALOGUE[builder.__name__] = build
    return build


def catalogue_entry(problem: Problem) -> tuple[str, tuple, tuple] | None:
    """How the catalogue built ``problem``: ``(name, args, sorted options)``, or None
    for a problem built any other way (a :class:`Problem` made by hand, or
    ``dataclasses.replace`` of a catalogue one).

    A :class:`Problem` is frozen, so this says what its loss and start compute:
    :mod:`jaxgd.comparison._programs` keys the compiled sweeps it keeps on it.

    Examples:
        >>> import dataclasses
        >>> import jaxgd as gd
        >>> booth = gd.problems.get("booth")
        >>> catalogue_entry(booth), catalogue_entry(dataclasses.replace(booth))
        (('booth', (), ()), None)
        >>> catalogue_entry(gd.problems.quadratic(condition_number=10))
        ('quadratic', (), (('condition_number', 10),))
    """
    return _BUILT.get(problem)


def names() -> list[str]:
    """The catalogue's problem names, in catalogue order.

    Examples:
        >>> import jaxgd as gd
        >>> "quadratic" in gd.problems.names()
        True
    """
    return list(_CATALOGUE)


def get(name: str, **options: Any) -> Problem:
    """Build the catalogue problem ``name`` (``options`` go to its builder).

    An unknown name is refused naming the catalogue (see :func:`names`).

    Examples:
        >>> import jaxgd as gd
        >>> gd.problems.get("quadratic", condition_number=10).description
        '2-D rotated quadratic bowl, condition number 10'
    """
    _check_name(name, "gd.problems.get")
    return _CATALOGUE[name](**options)


def _check_name(name: Any, caller: str) -> None:
    if not isinstance(name, str) or name not in _CATALOGUE:
        raise ValueError(
            f"{caller}: unknown problem {name!r}; the catalogue has: {', '.join(names())}."
        )


_KEY_SHAPE = jax.ShapeDtypeStruct((2,), np.uint32)
"""The shape of a ``jax.random.PRNGKey``: ``eval_shape(init, _KEY_SHAPE)`` makes no key."""


def device_array(x: Any, dtype: Any = np.float32) -> jax.Array:
    """``x`` as a JAX array, placed on the device without compiling anything.

    (``jnp.asarray`` of a NumPy array compiles a small copy program per new
    shape; building a problem must not compile, so that a comparison's
    arguments are checked before anything compiles.)
    """
    return jax.device_put(np.asarray(x, dtype))


def summary(name: str) -> str:
    """The problem's one-line summary (its builder's first docstring line), without building it.

    Examples:
        >>> import jaxgd as gd
        >>> gd.problems.summary("booth")
        'f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2: a tilted quadratic bowl.'
    """
    _check_name(name, "gd.problems.summary")
    return (_CATALOGUE[name].__doc__ or "").strip().splitlines()[0].replace("``", "")

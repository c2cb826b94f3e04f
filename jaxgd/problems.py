"""The problem catalogue, shared by tests, benchmarks and reports.

A :class:`Problem` bundles a loss, a seeded starting point, its data and what
is known of its optimum, so every optimizer is judged on the same ground.
``names()`` lists the catalogue, ``get(name)`` builds one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Problem", "get", "names", "quadratic", "student_marks", "student_marks_data"]


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
    """

    name: str
    loss: Callable[..., jax.Array]
    init: Callable[[jax.Array], Any]
    data: Any
    optimum_value: float
    optimum_params: Any
    target: float
    description: str


_CATALOGUE: dict[str, Callable[..., Problem]] = {}


def _register(builder: Callable[..., Problem]) -> Callable[..., Problem]:
    _CATALOGUE[builder.__name__] = builder
    return builder


def names() -> list[str]:
    """The catalogue's problem names, in catalogue order.

    Example:
        >>> import jaxgd as gd
        >>> "quadratic" in gd.problems.names()
        True
    """
    return list(_CATALOGUE)


def get(name: str, **options: Any) -> Problem:
    """Build the catalogue problem ``name`` (``options`` go to its builder).

    Example:
        >>> import jaxgd as gd
        >>> gd.problems.get("quadratic", condition_number=10).description
        '2-D rotated quadratic bowl, condition number 10'
    """
    if name not in _CATALOGUE:
        raise ValueError(f"unknown problem {name!r}; the catalogue has: {', '.join(names())}.")
    return _CATALOGUE[name](**options)


def _start_near(center: Any, spread: float) -> Callable[[jax.Array], Any]:
    """``init(key)``: ``center`` plus Gaussian noise of scale ``spread``."""
    center = jnp.asarray(center, jnp.float32)

    def init(key):
        return center + spread * jax.random.normal(key, center.shape, center.dtype)

    return init


# --------------------------------------------------------------------------- #
# Textbook functions
# --------------------------------------------------------------------------- #


@_register
def quadratic(condition_number: float = 100.0, angle: float = np.pi / 6) -> Problem:
    """``f(x) = 0.5 (x - x*)^T A (x - x*)``: a rotated 2-D bowl.

    ``A = R diag(1, kappa) R^T`` with ``R`` a rotation by ``angle``: the
    smallest curvature is ``mu = 1``, the largest ``L = kappa``, and
    ``x* = (1, -1)``. Gradient descent's speed on it is set by ``kappa``.
    """
    if not condition_number >= 1:
        raise ValueError(f"quadratic: condition_number must be >= 1, got {condition_number!r}.")
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    hessian = jnp.asarray(rotation @ np.diag([1.0, condition_number]) @ rotation.T, jnp.float32)
    optimum = jnp.array([1.0, -1.0])

    def loss(x):
        d = x - optimum
        return 0.5 * d @ hessian @ d

    return Problem(
        name="quadratic",
        loss=loss,
        init=_start_near([-2.0, 2.0], 0.5),
        data=None,
        optimum_value=0.0,
        optimum_params=optimum,
        target=1e-6,
        description=f"2-D rotated quadratic bowl, condition number {condition_number:g}",
    )


# --------------------------------------------------------------------------- #
# Student marks: the seed example
# --------------------------------------------------------------------------- #

STUDENT_MARKS_COEFFICIENTS = {"hours_studied": 5.0, "attendance": 0.4, "bias": 20.0}
"""The true rule behind the synthetic marks: marks per hour studied, per
percentage point of attendance, and the base mark; noise sd 5 marks."""


@functools.lru_cache(maxsize=8)
def student_marks_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic student records: ``(features, marks)``.

    ``features[:, 0]`` is hours studied (0 to 10), ``features[:, 1]`` the
    attendance in percent (50 to 100), and
    ``marks = 5 * hours + 0.4 * attendance + 20 + noise`` (noise sd 5), drawn
    from a fixed-seed NumPy generator so every run sees the same students.

    Example:
        >>> import jaxgd as gd
        >>> x, y = gd.problems.student_marks_data()
        >>> x.shape, y.shape
        ((200, 2), (200,))
    """
    rng = np.random.default_rng(seed)
    hours = rng.uniform(0.0, 10.0, n)
    attendance = rng.uniform(50.0, 100.0, n)
    c = STUDENT_MARKS_COEFFICIENTS
    marks = c["hours_studied"] * hours + c["attendance"] * attendance + c["bias"]
    marks = marks + rng.normal(0.0, 5.0, n)
    features = np.stack([hours, attendance], axis=1).astype(np.float32)
    features.flags.writeable = False
    marks = marks.astype(np.float32)
    marks.flags.writeable = False
    return features, marks


def student_marks_model(params: dict, features: jax.Array) -> jax.Array:
    """Predicted marks: ``w_hours * hours + w_attendance * attendance + bias``."""
    return (
        params["hours_studied"] * features[:, 0]
        + params["attendance"] * features[:, 1]
        + params["bias"]
    )


@_register
def student_marks(n: int = 200, seed: int = 0) -> Problem:
    """Predict marks from hours studied and attendance: least squares.

    Params are named ``{"hours_studied", "attendance", "bias"}``; the loss is
    the mean squared error of :func:`student_marks_model`. The two features
    are standardised (zero mean, unit variance) first: in natural units the
    attendance column (50 to 100) makes the problem's condition number about
    2e5 and plain gradient descent crawls; standardised it is about 1. So a
    weight reads as "marks per standard deviation" of its feature, and the
    bias as the mean mark. The optimum is NumPy's least-squares solution.
    """
    features, marks = student_marks_data(n, seed)
    z = (features - features.mean(axis=0)) / features.std(axis=0)
    design = np.column_stack([z, np.ones(len(marks))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, marks.astype(np.float64), rcond=None)
    optimum_value = float(np.mean((design @ coef - marks) ** 2))
    names_ = ("hours_studied", "attendance", "bias")

    def loss(params, batch):
        x, y = batch
        return jnp.mean((student_marks_model(params, x) - y) ** 2)

    def init(key):
        w = 0.1 * jax.random.normal(key, (3,))
        return dict(zip(names_, w, strict=True))

    return Problem(
        name="student_marks",
        loss=loss,
        init=init,
        data=(jnp.asarray(z, jnp.float32), jnp.asarray(marks)),
        optimum_value=optimum_value,
        optimum_params={k: jnp.float32(v) for k, v in zip(names_, coef, strict=True)},
        target=optimum_value * 1.01,
        description="marks from hours studied and attendance (standardised), least squares",
    )

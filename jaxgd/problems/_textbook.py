"""The textbook problems: a rotated quadratic, Rosenbrock, Beale, Booth,
Himmelblau, and the student-marks regression of the seed example.

A flat catalogue (as optax's ``alias.py``): one registered builder each, its
formula and optimum in the docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd._host import register_cache
from jaxgd.problems._catalogue import Problem, device_array, register

__all__ = [
    "HIMMELBLAU_MINIMA",
    "STUDENT_MARKS_COEFFICIENTS",
    "beale",
    "booth",
    "himmelblau",
    "quadratic",
    "rosenbrock",
    "student_marks",
    "student_marks_data",
    "student_marks_model",
]


def _start_near(center: Any, spread: float) -> Callable[[jax.Array], Any]:
    """``init(key)``: ``center`` plus Gaussian noise of scale ``spread``."""
    center = device_array(center, np.float32)

    def init(key):
        return center + spread * jax.random.normal(key, center.shape, center.dtype)

    return init


# --------------------------------------------------------------------------- #
# Textbook functions
# --------------------------------------------------------------------------- #


@register
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
    hessian = device_array(rotation @ np.diag([1.0, condition_number]) @ rotation.T, np.float32)
    optimum = device_array([1.0, -1.0])

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


def _textbook(
    name: str,
    f: Callable[[jax.Array, jax.Array], jax.Array],
    start: tuple[float, float],
    spread: float,
    optimum_params: Any,
    description: str,
    target: float = 1e-6,
) -> Problem:
    """A 2-D function ``f(x, y)`` with minimum value 0 as a :class:`Problem`."""
    return Problem(
        name=name,
        loss=lambda p: f(p[0], p[1]),
        init=_start_near(start, spread),
        data=None,
        optimum_value=0.0,
        optimum_params=device_array(optimum_params, np.float32),
        target=target,
        description=description,
    )


@register
def rosenbrock() -> Problem:
    """``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2``: the banana valley.

    Minimum 0 at ``(1, 1)``, at the end of a long, curved, flat-bottomed
    valley; starts are drawn around the classic ``(-1.2, 1)`` (sd 0.1). The
    curvature across the valley (up to about 1000) is far larger than along
    it, so plain gradient descent needs a small step and then crawls.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> float(gd.problems.get("rosenbrock").loss(jnp.array([1.0, 1.0])))
        0.0
    """
    return _textbook(
        "rosenbrock",
        lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        (-1.2, 1.0),
        0.1,
        [1.0, 1.0],
        "Rosenbrock's banana valley, minimum 0 at (1, 1)",
    )


@register
def beale() -> Problem:
    """``f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2``.

    Minimum 0 at ``(3, 0.5)``; flat plateaus and steep walls (the ``y^3``
    term) make the step size delicate. Starts around ``(1, 1.2)`` (sd 0.1).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> float(gd.problems.get("beale").loss(jnp.array([3.0, 0.5])))
        0.0
    """
    return _textbook(
        "beale",
        lambda x, y: (
            (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2
        ),
        (1.0, 1.2),
        0.1,
        [3.0, 0.5],
        "Beale's function: plateaus and steep walls, minimum 0 at (3, 0.5)",
    )


@register
def booth() -> Problem:
    """``f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2``: a tilted quadratic bowl.

    Minimum 0 at ``(1, 3)``. The Hessian is ``[[10, 8], [8, 10]]`` with
    eigenvalues ``mu = 2`` and ``L = 18``, so plain gradient descent is stable
    for steps below ``2/L = 0.111`` and fastest at ``2/(mu + L) = 0.1``.
    Starts around ``(-3, -2)`` (sd 0.5).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> float(gd.problems.get("booth").loss(jnp.array([1.0, 3.0])))
        0.0
    """
    return _textbook(
        "booth",
        lambda x, y: (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2,
        (-3.0, -2.0),
        0.5,
        [1.0, 3.0],
        "Booth's quadratic, curvatures 2 and 18, minimum 0 at (1, 3)",
    )


HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118, 3.131312),
    (-3.779310, -3.283186),
    (3.584428, -1.848126),
)
"""Himmelblau's four minimisers (each with value 0), to six decimals."""


@register
def himmelblau() -> Problem:
    """``f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2``: four equal minima.

    The minimum value 0 is reached at four points (:data:`HIMMELBLAU_MINIMA`;
    ``optimum_params`` holds all four, shape ``(4, 2)``). Starts are drawn
    around ``(0, 0)`` with sd 1, so different seeds may end in different
    minima: any of them counts.

    Examples:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("himmelblau")
        >>> [round(float(problem.loss(p)), 8) for p in problem.optimum_params]
        [0.0, 0.0, 0.0, 0.0]
    """
    return _textbook(
        "himmelblau",
        lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
        (0.0, 0.0),
        1.0,
        HIMMELBLAU_MINIMA,
        "Himmelblau's function, four minima of value 0",
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

    Examples:
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


@register
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
        data=(device_array(z, np.float32), device_array(marks)),
        optimum_value=optimum_value,
        optimum_params={k: device_array(v) for k, v in zip(names_, coef, strict=True)},
        target=optimum_value * 1.01,
        description="marks from hours studied and attendance (standardised), least squares",
    )


register_cache(student_marks_data.cache_clear)

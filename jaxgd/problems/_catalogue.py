"""The catalogue: :class:`Problem`, its registry, and the problems in it."""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd.problems import _datasets as datasets

__all__ = [
    "Problem",
    "beale",
    "booth",
    "breast_cancer_logistic",
    "catalogue_entry",
    "diabetes_linear",
    "digits_mlp",
    "digits_softmax",
    "get",
    "himmelblau",
    "names",
    "quadratic",
    "rosenbrock",
    "student_marks",
    "student_marks_data",
    "summary",
]


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

    @property
    def dimension(self) -> int:
        """The number of scalar parameters (from the shapes ``init`` gives)."""
        shapes = jax.eval_shape(self.init, _KEY_SHAPE)
        return int(sum(np.prod(s.shape, dtype=int) for s in jax.tree.leaves(shapes)))


_CATALOGUE: dict[str, Callable[..., Problem]] = {}
_BUILT: weakref.WeakKeyDictionary[Problem, tuple] = weakref.WeakKeyDictionary()


def _register(builder: Callable[..., Problem]) -> Callable[..., Problem]:
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

    Example:
        >>> import dataclasses
        >>> booth = get("booth")
        >>> catalogue_entry(booth), catalogue_entry(dataclasses.replace(booth))
        (('booth', (), ()), None)
        >>> catalogue_entry(quadratic(condition_number=10))
        ('quadratic', (), (('condition_number', 10),))
    """
    return _BUILT.get(problem)


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


_KEY_SHAPE = jax.ShapeDtypeStruct((2,), np.uint32)
"""The shape of a ``jax.random.PRNGKey``: ``eval_shape(init, _KEY_SHAPE)`` makes no key."""


def _array(x: Any, dtype: Any = np.float32) -> jax.Array:
    """``x`` as a JAX array, placed on the device without compiling anything.

    (``jnp.asarray`` of a NumPy array compiles a small copy program per new
    shape; building a problem must not compile, so that a comparison's
    arguments are checked before anything compiles.)
    """
    return jax.device_put(np.asarray(x, dtype))


def summary(name: str) -> str:
    """The problem's one-line summary (its builder's first docstring line), without building it.

    Example:
        >>> import jaxgd as gd
        >>> gd.problems.summary("booth")
        'f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2: a tilted quadratic bowl.'
    """
    if name not in _CATALOGUE:
        raise ValueError(f"unknown problem {name!r}; the catalogue has: {', '.join(names())}.")
    return (_CATALOGUE[name].__doc__ or "").strip().splitlines()[0].replace("``", "")


def _start_near(center: Any, spread: float) -> Callable[[jax.Array], Any]:
    """``init(key)``: ``center`` plus Gaussian noise of scale ``spread``."""
    center = _array(center, np.float32)

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
    hessian = _array(rotation @ np.diag([1.0, condition_number]) @ rotation.T, np.float32)
    optimum = _array([1.0, -1.0])

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
        optimum_params=_array(optimum_params, np.float32),
        target=target,
        description=description,
    )


@_register
def rosenbrock() -> Problem:
    """``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2``: the banana valley.

    Minimum 0 at ``(1, 1)``, at the end of a long, curved, flat-bottomed
    valley; starts are drawn around the classic ``(-1.2, 1)`` (sd 0.1). The
    curvature across the valley (up to about 1000) is far larger than along
    it, so plain gradient descent needs a small step and then crawls.

    Example:
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


@_register
def beale() -> Problem:
    """``f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2``.

    Minimum 0 at ``(3, 0.5)``; flat plateaus and steep walls (the ``y^3``
    term) make the step size delicate. Starts around ``(1, 1.2)`` (sd 0.1).

    Example:
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


@_register
def booth() -> Problem:
    """``f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2``: a tilted quadratic bowl.

    Minimum 0 at ``(1, 3)``. The Hessian is ``[[10, 8], [8, 10]]`` with
    eigenvalues ``mu = 2`` and ``L = 18``, so plain gradient descent is stable
    for steps below ``2/L = 0.111`` and fastest at ``2/(mu + L) = 0.1``.
    Starts around ``(-3, -2)`` (sd 0.5).

    Example:
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


@_register
def himmelblau() -> Problem:
    """``f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2``: four equal minima.

    The minimum value 0 is reached at four points (:data:`HIMMELBLAU_MINIMA`;
    ``optimum_params`` holds all four, shape ``(4, 2)``). Starts are drawn
    around ``(0, 0)`` with sd 1, so different seeds may end in different
    minima: any of them counts.

    Example:
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
        data=(_array(z, np.float32), _array(marks)),
        optimum_value=optimum_value,
        optimum_params={k: _array(v) for k, v in zip(names_, coef, strict=True)},
        target=optimum_value * 1.01,
        description="marks from hours studied and attendance (standardised), least squares",
    )


# --------------------------------------------------------------------------- #
# Real data bundled with scikit-learn (no download)
# --------------------------------------------------------------------------- #

_L2 = 1e-3
"""The L2 weight of the logistic and softmax problems (see their docstrings)."""


@functools.cache
def _diabetes_optimum() -> tuple[float, np.ndarray]:
    x, y = datasets.load("diabetes")
    design = np.column_stack([x, np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    return float(np.mean((design @ coef - y) ** 2)), coef


@_register
def diabetes_linear() -> Problem:
    """Diabetes progression from 10 standardised measurements: least squares.

    scikit-learn's bundled diabetes set (442 patients, 10 features: age, sex,
    BMI, blood pressure and six blood serum measurements; the target is a
    measure of disease progression one year later, 25 to 346). The features
    are standardised; the loss is the mean squared error of a linear model
    ``x @ w + b`` in the target's own units. The optimum is the least-squares
    solution, computed once in float64 with ``numpy.linalg.lstsq`` (cached).
    Correlated serum features make the problem ill-conditioned (condition
    number of the Hessian about 470). Target: within 1% of the optimum.

    Example:
        >>> import jaxgd as gd
        >>> round(gd.problems.get("diabetes_linear").optimum_value, 1)
        2859.7
    """
    from jaxgd.problems.losses import mse, objective
    from jaxgd.problems.models import linear

    x, y = datasets.load("diabetes")
    value, coef = _diabetes_optimum()
    model = linear(x.shape[1])
    return Problem(
        name="diabetes_linear",
        loss=objective(model, mse),
        init=model.init,
        data=(_array(x, np.float32), _array(y, np.float32)),
        optimum_value=value,
        optimum_params={"w": _array(coef[:-1], np.float32), "b": _array(coef[-1])},
        target=value * 1.01,
        description="diabetes progression (442 patients, 10 features), linear least squares",
    )


@functools.cache
def _breast_cancer_optimum() -> tuple:
    x, y = datasets.load("breast_cancer")
    return datasets.l2_cross_entropy_optimum(x, y.astype(np.float64), None, _L2)


@_register
def breast_cancer_logistic() -> Problem:
    """Malignant or benign from 30 standardised tumour measurements: logistic regression.

    scikit-learn's bundled Wisconsin breast-cancer set (569 tumours, 30
    features, label 1 = benign). The loss is the mean binary cross-entropy of
    the logit ``x @ w + b`` plus ``0.5e-3 * (|w|^2 + b^2)`` (an L2 weight of
    ``1e-3``): the classes are almost separable, so without the penalty the
    weights would grow for ever and the infimum (0) would not be attained;
    with it the objective is strongly convex with one minimiser. That
    optimum was computed in float64 by SciPy's L-BFGS on exactly this
    objective, to a gradient norm of ``1e-10`` (cached per process).
    Target: within 1% of the optimum.

    Example:
        >>> import jaxgd as gd
        >>> round(gd.problems.get("breast_cancer_logistic").optimum_value, 4)
        0.0598
    """
    from jaxgd.problems.losses import binary_cross_entropy, objective
    from jaxgd.problems.models import logistic

    x, y = datasets.load("breast_cancer")
    value, w, b = _breast_cancer_optimum()
    model = logistic(x.shape[1])
    return Problem(
        name="breast_cancer_logistic",
        loss=objective(model, binary_cross_entropy, l2=_L2),
        init=model.init,
        data=(_array(x, np.float32), _array(y, np.float32)),
        optimum_value=value,
        optimum_params={"w": _array(w, np.float32), "b": _array(b)},
        target=value * 1.01,
        description="breast-cancer diagnosis (569 tumours, 30 features), L2 logistic regression",
    )


@functools.cache
def _digits_optimum() -> tuple:
    x, y = datasets.load("digits")
    return datasets.l2_cross_entropy_optimum(x, y.astype(np.int64), 10, _L2)


@_register
def digits_softmax() -> Problem:
    """Handwritten digits 0-9 from 8x8 pixels: softmax regression.

    scikit-learn's bundled digits set (1797 images of 64 pixels, standardised;
    the always-blank pixels become 0). The loss is the mean softmax
    cross-entropy of the logits ``x @ W + b`` plus an L2 penalty of weight
    ``1e-3`` on every parameter (the training set is linearly separable, so
    without it there would be no finite minimiser). The optimum was computed
    in float64 by SciPy's L-BFGS on exactly this objective, to a gradient
    norm of ``1e-10`` (cached per process). Target: within 1% of the optimum.
    Comparisons use full-batch gradients by default.

    Example:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("digits_softmax")
        >>> problem.dimension, problem.batch_size
        (650, None)
    """
    from jaxgd.problems.losses import objective, softmax_cross_entropy
    from jaxgd.problems.models import softmax

    x, y = datasets.load("digits")
    value, w, b = _digits_optimum()
    model = softmax(x.shape[1], 10)
    return Problem(
        name="digits_softmax",
        loss=objective(model, softmax_cross_entropy, l2=_L2),
        init=model.init,
        data=(_array(x, np.float32), _array(y, np.int32)),
        optimum_value=value,
        optimum_params={"w": _array(w, np.float32), "b": _array(b, np.float32)},
        target=value * 1.01,
        description="handwritten digits (1797 images, 64 pixels), L2 softmax regression",
    )


@_register
def digits_mlp(hidden: int = 32) -> Problem:
    """Handwritten digits 0-9 with a one-hidden-layer network (tanh).

    The digits data of :func:`digits_softmax`; the model is an MLP
    ``64 -> hidden -> 10`` with tanh units, and the loss the mean softmax
    cross-entropy, without penalty. The problem is not convex and its
    minimum is not known: ``optimum_value`` is the lower bound 0 (a network
    of this size can fit the 1797 training images almost exactly), and the
    target is a training cross-entropy of 0.01. Comparisons use minibatches
    of 256 by default (so the seed also draws the minibatch order, and the
    recorded loss, which steps to target is read from, is the minibatch loss).

    Example:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("digits_mlp")
        >>> problem.dimension, problem.optimum_value
        (2410, 0.0)
    """
    from jaxgd.problems.losses import objective, softmax_cross_entropy
    from jaxgd.problems.models import mlp

    x, y = datasets.load("digits")
    model = mlp((x.shape[1], hidden, 10))
    return Problem(
        name="digits_mlp",
        loss=objective(model, softmax_cross_entropy),
        init=model.init,
        data=(_array(x, np.float32), _array(y, np.int32)),
        optimum_value=0.0,
        optimum_params=None,
        target=0.01,
        description=f"handwritten digits, MLP 64-{hidden}-10 (tanh), cross-entropy (not convex)",
        batch_size=256,
    )

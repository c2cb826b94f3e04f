"""The real-data problems, from data sets bundled with scikit-learn (no download):
diabetes (least squares), breast cancer (logistic), digits (softmax and an MLP).

A flat catalogue (as optax's ``alias.py``): one registered builder each; the
reference optima are computed once in float64 and cached per process. Each
problem trains on 80 % of its examples and holds out the other 20 % as
``test_data`` (:func:`jaxgd.problems._datasets.load`). The held-out target
``eval_target`` of a convex problem is the held-out loss at the training
optimum plus 1 %: a run that reaches it has generalised as well as the exact
minimiser does (up to 1 %).
"""

from __future__ import annotations

import functools

import numpy as np

import jaxgd.problems._datasets as datasets
from jaxgd._host import register_cache
from jaxgd.problems._catalogue import Problem, device_array, register
from jaxgd.problems.losses import binary_cross_entropy, mse, objective, softmax_cross_entropy
from jaxgd.problems.models import linear, logistic, mlp, softmax

__all__ = ["breast_cancer_logistic", "diabetes_linear", "digits_mlp", "digits_softmax"]


# --------------------------------------------------------------------------- #
# Real data bundled with scikit-learn (no download)
# --------------------------------------------------------------------------- #

_L2 = 1e-3
DIGITS_MLP_EVAL_TARGET = 0.15
"""The L2 weight of the logistic and softmax problems (see their docstrings)."""


@functools.cache
def _diabetes_optimum() -> tuple[float, np.ndarray, float]:
    """``(training minimum, coefficients [w, b], held-out loss there)``."""
    data = datasets.load("diabetes")

    def mse_at(x, y, coef):
        return float(np.mean((x @ coef[:-1] + coef[-1] - y) ** 2))

    design = np.column_stack([data.x, np.ones(len(data.y))])
    coef, *_ = np.linalg.lstsq(design, data.y.astype(np.float64), rcond=None)
    return mse_at(data.x, data.y, coef), coef, mse_at(data.x_test, data.y_test, coef)


@register
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

    Examples:
        >>> import jaxgd as gd
        >>> round(gd.problems.get("diabetes_linear").optimum_value, 1)
        2734.8
    """
    data = datasets.load("diabetes")
    value, coef, test_value = _diabetes_optimum()
    model = linear(data.x.shape[1])
    return Problem(
        name="diabetes_linear",
        loss=objective(model, mse),
        init=model.init,
        data=_arrays(data.x, data.y, np.float32),
        optimum_value=value,
        optimum_params={"w": device_array(coef[:-1], np.float32), "b": device_array(coef[-1])},
        target=value * 1.01,
        description="diabetes progression (442 patients, 10 features), linear least squares",
        test_data=_arrays(data.x_test, data.y_test, np.float32),
        eval_target=test_value * 1.01,
    )


def _with_test_value(name: str, n_classes: int | None, label: type) -> tuple:
    """``(training minimum, w, b, held-out loss at that minimiser)`` of the L2
    cross-entropy on the bundled set ``name``."""
    data = datasets.load(name)
    value, w, b = datasets.l2_cross_entropy_optimum(data.x, data.y.astype(label), n_classes, _L2)
    theta = np.concatenate([np.ravel(w), np.ravel(b)])
    test_value, _ = datasets.l2_cross_entropy(
        theta, data.x_test, data.y_test.astype(label), n_classes, _L2
    )
    return value, w, b, test_value


@functools.cache
def _breast_cancer_optimum() -> tuple:
    return _with_test_value("breast_cancer", None, np.float64)


@register
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

    Examples:
        >>> import jaxgd as gd
        >>> round(gd.problems.get("breast_cancer_logistic").optimum_value, 4)
        0.0558
    """
    data = datasets.load("breast_cancer")
    value, w, b, test_value = _breast_cancer_optimum()
    model = logistic(data.x.shape[1])
    return Problem(
        name="breast_cancer_logistic",
        loss=objective(model, binary_cross_entropy, l2=_L2),
        init=model.init,
        data=_arrays(data.x, data.y, np.float32),
        optimum_value=value,
        optimum_params={"w": device_array(w, np.float32), "b": device_array(b)},
        target=value * 1.01,
        description="breast-cancer diagnosis (569 tumours, 30 features), L2 logistic regression",
        test_data=_arrays(data.x_test, data.y_test, np.float32),
        eval_target=test_value * 1.01,
    )


@functools.cache
def _digits_optimum() -> tuple:
    return _with_test_value("digits", 10, np.int64)


@register
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

    Examples:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("digits_softmax")
        >>> problem.dimension, problem.batch_size
        (650, None)
    """
    data = datasets.load("digits")
    value, w, b, test_value = _digits_optimum()
    model = softmax(data.x.shape[1], 10)
    return Problem(
        name="digits_softmax",
        loss=objective(model, softmax_cross_entropy, l2=_L2),
        init=model.init,
        data=_arrays(data.x, data.y, np.int32),
        optimum_value=value,
        optimum_params={"w": device_array(w, np.float32), "b": device_array(b, np.float32)},
        target=value * 1.01,
        description="handwritten digits (1797 images, 64 pixels), L2 softmax regression",
        test_data=_arrays(data.x_test, data.y_test, np.int32),
        eval_target=test_value * 1.01,
    )


@register
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

    Examples:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("digits_mlp")
        >>> problem.dimension, problem.optimum_value
        (2410, 0.0)
    """
    data = datasets.load("digits")
    model = mlp((data.x.shape[1], hidden, 10))
    return Problem(
        name="digits_mlp",
        loss=objective(model, softmax_cross_entropy),
        init=model.init,
        data=_arrays(data.x, data.y, np.int32),
        test_data=_arrays(data.x_test, data.y_test, np.int32),
        eval_target=DIGITS_MLP_EVAL_TARGET,
        optimum_value=0.0,
        optimum_params=None,
        target=0.01,
        description=f"handwritten digits, MLP 64-{hidden}-10 (tanh), cross-entropy (not convex)",
        batch_size=256,
    )


def _arrays(x: np.ndarray, y: np.ndarray, label: type) -> tuple:
    """``(features float32, targets)`` as device arrays (no compiling)."""
    return device_array(x, np.float32), device_array(y, label)


register_cache(_diabetes_optimum.cache_clear)
register_cache(_breast_cancer_optimum.cache_clear)
register_cache(_digits_optimum.cache_clear)

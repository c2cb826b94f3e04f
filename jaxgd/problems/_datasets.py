"""The bundled real data sets, standardised, and the float64 reference optima of their losses.

:func:`load` reads a scikit-learn data set (no download: they ship with
scikit-learn) and standardises its features; :func:`l2_cross_entropy_optimum`
minimises an L2-penalised cross-entropy on it in float64 with SciPy's L-BFGS,
the reference against which :mod:`jaxgd.problems` judges every optimizer.
NumPy and SciPy only: nothing of jaxgd.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from jaxgd._host import register_cache

__all__ = ["l2_cross_entropy_optimum", "load", "standardise"]


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column; constant columns (std 0) become 0.

    Examples:
        >>> standardise(np.array([[1.0, 5.0], [3.0, 5.0]]))
        array([[-1.,  0.],
               [ 1.,  0.]])
    """
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


@functools.cache
def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(standardised features float64, targets)`` of a bundled scikit-learn set.

    ``name``: ``"diabetes"``, ``"breast_cancer"`` or ``"digits"`` (cached per process).

    Examples:
        >>> x, y = load("diabetes")
        >>> x.shape, round(float(x.std(axis=0).max()), 6)
        ((442, 10), 1.0)
    """
    from sklearn import datasets  # imported here: importing jaxgd stays fast

    loader = {
        "diabetes": datasets.load_diabetes,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }[name]
    x, y = loader(return_X_y=True)
    return standardise(np.asarray(x, np.float64)), np.asarray(y)


def l2_cross_entropy_optimum(
    x: np.ndarray, y: np.ndarray, n_classes: int | None, l2: float
) -> tuple[float, np.ndarray, Any]:
    """Minimise the L2-penalised cross-entropy in float64 with SciPy's L-BFGS.

    The objective is exactly the one the problem's JAX loss computes:
    ``mean(cross_entropy(x @ w + b, y)) + l2 * 0.5 * (|w|^2 + |b|^2)``
    (binary from one logit when ``n_classes`` is None, softmax otherwise).
    The penalty makes it strongly convex, so the minimiser is unique; L-BFGS
    runs to a gradient norm ``|g| <= 1e-10``; by strong convexity (modulus at
    least ``l2``) the value is then within ``|g|^2 / (2 l2)`` (``< 1e-17`` at ``l2 = 1e-3``)
    of the minimum.

    Returns:
        ``(value, w, b)``: the minimum and the minimiser (``w`` of shape
        ``(d,)`` and a float ``b`` for the binary case, ``(d, k)`` and
        ``(k,)`` otherwise).

    Examples:
        Two points, one per class, ``l2 = 1``: by symmetry ``b = 0``, and the
        gradient vanishes where ``w = 1 - sigmoid(w)``.

        >>> value, w, b = l2_cross_entropy_optimum(
        ...     np.array([[-1.0], [1.0]]), np.array([0.0, 1.0]), None, 1.0)
        >>> round(float(w[0]), 4), abs(b) < 1e-9
        (0.4011, True)
    """
    from scipy.optimize import minimize as scipy_minimize
    from scipy.special import expit, log_softmax, softmax

    n, d = x.shape
    k = 1 if n_classes is None else n_classes

    def value_and_grad(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        z = x @ w + b
        if n_classes is None:
            z = z[:, 0]
            value = np.mean(np.logaddexp(0.0, z) - y * z)
            dz = ((expit(z) - y) / n)[:, None]
        else:
            value = -np.mean(log_softmax(z, axis=1)[np.arange(n), y])
            dz = softmax(z, axis=1)
            dz[np.arange(n), y] -= 1.0
            dz /= n
        value += l2 * 0.5 * float(theta @ theta)
        grad = np.concatenate([(x.T @ dz).ravel(), dz.sum(axis=0)]) + l2 * theta
        return value, grad

    out = scipy_minimize(
        value_and_grad,
        np.zeros(d * k + k),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20000, "gtol": 1e-10, "ftol": 0.0, "maxcor": 30},
    )
    theta = out.x
    w, b = theta[: d * k].reshape(d, k), theta[d * k :]
    if n_classes is None:
        w, b = w[:, 0], float(b[0])
    return float(out.fun), w, b


register_cache(load.cache_clear)

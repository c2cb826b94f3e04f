"""The bundled real data sets, split and standardised, and the float64 optima of their losses.

:func:`load` reads a scikit-learn data set (no download: they ship with
scikit-learn), splits it into a training set and a held-out test set (80/20,
fixed seed, stratified by class for classification) and standardises both
with the training set's statistics; :func:`l2_cross_entropy_optimum`
minimises an L2-penalised cross-entropy on it in float64 with SciPy's L-BFGS,
the reference against which :mod:`jaxgd.problems` judges every optimizer.
NumPy and SciPy only: nothing of jaxgd.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import threading
import zipfile
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np

from jaxgd._host import register_cache

__all__ = [
    "l2_cross_entropy",
    "l2_cross_entropy_optimum",
    "load",
    "standardise",
    "Split",
    "use_dataset_cache",
]


def standardise(x: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit variance per column, with the statistics of ``like`` (default
    ``x`` itself); constant columns (std 0) become 0.

    Examples:
        >>> standardise(np.array([[1.0, 5.0], [3.0, 5.0]]))
        array([[-1.,  0.],
               [ 1.,  0.]])
    """
    like = x if like is None else like
    std = like.std(axis=0)
    return (x - like.mean(axis=0)) / np.where(std > 0, std, 1.0)


class Split(NamedTuple):
    """A data set's training and held-out test parts (features float64, targets)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


TEST_FRACTION = 0.2
SPLIT_SEED = 0
"""The held-out split: 20 % of the examples, drawn by ``train_test_split`` with this seed."""


CACHE_FORMAT = 1
"""Named in the kept files: raise it when :func:`load`'s split or standardisation,
or how :func:`l2_cross_entropy_optimum` finds the optimum, changes, so that
files made before are not read."""

_CACHE: dict[str, pathlib.Path] = {}  # "folder": where use_dataset_cache keeps the splits


def use_dataset_cache(folder: str | os.PathLike) -> None:
    """Keep each split :func:`load` makes in ``folder``, one ``.npz`` per set named by
    scikit-learn's version and the split's fraction and seed, and each optimum
    :func:`l2_cross_entropy_optimum` finds, named by a digest of its data and
    penalty and SciPy's version; read them back from there: a process that
    finds them imports no scikit-learn and runs no L-BFGS (1.5 s of ``jaxgd
    compare``'s start). A file that cannot be read is made again."""
    _CACHE["folder"] = pathlib.Path(folder)


def _cache_file(name: str, library: str = "scikit-learn") -> pathlib.Path | None:
    """Where the kept file ``name`` is, with ``library``'s version in its name."""
    if "folder" not in _CACHE:
        return None
    try:
        version = metadata.version(library)
    except metadata.PackageNotFoundError:  # the computation says what is missing
        return None
    return _CACHE["folder"] / f"{name}-{library}{version}-v{CACHE_FORMAT}.npz"


def _read(path: pathlib.Path | None) -> dict[str, np.ndarray] | None:
    """The arrays kept in ``path``; None where there is no cache, no file or a
    damaged one (then made again and rewritten)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as file:
            return {name: file[name] for name in file.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write(path: pathlib.Path | None, arrays: dict[str, Any]) -> None:
    """``arrays`` into ``path`` whole or not at all (a temporary file renamed); a
    folder that cannot be written to is left alone (the cache only saves time)."""
    if path is None:
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


@functools.cache
def load(name: str) -> Split:
    """The :class:`Split` of a bundled scikit-learn set, standardised by the training part.

    ``name``: ``"diabetes"``, ``"breast_cancer"`` or ``"digits"`` (cached per
    process). The test part is 20 % of the examples (scikit-learn's
    ``train_test_split``, ``random_state=0``, stratified by class for the two
    classification sets); both parts are standardised with the training
    part's mean and standard deviation, so nothing of the test set leaks
    into training. After :func:`use_dataset_cache`, read from its folder where it
    was kept.

    Examples:
        >>> data = load("diabetes")
        >>> data.x.shape, data.x_test.shape, round(float(data.x.std(axis=0).max()), 6)
        ((353, 10), (89, 10), 1.0)
    """
    path = _cache_file(f"{name}-test{TEST_FRACTION}-seed{SPLIT_SEED}")
    kept = _read(path)
    if kept is not None and set(kept) == set(Split._fields):
        return Split(**kept)
    split = _split(name)
    _write(path, split._asdict())
    return split


def _split(name: str) -> Split:
    from sklearn import datasets  # imported here: importing jaxgd stays fast
    from sklearn.model_selection import train_test_split

    loader = {
        "diabetes": datasets.load_diabetes,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }[name]
    x, y = loader(return_X_y=True)
    x, y = np.asarray(x, np.float64), np.asarray(y)
    stratify = None if name == "diabetes" else y
    x, x_test, y, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify
    )
    return Split(standardise(x), y, standardise(x_test, like=x), y_test)


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
    d = x.shape[1]
    k = 1 if n_classes is None else n_classes
    problem = hashlib.sha256(repr((x.shape, x.dtype.str, y.dtype.str, n_classes, l2)).encode())
    problem.update(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes())
    path = _cache_file(f"optimum-{problem.hexdigest()[:32]}", library="scipy")
    kept = _read(path)  # by the problem's content: another split or penalty, another file
    if kept is None or set(kept) != {"value", "theta"} or kept["theta"].shape != (d * k + k,):
        from scipy.optimize import minimize as scipy_minimize

        out = scipy_minimize(
            lambda theta: l2_cross_entropy(theta, x, y, n_classes, l2),
            np.zeros(d * k + k),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20000, "gtol": 1e-10, "ftol": 0.0, "maxcor": 30},
        )
        kept = {"value": np.float64(out.fun), "theta": out.x}
        _write(path, kept)
    theta = kept["theta"]
    w, b = theta[: d * k].reshape(d, k), theta[d * k :]
    if n_classes is None:
        w, b = w[:, 0], float(b[0])
    return float(kept["value"]), w, b


def l2_cross_entropy(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, n_classes: int | None, l2: float
) -> tuple[float, np.ndarray]:
    """The L2-penalised cross-entropy of :func:`l2_cross_entropy_optimum` and its
    gradient, in float64, at the flat parameters ``theta = [w.ravel(), b]``.

    Examples:
        At zero weights every binary prediction is 1/2: the loss is log 2.

        >>> value, grad = l2_cross_entropy(np.zeros(2), np.ones((3, 1)), np.ones(3), None, 1.0)
        >>> round(value, 6) == round(float(np.log(2)), 6)
        True
    """
    from scipy.special import expit, log_softmax, softmax

    n, d = x.shape
    k = 1 if n_classes is None else n_classes
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
    return float(value), grad


register_cache(load.cache_clear)

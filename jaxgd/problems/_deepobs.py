"""DeepOBS test problems, rebuilt exactly: ``quadratic_deep``.

DeepOBS (Schneider, Balles and Hennig, ICLR 2019; github.com/fsschneider/DeepOBS)
defines ``quadratic_deep`` in ``deepobs/tensorflow/testproblems/quadratic_deep.py``
and ``_quadratic.py``, its data in ``deepobs/tensorflow/datasets/quadratic.py``
(the PyTorch versions, ``deepobs/pytorch/...``, draw the same numbers). This
module repeats their NumPy calls in their order, so the Hessian, the training
set and the test set are DeepOBS's to the last bit of float64 (the losses are
evaluated in float32, as DeepOBS does).

One detail of DeepOBS matters for reproducing published runs: the Hessian's
generator, ``np.random.RandomState(42)``, is created once, when the module is
imported, and every ``quadratic_deep`` a process builds draws a *new* Hessian
from where the last one stopped. A fresh process's first problem is
``instance=0``; a process that ran several seeds in a row (as Crowded Valley
did) trained seed after seed on instances 1, 2, ... Each instance is told apart
by its epoch-0 test loss (see :func:`jaxgd.reproduce`).

The loss is DeepOBS's function, ``mean_i 0.5 (theta - x_i)^T Q (theta - x_i)``
over a batch, computed in the equal form

    0.5 [(theta - xbar)^T Q (theta - xbar) + mean_i c_i - xbar^T Q xbar],

``xbar`` the batch mean and ``c_i = x_i^T Q x_i``, which each data point carries:
``data`` and ``test_data`` are ``(x, c)`` pairs, ``c`` computed once in float64
from the float32 points and Hessian the loss holds, then stored in float32. A
step then costs the batch mean and a few 100 x 100 matrix-vector products, not
a (batch x 100) @ (100 x 100) product: vmapped over the 1,080 runs of the DeepOBS
protocol (36 rates x 10 seeds x 3 optimizers) that product was about 1 GFLOP a
step per optimizer, and took the protocol minutes. No term cancels: the
gradient is ``Q (theta - xbar)``, as the batch formula's is, and
``mean_i c_i - xbar^T Q xbar`` (twice the batch's spread about its mean) is a
difference of positive numbers far apart (about 165 and 1 on a batch of 128),
so values stay within float32 round-off of the batch formula's (a few 1e-7
relative, at the optimum too; checked in float64 by the tests).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd._host import register_cache
from jaxgd.problems._catalogue import Problem, device_array, register

__all__ = ["quadratic_deep", "quadratic_deep_hessian"]

_DIM = 100
_TRAIN_SIZE = 1000
_NOISE = 0.6
_BATCH = 128  # DeepOBS's budget: 100 epochs of 7 batches (the remainder dropped), 700 steps


def _random_rotation(rng: np.random.RandomState, dim: int) -> np.ndarray:
    """DeepOBS's ``random_rotation``: a Haar rotation by the subgroup algorithm
    (Diaconis and Shahshahani 1987), with DeepOBS's calls to ``rng`` in their order."""
    t = 2 * np.pi * rng.uniform()
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v = v / np.sqrt(v.T @ v)
        e = np.concatenate((np.array([[1.0]]), np.zeros((d, 1))), axis=0)
        x = (e - v) / np.sqrt((e - v).T @ (e - v))
        top = np.hstack([[[1.0]], np.zeros((1, d))])
        block = np.vstack([top, np.hstack([np.zeros((d, 1)), rot])])
        rot = block - 2 * np.outer(x, x.T @ block)
    return -rot


@functools.cache
def _draws(instance: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``(eigenvalues, hessian, generator state after)`` of the ``instance``-th draw."""
    rng = np.random.RandomState(42)
    if instance > 0:
        rng.set_state(_draws(instance - 1)[2])
    eigenvalues = np.concatenate((rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)), axis=0)
    rotation = _random_rotation(rng, _DIM)
    hessian = rotation.T @ (np.diag(eigenvalues) @ rotation)
    return eigenvalues, hessian, rng.get_state()


def quadratic_deep_hessian(instance: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues, hessian)`` of a DeepOBS process's ``instance``-th ``quadratic_deep``,
    in float64, as DeepOBS draws them (see :func:`quadratic_deep`).

    Examples:
        >>> import jaxgd as gd
        >>> eigenvalues, hessian = gd.problems.quadratic_deep_hessian()
        >>> hessian.shape, round(float(eigenvalues.max()), 6)
        ((100, 100), 53.129015)
    """
    for k in range(instance + 1):  # fill the cache in order (no deep recursion)
        _draws(k)
    eigenvalues, matrix, _ = _draws(instance)
    return eigenvalues, matrix


@functools.cache
def data_sets() -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)``: DeepOBS's 1000 training points (``RandomState(42)``) and the
    896 test points its test phase evaluates (``RandomState(43)``, the first 7 batches
    of 128 in order: the test loader is not shuffled and drops the remainder), float32."""
    train = np.float32(np.random.RandomState(42).normal(0.0, _NOISE, (_TRAIN_SIZE, _DIM)))
    test = np.float32(np.random.RandomState(43).normal(0.0, _NOISE, (_TRAIN_SIZE, _DIM)))
    return train, test[: (_TRAIN_SIZE // _BATCH) * _BATCH]


def _terms(matrix: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(points, c)`` with ``c_i = x_i^T Q x_i`` of each point, computed in float64 from
    the float32 Hessian and points the loss holds, then stored in float32."""
    q = np.asarray(matrix, np.float32).astype(np.float64)
    x = np.asarray(points, np.float32).astype(np.float64)
    return np.float32(x), np.float32(np.sum((x @ q) * x, axis=1))


def _quadratic_loss(matrix: jax.Array, theta: jax.Array, batch: tuple) -> jax.Array:
    """``mean over the batch of 0.5 (theta - x_i)^T Q (theta - x_i)`` (``Q`` = ``matrix``),
    computed as ``0.5 [d^T Q d + mean_i c_i - xbar^T Q xbar]`` with ``d = theta - xbar``,
    ``xbar`` the batch mean and ``c_i = x_i^T Q x_i`` (the batch is ``(x, c)``)."""
    x, c = batch
    mean = jnp.mean(x, axis=0)
    d = theta - mean
    spread = jnp.mean(c) - jnp.sum(mean * _times(matrix, mean))  # mean (x_i - xbar)^T Q (...)
    return 0.5 * (jnp.sum(d * _times(matrix, d)) + spread)


def _times(matrix: jax.Array, v: jax.Array) -> jax.Array:
    """``Q v`` as a broadcast product and a sum (``Q`` is symmetric), not a ``dot``.

    Vmapped, a dot is one matrix product of all the runs, which XLA:CPU sums
    differently in a 2-device runs mesh's program than on one device; a chaotic
    run (Adam at rates 40 to 100) then ends up to 5x apart, and the
    equal-results check of ``benchmarks/speed`` (runs mesh against one device,
    1,080 runs) fails. This form is bitwise equal there. It costs: XLA:CPU
    writes ``Q`` out once per run, and the DeepOBS protocol took 14.5 s on the
    mesh where ``v @ Q`` took 9.0 s (2 cores, load 2)."""
    return jnp.sum(matrix * v, axis=-1)


def _start(key: jax.Array) -> jax.Array:
    del key  # DeepOBS starts every run at theta = 1; the seed draws the minibatch order
    return jnp.ones(_DIM, jnp.float32)


@register
def quadratic_deep(instance: int = 0) -> Problem:
    """DeepOBS's quadratic_deep: a 100-D noisy quadratic with a deep-learning-like spectrum.

    ``loss(theta, (x, c)) = mean over the batch of 0.5 (theta - x)^T Q (theta - x)``,
    computed as ``0.5 [(theta - xbar)^T Q (theta - xbar) + mean c - xbar^T Q xbar]``
    with ``xbar`` the batch mean and ``c = x^T Q x`` per point: ``data`` and
    ``test_data`` are ``(x, c)`` pairs, so a step costs a few matrix-vector
    products, not a batch x 100 x 100 product (the same values, to float32
    round-off; see :mod:`jaxgd.problems._deepobs`). The Hessian
    ``Q = R^T diag(lambda) R`` has 90 eigenvalues drawn from U(0, 1) and 10
    from U(30, 60) by ``np.random.RandomState(42)``, rotated by a Haar rotation
    ``R`` from the same generator, exactly in DeepOBS's call order. The data
    are 1000 training points from N(0, 0.6^2 I) (``RandomState(42)``);
    ``test_data`` holds the 896 test points (``RandomState(43)``) that
    DeepOBS's test phase evaluates (its test loader takes 7 unshuffled batches
    of 128). Every run starts at ``theta = 1``; DeepOBS trains 100 epochs of
    batch 128 with the remainder dropped, 700 steps (``batch_size`` is 128).
    The optimum is the training mean, its value ``0.5 mean (x - xbar)^T Q
    (x - xbar)`` in float64; the target is within 1% of it, the held-out
    target within 1% of the test loss there.

    ``instance=k`` is the ``k``-th problem a DeepOBS process builds (its
    generator is created at import and keeps drawing): runs of several seeds
    in one process trained on instances 0, 1, 2, ...

    Examples:
        >>> import jaxgd as gd
        >>> problem = gd.problems.get("quadratic_deep")
        >>> x, c = problem.test_data  # points and their x^T Q x
        >>> problem.dimension, problem.batch_size, x.shape, c.shape
        (100, 128, (896, 100), (896,))
    """
    if not isinstance(instance, int) or isinstance(instance, bool) or instance < 0:
        raise ValueError(
            f"gd.problems.get('quadratic_deep', instance=...): instance must be an int >= 0 "
            f"(the k-th problem a DeepOBS process builds), got {instance!r}."
        )
    _, matrix = quadratic_deep_hessian(instance)
    train, test = data_sets()
    centre = train.astype(np.float64).mean(axis=0)

    def value(points: np.ndarray) -> float:
        q = centre - points.astype(np.float64)
        return float(0.5 * np.mean(np.einsum("bi,ij,bj->b", q, matrix, q)))

    optimum = value(train)
    return Problem(
        name="quadratic_deep",
        # The Hessian is a leaf of the loss (a Partial): every instance shares one program.
        loss=jax.tree_util.Partial(_quadratic_loss, device_array(matrix, np.float32)),
        init=_start,
        data=tuple(device_array(a, np.float32) for a in _terms(matrix, train)),
        optimum_value=optimum,
        optimum_params=device_array(centre, np.float32),
        target=optimum * 1.01,
        description="DeepOBS quadratic_deep: 100-D noisy quadratic, eigenvalues U(0,1) and U(30,60)"
        + (f", instance {instance}" if instance else ""),
        batch_size=_BATCH,
        test_data=tuple(device_array(a, np.float32) for a in _terms(matrix, test)),
        eval_target=value(test) * 1.01,
    )


register_cache(_draws.cache_clear)
register_cache(data_sets.cache_clear)

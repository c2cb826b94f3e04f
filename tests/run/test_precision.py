"""The bookkeeping (history, gradient norm, stopping rules) follows the params'
precision (issue 23): float64 runs record float64 and never overflow float32,
bfloat16 and float16 runs record float32."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxgd as gd
from jaxgd.run import _plan


@contextlib.contextmanager
def x64():
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:  # a failure must not leak x64 into other tests
        jax.config.update("jax_enable_x64", False)


def test_float64_grad_norm_above_float32_range():
    """sum(p**2) from 1e20: |g| = 2.8e20, whose square overflows float32."""
    with x64():
        p0 = jnp.array([1e20, -1e20])
        result = gd.minimize(lambda p: jnp.sum(p**2), p0, gd.sgd(0.1), steps=50)
        assert result.history.grad_norm.dtype == jnp.float64
        assert result.history.loss.dtype == jnp.float64
        assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
        assert float(result.history.grad_norm[0]) == pytest.approx(2 * np.sqrt(2) * 1e20, rel=1e-12)
        assert float(result.loss) == pytest.approx(2e40 * 0.8**100, rel=1e-9)


def _rosenbrock(tree, args):  # optimistix's tests/helpers.py, least squares
    y, _ = ravel_pytree(tree)
    return (100 * (y[1:] - y[:-1]), args - y[:-1])


def test_optimistix_rosenbrock_float64_matches_optax_loop():
    """optimistix's Rosenbrock with gd.sgd(1.5e-2) grows past float32's range
    but stays finite in float64: MAX_STEPS, as a plain optax loop, same loss."""
    with x64():

        def loss(tree):
            return sum(jnp.sum(r**2) for r in _rosenbrock(tree, jnp.array(1.0)))

        init = [jnp.array(1.5), jnp.array(1.5)]
        result = gd.minimize(loss, init, gd.sgd(1.5e-2), steps=50)
        opt = optax.sgd(1.5e-2)
        p, s = init, opt.init(init)
        for _ in range(50):
            updates, s = opt.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, updates)
        assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
        assert bool(jnp.all(jnp.isfinite(result.history.grad_norm)))
        assert float(result.loss) == pytest.approx(float(loss(p)), rel=1e-10)


def test_float64_target_is_not_rounded_to_float32():
    with x64():
        loss = lambda p: jnp.sum(p**2)  # noqa: E731
        result = gd.minimize(loss, jnp.array([1.0]), gd.sgd(0.25), steps=200, target=1e-50)
        # 0.25**k after k steps: 1e-50 is reached at k = 84 (float32 would read 0: never)
        assert gd.Status(int(result.status)) is gd.Status.REACHED_TARGET
        assert int(result.steps) == 84


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_records_float32(dtype):
    p0 = jnp.array([1.0, -2.0], dtype)
    result = gd.minimize(lambda p: jnp.sum(p**2), p0, gd.sgd(0.1), steps=5)
    assert result.history.loss.dtype == jnp.float32
    assert result.history.grad_norm.dtype == jnp.float32
    assert result.params.dtype == dtype


def test_x64_runs_one_step_per_iteration_on_cpu():
    """With x64 on, two steps per while-loop iteration was 10-20x slower on a CPU."""
    params = jnp.zeros(2)
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU's choice")
    assert _plan.inner_steps(False, params) == 2
    with x64():
        assert _plan.inner_steps(False, params) == 1

"""check_gradient's tolerance follows the gradient's resolution (issue 23):
no false alarm on autodiff's own bfloat16 gradient, a 5 % error still caught."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd


def f(x):
    return jnp.sum(jnp.sin(x) * x)


def wrong(x):  # 5 % too large
    return 1.05 * (jnp.sin(x) + x * jnp.cos(x))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_gradient(dtype):
    x = jnp.linspace(-2, 2, 50).astype(dtype)
    check = gd.check_gradient(f, x)
    assert check.ok, check.max_relative_error
    assert check.rtol <= 0.035
    assert not gd.check_gradient(f, x, grad=wrong).ok


def test_bfloat16_network():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(300, 64)), jnp.bfloat16)
    y = jnp.asarray(rng.normal(size=(300, 10)), jnp.bfloat16)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p = {
        "w1": (0.1 * jax.random.normal(k1, (64, 32))).astype(jnp.bfloat16),
        "w2": (0.1 * jax.random.normal(k2, (32, 10))).astype(jnp.bfloat16),
    }

    def net(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)

    assert gd.check_gradient(net, p, x, y).ok
    off = lambda p, x, y: jax.tree.map(lambda g: 1.05 * g, jax.grad(net)(p, x, y))  # noqa: E731
    assert not gd.check_gradient(net, p, x, y, grad=off).ok


def test_float32_tolerance_unchanged():
    assert gd.check_gradient(f, jnp.linspace(-2, 2, 50)).rtol == 1e-3

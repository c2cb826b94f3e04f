"""Weakly typed params and losses (``jnp.array(2.0)``) are ordinary (issue 23).

optimistix writes its scalar test problems' inits as ``jnp.array(...)``,
whose values are weakly typed; the loss computed from them is too. Three of
its minimisation problems (Himmelblau, Matyas, Beale, as in optimistix's
``tests/helpers.py``, written here with plain ``jnp``) run through
``minimize`` with ``optax.lbfgs`` and ``gd.adam``.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxgd as gd


def himmelblau(tree, args):
    y, z = tree
    const1, const2 = args
    return (y**2 + z - const1) ** 2 + (y + z**2 - const2) ** 2


def matyas(tree, args):
    y, z = tree
    const1, const2 = args
    return const1 * (y**2 + z**2) - const2 * y * z


def beale(tree, args):
    y, z = tree
    c1, c2, c3 = args
    return (c1 - y + y * z) ** 2 + (c2 - y + y * z**2) ** 2 + (c3 - y + y * z**3) ** 2


# (function, its minimum value, init, args), the inits and args as optimistix writes them
PROBLEMS = {
    "himmelblau": (
        himmelblau,
        0.0,
        [jnp.array(2.0), jnp.array(2.5)],
        (jnp.array(11.0), jnp.array(7.0)),
    ),
    "matyas": (matyas, 0.0, [jnp.array(6.0), jnp.array(6.0)], (jnp.array(0.26), jnp.array(0.48))),
    "beale": (
        beale,
        0.0,
        [jnp.array(2.0), jnp.array(0.0)],
        (jnp.array(1.5), jnp.array(2.25), jnp.array(2.625)),
    ),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_optimistix_scalar_problems_with_lbfgs(name):
    fn, minimum, init, args = PROBLEMS[name]
    assert all(leaf.weak_type for leaf in init)  # as optimistix writes them
    result = gd.minimize(lambda p: fn(p, args), init, optax.lbfgs(), steps=200, tol=1e-6)
    assert gd.Status(int(result.status)) is gd.Status.CONVERGED
    assert float(result.loss) == pytest.approx(minimum, abs=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_optimistix_scalar_problems_with_adam(name):
    fn, _, init, args = PROBLEMS[name]
    result = gd.minimize(lambda p: fn(p, args), init, gd.adam(3e-2), steps=2000)
    start = float(fn(init, args))
    assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
    assert float(result.loss) < 1e-2 * start


def test_weak_scalar_param():
    result = gd.minimize(lambda x: (x - 3.0) ** 2, jnp.array(0.0), gd.sgd(0.25), steps=60)
    assert float(result.params) == pytest.approx(3.0, abs=1e-6)


def test_weak_scalar_param_under_vmap_and_jit():
    run = lambda x: gd.minimize(lambda x: (x - 3.0) ** 2, x, gd.sgd(0.25), steps=60).params
    assert float(jax.jit(run)(jnp.array(0.0))) == pytest.approx(3.0, abs=1e-6)
    out = jax.vmap(run)(jnp.array([0.0, 1.0]))
    assert jnp.allclose(out, 3.0, atol=1e-6)


def test_python_float_still_refused():
    with pytest.raises(ValueError, match="Python float"):
        gd.minimize(lambda x: 3.0, jnp.array(0.0), gd.sgd(0.1), steps=5)


def test_refusal_is_not_remembered():
    """A refused loss leaves nothing in the memory of loss outputs."""
    from jaxgd.run import _values

    loss = lambda x: 3.0  # noqa: E731
    with pytest.raises(ValueError, match="Python float"):
        gd.minimize(loss, jnp.zeros(2), gd.sgd(0.25), steps=5)
    assert id(loss) not in _values._OUTPUTS


def test_weak_then_strong_call_same_loss():
    loss = lambda x: (x - 3.0) ** 2  # noqa: E731
    weak = gd.minimize(loss, jnp.array(0.0), gd.sgd(0.25), steps=60)
    strong = gd.minimize(loss, jnp.array(0.0, jnp.float32), gd.sgd(0.25), steps=60)
    assert float(weak.params) == float(strong.params)


def test_lr_range_test_with_weak_scalar():
    result = gd.lr_range_test(
        lambda x: (x - 3.0) ** 2, jnp.array(0.0), gd.sgd, min_lr=1e-4, max_lr=10.0, steps=50
    )
    assert 1e-4 <= float(result.suggested) <= 10.0

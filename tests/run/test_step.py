"""Tests of ``gd.make_step``: optax's numbers, donated buffers, no recompiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import CASES  # the one list: registry optimizer, optax twin

import jaxgd as gd


def _loss(params, x, y):
    """Least squares of a linear model: a loss with a batch and a dict of params."""
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _problem():
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (32, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3
    params = {"w": 0.1 * jax.random.normal(kw, (3,)), "b": jnp.zeros(())}
    return params, x, y


def _copy(tree):
    """Fresh buffers (what a step consumes must not be shared with the reference)."""
    return jax.tree.map(jnp.array, tree)


@pytest.mark.parametrize(("name", "ours", "reference"), CASES, ids=[c[0] for c in CASES])
def test_step_matches_an_optax_loop(name, ours, reference):
    params, x, y = _problem()
    ref_params, ref_state = _copy(params), reference.init(params)
    step = gd.make_step(_loss, ours)
    p, s = _copy(params), step.init(_copy(params))
    for _ in range(20):
        ref_value, grads = jax.value_and_grad(_loss)(ref_params, x, y)
        updates, ref_state = reference.update(grads, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, updates)
        p, s, value = step(p, s, x, y)
        # The same float32 operations in the same order, compiled apart: agreement
        # to a few ulps (rtol 1e-5 is ~80 ulps of float32), not to the bit. The
        # loss falls from about 5 towards 0, so an absolute floor of 1e-6 (float32
        # round-off at the starting scale) keeps a tiny late loss from failing on
        # cancellation (seen on a GPU, where the eager reference fuses differently).
        np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-6)
    for name in params:
        np.testing.assert_allclose(p[name], ref_params[name], rtol=1e-5, atol=1e-6)


def test_step_accepts_an_optax_optimizer():
    params, x, y = _problem()
    step = gd.make_step(_loss, optax.adam(0.05))
    p, s = _copy(params), step.init(_copy(params))
    first = None
    for _ in range(50):
        p, s, value = step(p, s, x, y)
        first = value if first is None else first
    assert float(value) < 0.1 * float(first)  # it descends


def test_params_and_state_are_donated():
    params, x, y = _problem()
    step = gd.make_step(_loss, gd.adam(0.05))
    p, s = _copy(params), step.init(_copy(params))
    new_p, new_s, _ = step(p, s, x, y)
    # The buffers passed in were handed to XLA for the outputs: they are gone.
    for leaf in jax.tree.leaves((p, s)):
        assert leaf.is_deleted()
    for leaf in jax.tree.leaves((new_p, new_s)):
        assert not leaf.is_deleted()
    assert not x.is_deleted() and not y.is_deleted()  # the batch is only read
    with pytest.raises((RuntimeError, ValueError), match="deleted"):
        step(p, s, x, y)  # reusing consumed params is an error, not silent garbage


def test_new_hyperparameters_do_not_recompile(count_compiles):
    params, x, y = _problem()
    step = gd.make_step(_loss, gd.adam(0.05))
    p, s = step(_copy(params), step.init(_copy(params)), x, y)[:2]  # compiles
    p2, p3 = _copy(params), _copy(params)
    with count_compiles() as compiles:
        other = gd.make_step(_loss, gd.adam(0.001, b1=0.8, b2=0.99, eps=1e-6))
        s2 = other.init(p2)
        p2, s2, _ = other(p2, s2, x, y)
        p, s, _ = step(p, s, x, y)  # and the first one keeps working
    assert compiles.count == 0
    # The new hyperparameters were used: one Adam step moves each weight by about lr.
    moved = jnp.abs(p2["w"] - p3["w"])
    np.testing.assert_allclose(moved, 0.001, rtol=1e-3)


def test_bad_arguments_are_named_with_the_function_called():
    """The shared checks say ``make_step:``, not ``minimize:``."""
    with pytest.raises(TypeError, match="^make_step: .*optimizer"):
        gd.make_step(_loss, gd.adam)
    with pytest.raises(TypeError, match=r"^make_step: loss must be a function loss\(params"):
        gd.make_step("not a function", gd.adam(0.1))
    with pytest.raises(TypeError, match="^make_step: has_aux must be True or False, got 1"):
        gd.make_step(_loss, gd.adam(0.1), has_aux=1)


def test_make_step_hands_line_searches_the_loss():
    """armijo (optax's backtracking line search) needs value, grad and value_fn."""
    loss = lambda p: jnp.sum(jnp.array([1.0, 100.0]) * p**2)
    step = gd.make_step(loss, gd.optimizers.armijo(0.05))  # 0.05 * 0.8^8 < 2/L = 0.01
    params = jnp.ones(2)
    state = step.init(params)
    values = []
    for _ in range(20):
        params, state, value = step(params, state)
        values.append(float(value))
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))  # never increases
    assert values[-1] < 1e-2 * values[0]  # 101 -> 0.58 in 20 steps (condition number 100)

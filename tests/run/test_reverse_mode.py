"""Reverse mode through minimize (issue 23): exact for a fixed-length run, with
jaxgd's optimizers, optax's and schedules of a traced rate; refused before
tracing, naming tol/target, where a stopping rule makes the loop a while loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd


def loss(p):
    return jnp.sum((p - jnp.array([3.0, -1.0])) ** 2) + 0.1 * jnp.sum(p**4)


P0 = jnp.zeros(2)
STEPS = 20
FACTORIES = {
    "gd.adam": lambda lr: gd.adam(lr),
    "optax.adam": lambda lr: optax.adam(lr),
    "optax.sgd momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "gd.adam, schedule of the rate": lambda lr: gd.adam(optax.linear_schedule(lr, lr / 10, STEPS)),
    "optax.adam, schedule of the rate": lambda lr: optax.adam(
        optax.linear_schedule(lr, lr / 10, STEPS)
    ),
}


def unrolled(factory, lr):
    """The same steps as a plain differentiable Python loop of optax-protocol steps."""
    opt = factory(lr)
    p, s = P0, opt.init(P0)
    for _ in range(STEPS):
        updates, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, updates)
    return loss(p)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_grad_through_a_fixed_length_run_is_exact(name):
    factory = FACTORIES[name]
    ours = jax.grad(lambda lr: gd.minimize(loss, P0, factory(lr), steps=STEPS).loss)(0.1)
    theirs = jax.grad(lambda lr: unrolled(factory, lr))(0.1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_grad_with_respect_to_the_start_under_jit():
    f = lambda p0: gd.minimize(loss, p0, optax.adam(0.1), steps=STEPS).loss  # noqa: E731
    g = jax.jit(jax.grad(f))(P0)
    assert g.shape == (2,) and bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize("rule", [{"tol": 1e-6}, {"target": 0.0}])
def test_a_stopping_rule_is_refused_in_reverse_mode(rule):
    name = next(iter(rule))
    f = lambda lr: gd.minimize(loss, P0, gd.adam(lr), steps=STEPS, **rule).loss  # noqa: E731
    with pytest.raises(ValueError, match=rf"reverse mode.*{name}.*Drop {name}"):
        jax.grad(f)(0.1)
    with pytest.raises(ValueError, match=rf"Drop {name}"):
        jax.jit(jax.vmap(jax.grad(f)))(jnp.array([0.1, 0.2]))


def test_forward_mode_works_with_a_stopping_rule():
    f = lambda lr: gd.minimize(loss, P0, gd.adam(lr), steps=STEPS, tol=1e-6).loss  # noqa: E731
    _, tangent = jax.jvp(f, (0.1,), (1.0,))
    fd = (f(0.1 + 1e-3) - f(0.1 - 1e-3)) / 2e-3
    np.testing.assert_allclose(tangent, fd, rtol=1e-2)

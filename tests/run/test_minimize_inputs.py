"""minimize with the inputs real JAX code hands it: aux outputs, pytree losses,
optax transformations that evaluate the loss themselves, whole models."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import Partial

import jaxgd as gd

X = jax.random.normal(jax.random.PRNGKey(0), (64, 3))
Y = X @ jnp.array([1.0, -2.0, 0.5]) + 0.25


def ridge(w, batch, lam):
    x, y = batch
    return jnp.mean((x @ w - y) ** 2) + lam * jnp.sum(w**2)


# --------------------------------------------------------------------------- #
# has_aux
# --------------------------------------------------------------------------- #


def test_has_aux_returns_the_aux_at_the_returned_params():
    def loss(w, batch):
        x, y = batch
        residual = x @ w - y
        return jnp.mean(residual**2), {"max_error": jnp.max(jnp.abs(residual))}

    result = gd.minimize(loss, jnp.zeros(3), gd.adam(0.1), steps=200, data=(X, Y), has_aux=True)
    expected = jnp.max(jnp.abs(X @ result.params - Y))
    assert float(result.aux["max_error"]) == pytest.approx(float(expected), rel=1e-6)
    plain = gd.minimize(
        lambda w, b: loss(w, b)[0], jnp.zeros(3), gd.adam(0.1), steps=200, data=(X, Y)
    )
    np.testing.assert_array_equal(result.params, plain.params)  # aux changes nothing else


def test_has_aux_in_a_minibatch_run_is_the_full_data_aux():
    loss = lambda w, b: (jnp.mean((b[0] @ w - b[1]) ** 2), b[0].shape[0])
    result = gd.minimize(
        loss, jnp.zeros(3), gd.sgd(0.05), steps=20, data=(X, Y), batch_size=8,
        key=jax.random.PRNGKey(1), has_aux=True,
    )  # fmt: skip
    assert int(result.aux) == 64


def test_a_tuple_without_has_aux_says_to_pass_it():
    with pytest.raises(ValueError, match="has_aux=True"):
        gd.minimize(lambda w: (jnp.sum(w**2), 1.0), jnp.ones(2), gd.sgd(0.1), steps=3)


def test_make_step_with_aux():
    step = gd.make_step(lambda w, x: (jnp.sum((w - x) ** 2), w * 2), gd.sgd(0.25), has_aux=True)
    params, state, (value, aux) = step(jnp.zeros(2), step.init(jnp.zeros(2)), jnp.ones(2))
    assert float(value) == 2.0
    np.testing.assert_array_equal(aux, jnp.zeros(2))
    np.testing.assert_allclose(params, jnp.full(2, 0.5))


# --------------------------------------------------------------------------- #
# Losses that are pytrees: traced leaves, no recompiling
# --------------------------------------------------------------------------- #


def test_a_new_partial_value_compiles_nothing(count_compiles):
    def run(lam):
        return gd.minimize(Partial(ridge, lam=lam), jnp.zeros(3), gd.sgd(0.1), steps=50,
                           data=(X, Y))  # fmt: skip

    first = run(0.1)
    lam = 0.5
    with count_compiles() as compiles:
        second = run(lam)
    assert compiles.count == 0
    assert float(jnp.sum(second.params**2)) < float(jnp.sum(first.params**2))


def test_vmapping_over_a_partial_value_matches_separate_runs():
    lams = jnp.array([0.0, 0.1, 1.0])
    swept = jax.vmap(
        lambda lam: gd.minimize(
            Partial(ridge, lam=lam), jnp.zeros(3), gd.sgd(0.1), steps=40, data=(X, Y)
        )  # fmt: skip
    )(lams)
    for i, lam in enumerate(lams):
        one = gd.minimize(Partial(ridge, lam=lam), jnp.zeros(3), gd.sgd(0.1), steps=40, data=(X, Y))
        np.testing.assert_allclose(swept.params[i], one.params, rtol=1e-6, atol=1e-7)


def test_a_large_array_in_a_partial_is_an_argument_not_a_constant():
    big = jnp.ones((2000, 1000))
    loss = Partial(lambda a, w: jnp.sum((a @ w) ** 2) / a.size, big)
    text = (
        jax.jit(lambda w: gd.minimize(loss, w, gd.sgd(0.01), steps=2).loss)
        .lower(jnp.zeros(1000))
        .as_text()
    )
    assert len(text) < 1_000_000  # a 2000x1000 constant would print as 8 MB of digits
    closed = lambda w: jnp.sum((big @ w) ** 2) / big.size
    baked = jax.jit(lambda w: gd.minimize(closed, w, gd.sgd(0.01), steps=2).loss).lower(
        jnp.zeros(1000)
    )
    assert "2000x1000" in baked.as_text()  # the positive control: a closure bakes it in


# --------------------------------------------------------------------------- #
# optax transformations that evaluate the loss themselves
# --------------------------------------------------------------------------- #


def test_lbfgs_converges_on_rosenbrock_as_optax_documents():
    rosen = gd.problems.get("rosenbrock")
    x0 = jnp.array([-1.2, 1.0])
    result = gd.minimize(rosen.loss, x0, optax.lbfgs(), steps=100, tol=1e-6)
    assert gd.Status(int(result.status)) == gd.Status.CONVERGED
    np.testing.assert_allclose(result.params, jnp.ones(2), atol=1e-3)

    # optax's documented loop (optax docs, "L-BFGS" in the optimizer how-to)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(rosen.loss)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=rosen.loss
        )
        return optax.apply_updates(params, updates), state

    params, state = x0, opt.init(x0)
    for _ in range(int(result.steps)):
        params, state = step(params, state)
    np.testing.assert_allclose(result.params, params, rtol=1e-5, atol=1e-6)


def test_a_backtracking_line_search_never_increases_the_loss():
    quad = gd.problems.get("quadratic")
    # 30 halvings by 0.8 reach 1e-3 < 2/L = 0.02 (15 would not: optax then takes the step)
    armijo = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(30))
    result = gd.minimize(quad.loss, quad.init(jax.random.PRNGKey(0)), armijo, steps=100)
    curve = np.asarray(result.history.loss)[: int(result.steps) + 1]
    assert np.all(np.diff(curve) <= 1e-6 * curve[:-1])
    plain = gd.minimize(quad.loss, quad.init(jax.random.PRNGKey(0)), gd.sgd(1.0), steps=100)
    assert gd.Status(int(plain.status)) == gd.Status.DIVERGED  # the same rate without it


def test_value_fn_evaluates_the_current_minibatch():
    seen = []

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        jax.debug.callback(lambda a, b: seen.append((float(a), float(b))), value, value_fn(params))
        return jax.tree.map(lambda g: -0.05 * g, updates), state

    probe = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
    gd.minimize(loss, jnp.zeros(3), probe, steps=5, data=(X, Y), batch_size=4,
                key=jax.random.PRNGKey(0))  # fmt: skip
    assert len(seen) == 5
    for value, again in seen:
        assert again == pytest.approx(value, rel=1e-6)  # the batch's loss, not the full data's
    full = float(loss(jnp.zeros(3), (X, Y)))
    assert seen[0][0] != pytest.approx(full, rel=1e-3)


# --------------------------------------------------------------------------- #
# Bad inputs of this kind
# --------------------------------------------------------------------------- #


def test_a_loss_returning_a_python_float_is_told_to_use_jnp():
    with pytest.raises(ValueError, match="Python float.*jnp"):
        gd.minimize(lambda w: 1.0, jnp.ones(2), gd.sgd(0.1), steps=3)


def test_a_type_error_inside_the_loss_is_not_blamed_on_the_call():
    def loss(w):
        return jnp.sum(w) + "oops"

    with pytest.raises(TypeError) as info:
        gd.minimize(loss, jnp.ones(2), gd.sgd(0.1), steps=3)
    assert "calling the loss as" not in str(info.value)


def test_data_as_python_lists_is_told_to_use_asarray():
    with pytest.raises((TypeError, ValueError), match="np.asarray"):
        gd.minimize(lambda w, b: jnp.sum(w), jnp.ones(2), gd.sgd(0.1), steps=3,
                    data=[[1.0, 2.0], [3.0, 4.0]])  # fmt: skip


def test_a_whole_equinox_model_is_told_to_partition():
    eqx = pytest.importorskip("equinox")
    model = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match=r"eqx\.partition\(model, eqx\.is_inexact_array\)"):
        gd.minimize(lambda m: jnp.sum(m(jnp.ones(2))), model, gd.sgd(0.1), steps=3)


def test_a_whole_nnx_state_is_told_to_split_by_param():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Dropout(0.5, rngs=nnx.Rngs(0))
    _, state = nnx.split(model)
    with pytest.raises(TypeError, match=r"nnx\.split\(model, nnx\.Param"):
        gd.minimize(lambda s: jnp.float32(0.0), state, gd.sgd(0.1), steps=3)

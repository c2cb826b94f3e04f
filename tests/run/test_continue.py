"""Continuing a run: ``Result.opt_state`` and ``minimize(opt_state=...)`` (issue 23);
optax wrappers that are objects (``optax.MultiSteps``) are optimizers too."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd


def loss(p):
    return jnp.sum((p - jnp.array([3.0, -1.0, 0.5])) ** 2) + 0.1 * jnp.sum(p**4)


P0 = jnp.zeros(3)
OPTIMIZERS = {
    "sgd": gd.sgd(0.05),
    "adam": gd.adam(0.05),
    "optax.adam": optax.adam(0.05),
    "adam+schedule": gd.adam(optax.cosine_decay_schedule(0.1, 200)),
    "optax.adam+schedule": optax.adam(optax.linear_schedule(0.1, 0.01, 200)),
}
SLOW = {"sgd", "optax.adam"}  # the others cover them: run with the slow tests


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(OPTIMIZERS)],
)
def test_120_then_80_steps_equal_200_bit_for_bit(name):
    opt = OPTIMIZERS[name]
    whole = gd.minimize(loss, P0, opt, steps=200)
    first = gd.minimize(loss, P0, opt, steps=120)
    second = gd.minimize(loss, first.params, opt, steps=80, opt_state=first.opt_state)
    np.testing.assert_array_equal(np.asarray(second.params), np.asarray(whole.params))
    np.testing.assert_array_equal(
        np.asarray(second.history.loss), np.asarray(whole.history.loss)[120:]
    )
    pairs = zip(jax.tree.leaves(second.opt_state), jax.tree.leaves(whole.opt_state), strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_continue_under_jit():
    opt = gd.adam(0.05)
    whole = gd.minimize(loss, P0, opt, steps=50)

    @jax.jit
    def two_calls(p0):
        first = gd.minimize(loss, p0, opt, steps=30)
        return gd.minimize(loss, first.params, opt, steps=20, opt_state=first.opt_state).params

    np.testing.assert_allclose(two_calls(P0), whole.params, rtol=1e-6)


def test_opt_state_counts_the_steps():
    result = gd.minimize(loss, P0, gd.adam(0.05), steps=37)
    assert int(result.opt_state.count) == 37


def test_multisteps_object_is_accepted_and_equals_optax_loop():
    opt = optax.MultiSteps(optax.adam(0.05), every_k_schedule=4)
    result = gd.minimize(loss, P0, opt, steps=40)
    p, s = P0, opt.init(P0)
    for _ in range(40):
        updates, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(result.params, p, rtol=1e-6)
    assert int(result.opt_state.gradient_step) == 10


def test_a_factory_uncalled_is_still_refused_with_the_hint():
    with pytest.raises(TypeError, match="factory without calling it"):
        gd.minimize(loss, P0, gd.adam, steps=5)


def test_schedule_free_eval_params_from_the_result():
    opt = optax.contrib.schedule_free_adamw(0.1, warmup_steps=10)
    result = gd.minimize(loss, P0, opt, steps=100)
    p, s = P0, opt.init(P0)
    for _ in range(100):
        updates, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, updates)
    ours = optax.contrib.schedule_free_eval_params(result.opt_state, result.params)
    theirs = optax.contrib.schedule_free_eval_params(s, p)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert float(loss(ours)) < float(loss(P0))


def test_a_checkpoint_of_another_start_is_not_resumed(tmp_path):
    first = gd.minimize(loss, P0, gd.adam(0.05), steps=20)
    path = tmp_path / "run"
    gd.minimize(
        loss, first.params, gd.adam(0.05), steps=20, opt_state=first.opt_state, checkpoint=path
    )
    other = gd.adam(0.05).init(first.params)  # the same params, a fresh optimizer state
    with pytest.raises(ValueError, match="belongs to another run.*opt_state"):
        gd.minimize(loss, first.params, gd.adam(0.05), steps=20, opt_state=other, checkpoint=path)
    again = gd.minimize(
        loss, first.params, gd.adam(0.05), steps=20, opt_state=first.opt_state, checkpoint=path
    )
    whole = gd.minimize(loss, P0, gd.adam(0.05), steps=40)
    np.testing.assert_array_equal(np.asarray(again.params), np.asarray(whole.params))

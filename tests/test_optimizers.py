"""Every descent variant against its optax counterpart, from one list.

Tolerances, and why:

* In a user's own jitted loop (hyperparameters closed over as Python floats,
  as optax has them) every jaxgd rule gives optax's trajectory **bit for bit**
  over 2000 steps: the formulas are the same operations in the same order.
* Inside ``minimize`` the hyperparameters are traced float32 values (that is
  what lets a new learning rate skip recompiling), so XLA cannot constant-fold
  ``b1 ** t`` as it does for optax: the Adam family's bias correction can
  round one ulp apart. The first ten steps must agree to rtol 1e-6 (a few
  ulps of float32's 1.2e-7). Over 2000 steps one-ulp differences grow with the
  trajectory's own sensitivity, which depends on the problem, so the bound is
  measured, not guessed: the path must stay within 5x the distance by which
  optax's own path moves when its starting params are nudged by one ulp
  (floor 1e-6). A wrong formula (bias correction, eps placement, momentum
  term) moves the path by 1e-2 or more, orders of magnitude above that bound.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxgd as gd

STEPS = 2000  # length of the compared trajectories
SCHEDULE = optax.cosine_decay_schedule(0.02, decay_steps=STEPS, alpha=0.1)

# (name, jaxgd optimizer, optax counterpart): the one list every test iterates over.
CASES = [
    ("sgd", gd.sgd(0.05), optax.sgd(0.05)),
    ("momentum", gd.momentum(0.02, beta=0.9), optax.sgd(0.02, momentum=0.9)),
    (
        "nesterov",
        gd.momentum(0.02, beta=0.9, nesterov=True),
        optax.sgd(0.02, momentum=0.9, nesterov=True),
    ),
    ("adam", gd.adam(0.01), optax.adam(0.01)),
    ("adam_b", gd.adam(0.003, b1=0.8, b2=0.99, eps=1e-6), optax.adam(0.003, 0.8, 0.99, 1e-6)),
    ("adamw", gd.adamw(0.01, weight_decay=0.05), optax.adamw(0.01, weight_decay=0.05)),
    ("rmsprop", gd.rmsprop(0.002, decay=0.95), optax.rmsprop(0.002, decay=0.95)),
    ("adagrad", gd.adagrad(0.05), optax.adagrad(0.05)),
    ("sgd_schedule", gd.sgd(SCHEDULE), optax.sgd(SCHEDULE)),
    ("adam_schedule", gd.adam(SCHEDULE), optax.adam(SCHEDULE)),
]
IDS = [c[0] for c in CASES]


def _regression_problem():
    """A small tanh MLP fitted to a noisy sine: nonconvex, realistic scales."""
    key = jax.random.PRNGKey(42)
    kx, kn, kp = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (128, 3), minval=-2.0, maxval=2.0)
    y = jnp.sin(x @ jnp.array([1.0, -0.5, 0.25])) + 0.1 * jax.random.normal(kn, (128,))
    model = gd.models.mlp((3, 16, 1))
    params = model.init(kp)
    loss = gd.losses.objective(lambda p, x: model(p, x)[:, 0], gd.losses.mse)
    return loss, params, (x, y)


LOSS, PARAMS0, DATA = _regression_problem()


def _optax_path(tx, steps, params0=PARAMS0):
    """The optax training loop (compiled as a scan), recording params after each step."""

    def step(carry, _):
        params, state = carry
        grads = jax.grad(LOSS)(params, DATA)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps)[1])
    return run(params0)


_OPTAX_PATHS = {}


def _reference_path(name, tx):
    """optax's STEPS-step path for case ``name`` (computed once per session)."""
    if name not in _OPTAX_PATHS:
        _OPTAX_PATHS[name] = _optax_path(tx, STEPS)
    return _OPTAX_PATHS[name]


def _assert_tree_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _path_distance(path, reference):
    """max over steps of |params_k - ref_k| / |ref_k| (Euclidean, all leaves)."""
    flat = lambda t: jax.vmap(lambda p: ravel_pytree(p)[0])(t)
    a, b = flat(path), flat(reference)
    return float(jnp.max(jnp.linalg.norm(a - b, axis=1) / jnp.linalg.norm(b, axis=1)))


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_user_loop_is_bit_for_bit_optax_for_thousands_of_steps(name, ours, theirs):
    expected = _reference_path(name, theirs)
    actual = _optax_path(ours, STEPS)
    for x, y in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_minimize_follows_optax(name, ours, theirs):
    expected = _reference_path(name, theirs)
    result = gd.minimize(LOSS, PARAMS0, ours, data=DATA, steps=STEPS + 1, record_params=True)
    # history.params[k] holds params_k: params_1..params_STEPS are optax's steps 1..STEPS.
    actual = jax.tree.map(lambda a: a[1:], result.history.params)
    first_ten = jax.tree.map(lambda a: a[:10], (actual, expected))
    _assert_tree_close(*first_ten, rtol=1e-6, atol=1e-7)
    nudged = jax.tree.map(lambda p: jnp.nextafter(p, jnp.inf), PARAMS0)
    sensitivity = _path_distance(_optax_path(theirs, STEPS, nudged), expected)
    assert _path_distance(actual, expected) <= max(5 * sensitivity, 1e-6)


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_state_and_updates_keep_structure_and_dtype(name, ours, theirs):
    params = {"a": jnp.ones((2, 3), jnp.bfloat16), "b": (jnp.zeros(4), jnp.ones(()))}
    state = ours.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    updates, new_state = ours.update(grads, state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
        assert u.dtype == p.dtype and u.shape == p.shape
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for s, t in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
        assert s.dtype == t.dtype


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_drops_into_optax_chain(name, ours, theirs):
    chained = optax.chain(optax.clip_by_global_norm(1.0), ours)
    reference = optax.chain(optax.clip_by_global_norm(1.0), theirs)
    _assert_tree_close(_optax_path(chained, 5), _optax_path(reference, 5), rtol=1e-6, atol=1e-7)


def test_hyperparameters_are_leaves_and_flags_are_static():
    opt = gd.momentum(0.1, beta=0.5, nesterov=True)
    leaves, treedef = jax.tree.flatten(opt)
    assert leaves == [0.1, 0.5]
    rebuilt = jax.tree.unflatten(treedef, [0.2, 0.7])
    assert rebuilt == gd.momentum(0.2, beta=0.7, nesterov=True)
    assert jax.tree.leaves(gd.sgd(SCHEDULE)) == []  # a schedule is static
    assert "learning_rate=0.1" in repr(opt)


def test_a_batch_of_optimizers_vmaps():
    lrs = jnp.array([0.01, 0.1, 0.3])
    params = jnp.array([1.0, -2.0])

    def one_step(opt):
        updates, _ = opt.update(2 * params, opt.init(params))
        return updates

    updates = jax.vmap(one_step)(gd.sgd(lrs))
    np.testing.assert_allclose(updates, -lrs[:, None] * 2 * params[None], rtol=1e-6)


def test_adamw_without_params_is_a_clear_error():
    opt = gd.adamw(0.1)
    with pytest.raises(ValueError, match="params"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))

"""An optax optimizer's learning rate is traced, as a jaxgd optimizer's is.

``jaxgd._partition`` sees through the closures of an optax
``GradientTransformation``: its step size is a traced leaf, so ``minimize``
reuses its compiled program for a new rate, and ``compare`` vmaps an optax
factory over rates by the same mechanism as a jaxgd one. Its other numbers
(``b1``, ``eps``) stay compiled in, so optax's numbers are kept bit for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd
from jaxgd._partition import combine, partition

_loss = lambda p: jnp.sum((p - jnp.array([1.0, -2.0])) ** 2) + 0.1 * jnp.sum(p**4)


def test_the_step_size_is_a_traced_leaf_and_the_rest_compiled_in():
    traced, static = partition(optax.adam(0.1))
    assert [t for t in traced if t is not None] == [-0.1]
    assert static == partition(optax.adam(0.3))[1]
    assert static != partition(optax.adam(0.1, b1=0.8))[1]  # b1 is compiled in
    chained = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))
    assert [t for t in partition(chained)[0] if t is not None] == [-0.1]
    again = partition(combine(traced, static))  # seen through twice: the same split
    assert again[1] == static and [t for t in again[0] if t is not None] == [-0.1]


def test_a_seen_through_optax_optimizer_gives_optax_bits():
    """Compiled with its step size traced, optax's update has the bits it has
    compiled with every number a constant."""

    def run(tx, x):
        def step(_, carry):
            x, state = carry
            updates, state = tx.update(jax.grad(_loss)(x), state, x)
            return optax.apply_updates(x, updates), state

        return jax.lax.fori_loop(0, 30, step, (x, tx.init(x)))[0]

    x0 = jnp.zeros(2)
    for tx in (optax.adam(0.05), optax.chain(optax.clip(1.0), optax.rmsprop(0.01, momentum=0.9))):
        traced, static = partition(tx)
        seen_through = jax.jit(lambda t, x, static=static: run(combine(t, static), x))(traced, x0)
        np.testing.assert_array_equal(seen_through, jax.jit(lambda x, tx=tx: run(tx, x))(x0))


def test_a_new_optax_learning_rate_reuses_minimize_s_program(count_compiles):
    x0 = jnp.zeros(2)
    first = gd.minimize(_loss, x0, optax.adam(0.05), steps=30)
    with count_compiles() as compiles:
        again = gd.minimize(_loss, x0, optax.adam(0.02), steps=30)
        jax.block_until_ready(again.params)
    assert compiles.count == 0
    assert float(again.loss) != float(first.loss)
    with count_compiles() as compiles:  # positive control: b1 is compiled in
        gd.minimize(_loss, x0, optax.adam(0.02, b1=0.8), steps=30)
    assert compiles.count >= 1


def test_an_optax_optimizer_swept_in_compare_equals_separate_minimize_runs():
    rates, seeds, steps = [0.01, 0.1], [0, 1], 40
    c = gd.compare(["booth"], {"adam": optax.adam}, learning_rates=rates, seeds=seeds, steps=steps)
    problem = gd.problems.get("booth")
    swept = c.problems[0].optimizers["adam"].final_loss
    for i, lr in enumerate(rates):
        for j, seed in enumerate(seeds):
            init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
            run = gd.minimize(
                problem.loss, problem.init(init_key), optax.adam(lr), steps=steps, key=batch_key
            )
            np.testing.assert_allclose(swept[i, j], run.loss, rtol=1e-5, atol=1e-7)


def test_a_list_held_in_a_closure_is_the_same_list_not_a_copy():
    seen = []

    def update(updates, state, params=None):
        seen.append(len(updates))
        return updates, state

    tx = optax.GradientTransformation(lambda p: optax.EmptyState(), update)
    ours = combine(*partition(tx))
    ours.update(jnp.ones(2), ours.init(jnp.ones(2)))
    assert seen == [2]

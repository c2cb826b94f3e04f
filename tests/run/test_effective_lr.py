"""The effective learning rate d * lr of the optimizers that adapt it
(minimize(diagnostics=("effective_lr",))), against optax's own hand loop of the same
optimizer: ``opt.init``, ``opt.update``, and the state read before each update."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_same_bits
from optax import contrib

import jaxgd as gd

STEPS = 30
PROBLEM = gd.problems.get("rosenbrock")  # a curved valley: d grows for many steps
START = PROBLEM.init(jax.random.PRNGKey(0))
SCHEDULE = optax.linear_schedule(1.0, 0.2, STEPS)  # d * lr is d times the schedule's rate
ADAPTIVE = {"prodigy": contrib.prodigy, "dadapt_adamw": contrib.dadapt_adamw}


def _hand_loop(tx, params, steps=STEPS):
    """optax's loop; each step's ``estim_lr * learning_rate(count)`` read from the state
    the update starts from (the D and the rate that update uses: optax's ``dlr``
    without Adam's bias correction)."""

    def step(carry, _):
        params, state = carry
        rate = state.estim_lr * SCHEDULE(state.count)
        grads = jax.grad(PROBLEM.loss)(params)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), rate

    return np.asarray(jax.lax.scan(step, (params, tx.init(params)), length=steps)[1])


@pytest.mark.parametrize("label", sorted(ADAPTIVE))
def test_the_recorded_rate_is_optaxs_d_times_the_schedules_rate(label):
    tx = ADAPTIVE[label](SCHEDULE)
    run = gd.minimize(PROBLEM.loss, START, tx, steps=STEPS, diagnostics=("effective_lr",))
    recorded = np.asarray(run.history.effective_lr, np.float64)
    expected = _hand_loop(tx, START)
    np.testing.assert_allclose(recorded, expected, rtol=1e-6)
    assert recorded[-1] > 10 * recorded[0]  # d adapted: not the starting estim_lr0 * lr
    state = tx.init(START)  # the public protocol reads the same
    assert float(gd.optimizers.effective_lr(tx, state, state)) == pytest.approx(1e-6)


def test_wrapped_states_are_seen_through():
    plain = gd.minimize(
        PROBLEM.loss, START, contrib.prodigy(SCHEDULE), steps=STEPS,
        diagnostics=("effective_lr",),
    ).history.effective_lr  # fmt: skip
    for wrapped in (
        optax.chain(optax.clip_by_global_norm(1e6), contrib.prodigy(SCHEDULE)),
        optax.inject_hyperparams(contrib.prodigy)(learning_rate=SCHEDULE),
    ):
        run = gd.minimize(PROBLEM.loss, START, wrapped, steps=STEPS, diagnostics=("effective_lr",))
        np.testing.assert_allclose(run.history.effective_lr, plain, rtol=1e-6)


def test_records_follow_the_history_stride_and_stop_with_the_run():
    tx = contrib.dadapt_adamw(SCHEDULE)
    kwargs = dict(steps=STEPS, diagnostics=("effective_lr",))
    every = gd.minimize(PROBLEM.loss, START, tx, **kwargs).history
    strided = gd.minimize(PROBLEM.loss, START, tx, history_every=4, **kwargs).history
    assert np.shape(strided.effective_lr) == (-(-STEPS // 4),)
    np.testing.assert_allclose(strided.effective_lr, np.asarray(every.effective_lr)[::4])
    stopped = gd.minimize(PROBLEM.loss, START, tx, target=float(every.loss[5]), **kwargs)
    taken = int(stopped.steps)
    assert 0 < taken < STEPS
    rates = np.asarray(stopped.history.effective_lr)
    np.testing.assert_allclose(rates[:taken], np.asarray(every.effective_lr)[:taken])
    assert np.isnan(rates[taken:]).all()  # no update taken there


def test_a_sweep_over_learning_rates_records_each_runs_rate():
    rates = jnp.array([0.5, 1.0])
    run = lambda lr: gd.minimize(  # noqa: E731
        PROBLEM.loss, START, contrib.prodigy(lr), steps=8, diagnostics=("effective_lr",)
    )
    runs = jax.vmap(run)(rates)
    for lr, recorded in zip(rates, np.asarray(runs.history.effective_lr), strict=True):
        alone = gd.minimize(
            PROBLEM.loss, START, contrib.prodigy(float(lr)), steps=8,
            diagnostics=("effective_lr",),
        )  # fmt: skip
        np.testing.assert_allclose(recorded, alone.history.effective_lr, rtol=1e-6)


@pytest.mark.parametrize(
    "optimizer",
    [gd.adam(0.1), optax.adam(0.1), gd.optimizers.get("mechanic")(1e-2), contrib.dog()],
    ids=["adam", "optax-adam", "mechanic", "dog"],
)
def test_an_optimizer_that_does_not_adapt_its_rate_is_refused_before_compiling(
    optimizer, count_compiles
):
    params = START
    with count_compiles() as compiles, pytest.raises(ValueError) as info:
        gd.minimize(PROBLEM.loss, params, optimizer, steps=5, diagnostics=("effective_lr",))
    message = str(info.value)
    assert "diagnostics 'effective_lr'" in message and "carries no d" in message
    assert "optax.contrib.dadapt_adamw, optax.contrib.prodigy" in message
    assert "drop 'effective_lr' from diagnostics" in message
    assert compiles.count == 0
    with pytest.raises(ValueError, match="carries no d"):
        gd.optimizers.effective_lr(optimizer, None, None)


def test_compare_does_not_take_it():
    with pytest.raises(ValueError, match="'effective_lr', which is not one of 'alpha'"):
        gd.compare(["booth"], ["prodigy"], learning_rates=[1.0], steps=5,
                   diagnostics=("effective_lr",))  # fmt: skip


def test_off_it_costs_nothing_and_on_it_changes_no_other_bit():
    tx = contrib.prodigy(SCHEDULE)
    off = gd.minimize(PROBLEM.loss, START, tx, steps=10)
    on = gd.minimize(PROBLEM.loss, START, tx, steps=10, diagnostics=("effective_lr",))
    assert off.history.effective_lr is None
    assert_same_bits(off.params, on.params)
    assert_same_bits(off.history.loss, on.history.loss)
    assert_same_bits(off.opt_state, on.opt_state)

    def program(**kwargs):
        run = lambda p: gd.minimize(PROBLEM.loss, p, tx, steps=10, **kwargs)  # noqa: E731
        return jax.jit(run).lower(START).as_text()

    assert program() == program(diagnostics=())
    assert len(program(diagnostics=("effective_lr",))) > len(program())

"""The compiled run loop: theory, statuses, history, vmap, compilation, minibatches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd

KAPPA = 100.0
QUAD = gd.problems.get("quadratic", condition_number=KAPPA)  # mu = 1, L = 100
X0 = QUAD.init(jax.random.PRNGKey(0))


def _error_norms(result):
    """|x_k - x*| along the recorded path."""
    return np.linalg.norm(
        np.asarray(result.history.params) - np.asarray(QUAD.optimum_params), axis=1
    )


def test_gradient_descent_contracts_at_the_textbook_rate():
    """lr = 2/(L+mu) gives |1 - lr lambda| = (kappa-1)/(kappa+1) on every eigenvector."""
    lr = 2.0 / (KAPPA + 1.0)
    result = gd.minimize(QUAD.loss, X0, gd.sgd(lr), steps=300, record_params=True)
    e = _error_norms(result)
    rate = (e[300 - 1] / e[0]) ** (1 / 299)
    # float32 path: the measured rate matches theory to ~1e-7; a halved step gives 0.9779
    assert rate == pytest.approx((KAPPA - 1) / (KAPPA + 1), rel=1e-5)


def test_heavy_ball_contracts_at_polyaks_rate():
    """Polyak's lr 4/(sqrt L + sqrt mu)^2 and beta ((sqrt k - 1)/(sqrt k + 1))^2 give
    rate rho = (sqrt k - 1)/(sqrt k + 1). With only the extreme eigenvalues present
    each mode is a Jordan block, e_k ~ (a + b k) rho^k, so the rate is read from
    e_{2k} / e_k * k / 2k, which cancels the linear factor."""
    root = np.sqrt(KAPPA)
    lr = 4.0 / (root + 1.0) ** 2
    beta = ((root - 1) / (root + 1)) ** 2
    result = gd.minimize(QUAD.loss, X0, gd.momentum(lr, beta=beta), steps=60, record_params=True)
    e = _error_norms(result)
    k = 25
    rate = (e[2 * k] / e[k] * k / (2 * k)) ** (1 / k)
    assert rate == pytest.approx((root - 1) / (root + 1), rel=0.03)
    plain = gd.minimize(QUAD.loss, X0, gd.sgd(2 / (KAPPA + 1)), steps=60)
    assert float(result.history.loss[59]) < float(plain.history.loss[59]) * 1e-3


def test_step_size_below_two_over_l_converges_and_far_above_diverges():
    L = KAPPA
    good = gd.minimize(QUAD.loss, X0, gd.sgd(1.9 / L), steps=3000, tol=1e-4)
    assert gd.Status(int(good.status)) == gd.Status.CONVERGED
    assert float(good.loss) < 1e-6
    bad = gd.minimize(QUAD.loss, X0, gd.sgd(10.0 / L), steps=3000)
    assert gd.Status(int(bad.status)) == gd.Status.DIVERGED
    assert bool(jnp.all(jnp.isfinite(bad.params)))
    steps = int(bad.steps)
    assert 0 < steps < 3000
    # The history shows the blow-up up to the first non-finite value, then NaN.
    loss, grad_norm = np.asarray(bad.history.loss), np.asarray(bad.history.grad_norm)
    assert np.all(np.isfinite(loss[:steps]) & np.isfinite(grad_norm[:steps]))
    assert not (np.isfinite(loss[steps]) and np.isfinite(grad_norm[steps]))
    assert np.all(np.isnan(loss[steps + 1 :]))
    assert loss[steps - 1] > 1e30


def test_status_reached_target_and_max_steps():
    hit = gd.minimize(QUAD.loss, X0, gd.sgd(0.01), steps=2000, target=1e-3)
    assert gd.Status(int(hit.status)) == gd.Status.REACHED_TARGET
    assert float(hit.loss) <= 1e-3
    k = int(hit.steps)
    assert float(hit.history.loss[k]) <= 1e-3 < float(hit.history.loss[k - 1])
    short = gd.minimize(QUAD.loss, X0, gd.sgd(0.01), steps=5)
    assert gd.Status(int(short.status)) == gd.Status.MAX_STEPS and int(short.steps) == 5
    assert short.history.loss.shape == (5,)
    assert float(short.loss) < float(short.history.loss[4])  # loss at params_5


def test_history_matches_the_params_path():
    result = gd.minimize(QUAD.loss, X0, gd.adam(0.1), steps=20, record_params=True)
    losses = jax.vmap(QUAD.loss)(result.history.params)
    np.testing.assert_allclose(result.history.loss, losses, rtol=1e-6)
    grad_norms = jax.vmap(lambda x: jnp.linalg.norm(jax.grad(QUAD.loss)(x)))(result.history.params)
    np.testing.assert_allclose(result.history.grad_norm, grad_norms, rtol=1e-5)
    np.testing.assert_array_equal(result.history.params[0], X0)


def test_student_marks_fit_matches_numpy_least_squares():
    problem = gd.problems.get("student_marks")
    x, y = (np.asarray(a, np.float64) for a in problem.data)
    coef, *_ = np.linalg.lstsq(np.column_stack([x, np.ones(len(y))]), y, rcond=None)
    params0 = problem.init(jax.random.PRNGKey(0))
    lr = gd.suggest_learning_rate(problem.loss, params0, problem.data).recommended
    result = gd.minimize(problem.loss, params0, gd.sgd(lr), data=problem.data, steps=1000, tol=1e-5)
    assert gd.Status(int(result.status)) == gd.Status.CONVERGED
    fitted = [float(result.params[k]) for k in ("hours_studied", "attendance", "bias")]
    np.testing.assert_allclose(fitted, coef, atol=1e-3)


def test_vmap_over_learning_rates_flags_only_the_diverging_runs():
    lrs = jnp.array([0.001, 0.01, 1.5 / KAPPA, 1.99 / KAPPA, 2.2 / KAPPA, 10.0 / KAPPA])
    run = lambda lr: gd.minimize(QUAD.loss, X0, gd.sgd(lr), steps=5000, tol=1e-4)
    results = jax.vmap(run)(lrs)
    statuses = [gd.Status(int(s)) for s in results.status]
    diverged = [s == gd.Status.DIVERGED for s in statuses]
    assert diverged == [False, False, False, False, True, True]
    assert bool(jnp.all(jnp.isfinite(results.params)))
    # each lane equals its own unbatched run
    single = run(lrs[2])
    np.testing.assert_allclose(results.params[2], single.params, rtol=1e-6)
    assert int(results.steps[2]) == int(single.steps)


def test_a_new_learning_rate_params_or_key_compiles_nothing(count_compiles):
    problem = gd.problems.get("student_marks")
    kwargs = dict(data=problem.data, steps=50, batch_size=20)
    p0 = problem.init(jax.random.PRNGKey(0))
    gd.minimize(problem.loss, p0, gd.adam(0.01), key=jax.random.PRNGKey(0), **kwargs)
    with count_compiles() as compiles:
        gd.minimize(problem.loss, p0, gd.adam(0.02, b1=0.8), key=jax.random.PRNGKey(0), **kwargs)
        p1 = problem.init(jax.random.PRNGKey(1))
        gd.minimize(problem.loss, p1, gd.adam(0.01), key=jax.random.PRNGKey(7), **kwargs)
        gd.minimize(problem.loss, p1, gd.adam(0.01), key=jax.random.PRNGKey(7), tol=1e-3, **kwargs)
    assert compiles.count == 0


def test_minibatch_runs_are_reproducible_and_keyed():
    problem = gd.problems.get("student_marks")
    p0 = problem.init(jax.random.PRNGKey(0))
    run = lambda key: gd.minimize(
        problem.loss, p0, gd.sgd(0.05), data=problem.data, steps=300, batch_size=16, key=key
    )
    a, b, c = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(4))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.history.loss, c.history.loss)
    # minibatch SGD still fits: within 5% of the optimum's loss
    assert float(a.loss) < 1.05 * problem.optimum_value


@pytest.mark.parametrize(("n", "bs"), [(12, 4), (11, 4), (10, 10)])
def test_every_example_is_seen_once_per_epoch(n, bs):
    """A loss that records which examples it saw: every example appears in every
    epoch (once; twice for one example of each short stratum when bs does not
    divide n), one per stratum per batch, and the order changes between epochs."""
    data = jnp.arange(n, dtype=jnp.float32)
    seen = []

    def loss(w, batch):
        jax.debug.callback(lambda b: seen.append(np.asarray(b)), batch)
        return jnp.sum(w * batch)

    per_epoch, epochs = -(-n // bs), 3
    gd.minimize(
        loss,
        jnp.zeros(()),
        gd.sgd(0.0),
        data=data,
        steps=per_epoch * epochs,
        batch_size=bs,
        key=jax.random.PRNGKey(0),
    )
    batches = np.stack([b for b in seen if b.shape == (bs,)][: per_epoch * epochs]).astype(int)
    assert batches.shape == (per_epoch * epochs, bs)
    strata = (np.arange(bs + 1) * n) // bs
    extra = per_epoch * bs - n  # examples seen twice per epoch
    orders = []
    for epoch in range(epochs):
        rows = batches[per_epoch * epoch : per_epoch * (epoch + 1)]
        counts = np.bincount(rows.ravel(), minlength=n)
        assert counts.min() == 1 and counts.sum() == n + extra
        for j in range(bs):  # column j always draws from stratum j
            assert np.all((rows[:, j] >= strata[j]) & (rows[:, j] < strata[j + 1]))
        orders.append(rows)
    if per_epoch > 1:
        assert not np.array_equal(orders[0], orders[1])


def test_optax_transformations_are_accepted():
    tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(0.1))
    result = gd.minimize(QUAD.loss, X0, tx, steps=500)
    assert float(result.loss) < 1e-4
    ours = gd.minimize(QUAD.loss, X0, optax.adam(0.1), steps=50)
    theirs = gd.minimize(QUAD.loss, X0, gd.adam(0.1), steps=50)
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-5)


@pytest.mark.parametrize("bad_value", [jnp.nan, jnp.inf, -jnp.inf])
def test_nan_in_the_data_ends_at_step_zero_with_the_initial_params(bad_value):
    problem = gd.problems.get("student_marks")
    x, y = problem.data
    bad = (x.at[5, 1].set(bad_value), y)
    p0 = problem.init(jax.random.PRNGKey(0))
    with pytest.warns(UserWarning, match=r"data\[0\]"):
        result = gd.minimize(
            problem.loss,
            p0,
            gd.sgd(0.1),
            data=bad,
            steps=10,
            batch_size=4,
            key=jax.random.PRNGKey(0),
        )
    assert gd.Status(int(result.status)) == gd.Status.DIVERGED and int(result.steps) == 0
    for k in p0:
        assert float(result.params[k]) == float(p0[k])


def test_the_compile_counter_counts_a_fresh_program(count_compiles):
    """The positive control of every no-recompile test: a fresh jit counts one."""
    f = jax.jit(lambda x: x * 3.0 + 1.0)
    x = jnp.ones(3)
    with count_compiles() as compiles:
        f(x).block_until_ready()
    assert compiles.count == 1
    with count_compiles() as compiles:
        f(x).block_until_ready()
    assert compiles.count == 0


def test_stopping_rules_see_the_minibatch_loss():
    """target fires on a minibatch whose loss is below it even though the full-data loss is not."""
    x = jnp.concatenate([jnp.zeros((4, 1)), jnp.ones((4, 1))])
    loss = lambda w, b: jnp.mean((b @ w - 1.0) ** 2)  # rows of zeros: loss 1; of ones: (w-1)^2
    kw = dict(steps=50, data=x, batch_size=1, key=jax.random.PRNGKey(0))
    result = gd.minimize(loss, jnp.array([1.0]), gd.sgd(0.1), target=0.5, **kw)
    assert gd.Status(int(result.status)) == gd.Status.REACHED_TARGET
    first_ones = int(np.argmax(np.asarray(x)[np.asarray(gd.run.batch_indices(8, 1, 50,
                     jax.random.PRNGKey(0)))[:, 0], 0] == 1.0))  # fmt: skip
    assert int(result.steps) == first_ones  # the first minibatch of a row of ones
    assert float(result.loss) == pytest.approx(0.5)  # the full-data loss is not below 0.5


@pytest.mark.parametrize("rule", ["tol", "target"])
def test_history_is_nan_after_the_run_stops(rule):
    kw = {"tol": 1e-3} if rule == "tol" else {"target": 1e-4}
    result = gd.minimize(QUAD.loss, X0, gd.sgd(0.015), steps=2000, **kw)
    stopped = int(result.steps)
    assert stopped < 1999
    loss, grad_norm = np.asarray(result.history.loss), np.asarray(result.history.grad_norm)
    assert np.isfinite(loss[: stopped + 1]).all() and np.isfinite(grad_norm[: stopped + 1]).all()
    assert np.isnan(loss[stopped + 1 :]).all() and np.isnan(grad_norm[stopped + 1 :]).all()


def test_result_loss_is_the_full_data_loss_at_the_returned_params():
    problem = gd.problems.get("student_marks")
    p0 = problem.init(jax.random.PRNGKey(0))
    result = gd.minimize(problem.loss, p0, gd.sgd(0.05), data=problem.data, steps=100,
                         batch_size=10, key=jax.random.PRNGKey(1))  # fmt: skip
    assert float(result.loss) == float(problem.loss(result.params, problem.data))


def test_a_diverged_run_keeps_the_last_finite_params_exactly():
    """The params returned are those at the step whose loss or gradient first stopped being
    finite (here the gradient norm overflows first)."""
    result = gd.minimize(QUAD.loss, X0, gd.sgd(0.5), steps=3000, record_params=True)
    stopped = int(result.steps)
    assert gd.Status(int(result.status)) == gd.Status.DIVERGED
    np.testing.assert_array_equal(result.params, result.history.params[stopped])
    h = result.history
    assert not (np.isfinite(h.loss[stopped]) and np.isfinite(h.grad_norm[stopped]))
    assert np.isfinite(h.loss[stopped - 1]) and np.isfinite(h.grad_norm[stopped - 1])
    assert np.isfinite(result.params).all()

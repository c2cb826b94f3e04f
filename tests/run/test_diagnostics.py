"""Why a step overshoots (minimize(diagnostics=...)): Cockpit's alpha, the cosine
between updates, the update ratio and the gradient noise scale, against values
computed by hand from the recorded params."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_same_bits

import jaxgd as gd

LAMBDA = 4.0
H = jnp.diag(jnp.array([LAMBDA, 1.0]))
QUAD = lambda p: 0.5 * p @ H @ p
EXCITED = jnp.array([1.0, 0.0])  # one eigendirection excited: the run stays on it
ALL = ("alpha", "cosine", "update_ratio", "noise_scale")

X = jax.random.normal(jax.random.PRNGKey(0), (24, 3))
Y = X @ jnp.array([1.0, -2.0, 0.5]) + 0.3 * jax.random.normal(jax.random.PRNGKey(1), (24,))
MSE = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
W0 = jnp.zeros(3)


def _cockpit_alpha(g0_delta, g1_delta):
    """alpha on an exact quadratic: -(g1 . delta) / (g0 . delta)."""
    return -g1_delta / g0_delta


@pytest.mark.parametrize("lr", [0.1, 0.3, 0.5, 0.55])  # below 1/L, between, at 2/L, above
def test_alpha_is_lr_lambda_minus_one_and_the_cosine_plus_or_minus_one(lr):
    run = gd.minimize(QUAD, EXCITED, gd.sgd(lr), steps=6, diagnostics=("alpha", "cosine"))
    alpha, cosine = np.asarray(run.history.alpha), np.asarray(run.history.cosine)
    np.testing.assert_allclose(alpha[:-1], lr * LAMBDA - 1, rtol=1e-5, atol=1e-6)
    assert np.isnan(alpha[-1])  # the last step's end point is past the loop
    assert np.isnan(cosine[0])  # no update before the first
    np.testing.assert_allclose(cosine[1:], np.sign(1 - lr * LAMBDA), atol=1e-6)
    assert run.history.update_ratio is None and run.history.noise_scale is None


@pytest.mark.parametrize(
    "optimizer",
    [gd.adam(0.3), gd.momentum(0.2, beta=0.9), optax.adam(0.3)],
    ids=["adam", "momentum", "optax-adam"],
)
def test_alpha_of_any_optimizer_is_that_of_the_update_it_took(optimizer):
    hess = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    loss = lambda p: 0.5 * p @ hess @ p
    run = gd.minimize(
        loss, jnp.array([1.0, -2.0]), optimizer, steps=12, diagnostics=("alpha",),
        record_params=True,
    )  # fmt: skip
    path = np.asarray(run.history.params, np.float64)
    delta = np.diff(path, axis=0)
    grads = path @ np.asarray(hess, np.float64)
    expected = _cockpit_alpha(np.sum(grads[:-1] * delta, 1), np.sum(grads[1:] * delta, 1))
    np.testing.assert_allclose(np.asarray(run.history.alpha)[:-1], expected, rtol=2e-3, atol=2e-4)


def test_the_update_ratio_is_the_norm_of_the_update_over_that_of_the_params_per_leaf():
    params = {"w": jnp.array([1.0, 2.0, -1.0]), "b": jnp.array(0.5)}
    loss = lambda p: jnp.sum((p["w"] - 3.0) ** 2) + (p["b"] + 1.0) ** 2
    run = gd.minimize(loss, params, gd.adam(0.1), steps=8, diagnostics=["update_ratio"],
                      record_params=True)  # fmt: skip
    for name in ("w", "b"):
        path = np.asarray(run.history.params[name], np.float64).reshape(8, -1)
        expected = np.linalg.norm(np.diff(path, axis=0), axis=1) / np.linalg.norm(path[:-1], axis=1)
        got = np.asarray(run.history.update_ratio[name])
        np.testing.assert_allclose(got[:-1], expected, rtol=1e-4)
        assert np.isfinite(got[-1])  # the last update is known at the last step


@jax.jit
def _noise_scale(w, batch):
    per_example = jax.vmap(jax.grad(lambda w, x, y: (x @ w - y) ** 2), (None, 0, 0))(w, *batch)
    mean = per_example.mean(0)
    trace = jnp.sum((per_example - mean) ** 2) / (per_example.shape[0] - 1)
    return trace / jnp.sum(mean**2)


def test_the_noise_scale_is_the_trace_of_the_covariance_over_the_squared_gradient():
    key = jax.random.PRNGKey(2)
    run = gd.minimize(MSE, W0, gd.sgd(0.05), steps=5, data=(X, Y), batch_size=8, key=key,
                      diagnostics=("noise_scale",), record_params=True)  # fmt: skip
    order = gd.run.batch_indices(24, 8, 5, key)[:5]
    expected = jax.vmap(_noise_scale)(run.history.params, (X[order], Y[order]))
    np.testing.assert_allclose(run.history.noise_scale, expected, rtol=1e-4)
    full = gd.minimize(MSE, W0, gd.sgd(0.05), steps=2, data=(X, Y), diagnostics=("noise_scale",))
    np.testing.assert_allclose(full.history.noise_scale[0], _noise_scale(W0, (X, Y)), rtol=1e-4)


@pytest.mark.slow
def test_in_minibatch_runs_alpha_ends_on_the_next_batch_as_in_cockpit():
    key = jax.random.PRNGKey(3)
    run = gd.minimize(MSE, W0, gd.sgd(0.1), steps=6, data=(X, Y), batch_size=8, key=key,
                      diagnostics=("alpha",), record_params=True)  # fmt: skip
    order = gd.run.batch_indices(24, 8, 6, key)[:6]
    path = run.history.params
    f, g = jax.vmap(jax.value_and_grad(MSE))(path, (X[order], Y[order]))  # each on its batch
    f, g, path = (np.asarray(a, np.float64) for a in (f, g, path))
    delta = np.diff(path, axis=0)
    q = np.sum(delta**2, 1)
    s0, s1 = np.sum(g[:-1] * delta, 1), np.sum(g[1:] * delta, 1)  # the end: the next batch's
    fit = 2 * (q + 4) * (s0 - s1) / (s0 * (q + 8) - s1 * q + 2 * q * (f[1:] - f[:-1])) - 1
    expected = np.where(s1 > s0, fit, -1.0)
    np.testing.assert_allclose(np.asarray(run.history.alpha)[:-1], expected, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_records_follow_the_history_stride():
    kwargs = dict(steps=12, data=(X, Y), diagnostics=ALL)
    every = gd.minimize(MSE, W0, gd.momentum(0.05, beta=0.5), **kwargs)
    strided = gd.minimize(MSE, W0, gd.momentum(0.05, beta=0.5), history_every=3, **kwargs)
    for name in ("alpha", "cosine", "noise_scale", "update_ratio"):
        a, b = getattr(every.history, name), getattr(strided.history, name)
        assert np.shape(b) == (4,)
        np.testing.assert_allclose(b, np.asarray(a)[::3], rtol=1e-5)
        assert np.isfinite(np.asarray(b)[1:]).all()


@pytest.mark.slow
def test_a_sweep_over_learning_rates_diagnoses_each_run():
    rates = jnp.array([0.1, 0.3, 0.55])
    run = lambda lr: gd.minimize(QUAD, EXCITED, gd.sgd(lr), steps=5, diagnostics=ALL[:3])  # noqa: E731
    runs = jax.vmap(run)(rates)
    expected = (rates[:, None] * LAMBDA - 1) * np.ones(4)
    np.testing.assert_allclose(np.asarray(runs.history.alpha)[:, :-1], expected, atol=1e-5)
    np.testing.assert_allclose(runs.history.update_ratio[:, 0], rates * LAMBDA, rtol=1e-6)
    noisy = jax.vmap(
        lambda lr: gd.minimize(
            MSE,
            W0,
            gd.sgd(lr),
            steps=4,
            data=(X, Y),
            batch_size=8,
            key=jax.random.PRNGKey(0),
            diagnostics=ALL,
        )  # fmt: skip
    )(rates[:2])
    assert np.isfinite(np.asarray(noisy.history.noise_scale)).all()
    assert np.isfinite(np.asarray(noisy.history.alpha)[:, :-1]).all()


def test_a_stopped_run_records_no_update_past_its_end():
    run = gd.minimize(QUAD, EXCITED, gd.sgd(0.25), steps=8, tol=0.2, diagnostics=ALL[:3])
    taken = int(run.steps)  # each step halves the gradient: stops at step 3
    assert 0 < taken < 8
    assert np.isfinite(np.asarray(run.history.alpha)[:taken]).all()
    assert np.isnan(np.asarray(run.history.alpha)[taken:]).all()
    assert np.isnan(np.asarray(run.history.cosine)[taken:]).all()


@pytest.mark.slow
def test_segments_and_checkpoints_carry_the_last_update(tmp_path):
    kwargs = dict(steps=20, data=(X, Y), batch_size=8, key=jax.random.PRNGKey(4), diagnostics=ALL)
    whole = gd.minimize(MSE, W0, gd.adam(0.1), **kwargs)
    path = tmp_path / "run"
    cut = gd.minimize(MSE, W0, gd.adam(0.1), checkpoint=path, checkpoint_every=3, **kwargs)
    assert_same_bits(whole.history, cut.history)


def test_off_it_costs_nothing_and_on_it_changes_no_other_bit():
    off = gd.minimize(MSE, W0, gd.sgd(0.1), steps=10, data=(X, Y))
    on = gd.minimize(MSE, W0, gd.sgd(0.1), steps=10, data=(X, Y), diagnostics=ALL)
    assert len(jax.tree.leaves(off.history)) == 2
    assert_same_bits(off.params, on.params)
    assert_same_bits(off.history.loss, on.history.loss)

    def program(**kwargs):
        run = lambda lr: gd.minimize(MSE, W0, gd.sgd(lr), steps=10, data=(X, Y), **kwargs)  # noqa: E731
        return jax.jit(run).lower(0.1).as_text()

    assert program() == program(diagnostics=())
    assert len(program(diagnostics=("alpha",))) > len(program())


def test_warm_calls_tell_the_instruments_apart():
    kwargs = dict(steps=5, data=(X, Y))
    first = gd.minimize(MSE, W0, gd.sgd(0.1), diagnostics=("cosine",), **kwargs)
    again = gd.minimize(MSE, W0, gd.sgd(0.1), diagnostics=("cosine",), **kwargs)
    other = gd.minimize(MSE, W0, gd.sgd(0.1), diagnostics=("alpha",), **kwargs)
    assert_same_bits(first.history.cosine, again.history.cosine)
    assert other.history.cosine is None and other.history.alpha is not None


def test_an_unknown_instrument_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="'sharpness', which is not one of 'alpha', 'cosine'"):
        gd.minimize(QUAD, EXCITED, gd.sgd(0.1), steps=3, diagnostics=("alpha", "sharpness"))
    with pytest.raises(ValueError, match="noise_scale.*needs data="):
        gd.minimize(QUAD, EXCITED, gd.sgd(0.1), steps=3, diagnostics=("noise_scale",))


MEAN_MSE = gd.run.mean_over_examples(lambda w, example: (example[0] @ w - example[1]) ** 2)


@pytest.mark.parametrize(
    "batching",
    [{}, {"batch_size": 8, "key": jax.random.PRNGKey(4)}, {"history_every": 2}],
    ids=["full", "minibatch", "stride2"],
)
def test_a_mean_over_examples_takes_its_step_from_the_noise_scales_pass(batching, monkeypatch):
    # Said to be a mean over examples, the loss's step uses the per-example pass the noise
    # scale makes (every step recorded) or its own gradient (stride 2): either way the run
    # of the same batch loss written by hand, to float32 round-off.
    from jaxgd.run import _diagnostics

    calls = []
    shared_pass = _diagnostics.noise_and_step
    monkeypatch.setattr(
        _diagnostics, "noise_and_step", lambda *a: calls.append(1) or shared_pass(*a)
    )
    gd.clear_caches()  # traced here, where the pass is watched
    kw = dict(steps=6, data=(X, Y), diagnostics=("noise_scale", "alpha"), record_params=True)
    shared = gd.minimize(MEAN_MSE, W0, gd.adam(0.05), **kw, **batching)
    assert bool(calls) == ("history_every" not in batching)
    plain = gd.minimize(MSE, W0, gd.adam(0.05), **kw, **batching)
    for name in ("loss", "grad_norm", "noise_scale", "alpha", "params"):
        got, want = getattr(shared.history, name), getattr(plain.history, name)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(shared.params, plain.params, rtol=2e-5)
    if not batching:  # and the noise scale is tr(Sigma)/|G|^2 at the recorded params
        expected = jax.vmap(_noise_scale, (0, None))(shared.history.params, (X, Y))
        np.testing.assert_allclose(shared.history.noise_scale, expected, rtol=1e-4)


def test_a_mean_over_examples_refuses_what_is_not_one():
    with pytest.raises(TypeError, match="example_loss must be a function"):
        gd.run.mean_over_examples(3.0)
    with_aux = gd.run.mean_over_examples(lambda w, e: ((e[0] @ w) ** 2, e[1]))
    with pytest.raises(TypeError, match="one scalar per example"):
        with_aux(W0, (X, Y))


def test_alpha_and_the_cosine_leaf_by_leaf_above_the_join_limit(monkeypatch):
    # Above JOIN_LIMIT parameters the dot products are taken leaf by leaf (no params-sized
    # copies): the same records as one Gram matrix of the joined vectors.
    from jaxgd.run import _diagnostics

    loss = lambda p, b: jnp.mean((b[0] @ p["w"] + p["b"] - b[1]) ** 2)  # two leaves
    params = {"w": W0, "b": jnp.zeros(())}
    kw = dict(steps=8, data=(X, Y), diagnostics=("alpha", "cosine"))
    joined = gd.minimize(loss, params, gd.momentum(0.05), **kw)
    monkeypatch.setattr(_diagnostics, "JOIN_LIMIT", 0)
    gd.clear_caches()
    by_leaf = gd.minimize(loss, params, gd.momentum(0.05), **kw)
    for name in ("alpha", "cosine"):
        got, want = getattr(by_leaf.history, name), getattr(joined.history, name)
        np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=name)
    assert np.isfinite(np.asarray(joined.history.alpha[:6])).all()

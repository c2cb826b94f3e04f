"""Sharpness along a run (sharpness_every): exact on quadratics, the edge of
stability on a small network (Cohen et al. 2021), Adam's preconditioned sharpness."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import jaxgd as gd

H = jnp.diag(jnp.array([10.0, 4.0, 1.0]))
QUAD = lambda p: 0.5 * p @ H @ p


def _records(array):
    a = np.asarray(array)
    return a[~np.isnan(a)]


def test_curvature_of_a_quadratic_is_its_largest_eigenvalue():
    result = gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), steps=60, sharpness_every=10)
    curvature = np.asarray(result.history.sharpness)
    assert np.isnan(curvature[1:10]).all()  # NaN between records
    np.testing.assert_allclose(_records(curvature), 10.0, rtol=1e-5)
    assert len(_records(curvature)) == 6
    assert result.history.preconditioned is None  # plain descent has no preconditioner


def test_curvature_off_records_nothing_and_changes_nothing():
    off = gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), steps=60)
    on = gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), steps=60, sharpness_every=7)
    assert off.history.sharpness is None
    np.testing.assert_array_equal(off.params, on.params)
    np.testing.assert_array_equal(off.history.loss, on.history.loss)


def test_curvature_under_vmap_and_with_minibatches():
    x = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
    loss = lambda w, b: jnp.mean((b @ w) ** 2)  # Hessian 2 B^T B / b on a batch
    runs = jax.vmap(
        lambda lr: gd.minimize(
            loss,
            jnp.ones(2),
            gd.sgd(lr),
            steps=20,
            data=x,
            batch_size=8,
            key=jax.random.PRNGKey(1),
            sharpness_every=5,
        )  # fmt: skip
    )(jnp.array([0.01, 0.02]))
    first = np.asarray(runs.history.sharpness)[:, 0]
    rows = gd.run.batch_indices(32, 8, 20, jax.random.PRNGKey(1))[0]
    batch = x[rows]
    exact = float(jnp.linalg.eigvalsh(2 * batch.T @ batch / 8)[-1])
    np.testing.assert_allclose(first, exact, rtol=1e-4)  # the current batch's sharpness


def test_adam_preconditioned_sharpness_in_an_exact_case():
    """b2 = 0 makes v the last squared gradient, so on f = h x^2 / 2 in 1-D the
    preconditioner of step t is P = (1 - b1^t)(|h x| + eps) and P^-1 H = h / P."""
    h, b1, eps = 4.0, 0.9, 1e-8
    loss = lambda p: 0.5 * h * jnp.sum(p**2)
    result = gd.minimize(
        loss, jnp.array([2.0]), gd.adam(0.01, b1=b1, b2=0.0, eps=eps), steps=30,
        sharpness_every=3, record_params=True,
    )  # fmt: skip
    pre = np.asarray(result.history.preconditioned)
    x = np.asarray(result.history.params)[:, 0]
    steps = np.arange(30)
    expected = h / ((1 - b1 ** (steps + 1)) * (np.abs(h * x) + eps))
    recorded = ~np.isnan(pre)
    assert recorded.sum() == 10
    np.testing.assert_allclose(pre[recorded], expected[recorded], rtol=1e-4)
    np.testing.assert_allclose(_records(result.history.sharpness), h, rtol=1e-5)


def test_stability_limits():
    limit = gd.optimizers.stability_limit
    assert limit(gd.sgd(0.1)) == ("sharpness", pytest.approx(20.0), "2/lr")
    assert limit(gd.momentum(0.1, beta=0.9)) == ("sharpness", pytest.approx(38.0), "(2+2β)/lr")
    assert limit(gd.adam(0.1)).limit == pytest.approx(380.0)
    assert limit(gd.adam(0.1)).kind == "preconditioned"
    assert limit(gd.rmsprop(0.1)) is None
    assert limit(gd.momentum(0.1, nesterov=True)) is None
    assert limit(optax.sgd(0.1)) is None  # optax's optimizers state no limit
    schedule = optax.linear_schedule(0.1, 0.05, 10)
    assert limit(gd.sgd(schedule), step=10).limit == pytest.approx(40.0)


def test_limits_bound_gradient_descent_on_a_quadratic():
    """Just below 2/L converges, just above diverges; likewise (2 + 2 beta)/L for heavy ball."""
    for make, rate in ((lambda lr: gd.sgd(lr), 2.0), (lambda lr: gd.momentum(lr, 0.5), 3.0)):
        below = gd.minimize(QUAD, jnp.ones(3), make(0.98 * rate / 10.0), steps=3000)
        above = gd.minimize(QUAD, jnp.ones(3), make(1.02 * rate / 10.0), steps=3000)
        assert float(below.loss) < 1e-3
        assert gd.Status(int(above.status)) == gd.Status.DIVERGED or float(above.loss) > 1e3


def _digits_mlp():
    x, y = load_digits(return_X_y=True)
    x = jnp.asarray(x[:1000] / 16.0, jnp.float32)
    y = jnp.asarray(np.eye(10)[y[:1000]], jnp.float32)
    model = gd.problems.models.mlp((64, 64, 10))  # tanh
    loss = lambda p, b: 0.5 * jnp.mean(jnp.sum((model(p, b[0]) - b[1]) ** 2, axis=1))
    return loss, model.init(jax.random.PRNGKey(0)), (x, y)


@pytest.mark.slow
def test_gradient_descent_on_a_network_sits_at_the_edge_of_stability():
    loss, p0, data = _digits_mlp()
    result = gd.minimize(loss, p0, gd.sgd(0.1), steps=2000, data=data, sharpness_every=100)
    late = np.asarray(result.history.sharpness)[200::100]
    assert len(late) == 18 and np.all(np.isfinite(late))
    np.testing.assert_allclose(late, 2 / 0.1, rtol=0.10)  # hovers at 2/lr = 20
    assert float(result.loss) < float(result.history.loss[0]) / 4  # while the loss falls


@pytest.mark.slow
def test_at_a_smaller_rate_the_sharpness_rises_below_its_limit():
    loss, p0, data = _digits_mlp()
    result = gd.minimize(loss, p0, gd.sgd(0.05), steps=2000, data=data, sharpness_every=200)
    curve = _records(result.history.sharpness)
    assert len(curve) == 10
    assert np.all(np.diff(curve) > -0.05)  # progressive sharpening: rising
    assert curve[-1] > curve[0] + 3.0
    assert np.all(curve < 2 / 0.05)  # below its limit of 40


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({"sharpness_every": 4}, "sharpness_every"),
        ({"sharpness_iters": 1}, "sharpness_iters"),
        ({"sharpness_every": None}, "sharpness_every"),
    ],
    ids=["every", "iters", "off"],
)
def test_a_checkpoint_with_other_sharpness_settings_is_refused(tmp_path, change, differs):
    """Resumed with other sharpness settings, a run would have returned the old run's
    records (every 10 steps, 20 iterations) as if they were the ones asked for."""
    kw = dict(steps=40, checkpoint=tmp_path / "run", sharpness_every=10)
    gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), **kw)
    with pytest.raises(ValueError, match=f"belongs to another run .*differs in: .*{differs}"):
        gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), **{**kw, **change})


def test_a_run_without_sharpness_keeps_no_sharpness_setting_in_its_fingerprint(tmp_path):
    """Off, the settings are absent (checkpoints from before they were fingerprinted
    resume), and a sharpness_iters that does nothing does not block a resume."""
    kw = dict(steps=40, checkpoint=tmp_path / "run")
    first = gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), **kw)
    assert not any(
        "sharpness" in k for k in gd.checkpoint.load_metadata(kw["checkpoint"])["fingerprint"]
    )
    again = gd.minimize(QUAD, jnp.ones(3), gd.sgd(0.05), sharpness_iters=3, **kw)
    np.testing.assert_array_equal(np.asarray(first.params), np.asarray(again.params))


def test_records_go_on_after_a_flat_or_concave_stretch():
    """Where H v = 0 (every eigenvalue equal to the shift, or a flat direction), the
    iteration keeps its unit vector: a zero one would have read 0 at every record after."""
    cosine = lambda x: jnp.cos(x[0])  # one parameter, concave near 0: curvature -cos(x)
    np.testing.assert_allclose(
        float(gd.max_curvature(cosine, jnp.array([0.1]))), -np.cos(0.1), rtol=1e-5
    )
    for n in (1, 2, 3):
        bowl_down = lambda x: -jnp.sum(x**2)
        np.testing.assert_allclose(float(gd.max_curvature(bowl_down, jnp.ones(n))), -2.0, rtol=1e-5)
    run = gd.minimize(cosine, jnp.array([0.1]), gd.sgd(0.5), steps=60, sharpness_every=10)
    records = _records(run.history.sharpness)
    assert records[0] == pytest.approx(-np.cos(0.1), rel=1e-5)
    # The run climbs out of the maximum to the minimum at pi, curvature 1.
    assert records[-1] == pytest.approx(-np.cos(float(run.params[0])), rel=1e-3)
    assert records[-1] > 0.9

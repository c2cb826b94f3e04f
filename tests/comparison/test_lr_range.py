"""The learning-rate range test: its rates, its losses, its rule and its figure."""

import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd

BOOTH = gd.problems.get("booth")
BOOTH_X0 = BOOTH.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def booth_range():
    return gd.lr_range_test(BOOTH.loss, BOOTH_X0, gd.sgd, min_lr=1e-4, max_lr=10.0, steps=100)


def test_on_booth_it_suggests_a_stable_rate_and_blows_up_past_the_stability_limit(booth_range):
    limit = gd.suggest_learning_rate(BOOTH.loss, BOOTH_X0).max_stable
    assert limit == pytest.approx(2 / 18, rel=1e-4)  # Booth's curvatures are 2 and 18
    assert booth_range.suggested < limit
    assert booth_range.suggested == booth_range.best / 10
    # Below 2/L every step shrinks the loss of a quadratic, so it cannot blow up there.
    assert booth_range.blow_up is not None and booth_range.blow_up > limit


def test_on_booth_it_agrees_with_the_calculus_in_order_of_magnitude(booth_range):
    recommended = gd.suggest_learning_rate(BOOTH.loss, BOOTH_X0).recommended  # 1/L
    assert 0.1 <= booth_range.suggested / recommended <= 10


def test_the_step_size_guide_quotes_the_booth_answers_as_computed(booth_range):
    guide = pathlib.Path(__file__).parents[2] / "docs" / "guides" / "step-size.md"
    table = guide.read_text().split("| how far to step |", 1)[1].split("\n\n", 1)[0]
    suggested = re.search(
        r"\| suggested \| ([\d.]+) \(a tenth of ([\d.]+).*?\| ([\d.]+) \(`1/L`", table
    )
    broken = re.search(r"blew up at ([\d.]+) \| stable below ([\d.]+)", table)
    s = gd.suggest_learning_rate(BOOTH.loss, BOOTH_X0)
    quoted = [float(v) for v in (*suggested.groups(), *broken.groups())]
    computed = [
        booth_range.suggested,
        booth_range.best,
        s.recommended,
        booth_range.blow_up,
        s.max_stable,
    ]
    for q, c in zip(quoted, computed, strict=True):
        assert q == float(f"{c:.3g}")  # quoted to 3 significant digits


def test_a_run_that_blows_up_keeps_its_losses_up_to_the_blow_up(booth_range):
    losses = booth_range.losses
    assert losses.shape == (100,)
    first_bad = int(np.argmax(~np.isfinite(losses)))
    assert first_bad > 0 and not np.isfinite(losses[first_bad])  # the run diverged (max_lr 10)
    assert np.all(np.isfinite(losses[:first_bad]))
    assert np.all(np.isnan(losses[first_bad + 1 :]))  # minimize stopped there
    # The blow-up by the 4x rule comes before the loss overflows.
    assert booth_range.blow_up <= booth_range.learning_rates[first_bad]


def test_rates_grow_geometrically_and_losses_follow_each_step_exactly():
    # f(x) = x^2 / 2: a step at rate lr multiplies x by (1 - lr), so after step k
    # the loss is f(x0) * prod_{j <= k} (1 - lr_j)^2.
    loss = lambda x: 0.5 * jnp.sum(x**2)
    x0 = jnp.array([3.0])
    with pytest.warns(UserWarning, match="did not blow up.*raise max_lr"):
        test = gd.lr_range_test(loss, x0, gd.sgd, min_lr=1e-3, max_lr=0.5, steps=20)
    lrs = test.learning_rates
    np.testing.assert_allclose(lrs[[0, -1]], [1e-3, 0.5], rtol=1e-12)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (0.5 / 1e-3) ** (1 / 19), rtol=1e-12)
    expected = 4.5 * np.cumprod((1 - lrs) ** 2)
    # float32: 20 steps of a product, each rounding x (and the rate) by ~6e-8.
    np.testing.assert_allclose(test.losses, expected, rtol=1e-5)
    assert test.initial_loss == 4.5
    assert test.blow_up is None and test.best == lrs[-1]  # still falling at the end


def test_a_loss_with_aux_gives_the_same_range():
    loss = lambda x: 0.5 * jnp.sum(x**2)
    with pytest.warns(UserWarning):
        plain = gd.lr_range_test(loss, jnp.array([3.0]), gd.sgd, min_lr=1e-3, max_lr=0.5, steps=8)
    with pytest.warns(UserWarning):
        with_aux = gd.lr_range_test(
            lambda x: (loss(x), {"x": x}),
            jnp.array([3.0]),
            gd.sgd,
            min_lr=1e-3,
            max_lr=0.5,
            steps=8,
            has_aux=True,
        )
    np.testing.assert_array_equal(with_aux.losses, plain.losses)


def test_smoothing_is_a_debiased_moving_average():
    loss = lambda x: 0.5 * jnp.sum(x**2)
    with pytest.warns(UserWarning):
        test = gd.lr_range_test(
            loss, jnp.array([3.0]), gd.sgd, min_lr=1e-3, max_lr=0.5, steps=10, smoothing=0.6
        )
    average, expected = 0.0, []
    for k, value in enumerate(test.losses):
        average = 0.6 * average + 0.4 * value
        expected.append(average / (1 - 0.6 ** (k + 1)))
    np.testing.assert_allclose(test.smoothed, expected, rtol=1e-12)
    assert test.smoothed[0] == test.losses[0]  # debiased: no pull towards 0


def test_a_range_that_starts_too_high_says_to_lower_min_lr():
    with pytest.warns(UserWarning, match="lower min_lr"):
        test = gd.lr_range_test(BOOTH.loss, BOOTH_X0, gd.sgd, min_lr=1.0, max_lr=10.0, steps=10)
    assert test.best == 1.0 and test.blow_up == 1.0


def test_optax_factories_and_minibatches_work():
    problem = gd.problems.get("student_marks")
    p0 = problem.init(jax.random.PRNGKey(0))
    kwargs = dict(data=problem.data, min_lr=1e-4, max_lr=10.0, steps=60)
    ours = gd.lr_range_test(problem.loss, p0, gd.sgd, **kwargs)
    theirs = gd.lr_range_test(problem.loss, p0, optax.sgd, **kwargs)
    finite = np.isfinite(ours.losses)
    # The same update rule; float32 round-off grows as the run diverges, so compare
    # the part before the blow-up.
    before = finite & (ours.learning_rates < ours.blow_up)
    np.testing.assert_allclose(theirs.losses[before], ours.losses[before], rtol=1e-4)
    stable = gd.suggest_learning_rate(problem.loss, p0, problem.data).max_stable
    # The loss converges to a plateau first, where its lowest point is set by
    # round-off: the two suggestions need not be equal, both must be stable.
    assert ours.suggested < stable and theirs.suggested < stable
    minibatch = gd.lr_range_test(
        problem.loss, p0, gd.sgd, batch_size=20, key=jax.random.PRNGKey(1), smoothing=0.9, **kwargs
    )
    assert minibatch.blow_up is not None and minibatch.suggested < stable


def test_the_figure_is_drawn_apart_from_the_computation(booth_range, tmp_path):
    path = gd.report.draw_lr_range(booth_range, tmp_path / "booth.png", marks={"2/L": 2 / 18})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = "import sys, jaxgd.comparison; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_loss_not_finite_at_the_start_is_answered_clearly():
    """issue 23: it gave suggested=1e-5 and advised a lower min_lr, which cannot help."""
    nan_at_start = lambda p: jnp.sum(jnp.log(p) ** 2)  # log(0) at the zeros start
    with pytest.raises(ValueError, match=r"lr_range_test: the loss is -?(nan|inf) at params.*"
                                         r"lower min_lr cannot help"):  # fmt: skip
        gd.lr_range_test(nan_at_start, jnp.zeros(2), gd.sgd, steps=10)


@pytest.mark.parametrize("factory", [lambda lr: optax.adam(1e-3), lambda lr: gd.sgd(0.01)])
def test_a_factory_that_ignores_the_rate_is_refused(factory):
    """issue 23: a factory ignoring its rate got a misleading suggestion."""
    with pytest.raises(ValueError, match=r"factory ignores the learning rate.*lambda lr"):
        gd.lr_range_test(BOOTH.loss, BOOTH_X0, factory, steps=10)

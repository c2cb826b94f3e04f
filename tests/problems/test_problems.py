"""Tests for jaxgd.problems: the catalogue is finite at every start, the textbook
optima are where the books put them, and the reference optima are optima."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd
from jaxgd import problems

ALL = problems.names()
TEXTBOOK = ["quadratic", "rosenbrock", "beale", "booth", "himmelblau"]
CONVEX_DATA = ["student_marks", "diabetes_linear", "breast_cancer_logistic", "digits_softmax"]


def _args(problem):
    return () if problem.data is None else (problem.data,)


def test_catalogue_names_match_design():
    assert ALL == [
        "quadratic",
        "rosenbrock",
        "beale",
        "booth",
        "himmelblau",
        "student_marks",
        "diabetes_linear",
        "breast_cancer_logistic",
        "digits_softmax",
        "digits_mlp",
        "quadratic_deep",
    ]


@pytest.mark.parametrize("name", ALL)
def test_loss_and_gradient_are_finite_at_init(name):
    problem = problems.get(name)
    for seed in range(3):
        params = problem.init(jax.random.PRNGKey(seed))
        value, grads = jax.value_and_grad(problem.loss)(params, *_args(problem))
        assert np.isfinite(float(value))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        # A start is above the optimum (float32 round-off aside).
        assert float(value) >= problem.optimum_value * (1 - 1e-6)
    assert problem.target >= problem.optimum_value
    assert problem.description and problem.name == name


@pytest.mark.parametrize("name", [n for n in ALL if n != "quadratic_deep"])
def test_init_is_seeded(name):  # quadratic_deep starts at theta = 1, as DeepOBS does
    problem = problems.get(name)
    a = jax.tree.leaves(problem.init(jax.random.PRNGKey(0)))
    b = jax.tree.leaves(problem.init(jax.random.PRNGKey(0)))
    c = jax.tree.leaves(problem.init(jax.random.PRNGKey(1)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("name", TEXTBOOK)
def test_textbook_optima_have_their_known_values(name):
    problem = problems.get(name)
    minima = np.asarray(problem.optimum_params).reshape(-1, 2)
    for point in minima:
        x = jnp.asarray(point, jnp.float32)
        value = float(problem.loss(x))
        grad = np.asarray(jax.grad(problem.loss)(x))
        # Integer optima are exact; Himmelblau's irrational ones are given to 6
        # decimals (error 5e-7, curvature < 100): loss < 1e-9, gradient < 1e-3.
        assert value == pytest.approx(problem.optimum_value, abs=1e-9)
        assert np.linalg.norm(grad) < 1e-3
    assert problem.optimum_value == 0.0


def test_textbook_known_values_elsewhere():
    # Values from the definitions, by hand: Rosenbrock at (0, 0) is 1; Booth at
    # (0, 0) is 49 + 25; Himmelblau at (0, 0) is 121 + 49; Beale at (0, 0) is
    # 1.5^2 + 2.25^2 + 2.625^2.
    zero = jnp.zeros(2)
    assert float(problems.get("rosenbrock").loss(zero)) == 1.0
    assert float(problems.get("booth").loss(zero)) == 74.0
    assert float(problems.get("himmelblau").loss(zero)) == 170.0
    assert float(problems.get("beale").loss(zero)) == pytest.approx(14.203125, rel=1e-6)


def test_himmelblau_has_four_minima():
    assert np.asarray(problems.get("himmelblau").optimum_params).shape == (4, 2)


def test_booth_curvatures_give_the_step_size_theory():
    hessian = np.asarray(jax.hessian(problems.get("booth").loss)(jnp.zeros(2)))
    mu, big_l = np.linalg.eigvalsh(hessian)
    assert (mu, big_l) == pytest.approx((2.0, 18.0), rel=1e-6)
    assert 2 / (mu + big_l) == pytest.approx(0.1)


@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0])
def test_quadratic_condition_number(kappa):
    problem = problems.get("quadratic", condition_number=kappa)
    eig = np.linalg.eigvalsh(np.asarray(jax.hessian(problem.loss)(jnp.zeros(2))))
    assert eig[-1] / eig[0] == pytest.approx(kappa, rel=1e-4)


@pytest.mark.parametrize("name", CONVEX_DATA)
def test_reference_optimum_is_an_optimum(name):
    problem = problems.get(name)
    loss = problem.loss
    value, grads = jax.value_and_grad(loss)(problem.optimum_params, problem.data)
    # The float64 optimum evaluated in float32: equal to float32 round-off (rel 1e-5).
    assert float(value) == pytest.approx(problem.optimum_value, rel=1e-5)
    grad_norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))))
    # The gradient there is zero up to float32 round-off in the loss's scale.
    assert grad_norm < 1e-4 * max(1.0, problem.optimum_value)


def test_diabetes_optimum_matches_scikit_learn():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x, x_test, y, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    fit = LinearRegression().fit(x, y)
    mse = float(np.mean((fit.predict(x) - y) ** 2))
    problem = problems.get("diabetes_linear")
    assert problem.optimum_value == pytest.approx(mse, rel=1e-9)
    # The held-out target: scikit-learn's held-out error of the same fit, plus 1 %.
    test_mse = float(np.mean((fit.predict(x_test) - y_test) ** 2))
    assert problem.eval_target == pytest.approx(1.01 * test_mse, rel=1e-9)


REAL = {"diabetes_linear": 442, "breast_cancer_logistic": 569, "digits_softmax": 1797}


@pytest.mark.parametrize("name", [*REAL, "digits_mlp"])
def test_real_data_holds_out_a_fifth(name):
    problem = problems.get(name)
    n_train, n_test = len(problem.data[1]), len(problem.test_data[1])
    assert n_train + n_test == REAL.get(name, 1797)
    assert n_test == int(np.ceil(0.2 * (n_train + n_test)))
    y, y_test = np.asarray(problem.data[1]), np.asarray(problem.test_data[1])
    if name != "diabetes_linear":  # stratified: each class's share equal to one example
        for label in np.unique(y):
            share, test_share = np.mean(y == label), np.mean(y_test == label)
            assert abs(share - test_share) <= 1.0 / n_test + 1.0 / n_train
    # Standardised with the training part's statistics only: the test part's
    # column means are those of held-out examples, not zero.
    x_test = np.asarray(problem.test_data[0], np.float64)
    assert np.abs(x_test.mean(axis=0)).max() > 1e-3


@pytest.mark.parametrize("name", list(REAL))
def test_eval_target_is_the_held_out_loss_at_the_optimum_plus_one_percent(name):
    problem = problems.get(name)
    held_out = float(problem.loss(problem.optimum_params, problem.test_data))
    # The float64 value evaluated in float32 (rel 1e-5).
    assert problem.eval_target == pytest.approx(1.01 * held_out, rel=1e-5)


def test_textbook_functions_have_no_held_out_data():
    for name in ["quadratic", "rosenbrock", "booth", "student_marks"]:
        problem = problems.get(name)
        assert problem.test_data is None and problem.eval_target is None


def test_adam_does_not_beat_the_logistic_reference_optimum():
    problem = problems.get("breast_cancer_logistic")
    result = gd.minimize(
        problem.loss,
        problem.init(jax.random.PRNGKey(0)),
        gd.adam(0.05),
        steps=2000,
        data=problem.data,
    )
    # A good optimizer gets close to the optimum but not below it (float32 round-off: 1e-5).
    assert float(result.loss) >= problem.optimum_value * (1 - 1e-5)
    assert float(result.loss) <= problem.optimum_value * 1.01


def test_real_data_is_standardised():
    for name in ["diabetes_linear", "breast_cancer_logistic", "digits_softmax"]:
        x = np.asarray(problems.get(name).data[0], np.float64)
        std = x.std(axis=0)
        assert np.allclose(x.mean(axis=0), 0.0, atol=1e-5)
        assert np.allclose(std[std > 0], 1.0, atol=1e-5)


def test_unknown_problem_lists_the_catalogue():
    with pytest.raises(ValueError, match="rosenbrock"):
        problems.get("rosenbrok")


_CACHED_RUN = """
import hashlib, sys
import numpy as np
import jaxgd as gd
gd.problems.use_dataset_cache(sys.argv[1])
for name in sys.argv[2:]:
    p = gd.problems.get(name)
    arrays = [np.asarray(a) for a in (*p.data, *p.test_data)]
    print(name, hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest(),
          repr(p.optimum_value), repr(p.eval_target))  # fmt: skip
    print("sklearn imported:", "sklearn" in sys.modules)
    print("L-BFGS run:", "scipy.optimize" in sys.modules)
"""


def test_the_dataset_cache_gives_the_same_splits_without_scikit_learn(tmp_path):
    # jaxgd compare keeps the splits and the optima: a second process reads them, imports
    # no scikit-learn and runs no L-BFGS; a damaged file is made again, with the same numbers.
    import subprocess
    import sys

    def run(*names):
        out = subprocess.run([sys.executable, "-c", _CACHED_RUN, str(tmp_path), *names],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return out.split("\n")

    first = run("digits_softmax", "diabetes_linear")
    assert first[1] == "sklearn imported: True" and first[2] == "L-BFGS run: True"
    splits = sorted(p.name.split("-")[0] for p in tmp_path.glob("*-scikit-learn*.npz"))
    assert splits == ["diabetes", "digits"] and list(tmp_path.glob("optimum-*-scipy*.npz"))
    (diabetes,) = tmp_path.glob("diabetes-*.npz")
    diabetes.write_bytes(b"damaged")
    second = run("digits_softmax", "diabetes_linear")
    assert second[0] == first[0] and second[1] == "sklearn imported: False"
    assert second[2] == "L-BFGS run: False"  # digits' optimum read back
    assert second[3] == first[3] and second[4] == "sklearn imported: True"  # made again
    with np.load(diabetes) as rewritten:
        assert rewritten["x"].shape == (353, 10)


def test_a_label_outside_the_classes_makes_the_cross_entropy_nan():
    # On one-hot labels a label past the last class would be a row of zeros (a loss of 0,
    # silently): it is NaN, so a run on such labels stops as diverged.
    loss = problems.losses.softmax_cross_entropy
    logits = jnp.zeros((2, 4))
    assert float(loss(logits, jnp.array([1, 3]))) == pytest.approx(np.log(4.0))
    assert np.isnan(float(loss(logits, jnp.array([1, 4]))))
    assert np.isnan(float(loss(logits, jnp.array([-1, 0]))))

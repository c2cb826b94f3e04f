"""The calculus module: derivatives, named partials, gradient checks, curvature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd


def test_derivative_of_a_cubic():
    df = gd.derivative(lambda x: x**3 - 2 * x)
    for x in (-1.5, 0.0, 2.0):
        assert float(df(x)) == pytest.approx(3 * x**2 - 2, rel=1e-6)


def test_gradient_is_cached_and_compiled():
    f = lambda w: jnp.sum(jnp.sin(w))
    assert gd.gradient(f) is gd.gradient(f)
    assert gd.gradient(lambda a, b: a * b, argnums=[0, 1])(2.0, 3.0) == (3.0, 2.0)
    w = jnp.array([0.0, 1.0])
    np.testing.assert_allclose(gd.gradient(f)(w), jnp.cos(w), rtol=1e-6)
    value, grad = gd.value_and_gradient(f)(w)
    assert float(value) == pytest.approx(float(jnp.sum(jnp.sin(w))), rel=1e-6)
    np.testing.assert_allclose(grad, jnp.cos(w), rtol=1e-6)


def test_named_partials_of_the_student_marks_loss_match_the_formula():
    """d/dw_j mean((X w + b - y)^2) = mean(2 (X w + b - y) x_j), d/db = mean(2 (...))."""
    problem = gd.problems.get("student_marks")
    x, y = problem.data
    params = {"hours_studied": 3.0, "attendance": -1.0, "bias": 50.0}
    residual = 3.0 * x[:, 0] - 1.0 * x[:, 1] + 50.0 - y
    expected = {
        "hours_studied": jnp.mean(2 * residual * x[:, 0]),
        "attendance": jnp.mean(2 * residual * x[:, 1]),
        "bias": jnp.mean(2 * residual),
    }
    partials = gd.partials(problem.loss, params, problem.data)
    assert set(partials) == {"hours_studied", "attendance", "bias"}
    for name, value in expected.items():
        # float32 means of 200 terms: a few ulps of the largest term.
        assert float(partials[name]) == pytest.approx(float(value), rel=1e-5, abs=1e-4)
    one = gd.partial(problem.loss, "attendance")
    assert float(one(params, problem.data)) == pytest.approx(float(expected["attendance"]), 1e-5)


def test_partial_with_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="hours_studied"):
        gd.partial(lambda p: p["hours_studied"] ** 2, "hours")({"hours_studied": 1.0})


def test_directional_derivative_is_gradient_dot_direction():
    f = lambda x: jnp.sum(x**2 * jnp.array([1.0, 3.0]))
    x, v = jnp.array([1.0, -2.0]), jnp.array([0.6, 0.8])
    expected = jnp.dot(jax.grad(f)(x), v)
    assert float(gd.directional_derivative(f, x, v)) == pytest.approx(float(expected), rel=1e-6)


def test_check_gradient_passes_a_right_gradient_on_a_pytree():
    f = lambda p, data: jnp.mean(jnp.tanh(data @ p["w"] + p["b"]) ** 2)
    params = {"w": jnp.array([0.3, -0.7, 1.1]), "b": jnp.array(0.2)}
    data = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
    check = gd.check_gradient(f, params, data, raise_on_fail=True)
    assert check.ok and check.max_relative_error < 1e-2
    assert jax.tree.structure(check.autodiff) == jax.tree.structure(params)


def test_check_gradient_compiles_once_per_function(count_compiles):
    f = lambda x: jnp.sum(jnp.cos(x) * x)
    gd.check_gradient(f, jnp.array([0.1, 0.2]))
    with count_compiles() as compiles:
        gd.check_gradient(f, jnp.array([0.3, -0.4]))
    assert compiles.count == 0


def test_check_gradient_rejects_a_wrong_custom_jvp():
    @jax.custom_jvp
    def softplus(x):
        return jnp.log1p(jnp.exp(x))

    @softplus.defjvp
    def wrong_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), jax.nn.sigmoid(x) * 1.5 * t  # should be sigmoid(x) * t

    f = lambda x: jnp.sum(softplus(x))
    x = jnp.array([-1.0, 0.5, 2.0])
    check = gd.check_gradient(f, x)
    assert not check.ok
    assert check.max_relative_error == pytest.approx(1 / 3, rel=0.05)  # |1.5 s - s| / 1.5 s
    with pytest.raises(gd.GradientCheckError, match="relative error"):
        gd.check_gradient(f, x, raise_on_fail=True)


def test_check_gradient_refuses_integer_input():
    with pytest.raises(TypeError, match="floating-point"):
        gd.check_gradient(lambda x: jnp.sum(x), jnp.array([1, 2]))


def test_hvp_equals_hessian_times_vector():
    f = lambda x: jnp.sum(jnp.sin(x) * x**2)
    x, v = jnp.array([0.3, -1.2, 2.0]), jnp.array([1.0, 0.5, -0.25])
    expected = jax.hessian(f)(x) @ v
    np.testing.assert_allclose(gd.hvp(f, x, v), expected, rtol=1e-5, atol=1e-6)


def test_max_curvature_finds_the_largest_eigenvalue():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    eigenvalues = np.linspace(0.5, 40.0, 12)
    a = jnp.asarray(q @ np.diag(eigenvalues) @ q.T, jnp.float32)
    f = lambda x: 0.5 * x @ a @ x
    # The gap 40 / 36.5 makes power iteration converge like 0.91^k: 300 steps
    # leave ~1e-12 relative error, so float32 round-off (1e-6) is the limit.
    L = gd.max_curvature(f, jnp.zeros(12), iters=300)
    assert float(L) == pytest.approx(40.0, rel=1e-4)


def test_suggest_learning_rate_is_two_over_l_and_one_over_l():
    problem = gd.problems.get("quadratic", condition_number=25.0)
    x0 = problem.init(jax.random.PRNGKey(0))
    s = gd.suggest_learning_rate(problem.loss, x0)
    assert s.curvature == pytest.approx(25.0, rel=1e-4)
    assert s.max_stable == pytest.approx(2 / 25.0, rel=1e-4)
    assert s.recommended == pytest.approx(1 / 25.0, rel=1e-4)


def test_suggest_learning_rate_refuses_a_concave_point():
    with pytest.raises(ValueError, match="not convex"):
        gd.suggest_learning_rate(lambda x: -jnp.sum(x**2), jnp.ones(2))

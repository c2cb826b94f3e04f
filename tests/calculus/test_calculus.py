"""The calculus module: derivatives, named partials, gradient checks, curvature."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd


def test_derivative_of_a_cubic():
    df = gd.derivative(lambda x: x**3 - 2 * x)
    for x in (-1.5, 0.0, 2.0):
        assert float(df(x)) == pytest.approx(3 * x**2 - 2, rel=1e-6)


def test_derivative_takes_integer_inputs_as_floats():
    df = gd.derivative(lambda x: x**3)
    assert float(df(2)) == 12.0  # 3 * 2**2, exact in float32
    assert float(df(np.int64(-1))) == 3.0
    assert float(df(jnp.array(3, jnp.int32))) == 27.0
    assert df(2).dtype == jnp.float32


def test_gradient_is_compiled():
    f = lambda w: jnp.sum(jnp.sin(w))
    assert gd.gradient(lambda a, b: a * b, argnums=[0, 1])(2.0, 3.0) == (3.0, 2.0)
    w = jnp.array([0.0, 1.0])
    np.testing.assert_allclose(gd.gradient(f)(w), jnp.cos(w), rtol=1e-6)
    value, grad = gd.value_and_gradient(f)(w)
    assert float(value) == pytest.approx(float(jnp.sum(jnp.sin(w))), rel=1e-6)
    np.testing.assert_allclose(grad, jnp.cos(w), rtol=1e-6)


def _weighted(w, lam, X):
    return lam * jnp.sum((X @ w) ** 2)


def test_a_partial_with_new_values_reuses_every_compiled_transform(count_compiles):
    """The function is split as a run splits its loss (jaxgd._partition): a
    ``Partial``'s arrays and floats are traced, so new values compile nothing."""
    from jax.tree_util import Partial

    w, v, X1, X2 = jnp.ones(3), jnp.array([1.0, 0.0, 0.0]), jnp.eye(3), 2 * jnp.eye(3)
    first, second = Partial(_weighted, lam=0.5, X=X1), Partial(_weighted, lam=2.0, X=X2)
    calls = [
        lambda f: gd.gradient(f)(w),
        lambda f: gd.value_and_gradient(f)(w),
        lambda f: gd.partials(f, w),
        lambda f: gd.directional_derivative(f, w, v),
        lambda f: gd.hvp(f, w, v),
        lambda f: gd.max_curvature(f, w, iters=5),
        lambda f: gd.check_gradient(f, w).max_relative_error,
    ]
    for call in calls:
        jax.block_until_ready(call(first))
    with count_compiles() as compiles:
        outs = [jax.block_until_ready(call(second)) for call in calls]
    assert compiles.count == 0
    np.testing.assert_allclose(outs[0], 2 * 2.0 * 4 * w)  # lam * 2 X^T X w
    assert float(outs[5]) == pytest.approx(16.0, rel=1e-4)  # 2 lam * 4
    assert gd.derivative(Partial(lambda x, c: c * x**2, c=3.0))(2.0) == 12.0


def marks(hours, attendance):
    """The seed's example: marks as a function of hours studied and attendance."""
    return 2 * hours + 0.5 * attendance + 0.01 * hours * attendance


# By hand: d marks / d hours = 2 + 0.01 * attendance, d marks / d attendance = 0.5 + 0.01 * hours.
MARKS_PARTIALS = {"hours": 2 + 0.01 * 90.0, "attendance": 0.5 + 0.01 * 6.0}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {"hours": 6.0, "attendance": 90.0}),
        ((), {"attendance": 90.0, "hours": 6.0}),
        ((6.0, 90.0), {}),
        ((6, 90), {}),  # integers are taken as floats
        ((np.float32(6.0), jnp.asarray(90.0)), {}),  # NumPy scalars and 0-d arrays
        ((6.0,), {"attendance": 90.0}),
    ],
    ids=["keywords", "keywords-reordered", "positional", "integers", "numpy-and-0d", "mixed"],
)
def test_partials_of_named_quantities_are_named(args, kwargs):
    d = gd.partials(marks, *args, **kwargs)
    expected_order = list(kwargs) if not args else ["hours", "attendance"]
    assert list(d) == expected_order  # the call's order
    for name, value in MARKS_PARTIALS.items():
        # float32: 2.9 and 0.56 are rounded to 24 bits, then a product and a sum.
        assert float(d[name]) == pytest.approx(value, rel=1e-6)


def test_partials_of_a_function_of_one_number_is_named_too():
    assert {k: float(v) for k, v in gd.partials(lambda x: x**2, 3.0).items()} == {"x": 6.0}


def test_partials_of_keyword_pytrees_are_named():
    f = lambda w, b: jnp.sum(w**2) + 3 * b
    d = gd.partials(f, w=jnp.array([1.0, -2.0]), b=jnp.array(0.5))
    assert list(d) == ["w", "b"]
    np.testing.assert_array_equal(d["w"], [2.0, -4.0])
    assert float(d["b"]) == 3.0


def test_partial_by_position_and_by_name():
    for name, expected in [(0, "hours"), (1, "attendance"), (-1, "attendance")]:
        d = gd.partial_derivative(marks, name)(6.0, 90.0)
        assert float(d) == pytest.approx(MARKS_PARTIALS[expected], rel=1e-6)
    for name, value in MARKS_PARTIALS.items():
        assert float(
            gd.partial_derivative(marks, name)(hours=6.0, attendance=90.0)
        ) == pytest.approx(value, rel=1e-6)
    f = lambda p, data: jnp.sum(p * data)
    assert float(gd.partial_derivative(f, 1)(jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]))) == 4.0
    assert float(gd.partial_derivative(lambda p: p[0] * p[1], 0)((2.0, 5.0))) == 5.0


def test_partial_with_an_unknown_name_or_position_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"no parameter named 'minutes'.*\['hours', 'attendance'\]"):
        gd.partial_derivative(marks, "minutes")(6.0, 90.0)
    with pytest.raises(KeyError, match=r"no parameter named 2.*positions 0\.\.1"):
        gd.partial_derivative(marks, 2)(6.0, 90.0)
    with pytest.raises(KeyError, match=r"positions 0\.\.2"):
        gd.partial_derivative(lambda p, d: jnp.sum(p * d), 3)(jnp.ones(3), jnp.ones(3))


def test_partials_refuses_what_it_cannot_name_or_place():
    with pytest.raises(TypeError, match=r"ambiguous.*by keyword.*by position"):
        gd.partials(lambda p, data: jnp.sum(p * data), jnp.ones(2), data=jnp.ones(2))
    with pytest.raises(TypeError, match=r"cannot be named.*named parameters"):
        gd.partials(lambda *xs: xs[0] * xs[1], 1.0, 2.0)
    with pytest.raises(TypeError, match=r"cannot take these arguments.*too many"):
        gd.partials(marks, 1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="no point"):
        gd.partials(marks)


def test_has_aux_follows_jax_grad():
    def loss(w, scale):
        value = scale * jnp.sum(w**2)
        return value, {"value_twice": 2 * value}

    w = jnp.array([1.0, -3.0])
    grad, aux = gd.gradient(loss, has_aux=True)(w, 2.0)
    expected_grad, expected_aux = jax.grad(loss, has_aux=True)(w, 2.0)
    np.testing.assert_array_equal(grad, expected_grad)
    assert float(aux["value_twice"]) == float(expected_aux["value_twice"]) == 40.0
    (value, aux), grad = gd.value_and_gradient(loss, has_aux=True)(w, 2.0)
    assert float(value) == 20.0 and float(aux["value_twice"]) == 40.0
    np.testing.assert_array_equal(grad, [4.0, -12.0])
    d, aux = gd.partials(loss, w, 2.0, has_aux=True)
    np.testing.assert_array_equal(d, [4.0, -12.0])
    named, aux = gd.partials(
        lambda hours, attendance: (marks(hours, attendance), hours), 6.0, 90.0, has_aux=True
    )
    assert float(named["hours"]) == pytest.approx(MARKS_PARTIALS["hours"], rel=1e-6)
    assert float(aux) == 6.0
    check = gd.check_gradient(loss, w, 2.0, has_aux=True)
    assert check.ok
    np.testing.assert_array_equal(check.gradient, [4.0, -12.0])


@pytest.mark.parametrize(
    "call",
    [
        lambda f: gd.gradient(f)(jnp.ones(2)),
        lambda f: gd.value_and_gradient(f)(jnp.ones(2)),
        lambda f: gd.partials(f, jnp.ones(2)),
        lambda f: gd.check_gradient(f, jnp.ones(2)),
    ],
    ids=["gradient", "value_and_gradient", "partials", "check_gradient"],
)
def test_a_tuple_without_has_aux_says_to_pass_has_aux(call):
    with pytest.raises(TypeError, match=r"returned a tuple of 2.*pass has_aux=True"):
        call(lambda w: (jnp.sum(w**2), w))
    with pytest.raises(TypeError, match=r"has_aux=True.*not a \(value, aux\) pair"):
        gd.gradient(lambda w: jnp.sum(w**2), has_aux=True)(jnp.ones(2))


def test_an_unhashable_callable_loss_works_everywhere():
    @dataclasses.dataclass  # eq=True and no hash: not a valid jit static argument
    class Scaled:
        scale: float

        def __call__(self, w):
            return self.scale * jnp.sum(w**2)

    f, w = Scaled(2.0), jnp.array([1.0, -1.0])
    np.testing.assert_array_equal(gd.gradient(f)(w), [4.0, -4.0])
    np.testing.assert_array_equal(gd.value_and_gradient(f)(w)[1], [4.0, -4.0])
    assert float(gd.partials(f, w=3.0)["w"]) == 12.0
    check = gd.check_gradient(f, w)
    assert check.ok
    np.testing.assert_array_equal(check.gradient, [4.0, -4.0])


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
    one = gd.partial_derivative(problem.loss, "attendance")
    assert float(one(params, problem.data)) == pytest.approx(float(expected["attendance"]), 1e-5)


def test_partial_with_an_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="hours_studied"):
        gd.partial_derivative(lambda p: p["hours_studied"] ** 2, "hours")({"hours_studied": 1.0})


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
    assert jax.tree.structure(check.gradient) == jax.tree.structure(params)
    # Two leaves: each leaf's gradient part and a random direction in it, then 2 over all.
    assert len(check.directions) == len(check.relative_errors) == 2 * 2 + 2


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
    with pytest.raises(gd.calculus.GradientCheckError, match="relative error"):
        gd.check_gradient(f, x, raise_on_fail=True)


def test_check_gradient_refuses_integer_input():
    with pytest.raises(TypeError, match="floating-point"):
        gd.check_gradient(lambda x: jnp.sum(x), jnp.array([1, 2]))


def _digits_mlp(activation, dtype):
    """A 64-32-10 network on 200 sklearn digits, its params and data in ``dtype``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    model = gd.problems.models.mlp((64, 32, 10), activation=activation)
    params = jax.tree.map(lambda a: a.astype(dtype), model.init(jax.random.PRNGKey(1)))
    data = (jnp.asarray(x[:200] / 16.0, dtype), jnp.asarray(y[:200]))
    return (
        gd.problems.losses.objective(model, gd.problems.losses.softmax_cross_entropy),
        params,
        data,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", [jnp.tanh, jax.nn.relu], ids=["tanh", "relu"])
def test_check_gradient_on_a_real_network_no_false_alarm_and_a_5_percent_error_caught(
    activation, dtype
):
    with jax.enable_x64(dtype == "float64"):
        loss, params, data = _digits_mlp(activation, dtype)
        check = gd.check_gradient(loss, params, data)
        assert check.ok, (check.max_relative_error, check.worst_direction)
        # The default tolerances: 1e-3 for a float32 gradient, 1e-6 for float64.
        assert check.rtol == (1e-3 if dtype == "float32" else 1e-6)
        autodiff = gd.gradient(loss)
        for layer in ("layer0", "layer1"):
            for leaf in ("w", "b"):

                def five_percent_off(p, batch, layer=layer, leaf=leaf):
                    g = autodiff(p, batch)
                    g[layer][leaf] = 1.05 * g[layer][leaf]
                    return g

                wrong = gd.check_gradient(loss, params, data, grad=five_percent_off)
                assert not wrong.ok
                # Along that leaf's gradient part the error is exactly 0.05 / 1.05
                # (up to the correct gradient's round-off, under 1e-6 here).
                along = wrong.directions.index(f"the gradient's part in x['{layer}']['{leaf}']")
                assert wrong.relative_errors[along] == pytest.approx(0.05 / 1.05, rel=1e-3)
                assert wrong.max_relative_error >= wrong.relative_errors[along]


def test_check_gradient_catches_a_missing_leaf_gradient():
    f = lambda p: jnp.sum(jnp.sin(p["w"])) + jnp.sum(p["b"] ** 2)
    params = {"w": jnp.array([0.1, 0.2, 0.3]), "b": jnp.array([1.0, -1.0])}
    forgot_b = lambda p: {"w": jnp.cos(p["w"]), "b": jnp.zeros(2)}
    check = gd.check_gradient(f, params, grad=forgot_b)
    assert not check.ok
    # Along the random direction in b the gradient says 0, differences say 2 b . v.
    along = check.directions.index("a random direction in x['b']")
    assert check.relative_errors[along] == pytest.approx(1.0)
    right = lambda p: {"w": jnp.cos(p["w"]), "b": 2 * p["b"]}
    assert gd.check_gradient(f, params, grad=right).ok


def test_check_gradient_rejects_a_badly_shaped_or_uncallable_grad():
    f = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="structured like x"):
        gd.check_gradient(f, jnp.ones(3), grad=lambda x: x[:2])
    with pytest.raises(TypeError, match="grad must be your gradient function"):
        gd.check_gradient(f, jnp.ones(3), grad=jnp.ones(3))


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


def _rotated(eigenvalues, seed=0):
    """A symmetric matrix with these eigenvalues, in a random orthonormal basis."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    return jnp.asarray((q * np.asarray(eigenvalues)) @ q.T, jnp.float32)


@pytest.mark.parametrize(
    "eigenvalues",
    [[-9.0, -4.0, 1.0, 2.0, 5.0], [-3.0, -2.0, -0.5], [7.0, -1.0, 0.0, 3.0]],
    ids=["saddle", "maximum", "convex"],
)
def test_max_curvature_is_the_largest_eigenvalue_not_the_largest_in_magnitude(eigenvalues):
    """Power iteration alone finds -9 at the saddle; the shifted pass finds 5."""
    A = _rotated(eigenvalues)
    quadratic = lambda x: 0.5 * x @ A @ x
    got = gd.max_curvature(quadratic, jnp.ones(len(eigenvalues)), iters=200)
    np.testing.assert_allclose(float(got), max(eigenvalues), rtol=1e-5, atol=1e-5)
    # Under vmap (both branches of the shifted pass run, one is kept) the same.
    signs = jnp.array([1.0, -1.0])
    both = jax.vmap(lambda s: gd.max_curvature(lambda x: s * quadratic(x), jnp.ones(len(A))))(signs)
    want = [max(eigenvalues), -min(eigenvalues)]
    np.testing.assert_allclose(np.asarray(both), want, rtol=1e-5, atol=1e-5)


def test_at_a_saddle_the_suggestion_and_the_sharpness_use_the_largest_eigenvalue():
    f = lambda p: 5 * p[0] ** 2 - 10 * p[1] ** 2 + p[1] ** 4  # Hessian diag(10, -20 + 12 y^2)
    p0 = jnp.array([1.0, 0.01])
    hint = gd.suggest_learning_rate(f, p0)  # was refused: "the largest curvature is -20"
    np.testing.assert_allclose(float(hint.curvature), 10.0, rtol=1e-5)
    np.testing.assert_allclose(float(hint.max_stable), 0.2, rtol=1e-5)
    run = gd.minimize(f, p0, gd.sgd(0.01), steps=3, sharpness_every=1)
    np.testing.assert_allclose(np.asarray(run.history.sharpness), 10.0, rtol=1e-5)

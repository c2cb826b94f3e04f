"""Weakly typed params and losses (``jnp.array(2.0)``) are ordinary (issue 23).

optimistix writes its scalar test problems' inits as ``jnp.array(...)``, whose
values are weakly typed; the loss computed from them is too. Its whole problem
set for minimisation and least squares, ported verbatim in
``optimistix_problems.py`` (a data module beside this file), runs through
``minimize`` with ``optax.lbfgs`` and ``gd.adam``.
"""

import operator

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
import optimistix_problems as optx_problems  # tests/run, beside this file
import pytest

import jaxgd as gd


def _sum_of_squares(residuals):
    """The least-squares objective as optimistix's ``test_least_squares`` checks it."""
    return jtu.tree_reduce(operator.add, jtu.tree_map(lambda r: jnp.sum(r**2), residuals))


# name: (loss(params), published minimum, init), each loss made once (no recompiles)
PROBLEMS = {
    fn.__name__.lstrip("_"): (lambda p, fn=fn, args=args: fn(p, args), float(minimum), init)
    for fn, minimum, init, args in optx_problems.minimisation_fn_minima_init_args
}
LEAST_SQUARES = ("diagonal_quadratic_bowl", "rosenbrock", "rosenbrock_pytree", "simple_nn")
for _name, (_fn, _minimum, _init, _args) in zip(
    LEAST_SQUARES, optx_problems.least_squares_fn_minima_init_args, strict=True
):
    assert _name.startswith(_fn.__name__)
    PROBLEMS[_name] = (
        lambda p, fn=_fn, args=_args: _sum_of_squares(fn(p, args)),
        float(_minimum),
        _init,
    )
LBFGS = optax.lbfgs()
ADAM = gd.adam(3e-2)


def test_the_port_is_the_whole_set_with_weakly_typed_scalar_inits():
    assert sorted(PROBLEMS) == sorted(
        ["bowl", "himmelblau", "matyas", "beale", "square_minus_one", *LEAST_SQUARES]
    )
    for name in WEAK:
        assert all(leaf.weak_type for leaf in jax.tree.leaves(PROBLEMS[name][2]))


WEAK = ("beale", "himmelblau", "matyas", "square_minus_one")  # weakly typed scalar inits
# The others compile for 2-6 s each: slow, so the quick suite runs the weak ones.
BY_SPEED = [n if n in WEAK else pytest.param(n, marks=pytest.mark.slow) for n in sorted(PROBLEMS)]
# lbfgs stops on the gradient norm. On rosenbrock_pytree float32 cannot resolve it
# below about 7e-3: the residuals 100 * (y[1:] - y[:-1]) give gradient terms of
# 2e4 * (y[i+1] - y[i]), and neighbours near 1.0 differ by whole ulps (1.2e-7).
# lbfgs sits there with the loss at 3e-9 (measured), so its tolerance is 1e-2.
GRAD_TOL = {"rosenbrock_pytree": 1e-2}


@pytest.mark.parametrize("name", BY_SPEED)
def test_optimistix_problems_with_lbfgs(name):
    loss, minimum, init = PROBLEMS[name]
    result = gd.minimize(loss, init, LBFGS, steps=500, tol=GRAD_TOL.get(name, 1e-6))
    assert gd.Status(int(result.status)) is gd.Status.CONVERGED
    found = float(loss(result.params))  # as optimistix checks: the loss at the argmin
    assert float(result.loss) == pytest.approx(found, rel=1e-5, abs=1e-12)
    # optimistix's own tolerance for these problems (atol = rtol = 1e-4 in
    # test_minimise and test_least_squares); every problem also gets lower.
    assert found == pytest.approx(minimum, rel=1e-4, abs=1e-4)
    assert found < float(loss(init))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_optimistix_problems_with_adam(name):
    loss, minimum, init = PROBLEMS[name]
    result = gd.minimize(loss, init, ADAM, steps=5000)
    assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
    start, found = float(loss(init)), float(loss(result.params))
    if name == "simple_nn":
        # optimistix starts this MLP next to its minimum on purpose (see get_weights in
        # the port): the loss starts at 2.1e-6, within the published tolerance of 0.0,
        # and no solver reaches 0.0 (lbfgs stops at 6.2e-7, a stationary point). So
        # "well below the start" here is: at least halved, within the tolerance.
        assert found < 0.5 * start
        assert found == pytest.approx(minimum, abs=1e-4)
    else:
        # at most a thousandth of the start's gap to the published minimum
        assert found - minimum <= 1e-3 * (start - minimum)


def test_weak_scalar_param():
    result = gd.minimize(lambda x: (x - 3.0) ** 2, jnp.array(0.0), gd.sgd(0.25), steps=60)
    assert float(result.params) == pytest.approx(3.0, abs=1e-6)


def test_weak_scalar_param_under_vmap_and_jit():
    run = lambda x: gd.minimize(lambda x: (x - 3.0) ** 2, x, gd.sgd(0.25), steps=60).params
    assert float(jax.jit(run)(jnp.array(0.0))) == pytest.approx(3.0, abs=1e-6)
    out = jax.vmap(run)(jnp.array([0.0, 1.0]))
    assert jnp.allclose(out, 3.0, atol=1e-6)


def test_python_float_still_refused():
    with pytest.raises(ValueError, match="Python float"):
        gd.minimize(lambda x: 3.0, jnp.array(0.0), gd.sgd(0.1), steps=5)


def test_refusal_is_not_remembered():
    """A refused loss leaves nothing in the memory of loss outputs."""
    from jaxgd.run import _values

    loss = lambda x: 3.0  # noqa: E731
    with pytest.raises(ValueError, match="Python float"):
        gd.minimize(loss, jnp.zeros(2), gd.sgd(0.25), steps=5)
    assert id(loss) not in _values._OUTPUTS


def test_weak_then_strong_call_same_loss():
    loss = lambda x: (x - 3.0) ** 2  # noqa: E731
    weak = gd.minimize(loss, jnp.array(0.0), gd.sgd(0.25), steps=60)
    strong = gd.minimize(loss, jnp.array(0.0, jnp.float32), gd.sgd(0.25), steps=60)
    assert float(weak.params) == float(strong.params)


def test_lr_range_test_with_weak_scalar():
    result = gd.lr_range_test(
        lambda x: (x - 3.0) ** 2, jnp.array(0.0), gd.sgd, min_lr=1e-4, max_lr=10.0, steps=50
    )
    assert 1e-4 <= float(result.suggested) <= 10.0

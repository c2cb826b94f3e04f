"""Every descent variant against its optax counterpart, from one list.

Tolerances, and why:

* In a user's own jitted loop (hyperparameters closed over as Python floats,
  as optax has them) every jaxgd rule gives optax's trajectory **bit for bit**
  over 2000 steps: the formulas are the same operations in the same order.
* Inside ``minimize`` the hyperparameters are traced float32 values (that is
  what lets a new learning rate skip recompiling), so XLA cannot constant-fold
  ``b1 ** t`` as it does for optax: the Adam family's bias correction can
  round one ulp apart. The first ten steps must agree to rtol 1e-6 (a few
  ulps of float32's 1.2e-7). Over 2000 steps one-ulp differences grow with the
  trajectory's own sensitivity, which depends on the problem, so the bound is
  measured, not guessed: the path must stay within 5x the distance by which
  optax's own path moves when its starting params are nudged by one ulp
  (floor 1e-6). A wrong formula (bias correction, eps placement, momentum
  term) moves the path by 1e-2 or more, orders of magnitude above that bound.
"""

import dataclasses
import pathlib
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import CASES, SCHEDULE, STEPS
from jax.flatten_util import ravel_pytree

import jaxgd as gd
from jaxgd.optimizers import Optimizer, decay_rate, static

get = gd.optimizers.get  # the registry: label -> factory

IDS = [c[0] for c in CASES]


def _regression_problem():
    """A small tanh MLP fitted to a noisy sine: nonconvex, realistic scales."""
    key = jax.random.PRNGKey(42)
    kx, kn, kp = jax.random.split(key, 3)
    x = jax.random.uniform(kx, (128, 3), minval=-2.0, maxval=2.0)
    y = jnp.sin(x @ jnp.array([1.0, -0.5, 0.25])) + 0.1 * jax.random.normal(kn, (128,))
    model = gd.problems.models.mlp((3, 16, 1))
    params = model.init(kp)
    loss = gd.problems.losses.objective(lambda p, x: model(p, x)[:, 0], gd.problems.losses.mse)
    return loss, params, (x, y)


LOSS, PARAMS0, DATA = _regression_problem()


def _optax_path(tx, steps, params0=PARAMS0):
    """The optax training loop (compiled as a scan), recording params after each step."""

    def step(carry, _):
        params, state = carry
        grads = jax.grad(LOSS)(params, DATA)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    run = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps)[1])
    return run(params0)


_OPTAX_PATHS = {}


def _reference_path(name, tx):
    """optax's STEPS-step path for case ``name`` (computed once per session)."""
    if name not in _OPTAX_PATHS:
        _OPTAX_PATHS[name] = _optax_path(tx, STEPS)
    return _OPTAX_PATHS[name]


def _assert_tree_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _path_distance(path, reference):
    """max over steps of |params_k - ref_k| / |ref_k| (Euclidean, all leaves)."""
    flat = lambda t: jax.vmap(lambda p: ravel_pytree(p)[0])(t)
    a, b = flat(path), flat(reference)
    return float(jnp.max(jnp.linalg.norm(a - b, axis=1) / jnp.linalg.norm(b, axis=1)))


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_user_loop_is_bit_for_bit_optax_for_thousands_of_steps(name, ours, theirs):
    expected = _reference_path(name, theirs)
    actual = _optax_path(ours, STEPS)
    for x, y in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_minimize_follows_optax(name, ours, theirs):
    expected = _reference_path(name, theirs)
    result = gd.minimize(LOSS, PARAMS0, ours, data=DATA, steps=STEPS + 1, record_params=True)
    # history.params[k] holds params_k: params_1..params_STEPS are optax's steps 1..STEPS.
    actual = jax.tree.map(lambda a: a[1:], result.history.params)
    first_ten = jax.tree.map(lambda a: a[:10], (actual, expected))
    _assert_tree_close(*first_ten, rtol=1e-6, atol=1e-7)
    nudged = jax.tree.map(lambda p: jnp.nextafter(p, jnp.inf), PARAMS0)
    sensitivity = _path_distance(_optax_path(theirs, STEPS, nudged), expected)
    assert _path_distance(actual, expected) <= max(5 * sensitivity, 1e-6)


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_state_and_updates_keep_structure_and_dtype(name, ours, theirs):
    params = {"a": jnp.ones((2, 3), jnp.bfloat16), "b": (jnp.zeros(4), jnp.ones(()))}
    state = ours.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    updates, new_state = ours.update(grads, state, params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
        assert u.dtype == p.dtype and u.shape == p.shape
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for s, t in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
        assert s.dtype == t.dtype


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_drops_into_optax_chain(name, ours, theirs):
    chained = optax.chain(optax.clip_by_global_norm(1.0), ours)
    reference = optax.chain(optax.clip_by_global_norm(1.0), theirs)
    _assert_tree_close(_optax_path(chained, 5), _optax_path(reference, 5), rtol=1e-6, atol=1e-7)


def test_hyperparameters_are_leaves_and_flags_are_static():
    opt = gd.momentum(0.1, beta=0.5, nesterov=True)
    leaves, treedef = jax.tree.flatten(opt)
    assert leaves == [0.1, 0.5, 0.5]  # lr, beta and 1 - beta (a decay rate's complement)
    rebuilt = jax.tree.unflatten(treedef, [0.2, 0.7, 0.3])
    assert rebuilt == gd.momentum(0.2, beta=0.7, nesterov=True)
    assert jax.tree.leaves(gd.sgd(SCHEDULE)) == []  # a schedule is static
    assert "learning_rate=0.1" in repr(opt)


def test_one_minus_decay_travels_as_a_leaf_computed_in_float64():
    # optax folds 1 - b1 in as a float64 constant; jaxgd carries the same number
    # as a leaf, so a traced b1 still gives optax's bits.
    opt = gd.adam(0.01, b1=0.9, b2=0.999)
    assert jax.tree.leaves(opt) == [0.01, 0.9, 0.999, 1e-8, 1.0 - 0.9, 1.0 - 0.999]
    assert opt.one_minus("b1") == 1.0 - 0.9 != float(1 - jnp.float32(0.9))
    assert not any(f.name.startswith("_") for f in dataclasses.fields(opt))  # no hidden fields
    # a copy with a new decay rate computes its own complement
    assert dataclasses.replace(opt, b1=0.8).one_minus("b1") == 1.0 - 0.8
    # rounding the leaves (as make_step does) keeps optax's complement, not 1 - f32(0.9)
    as_arrays = jax.tree.map(jnp.asarray, opt)
    assert float(as_arrays.one_minus("b1")) == float(jnp.float32(1.0 - 0.9))
    replaced = dataclasses.replace(as_arrays, b1=jnp.asarray(0.8))
    assert abs(float(replaced.one_minus("b1")) - 0.2) < 1e-7
    assert repr(opt) == "adam(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-08)"
    # traced by jit after it was built, b1 keeps its float64 complement: optax's bits
    carried = jax.jit(lambda o: o.one_minus("b1"))(opt)
    assert float(carried) == float(jnp.float32(1.0 - 0.9))


def test_a_decay_rate_traced_when_built_is_at_most_one_ulp_from_optax():
    """Built inside vmap from a traced b1, 1 - b1 is computed from a float32 b1:
    the one place a jaxgd optimizer may part from optax, by float32's rounding
    of b1 (at most one ulp of b1; a few ulps of 1 - b1)."""
    b1s = jnp.array([0.9, 0.95, 0.99])
    traced = jax.vmap(lambda b1: gd.adam(0.1, b1=b1).one_minus("b1"))(b1s)
    for b1, complement in zip([0.9, 0.95, 0.99], traced, strict=True):
        exact = np.float32(1.0 - b1)
        assert abs(float(complement) - float(exact)) <= float(np.spacing(np.float32(b1)))
    assert float(traced[0]) != float(np.float32(1.0 - 0.9))  # the ulp is real


def test_a_schedule_is_static_and_still_the_learning_rate():
    opt = gd.sgd(SCHEDULE)
    assert callable(opt.learning_rate)
    assert float(opt.learning_rate(10)) == float(SCHEDULE(10))
    assert opt == gd.sgd(SCHEDULE) and hash(opt) == hash(gd.sgd(SCHEDULE))
    params = jnp.ones(2)

    @jax.jit
    def first_update(opt):
        return opt.update(params, opt.init(params))[0]

    np.testing.assert_array_equal(first_update(opt), -SCHEDULE(0) * params)
    # a schedule that is itself a pytree keeps its own leaves traced
    partial_schedule = jax.tree_util.Partial(lambda peak, t: peak / (1.0 + t), 0.5)
    assert jax.tree.leaves(gd.sgd(partial_schedule)) == [0.5]


def test_a_new_learning_rate_compiles_nothing_and_a_new_flag_does(count_compiles):
    params = jnp.array([1.0, -2.0])

    @jax.jit
    def one_update(opt):
        return opt.update(2 * params, opt.init(params), params)[0]

    one_update(gd.momentum(0.1))
    with count_compiles() as compiles:
        np.testing.assert_allclose(one_update(gd.momentum(0.2, beta=0.5)), -0.4 * params)
    assert compiles.count == 0
    with count_compiles() as compiles:  # positive control: a static flag is compiled in
        one_update(gd.momentum(0.2, nesterov=True))
    assert compiles.count == 1


def test_optimizers_built_inside_vmap_sweep_the_learning_rate():
    lrs = jnp.array([0.01, 0.1, 0.3])
    params = jnp.array([1.0, -2.0])
    sweep = jax.vmap(lambda lr: gd.adam(lr).update(2 * params, gd.adam(lr).init(params))[0])
    expected = [optax.adam(lr).update(2 * params, optax.adam(lr).init(params))[0] for lr in lrs]
    # the first Adam step is lr * sign(g), up to float32's rounding of b2 (optax's too);
    # a traced lr rounds the product at most one ulp apart
    np.testing.assert_allclose(sweep(lrs), np.stack(expected), rtol=2.4e-7)


def test_every_registry_label_is_compared_with_optax():
    # armijo needs the loss in update (value_fn=): its own test below.
    assert {name.split("_")[0] for name, *_ in CASES} == set(gd.optimizers.names()) - {"armijo"}


def test_the_registry_gives_factories_by_label():
    assert gd.optimizers.names() == [
        "vanilla",
        "momentum",
        "nesterov",
        "adam",
        "adamw",
        "rmsprop",
        "adagrad",
        "armijo",
    ]
    assert get("vanilla")(0.1) == gd.sgd(0.1)
    assert get("nesterov")(0.1) == gd.momentum(0.1, nesterov=True)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; known optimizers: vanilla"):
        get("adamm")


@pytest.mark.parametrize("label", gd.optimizers.names())
def test_a_negative_learning_rate_is_refused_by_every_optimizer(label):
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number >= 0.*got -0.1"):
        get(label)(-0.1)


def test_armijo_is_optaxs_backtracking_line_search_bit_for_bit():
    f = lambda p: LOSS(p, DATA)
    ours = get("armijo")(1.0)
    theirs = optax.chain(
        optax.sgd(1.0), optax.scale_by_backtracking_linesearch(max_backtracking_steps=15)
    )

    def path(tx, steps=50):
        def step(carry, _):
            params, state = carry
            value, grad = jax.value_and_grad(f)(params)
            updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=f)
            params = optax.apply_updates(params, updates)
            return (params, state), f(params)

        return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps)[1])(PARAMS0)

    expected, actual = path(theirs), path(ours)
    np.testing.assert_array_equal(actual, expected)
    assert bool(jnp.all(jnp.diff(actual) <= 0))  # the line search only ever descends


def test_armijo_without_the_loss_is_a_clear_error():
    opt = get("armijo")(0.1)
    params = jnp.ones(2)
    with pytest.raises(TypeError, match=r"value=, grad=, value_fn= missing.*value_fn=loss_fn"):
        opt.update(params, opt.init(params), params)


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_eager_steps_equal_optax(name, ours, theirs):
    # Not jitted: each op runs alone, in the same order as optax's (Adam's bias
    # correction is optax's own jitted helper), so the bits agree here too.
    params, states = (PARAMS0, PARAMS0), (ours.init(PARAMS0), theirs.init(PARAMS0))
    for _ in range(5):
        new = []
        for tx, p, s in zip((ours, theirs), params, states, strict=True):
            updates, s = tx.update(jax.grad(LOSS)(p, DATA), s, p)
            new.append((optax.apply_updates(p, updates), s))
        params, states = zip(*new, strict=True)
    for x, y in zip(*map(jax.tree.leaves, params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_complex_params_follow_optax_bit_for_bit(name, ours, theirs):
    # optax squares a complex gradient as |g|^2 = Re(conj(g) g); g**2 would drift.
    target = jnp.array([1 + 1j, -1 + 0.5j, 2j], jnp.complex64)
    objective = lambda p: jnp.sum(jnp.real(jnp.conj(p - target) * (p - target)))

    def path(tx, steps=100):
        def step(carry, _):
            params, state = carry
            grads = jax.tree.map(jnp.conj, jax.grad(objective)(params))
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        p0 = jnp.zeros(3, jnp.complex64)
        return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps)[0][0])(p0)

    expected, actual = path(theirs), path(ours)
    np.testing.assert_array_equal(actual, expected)
    assert float(objective(actual)) < float(objective(jnp.zeros(3, jnp.complex64)))


_STATE_FIELDS = {
    "vanilla": set(),
    "momentum": {"trace"},
    "nesterov": {"trace"},
    "adam": {"mu", "nu"},
    "adamw": {"mu", "nu"},
    "rmsprop": {"nu"},
    "adagrad": {"sum_of_squares"},
}


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=IDS)
def test_state_answers_optax_tree_get_by_optax_names(name, ours, theirs):
    state, reference = ours.init(PARAMS0), theirs.init(PARAMS0)
    names = ["trace", "mu", "nu", "sum_of_squares"]
    fields = {f for f in names if optax.tree.get_all_with_path(reference, f)}
    assert fields == _STATE_FIELDS[name.split("_")[0]]  # what optax's state holds
    for field in fields:
        expected = optax.tree.get(reference, field)
        assert jax.tree.structure(optax.tree.get(state, field)) == jax.tree.structure(expected)
    assert optax.tree.get(state, "count").dtype == jnp.int32  # jaxgd always counts steps


def test_update_accepts_optaxs_extra_arguments():
    for _, ours, _ in CASES:
        state = ours.init(PARAMS0)
        grads = jax.grad(LOSS)(PARAMS0, DATA)
        plain, _ = ours.update(grads, state, PARAMS0)
        extra, _ = ours.update(
            grads, state, PARAMS0, value=1.0, grad=grads, value_fn=LOSS, anything_else=3
        )
        for x, y in zip(jax.tree.leaves(plain), jax.tree.leaves(extra), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# A rule of one's own: heavy ball whose rate decays as lr / (1 + decay * t), and
# whose velocity decay is traced (a sweep over it compiles once).
class _HeavyBallState(NamedTuple):
    count: jax.Array
    velocity: jax.Array


class _decaying_heavy_ball(Optimizer):  # noqa: N801
    learning_rate: float
    beta: float = decay_rate(0.9)
    decay: float = 0.5
    clip: bool = static(False)

    def init(self, params):
        return _HeavyBallState(jnp.zeros([], jnp.int32), jnp.zeros_like(params))

    def rule(self, g, state, params):
        if self.clip:
            g = jnp.clip(g, -1.0, 1.0)
        v = self.beta * state.velocity + g
        lr = self.learning_rate / (1.0 + self.decay * state.count)
        return -lr * v, _HeavyBallState(state.count + 1, v)


def test_a_rule_of_ones_own_is_a_registered_checked_optimizer():
    opt = _decaying_heavy_ball(0.1, beta=0.5)
    assert jax.tree.leaves(opt) == [0.1, 0.5, 0.5, 0.5]  # lr, beta, decay, 1 - beta; clip static
    params = jnp.array([2.0])
    state = opt.init(params)
    steps = []
    for _ in range(3):
        updates, state = opt.update(2 * params, state, value=0.0)  # grad of p**2; extras ignored
        params = optax.apply_updates(params, updates)
        steps.append(float(params[0]))
    # by hand: v=4, p=2-0.4=1.6; v=0.5*4+3.2=5.2, p=1.6-(0.1/1.5)*5.2; v=0.5*5.2+2p, p-=0.05*v
    p1 = 2.0 - 0.1 * 4.0
    p2 = p1 - 0.1 / 1.5 * (0.5 * 4.0 + 2 * p1)
    p3 = p2 - 0.1 / 2.0 * (0.5 * (0.5 * 4.0 + 2 * p1) + 2 * p2)
    np.testing.assert_allclose(steps, [p1, p2, p3], rtol=1e-6)
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\)"):
        _decaying_heavy_ball(0.1, beta=1.5)
    with pytest.raises(ValueError, match="learning_rate must be a finite number >= 0"):
        _decaying_heavy_ball(-0.1)
    # bfloat16 params: updates and state keep their dtypes though the rate is float32
    bf = jnp.ones(2, jnp.bfloat16)
    updates, new_state = jax.vmap(lambda lr: _decaying_heavy_ball(lr).update(bf, opt.init(bf)))(
        jnp.array([0.1, 0.2])
    )
    assert updates.dtype == jnp.bfloat16 and new_state.velocity.dtype == jnp.bfloat16


def test_a_rule_that_is_not_written_says_what_to_write():
    class incomplete(Optimizer):  # noqa: N801
        learning_rate: float

        def init(self, params):
            return ()

    with pytest.raises(NotImplementedError, match=r"incomplete must define rule\(self, grads"):
        incomplete(0.1).update(jnp.ones(1), ())


def test_a_batch_of_optimizers_vmaps():
    lrs = jnp.array([0.01, 0.1, 0.3])
    params = jnp.array([1.0, -2.0])

    def one_step(opt):
        updates, _ = opt.update(2 * params, opt.init(params))
        return updates

    updates = jax.vmap(one_step)(gd.sgd(lrs))
    np.testing.assert_allclose(updates, -lrs[:, None] * 2 * params[None], rtol=1e-6)


def test_adamw_without_params_is_a_clear_error():
    opt = gd.adamw(0.1)
    with pytest.raises(ValueError, match="params"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))


DESCENT_VARIANTS = pathlib.Path(__file__).parents[2] / "docs" / "guides" / "optimizers.md"


def test_the_guide_rule_of_ones_own_runs(capsys):
    section = DESCENT_VARIANTS.read_text()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs descent variants", "exec"), namespace)
    assert capsys.readouterr().out.strip().splitlines()[0] == "[-0.4]"
    opt = namespace["opt"]
    assert isinstance(opt, gd.Optimizer) and jax.tree.leaves(opt) == [
        0.1,
        0.5,
        0.1,
        0.5,
    ]  # 1 - beta last
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\)"):
        namespace["heavy_ball"](0.1, beta=1.0)


def test_the_guide_lists_every_registry_label():
    section = DESCENT_VARIANTS.read_text()
    table = section.split("| jaxgd | registry label |", 1)[1].split("\n\n", 1)[0]
    labels = re.findall(r"^\| [^|]* \| ((?:`[a-z]+`(?:, )?)+) \|", table, re.M)
    listed = [label for cell in labels for label in re.findall(r"`([a-z]+)`", cell)]
    assert listed == gd.optimizers.names()


def test_a_decay_rate_changed_alone_never_keeps_a_stale_complement():
    """``1 - b`` travels with ``b`` as a leaf, but is trusted only where both are
    traced together: a rate changed alone (tree_at, a flattened leaf replaced,
    inside jit or not) gets its complement afresh, and the update is optax's."""
    import equinox as eqx

    opt = gd.adam(0.1)
    leaves, treedef = jax.tree.flatten(opt)
    leaves[1] = 0.5  # b1
    changed = jax.tree.unflatten(treedef, leaves)
    g, p = jnp.array([1.0, -2.0]), jnp.zeros(2)
    reference = optax.adam(0.1, b1=0.5)
    expected = reference.update(g, reference.init(p))[0]
    for candidate in (changed, eqx.tree_at(lambda o: o.b1, opt, 0.5)):
        assert candidate.one_minus("b1") == 0.5
        np.testing.assert_array_equal(candidate.update(g, candidate.init(p))[0], expected)
    traced = jax.jit(lambda b: eqx.tree_at(lambda o: o.b1, opt, b).one_minus("b1"))(0.5)
    assert float(traced) == 0.5
    # Traced together (as minimize traces an optimizer), the carried complement is kept.
    assert jax.jit(lambda o: o.one_minus("b1"))(opt) == np.float32(opt.one_minus("b1"))

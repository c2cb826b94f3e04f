# Copyright 2019 DeepMind Technologies Limited. All Rights Reserved.
# Modifications copyright 2026 the jaxgd authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
# ==============================================================================
"""optax's own optimizer tests, run against jaxgd's optimizers.

Provenance: ported from optax 0.2.8, ``optax/_src/alias_test.py`` (class
``AliasTest``: every test of the "COMMON TESTS" part) and
``optax/_src/float64_test.py``, both shipped in optax's wheel under the
Apache License 2.0 (header above). What changed, and nothing else:

* absltest/parameterized became pytest parametrisation; ``subTest`` blocks are
  sections of one test; optax's assertions, step counts, problems and
  tolerances are kept as they are (``optax._src.test_utils`` still does the
  comparing and the compile logging).
* Each optax factory is replaced by its jaxgd counterpart, found in jaxgd's
  registry (``gd.optimizers.get``), called with optax's own arguments:
  ``optax.sgd(lr)`` -> ``vanilla``, ``optax.sgd(lr, momentum)`` ->
  ``momentum`` (``nesterov`` when asked), ``optax.adam``/``adamw``/
  ``rmsprop``/``adagrad`` -> the same label.
* The optimizers jaxgd does not have (adabelief, lion, lbfgs ...) are
  excluded by the filter ``_applicable`` below, and so are the
  transformations of ``float64_test`` that are not optimizers (clip, trace,
  scale ...). The LBFGS tests ("ALGORITHM SPECIFIC TESTS") are not ported:
  jaxgd has no L-BFGS.
* An option jaxgd's optimizers do not have is skipped, named in the reason:
  ``rmsprop(momentum=)`` and the state-dtype options ``accumulator_dtype`` /
  ``mu_dtype`` (jaxgd keeps the state in the params' dtype).
"""

import functools

import jax
import jax.numpy as jnp
import optax
import optax.tree
import pytest
from optax._src import numerics, test_utils, utils
from optax.transforms import _accumulation

import jaxgd as gd

##############
# COMMON TESTS
##############

# optax's list, verbatim (alias_test._OPTIMIZERS_UNDER_TEST).
_OPTAX_OPTIMIZERS_UNDER_TEST = (
    {"opt_name": "adabelief", "opt_kwargs": {"learning_rate": 1e-2}},
    {"opt_name": "adadelta", "opt_kwargs": {"learning_rate": 0.1}},
    {"opt_name": "adadelta", "opt_kwargs": {}},
    {"opt_name": "adafactor", "opt_kwargs": {"learning_rate": 5e-3}},
    {"opt_name": "adafactor", "opt_kwargs": {}},
    {"opt_name": "adagrad", "opt_kwargs": {"learning_rate": 1.0}},
    {"opt_name": "adam", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "adamax", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "adamaxw", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "adamw", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "adan", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "amsgrad", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "fromage", "opt_kwargs": {"learning_rate": 5e-3}},
    {"opt_name": "lamb", "opt_kwargs": {"learning_rate": 1e-3}},
    {"opt_name": "lars", "opt_kwargs": {"learning_rate": 1.0}},
    {"opt_name": "lion", "opt_kwargs": {"learning_rate": 1e-2, "weight_decay": 1e-4}},
    {"opt_name": "nadam", "opt_kwargs": {"learning_rate": 1e-2}},
    {"opt_name": "nadamw", "opt_kwargs": {"learning_rate": 1e-2}},
    {"opt_name": "noisy_sgd", "opt_kwargs": {"learning_rate": 1e-3, "eta": 1e-4, "key": 0}},
    {"opt_name": "novograd", "opt_kwargs": {"learning_rate": 1e-3}},
    {"opt_name": "optimistic_adam", "opt_kwargs": {"learning_rate": 2e-3}},
    {"opt_name": "optimistic_adam_v2", "opt_kwargs": {"learning_rate": 2e-3}},
    {
        "opt_name": "optimistic_gradient_descent",
        "opt_kwargs": {"learning_rate": 2e-3, "alpha": 0.7, "beta": 0.1},
    },
    {"opt_name": "polyak_sgd", "opt_kwargs": {"max_learning_rate": 1.0}},
    {"opt_name": "radam", "opt_kwargs": {"learning_rate": 5e-3}},
    {"opt_name": "rmsprop", "opt_kwargs": {"learning_rate": 5e-3}},
    {"opt_name": "rmsprop", "opt_kwargs": {"learning_rate": 5e-3, "momentum": 0.9}},
    {"opt_name": "rprop", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "sgd", "opt_kwargs": {"learning_rate": 1e-3, "momentum": 0.9}},
    {"opt_name": "sign_sgd", "opt_kwargs": {"learning_rate": 1e-1}},
    {"opt_name": "signum", "opt_kwargs": {"learning_rate": 1e-2}},
    {"opt_name": "sm3", "opt_kwargs": {"learning_rate": 1.0}},
    {"opt_name": "yogi", "opt_kwargs": {"learning_rate": 1e-1}},
)


def _sgd(learning_rate, momentum=None, nesterov=False):
    """``optax.sgd``'s signature, answered from jaxgd's registry."""
    if momentum is None:
        return gd.optimizers.get("vanilla")(learning_rate)
    return gd.optimizers.get("nesterov" if nesterov else "momentum")(learning_rate, beta=momentum)


def _rmsprop(learning_rate, decay=0.9, eps=1e-8, momentum=None):
    if momentum is not None:
        pytest.skip("jaxgd's rmsprop has no momentum= option (optax.rmsprop(momentum=0.9))")
    return gd.optimizers.get("rmsprop")(learning_rate, decay=decay, eps=eps)


# optax factory name -> the jaxgd factory that takes optax's arguments.
_JAXGD = {
    "sgd": _sgd,
    "adam": gd.optimizers.get("adam"),
    "adamw": gd.optimizers.get("adamw"),
    "rmsprop": _rmsprop,
    "adagrad": gd.optimizers.get("adagrad"),
}


def _applicable(cases):
    # The filter: only optimizers jaxgd has (see _JAXGD); the others (adabelief,
    # adadelta, adafactor, adamax, adamaxw, adan, amsgrad, fromage, lamb, lars,
    # lion, nadam, nadamw, noisy_sgd, novograd, optimistic_*, polyak_sgd, radam,
    # rprop, sign_sgd, signum, sm3, yogi) are not collected.
    return [c for c in cases if c["opt_name"] in _JAXGD]


_OPTIMIZERS_UNDER_TEST = _applicable(_OPTAX_OPTIMIZERS_UNDER_TEST)
_IDS = [
    "-".join([c["opt_name"], *(f"{k}={v}" for k, v in c["opt_kwargs"].items())])
    for c in _OPTIMIZERS_UNDER_TEST
]
_OPT_PARAMS = pytest.mark.parametrize(
    ("opt_name", "opt_kwargs"),
    [(c["opt_name"], c["opt_kwargs"]) for c in _OPTIMIZERS_UNDER_TEST],
    ids=_IDS,
)


def _get_opt(opt_name):
    return _JAXGD[opt_name]


def test_the_port_covers_every_jaxgd_optimizer_optax_has():
    # Guards the filter: the five optax factories with a jaxgd counterpart give
    # six of optax's cases (rmsprop twice), and every registry label but
    # armijo (optax tests no line search in this list) is reached.
    assert [c["opt_name"] for c in _OPTIMIZERS_UNDER_TEST] == [
        "adagrad",
        "adam",
        "adamw",
        "rmsprop",
        "rmsprop",
        "sgd",
    ]


def _setup_parabola(dtype):
    """Quadratic function as an optimization target."""
    initial_params = jnp.array([-1.0, 10.0, 1.0], dtype=dtype)
    final_params = jnp.array([1.0, -1.0, 1.0], dtype=dtype)

    if jnp.iscomplexobj(dtype):
        final_params *= 1 + 1j

    def objective(params):
        return jnp.sum(numerics.abs_sq(params - final_params))

    return initial_params, final_params, objective


def _setup_rosenbrock(dtype):
    """Rosenbrock function as an optimization target."""
    a = 1.0
    b = 100.0

    if jnp.iscomplexobj(dtype):
        a *= 1 + 1j

    initial_params = jnp.array([0.0, 0.0], dtype=dtype)
    final_params = jnp.array([a, a**2], dtype=dtype)

    def objective(params):
        return numerics.abs_sq(a - params[0]) + b * numerics.abs_sq(params[1] - params[0] ** 2)

    return initial_params, final_params, objective


@pytest.mark.slow  # 10000 steps per case, as optax runs them: about a second each
@_OPT_PARAMS
@pytest.mark.parametrize(
    "target", [_setup_parabola, _setup_rosenbrock], ids=["parabola", "rosenbrock"]
)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64], ids=["float32", "complex64"])
def test_optimization(opt_name, opt_kwargs, target, dtype):
    # (optax skips complex params for optimizers of its own that jaxgd lacks.)
    opt = _get_opt(opt_name)(**opt_kwargs)
    initial_params, final_params, objective = target(dtype)

    @jax.jit
    def step(params, state):
        value, updates = jax.value_and_grad(objective)(params)
        # Complex gradients need to be conjugated before being added to parameters
        # https://gist.github.com/wdphy16/118aef6fb5f82c49790d7678cf87da29
        updates = jax.tree.map(lambda x: x.conj(), updates)
        updates, state = opt.update(updates, state, params)
        params = optax.apply_updates(params, updates)
        return params, state

    params = initial_params
    state = opt.init(params)

    # Test that tree_map_params works: a no-op change, to verify that tree map works.
    state = optax.tree.map_params(opt, lambda v: v, state)

    # Test that optimization works.
    for it in range(10000):
        if it == 1:
            with test_utils.log_compilations() as compilation_logs:
                params, state = step(params, state)
            assert not compilation_logs, 'Optimizer recompiles on second call to "update".'
        else:
            params, state = step(params, state)
    test_utils.assert_trees_all_close(params, final_params, rtol=3e-2, atol=3e-2)

    # Test that the optimizer doesn't recompile on 2nd call.
    params = initial_params
    state = opt.init(params)
    params, state = step(params, state)
    with test_utils.log_compilations() as compilation_logs:
        _ = step(params, state)
    assert not compilation_logs, 'Optimizer recompiles on second call to "update".'


@_OPT_PARAMS
def test_optimizers_accept_extra_args(opt_name, opt_kwargs):
    opt = _get_opt(opt_name)(**opt_kwargs)
    # intentionally ommit: opt = base.with_extra_args_support(opt)
    initial_params, _, objective = _setup_rosenbrock(jnp.float32)

    @jax.jit
    def step(params, state):
        value, updates = jax.value_and_grad(objective)(params)
        update_kwargs = {"unexpected_extra_args_your_optimizer_doesnt_expect": 1}
        updates, state = opt.update(updates, state, params, **update_kwargs)
        params = optax.apply_updates(params, updates)
        return params, state

    params = initial_params
    state = opt.init(params)

    # Test that update works with extra values.
    for _ in range(2):
        params, state = step(params, state)


@_OPT_PARAMS
def test_optimizers_can_be_wrapped_in_inject_hyperparams(opt_name, opt_kwargs):
    """Checks that optimizers can be wrapped in inject_hyperparams."""
    # See also https://github.com/google-deepmind/optax/issues/412.
    opt_factory = _get_opt(opt_name)
    opt = opt_factory(**opt_kwargs)
    opt_inject = optax.inject_hyperparams(opt_factory)(**opt_kwargs)

    params = [jnp.negative(jnp.ones((2, 3))), jnp.ones((2, 5, 2))]
    grads = [jnp.ones((2, 3)), jnp.negative(jnp.ones((2, 5, 2)))]

    state = jax.jit(opt.init)(params)
    updates, new_state = jax.jit(opt.update)(grads, state, params)

    state_inject = jax.jit(opt_inject.init)(params)
    updates_inject, new_state_inject = jax.jit(opt_inject.update)(grads, state_inject, params)

    # Equality of updates.
    test_utils.assert_trees_all_close(updates_inject, updates, rtol=1e-3)
    # Equality of new optimizer states.
    test_utils.assert_trees_all_close(
        optax.tree.unwrap_random_key_data(new_state_inject.inner_state),
        optax.tree.unwrap_random_key_data(new_state),
        rtol=1e-4,
    )


_DTYPE_NAMES = ("bfloat16", "float32", "complex64", None)


@pytest.mark.parametrize("params_dtype", _DTYPE_NAMES)
@pytest.mark.parametrize("state_dtype", _DTYPE_NAMES)
@pytest.mark.parametrize("opt_name", ["sgd_mom", "adam", "adamw"])
def test_explicit_dtype(params_dtype, state_dtype, opt_name):
    if opt_name == "sgd_mom":
        if state_dtype is not None:
            pytest.skip("jaxgd's momentum has no accumulator_dtype= (state: the params' dtype)")
        opt = _sgd(0.1, momentum=0.9)
        attribute_name = "trace"
    elif opt_name in ["adam", "adamw"]:
        if state_dtype is not None:
            pytest.skip(f"jaxgd's {opt_name} has no mu_dtype= (the state is the params' dtype)")
        opt = _get_opt(opt_name)(0.1)
        attribute_name = "mu"
    else:
        raise ValueError(f"Unsupported optimizer: {opt_name}")

    params_dtype = jax.dtypes.canonicalize_dtype(params_dtype)
    params = jnp.array([0.0, 0.0], dtype=params_dtype)
    state = opt.init(params)

    # Test that attribute dtype is correct.
    if state_dtype is None:
        expected_dtype = params_dtype
    else:
        expected_dtype = jax.dtypes.canonicalize_dtype(state_dtype)
    attribute = optax.tree.get(state, attribute_name)
    assert expected_dtype == attribute.dtype


@_OPT_PARAMS
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_preserve_dtype(opt_name, opt_kwargs, dtype):
    """Test that the optimizers return updates of same dtype as gradients."""
    dtype = jnp.dtype(dtype)
    opt_factory = _get_opt(opt_name)
    opt = opt_factory(**opt_kwargs)
    fun = lambda x: jnp.sum(x**2)

    params = jnp.array([1.0, 2.0], dtype=dtype)
    grads = jax.grad(fun)(params)
    state = jax.jit(opt.init)(params)
    updates, _ = jax.jit(opt.update)(grads, state, params)
    assert updates.dtype == grads.dtype


@_OPT_PARAMS
@pytest.mark.parametrize(
    "dtype",
    [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64, jnp.complex64, jnp.complex128],
    ids=["float16", "bfloat16", "float32", "float64", "complex64", "complex128"],
)
def test_state_shape_dtype_shard_stability(opt_name, opt_kwargs, dtype):
    if dtype == jnp.complex128 and jax.default_backend() == "tpu":
        pytest.skip("TPU backend does not support complex128")

    with utils.x64_precision(dtype in (jnp.float64, jnp.complex128)):
        opt = _get_opt(opt_name)(**opt_kwargs)
        initial_params, _, objective = _setup_parabola(dtype)

        @jax.jit
        def step(params, state):
            value, updates = jax.value_and_grad(objective)(params)
            # Complex gradients need to be conjugated before being added to
            # parameters
            # https://gist.github.com/wdphy16/118aef6fb5f82c49790d7678cf87da29
            updates = jax.tree.map(lambda x: x.conj(), updates)
            value = value.astype(jnp.float16 if dtype != jnp.float16 else jnp.float32)
            # defeat compiler optimization, use lax.cond to check for stability
            cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
            updates, state = jax.lax.cond(
                cond, lambda: opt.update(updates, state, params), lambda: (params, state)
            )
            params = optax.apply_updates(params, updates)
            return params, state

        params = initial_params
        state = opt.init(params)

        # Test that update is dtype stable.
        for _ in range(2):
            params, new_state = step(params, state)
            assert jax.tree.leaves(params)[0].dtype == dtype
            cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
            state = jax.lax.cond(cond, lambda: state, lambda: new_state)  # noqa: B023


@_OPT_PARAMS
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_gradient_accumulation(opt_name, opt_kwargs, dtype):
    """Test that the optimizers can safely be used with optax.MultiSteps."""
    # Checks for issues like https://github.com/google-deepmind/optax/issues/377
    dtype = jnp.dtype(dtype)
    opt_factory = _get_opt(opt_name)

    base_opt = opt_factory(**opt_kwargs)
    opt = _accumulation.MultiSteps(base_opt, every_k_schedule=4)

    fun = lambda x: jnp.sum(x**2)

    params = jnp.array([1.0, 2.0], dtype=dtype)
    grads = jax.grad(fun)(params)
    state = jax.jit(opt.init)(params)
    updates, _ = jax.jit(functools.partial(opt.update))(grads, state, params)
    test_utils.assert_trees_all_equal(updates, jnp.zeros_like(grads))


#################################
# float64_test.py: Float64Test
#################################

# optax's ALL_MODULES, filtered to its optimizers (the transformations identity,
# clip, clip_by_global_norm, trace, scale_by_*, scale, add_decayed_weights,
# add_noise, apply_every and the optimizers fromage, lamb, noisy_sgd have no jaxgd
# counterpart). optax's entry 'sign_sgd' builds alias.sgd, so it maps to sgd too.
_FLOAT64_MODULES = [
    ("adagrad", gd.optimizers.get("adagrad"), {"learning_rate": 0.1}),
    ("adam", gd.optimizers.get("adam"), {"learning_rate": 0.1}),
    ("adamw", gd.optimizers.get("adamw"), {"learning_rate": 0.1}),
    ("rmsprop", _rmsprop, {"learning_rate": 0.1}),
    ("sgd", _sgd, {"learning_rate": 0.1}),
    ("sign_sgd", _sgd, {"learning_rate": 0.1}),
]


def _assert_dtype_equals(tree1, tree2):
    tree1_types = jax.tree.map(lambda t: t.dtype, tree1)
    tree2_types = jax.tree.map(lambda t: t.dtype, tree2)
    assert tree1_types == tree2_types


@pytest.mark.parametrize(
    ("transform_constr", "transform_kwargs"),
    [m[1:] for m in _FLOAT64_MODULES],
    ids=[m[0] for m in _FLOAT64_MODULES],
)
def test_mixed_dtype_input_outputs(transform_constr, transform_kwargs):
    jax.config.update("jax_enable_x64", True)
    try:
        initial_params = (
            jnp.array([1.0, 2.0], dtype=jnp.float32),
            jnp.array([3.0, 4.0], dtype=jnp.float64),
        )
        updates = (
            jnp.array([10.0, 21.0], dtype=jnp.float32),
            jnp.array([33.0, 42.0], dtype=jnp.float64),
        )
        scaler = transform_constr(**transform_kwargs)
        init_fn = jax.jit(scaler.init)
        update_fn = jax.jit(scaler.update)

        initial_state = init_fn(initial_params)
        updates, new_state = update_fn(updates, initial_state, params=initial_params)
        new_params = optax.apply_updates(initial_params, updates)

        _assert_dtype_equals(initial_state, new_state)
        _assert_dtype_equals(initial_params, new_params)
    finally:  # (optax resets it at the end only; a failure must not leak x64 into other tests)
        jax.config.update("jax_enable_x64", False)

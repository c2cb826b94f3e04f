"""Properties over random pytrees and random convex problems (hypothesis).

Save/load exactness over random pytrees lives in tests/test_checkpoint.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxgd as gd

# every rule of the registry (armijo needs the loss: it is a line search, tested apart)
OPTIMIZERS = [
    gd.optimizers.get(label)(0.01) for label in gd.optimizers.names() if label != "armijo"
]
DTYPES = ["float32", "float64", "bfloat16"]
SHAPES = [(), (1,), (3,), (2, 3), (4, 1, 2)]

leaf_specs = st.tuples(st.sampled_from(SHAPES), st.sampled_from(DTYPES))
pytree_specs = st.recursive(
    leaf_specs,
    lambda children: st.one_of(
        st.dictionaries(
            st.text("abcdefgh", min_size=1, max_size=3), children, min_size=1, max_size=3
        ),
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=6,
)


def _is_spec(x):
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], str)


def _build(spec, seed):
    """A pytree of arrays (values in [-2, 2]) from a spec of (shape, dtype) leaves."""
    specs, treedef = jax.tree.flatten(spec, is_leaf=_is_spec)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(rng.uniform(-2, 2, shape), dtype) for shape, dtype in specs]
    return jax.tree.unflatten(treedef, leaves)


settings.register_profile("jaxgd", max_examples=25, deadline=None)
settings.load_profile("jaxgd")


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: repr(o)[:40])
@given(spec=pytree_specs, seed=st.integers(0, 2**16))
def test_every_optimizer_keeps_structure_and_dtype(optimizer, spec, seed):
    with jax.enable_x64(True):
        params = _build(spec, seed)
        grads = _build(spec, seed + 1)
        state = optimizer.init(params)
        for _ in range(2):
            updates, state = optimizer.update(grads, state, params)
            params_next = optax.apply_updates(params, updates)
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p, q in zip(
            jax.tree.leaves(updates),
            jax.tree.leaves(params),
            jax.tree.leaves(params_next),
            strict=True,
        ):
            assert u.dtype == p.dtype == q.dtype and u.shape == p.shape
            assert bool(jnp.all(jnp.isfinite(u.astype(jnp.float32))))
        state_dtypes = {str(x.dtype) for x in jax.tree.leaves(state)}
        assert state_dtypes <= {str(x.dtype) for x in jax.tree.leaves(params)} | {"int32"}


@given(
    dim=st.integers(1, 6),
    log_kappa=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
    which=st.integers(0, len(OPTIMIZERS) - 1),
    lr_scale=st.floats(0.01, 50.0),
)
def test_minimize_on_random_convex_quadratics_never_returns_non_finite_params(
    dim, log_kappa, seed, which, lr_scale
):
    """Whatever the step size (up to 50x the stability limit), the returned params
    are finite and the status says what happened."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eigenvalues = np.logspace(0, log_kappa, dim)
    a = jnp.asarray(q @ np.diag(eigenvalues) @ q.T, jnp.float32)
    b = jnp.asarray(rng.normal(size=dim), jnp.float32)
    loss = lambda x: 0.5 * x @ a @ x - b @ x
    base = OPTIMIZERS[which]
    lr = lr_scale * 2.0 / eigenvalues[-1]
    opt = jax.tree.unflatten(jax.tree.structure(base), [lr, *jax.tree.leaves(base)[1:]])
    result = gd.minimize(loss, jnp.asarray(rng.normal(size=dim), jnp.float32), opt, steps=200)
    assert bool(jnp.all(jnp.isfinite(result.params)))
    status = gd.Status(int(result.status))
    if status != gd.Status.DIVERGED:
        assert np.isfinite(float(result.loss))


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: repr(o)[:40])
@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
def test_minimize_keeps_the_params_dtype(optimizer, dtype):
    with jax.enable_x64(dtype == "float64"):
        params = {"w": jnp.zeros(3, dtype), "b": jnp.ones((), dtype)}
        loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2) + p["b"] ** 2
        result = gd.minimize(loss, params, optimizer, steps=300, record_params=True)
        assert result.params["w"].dtype == dtype and result.params["b"].dtype == dtype
        assert result.history.params["w"].dtype == dtype
        assert result.history.loss.dtype == ("float64" if dtype == "float64" else "float32")
        assert float(result.loss) < float(loss(params))  # it made progress

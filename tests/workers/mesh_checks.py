"""Measurements on a 4-device host, for ``tests/distributed/test_distributed.py``.

Run as ``XLA_FLAGS=--xla_force_host_platform_device_count=4 python
tests/workers/mesh_checks.py [thorough]``; prints ``RESULTS {json}`` on its last
line. Importing it runs nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import jaxgd as gd
from jaxgd import distributed as dist


def rel(a, b) -> float:
    """Normwise relative error, worst leaf: ``max|a - b| / max|b|``."""

    def one(x, y):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30))

    return max(jax.tree.leaves(jax.tree.map(one, a, b)))


def hist_rel(a, b) -> float:
    """Elementwise relative error over the finite entries (which must match)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(b)
    assert np.array_equal(ok, np.isfinite(a))
    return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok])))


def compare_runs(out, meshes, name, loss, params, opt, devices=(4,), **kw):
    ref = gd.minimize(loss, params, opt, **kw)
    for d in devices:
        r = gd.minimize(loss, params, opt, mesh=meshes[d], **kw)
        out[f"{name}/{d}"] = {
            "params": rel(r.params, ref.params),
            "loss": hist_rel(r.loss, ref.loss),
            "history_loss": hist_rel(r.history.loss, ref.history.loss),
            "grad_norm": rel(
                np.nan_to_num(r.history.grad_norm), np.nan_to_num(ref.history.grad_norm)
            ),
            "same_steps": int(r.steps) == int(ref.steps),
            "same_status": int(r.status) == int(ref.status),
            "replicated": all(
                a.sharding.is_fully_replicated
                for a in jax.tree.leaves((r.params, r.loss, r.history))
            ),
            "final_loss": float(r.loss),
            "start_loss": float(r.history.loss[0]),
        }


def mesh_collectives(loss, params, optimizer, *, mesh, data, **kw):
    """The communication of the compiled ``minimize(..., mesh=mesh)`` run (compiled, not run)."""

    def run(params, data):
        return gd.minimize(loss, params, optimizer, data=data, mesh=mesh, **kw)

    lowered = jax.jit(run).lower(dist.replicate(params, mesh), dist.shard_data(data, mesh))
    return dist.collectives(lowered)


def sum_loss(p, batch):
    """A sum (not a mean) of squared errors plus a penalty on the params."""
    bx, by = batch
    return 0.5 * jnp.sum((bx @ p["w"] + p["b"] - by) ** 2) + 0.1 * jnp.sum(p["w"] ** 2)


def main(thorough: bool) -> dict:
    assert jax.device_count() == 4, jax.devices()
    meshes = {4: dist.data_mesh(), 2: dist.data_mesh(jax.devices()[:2])}
    # Meshes users build themselves: jax.make_mesh (Explicit axes in current JAX),
    # a 2-D one with a model axis, and a plain Mesh with another axis name.
    meshes["make_mesh"] = jax.make_mesh((4,), ("data",))
    meshes["make_mesh_2d"] = jax.make_mesh((2, 2), ("data", "model"))
    meshes["user"] = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    out: dict = {}
    key = jax.random.PRNGKey(3)

    marks = gd.problems.get("student_marks")
    p0 = marks.init(jax.random.PRNGKey(0))
    full, mini = dict(data=marks.data, steps=200), dict(data=marks.data, steps=400)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, 8) + 0.5 + 0.1 * rng.normal(size=256)).astype(np.float32)
    lin0 = {"w": jnp.zeros(8), "b": jnp.zeros(())}
    if thorough:  # the core checks are the other test's (the module's fixture runs them)
        return _thorough(out, meshes, marks, p0, full, (x, y), lin0, key)

    # Full batch and minibatch on a mean loss, over 2 and 4 devices.
    out["marks_optimum"] = marks.optimum_value
    compare_runs(out, meshes, "full/marks/sgd", marks.loss, p0, gd.sgd(0.1), (2, 4), **full)
    users = ("make_mesh", "make_mesh_2d", "user")
    compare_runs(out, meshes, "full/marks/sgd", marks.loss, p0, gd.sgd(0.1), users, **full)
    compare_runs(
        out, meshes, "mini/marks/sgd", marks.loss, p0, gd.sgd(0.05), users,
        batch_size=20, key=key, **mini,
    )  # fmt: skip
    compare_runs(
        out, meshes, "mini/marks/sgd", marks.loss, p0, gd.sgd(0.05), (2, 4),
        batch_size=20, key=key, **mini,
    )  # fmt: skip

    # A sum loss with a penalty: the global function of the batch, not a mean of shards.
    compare_runs(out, meshes, "full/sum_loss/sgd", sum_loss, lin0, gd.sgd(1e-3), data=(x, y),
                 steps=150)  # fmt: skip

    # Communication of a minibatch run: jaxgd's gather, and a plain jnp.take for contrast.
    kw = dict(data=(x, y), steps=20, batch_size=32, key=key)
    ops = mesh_collectives(sum_loss, lin0, gd.adam(0.01), mesh=meshes[4], **kw)
    out["ops_local"] = [(op.kind, op.elements) for op in ops]
    gather = dist.MeshGather.__call__
    dist.MeshGather.__call__ = lambda self, data, rows: jax.tree.map(
        lambda a: jnp.take(a, rows, axis=0), data
    )
    try:
        naive_loss = lambda p, batch: sum_loss(p, batch)  # a new function: no cached trace
        ops = mesh_collectives(naive_loss, lin0, gd.adam(0.01), mesh=meshes[4], **kw)
        out["ops_naive"] = [(op.kind, op.elements) for op in ops]
    finally:
        dist.MeshGather.__call__ = gather

    # Held-out evaluation: eval_data split over the devices like data.
    held_out = jax.tree.map(lambda a: a[160:], marks.data)  # 40 rows
    ev = dict(data=marks.data, steps=100, batch_size=20, key=key, eval_data=held_out, eval_every=10)
    on_4 = gd.minimize(marks.loss, p0, gd.sgd(0.05), mesh=meshes[4], **ev)
    on_1 = gd.minimize(marks.loss, p0, gd.sgd(0.05), **ev)
    out["eval_loss"] = hist_rel(on_4.history.eval_loss, on_1.history.eval_loss)

    # Errors a user can cause.
    def error(mesh, **kw):
        try:
            gd.minimize(marks.loss, p0, gd.sgd(0.1), steps=5, mesh=mesh, **kw)
        except (ValueError, TypeError) as e:
            return f"{type(e).__name__}: {e}"
        return None

    odd = jax.tree.map(lambda a: jnp.concatenate([a, a[:2]]), marks.data)  # 202 rows
    out["error_rows"] = error(meshes[4], data=odd)
    out["error_batch"] = error(meshes[4], data=marks.data, batch_size=10, key=key)
    out["error_batch_on_2"] = error(meshes[2], data=marks.data, batch_size=10, key=key)
    odd_held_out = jax.tree.map(lambda a: a[:42], marks.data)
    out["error_eval_rows"] = error(meshes[4], data=marks.data, eval_data=odd_held_out, eval_every=2)

    return out


def _thorough(out, meshes, marks, p0, full, xy, lin0, key) -> dict:
    """More optimizers, real data, a sum loss in minibatches, vmap over rates, a
    checkpointed mesh run and compare(mesh=...)."""
    x, y = xy
    for label, opt in {"momentum": gd.momentum(0.05), "adam": gd.adam(0.05)}.items():
        # 4 devices only: sgd on 2 is the fast test's, and the cases below take both.
        compare_runs(out, meshes, f"full/marks/{label}", marks.loss, p0, opt, (4,), **full)
    cancer = gd.problems.get("breast_cancer_logistic")
    cdata = jax.tree.map(lambda a: a[:452], cancer.data)  # 455 rows: trimmed to divide by 4
    c0 = cancer.init(jax.random.PRNGKey(0))
    compare_runs(out, meshes, "full/cancer/adam", cancer.loss, c0, gd.adam(0.01), (4,),
                 data=cdata, steps=100)  # fmt: skip
    compare_runs(
        out, meshes, "mini/sum_loss/momentum", sum_loss, lin0, gd.momentum(1e-3), (2, 4),
        data=(x, y), steps=300, batch_size=32, key=key,
    )  # fmt: skip

    # vmap over learning rates, and a checkpointed (chunked) mesh run.
    def sweep(mesh):
        def one(lr):
            return gd.minimize(
                marks.loss, p0, gd.sgd(lr), steps=100, batch_size=20, key=key,
                data=marks.data, mesh=mesh,
            ).params  # fmt: skip

        return jax.vmap(one)(jnp.array([0.01, 0.05, 0.1]))

    out["vmap"] = rel(sweep(meshes[4]), sweep(None))
    run = dict(data=marks.data, steps=100, batch_size=20, key=key)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.npz")
        chunked = gd.minimize(
            marks.loss, p0, gd.sgd(0.05), mesh=meshes[4], checkpoint=path,
            checkpoint_every=30, **run,
        )  # fmt: skip
    plain = gd.minimize(marks.loss, p0, gd.sgd(0.05), **run)
    out["checkpointed"] = rel(chunked.params, plain.params)

    # compare(mesh=...) against compare().
    kw = dict(learning_rates=[0.01, 0.1], seeds=2, eval_seeds=4, steps=100, batch_size=None)
    # student_marks only: a problem without data (booth) leaves a data mesh idle.
    names, opts = ["student_marks"], ["vanilla", "adam"]
    plain_rows = gd.compare(names, opts, **kw).summary()
    mesh_rows = gd.compare(names, opts, mesh=meshes[4], **kw).summary()
    out["compare"] = [
        (
            a["learning_rate"] == b["learning_rate"],
            abs(a["final_loss_mean"] - b["final_loss_mean"]) / abs(a["final_loss_mean"]),
        )
        for a, b in zip(plain_rows, mesh_rows, strict=True)
    ]
    return out


if __name__ == "__main__":
    print("RESULTS " + json.dumps(main(sys.argv[1:] == ["thorough"])))

"""Data-parallel runs: ``minimize(mesh=...)`` over 1, 2 and 4 devices, and over processes.

The pytest process has one CPU device, so the many-device checks run in a
subprocess started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``
(the flag must be set before JAX starts); it prints its measurements as JSON
and the tests below assert on them. The multi-process checks start two
processes joined on 127.0.0.1 with gloo collectives.

Tolerances: a mesh run takes the same steps on the same global batches as the
one-device run; only the order of float32 additions differs (per-device
partial sums, then the all-reduce). The loss of 200 to 568 examples summed in
another order differs by a few float32 ulps (~1e-7 relative each), and over a
few hundred contracting descent steps those differences stay of that size, so
params and loss histories agree to 1e-5 relative, with a margin of about 10x
over what we measure. Relative errors of params are normwise per leaf
(``max|a - b| / max|b|``), so a weight near zero does not inflate them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_bits
from jax.sharding import Mesh

import jaxgd as gd

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-5  # float32 round-off from another summation order; see the module docstring

# --------------------------------------------------------------------------- #
# The 4-device subprocess
# --------------------------------------------------------------------------- #


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
    return env


def _four_devices(*args: str) -> dict:
    """Run ``tests/workers/mesh_checks.py`` on 4 forced host devices; its measurements."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "workers" / "mesh_checks.py"), *args],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
        capture_output=True,
        text=True,
        timeout=900,  # generous: the machine may be shared; a normal run takes a fraction
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULTS ") :])


@pytest.fixture(scope="module")
def four() -> dict:
    """The core measurements (run once for the module)."""
    return _four_devices()


CORE = ["full/marks/sgd/2", "full/marks/sgd/4", "mini/marks/sgd/2", "mini/marks/sgd/4"]
CORE += ["full/sum_loss/sgd/4"]
# meshes users build with jax.make_mesh (Explicit axes), 2-D, or jax.sharding.Mesh
CORE += [
    f"{kind}/marks/sgd/{m}" for kind in ("full", "mini") for m in ("make_mesh", "make_mesh_2d")
]
CORE += ["full/marks/sgd/user", "mini/marks/sgd/user"]
THOROUGH = [f"{run}/4" for run in ("full/marks/momentum", "full/marks/adam")]
THOROUGH += ["full/cancer/adam/4", "mini/sum_loss/momentum/2", "mini/sum_loss/momentum/4"]


def _check_equal_to_one_device(m: dict) -> None:
    """Params, final loss and loss history agree to 1e-5 with the one-device run."""
    assert m["same_steps"] and m["same_status"]
    assert m["params"] < RTOL, m
    assert m["loss"] < RTOL, m
    assert m["history_loss"] < RTOL, m
    # Normwise over the history: near the optimum the gradient norm is a small
    # difference of large sums, so only its error relative to the run's largest
    # gradient norm sits at round-off.
    assert m["grad_norm"] < RTOL, m
    assert m["replicated"], "every device (and process) must hold the whole result"


@pytest.mark.parametrize("run", CORE)
def test_mesh_run_equals_one_device_run(four, run):
    _check_equal_to_one_device(four[run])


def test_minibatch_mesh_runs_converge(four):
    for devices in (2, 4):
        m = four[f"mini/marks/sgd/{devices}"]
        assert m["final_loss"] < m["start_loss"] / 50, m
        # SGD with a constant step of 0.05 on batches of 20 ends within 1% of the
        # least-squares optimum (this step size's noise floor is ~0.1% here).
        assert m["final_loss"] < 1.01 * four["marks_optimum"], m


def test_minibatch_gather_stays_on_each_device(four):
    """Only gradient-sized all-reduces (9 params + scalars) and permutes of a few
    int32 stratum bounds; a plain ``jnp.take`` moves the whole minibatch (32 x 9)."""
    local = four["ops_local"]
    assert local, "a 4-device run must all-reduce its gradient"
    assert {kind for kind, _ in local} <= {"all-reduce", "collective-permute"}
    assert max(n for _, n in local) <= 9 + 8
    assert max(n for kind, n in four["ops_naive"] if kind == "all-reduce") >= 32 * 9


def test_indivisible_sizes_are_clear_errors(four):
    assert four["error_rows"].startswith("ValueError") and "(202)" in four["error_rows"]
    assert "divide by the mesh's data axis size (4)" in four["error_rows"]
    assert "use 200 (drop 2)" in four["error_rows"]  # the fix the README promises
    assert four["error_batch"].startswith("ValueError") and "batch_size (10)" in four["error_batch"]
    assert four["error_batch_on_2"] is None  # 10 divides by 2


def test_held_out_data_is_split_like_data(four):
    """eval_data split over 4 devices: the same evaluations to round-off, and rows
    that do not divide are an error that names eval_data."""
    assert four["eval_loss"] < RTOL
    message = four["error_eval_rows"]
    assert "eval_data[0]'s rows (42) must divide by the mesh's data axis size (4)" in message


@pytest.mark.slow
def test_thorough_mesh_checks():
    """More optimizers, a logistic loss on real data, a sum loss in minibatches,
    vmap over learning rates, a checkpointed mesh run and compare(mesh=...)."""
    m = _four_devices("thorough")
    for run in THOROUGH:
        _check_equal_to_one_device(m[run])
    assert m["vmap"] < RTOL and m["checkpointed"] < RTOL
    assert m["compare"]
    for same_rate, rel in m["compare"]:
        assert same_rate and rel < RTOL


# --------------------------------------------------------------------------- #
# In this process (one device)
# --------------------------------------------------------------------------- #


def test_one_device_mesh_gives_the_same_bits():
    problem = gd.problems.get("student_marks")
    params = problem.init(jax.random.PRNGKey(0))
    kw = dict(data=problem.data, steps=50, batch_size=20, key=jax.random.PRNGKey(1))
    plain = gd.minimize(problem.loss, params, gd.adam(0.1), **kw)
    meshed = gd.minimize(problem.loss, params, gd.adam(0.1), mesh=gd.distributed.data_mesh(), **kw)
    assert_same_bits(meshed, plain)


def test_mesh_without_data_is_an_ordinary_run():
    """Nothing to split: the mesh is ignored and the run is the plain one, bit for bit."""
    loss = lambda p: jnp.sum((p - 2.0) ** 2)
    plain = gd.minimize(loss, jnp.zeros(3), gd.sgd(0.1), steps=30)
    meshed = gd.minimize(loss, jnp.zeros(3), gd.sgd(0.1), steps=30, mesh=gd.distributed.data_mesh())
    assert_same_bits(meshed.params, plain.params)
    assert float(meshed.loss) < 1e-4


def test_bad_meshes_are_clear_errors():
    problem = gd.problems.get("student_marks")
    params = problem.init(jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        gd.minimize(problem.loss, params, gd.sgd(0.1), data=problem.data, steps=2, mesh="data")
    two_axes = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("rows", "cols"))
    with pytest.raises(ValueError, match="'data'"):
        gd.minimize(problem.loss, params, gd.sgd(0.1), data=problem.data, steps=2, mesh=two_axes)


def test_mesh_helpers():
    mesh = gd.distributed.data_mesh()
    assert gd.distributed.data_axis(mesh) == "data"
    assert gd.distributed.process_rows(12, mesh) == slice(0, 12)
    named = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    assert gd.distributed.data_axis(named) == "data"
    x = gd.distributed.shard_data({"x": np.ones((4, 2))}, mesh)["x"]
    assert x.shape == (4, 2) and x.sharding.spec == jax.sharding.PartitionSpec("data")


def test_placement_errors_name_the_function_called():
    """``shard_data`` called by the user says so; ``minimize`` passes its own name."""
    mesh = gd.distributed.data_mesh()
    with pytest.raises(ValueError, match=r"^shard_data: data\['x'\] is a scalar"):
        gd.distributed.shard_data({"x": np.float32(1.0)}, mesh)
    with pytest.raises(ValueError, match=r"^minimize: data\['x'\] is a scalar"):
        gd.distributed.shard_data({"x": np.float32(1.0)}, mesh, caller="minimize")


def test_collectives_reads_lowered_compiled_or_text():
    """One device: nothing to communicate, whatever form the program comes in."""
    mesh = gd.distributed.data_mesh()
    data = gd.distributed.shard_data((jnp.ones((8, 3)), jnp.zeros(8)), mesh)
    loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
    run = lambda w, data: gd.minimize(loss, w, gd.sgd(0.1), data=data, mesh=mesh, steps=3)
    lowered = jax.jit(run).lower(gd.distributed.replicate(jnp.zeros(3), mesh), data)
    compiled = lowered.compile()
    for program in (lowered, compiled, compiled.as_text()):
        assert [op.kind for op in gd.distributed.collectives(program)] == []
    text = "  %ar = f32[3]{0} all-reduce(f32[3]{0} %x), replica_groups={{0,1}}"
    assert gd.distributed.collectives(text)[0].elements == 3


# --------------------------------------------------------------------------- #
# Two processes on 127.0.0.1
# --------------------------------------------------------------------------- #

TWO_PROCESSES = textwrap.dedent(
    """
    import json, sys
    import jax
    import jaxgd as gd

    gd.distributed.initialize(initialization_timeout=60)
    mesh = gd.distributed.data_mesh()
    problem = gd.problems.get("student_marks")
    rows = gd.distributed.process_rows(200, mesh)
    data = jax.tree.map(lambda a: a[rows], problem.data)  # this process's rows only
    r = gd.minimize(problem.loss, problem.init(jax.random.PRNGKey(0)), gd.momentum(0.05),
                    data=data, steps=150, mesh=mesh)
    print("RESULTS " + json.dumps({
        "process": jax.process_index(), "processes": jax.process_count(),
        "devices": jax.device_count(), "rows": [rows.start, rows.stop],
        "params": {k: float(v) for k, v in r.params.items()},
        "history": [float(v) for v in r.history.loss],
    }))
    jax.distributed.shutdown()
    """
)


def _results(proc_results) -> list[dict]:
    out = []
    for r in proc_results:
        lines = [line for line in r.stdout.splitlines() if line.startswith("RESULTS ")]
        assert r.returncode == 0 and lines, f"process {r.process_id}:\n{r.stdout}\n{r.stderr}"
        out.append(json.loads(lines[-1][len("RESULTS ") :]))
    return out


def test_two_processes_give_the_one_process_result(tmp_path):
    script = tmp_path / "two_processes.py"
    script.write_text(TWO_PROCESSES)
    procs = gd.distributed.launch_local(
        [sys.executable, str(script)], 2, cpu_devices=1, timeout=150, env=_env()
    )
    a, b = _results(procs)
    assert (a["processes"], a["devices"], b["process"]) == (2, 2, 1)
    assert a["rows"] == [0, 100] and b["rows"] == [100, 200]
    assert a["params"] == b["params"] and a["history"] == b["history"]  # replicated: same bits

    problem = gd.problems.get("student_marks")
    ref = gd.minimize(
        problem.loss,
        problem.init(jax.random.PRNGKey(0)),
        gd.momentum(0.05),
        data=problem.data,
        steps=150,
    )
    for k, v in ref.params.items():
        assert abs(a["params"][k] - float(v)) <= RTOL * abs(float(v)), k
    np.testing.assert_allclose(a["history"], np.asarray(ref.history.loss), rtol=RTOL)


@pytest.mark.slow
def test_multiprocess_compare_example(tmp_path):
    """The documented example: 2 processes x 2 devices, a comparison and a minibatch
    fit on process-local rows, equal on both processes and to the one-process run."""
    out = tmp_path / "mp"
    argv = [sys.executable, str(ROOT / "examples" / "multiprocess_compare.py"), "--worker"]
    argv += ["--steps", "50", "--seeds", "1", "--problems", "student_marks", "--fit-steps", "60"]
    argv += ["--eval-seeds", "3"]  # the 3 rates' slots: one evaluation call
    argv += ["--out", str(out)]
    _results_ok = gd.distributed.launch_local(argv, 2, cpu_devices=2, timeout=240, env=_env())
    for r in _results_ok:
        assert r.returncode == 0, f"process {r.process_id}:\n{r.stdout}\n{r.stderr}"
    a, b = (json.loads(Path(f"{out}.{i}.json").read_text()) for i in range(2))
    assert a["devices"] == 4 and a["params"] == b["params"] and a["summary"] == b["summary"]

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import multiprocess_compare
    finally:
        sys.path.remove(str(ROOT / "examples"))
    ref = multiprocess_compare.run(None, 50, 1, 4, ["student_marks"], fit_steps=60, eval_seeds=3)
    for k, v in ref["params"].items():
        assert abs(a["params"][k] - v) <= RTOL * abs(v), k
    np.testing.assert_allclose(a["loss_history"], ref["loss_history"], rtol=RTOL)
    for x, y in zip(a["summary"], ref["summary"], strict=True):
        assert x["learning_rate"] == y["learning_rate"]
        assert abs(x["final_loss_mean"] - y["final_loss_mean"]) <= RTOL * abs(y["final_loss_mean"])

"""Measurements on a 2-device host, for ``tests/distributed/test_runs.py``.

Run as ``XLA_FLAGS=--xla_force_host_platform_device_count=2 python
tests/workers/runs_checks.py``; prints ``RESULTS {json}`` on its last line.
Importing it runs nothing.
"""

from __future__ import annotations

import json
import tempfile

import jax
import numpy as np

import jaxgd as gd
import jaxgd.comparison._sweep as sweep


def differences(a, b) -> dict:
    """How far two comparisons' numbers are apart: chosen rates equal, worst
    relative difference of the tuning and evaluation final losses, bits equal."""
    chosen, worst, same = True, 0.0, True
    for pa, pb in zip(a.problems, b.problems, strict=True):
        for label, ra in pa.optimizers.items():
            rb = pb.optimizers[label]
            chosen &= bool(ra.learning_rate == rb.learning_rate)
            for x, y in ((ra.final_loss, rb.final_loss),
                         (ra.evaluation.final_loss, rb.evaluation.final_loss)):  # fmt: skip
                ok = np.isfinite(y)
                chosen &= bool(np.array_equal(ok, np.isfinite(x)))
                same &= bool(np.array_equal(x, y))
                if ok.any():
                    rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-30)
                    worst = max(worst, float(rel.max()))
    return {"chosen_equal": chosen, "rel": worst, "bits_equal": same}


def error(**kw) -> str | None:
    try:
        gd.compare(["booth"], ["vanilla"], steps=5, eval_seeds=2, **kw)
    except (ValueError, TypeError) as err:
        return f"{type(err).__name__}: {err}"
    return None


def kept_programs(problems, optimizers, kw) -> dict:
    """A mesh sweep through the program cache: kept, then loaded (never traced again)
    for the same mesh, with the same bits as without the cache; traced for another."""
    meshes = {"runs": gd.distributed.runs_mesh()}  # other meshes' keys: test_sweep_programs
    out = {}
    for name, mesh in meshes.items():
        uncached = gd.compare(problems, optimizers, seeds=2, mesh=mesh, **kw)
        with tempfile.TemporaryDirectory() as folder:
            gd.comparison.use_program_cache(folder)
            try:
                fresh = gd.compare(problems, optimizers, seeds=2, mesh=mesh, **kw)
                real, sweep._sweep = sweep._sweep, _never_traced
                try:
                    kept = gd.compare(problems, optimizers, seeds=2, mesh=mesh, **kw)
                    try:  # no mesh: another program, not in the cache
                        gd.compare(problems, optimizers, seeds=2, **kw)
                        out[f"{name}_other_traced"] = False
                    except ValueError as err:
                        out[f"{name}_other_traced"] = str(err) == "traced again"
                finally:
                    sweep._sweep = real
            finally:
                gd.comparison.use_program_cache(None)
        out[f"{name}_fresh"] = differences(fresh, uncached)
        out[f"{name}_kept"] = differences(kept, fresh)
    return out


def _never_traced(*args, **kwargs):
    raise ValueError("traced again")


def main() -> None:
    devices = jax.devices()
    assert len(devices) == 2, devices
    kw = dict(learning_rates=[0.01, 0.1, 0.3], eval_seeds=4, steps=80)
    problems, optimizers = ["student_marks"], ["vanilla", "adam"]
    out = {}
    for seeds in (2, 3):  # 2: the seed axis is sharded; 3: the rates, padded to 4
        one = gd.compare(problems, optimizers, seeds=seeds, **kw)
        runs = gd.compare(problems, optimizers, seeds=seeds, mesh=gd.distributed.runs_mesh(), **kw)
        out[f"runs_seeds{seeds}"] = differences(runs, one)
        if seeds == 2:
            for shape in ((2, 1), (1, 2)):
                mesh = jax.sharding.Mesh(np.array(devices).reshape(shape), ("runs", "data"))
                two_d = gd.compare(problems, optimizers, seeds=seeds, mesh=mesh, **kw)
                out[f"mesh{shape[0]}x{shape[1]}"] = differences(two_d, one)
    # Problems without data alike share one program (jaxgd/comparison/_groups.py), sharded too
    grouped = dict(kw, learning_rates=[0.01, 0.1], eval_seeds=2, steps=40)
    pair, mesh = ["booth", "beale"], gd.distributed.runs_mesh()
    one = gd.compare(pair, ["adam"], seeds=2, **grouped)
    runs = gd.compare(pair, ["adam"], seeds=2, mesh=mesh, **grouped)
    out["runs_grouped"] = differences(runs, one)
    out["kept"] = kept_programs(problems, optimizers, kw)
    model = jax.sharding.Mesh(np.array(devices), ("model",))
    out["error_axes"] = error(mesh=model, learning_rates=[0.1], seeds=2)
    out["error_too_many"] = error(mesh=gd.distributed.runs_mesh(), learning_rates=[0.1], seeds=1)
    print("RESULTS " + json.dumps(out))


if __name__ == "__main__":
    main()

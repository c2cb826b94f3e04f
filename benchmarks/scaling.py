"""Data-parallel scaling: per-step time against device count, all-reduce cost against model size.

Run ``python benchmarks/scaling.py`` (``--quick`` for a short run). It starts
one subprocess per device count (1, 2, 4 forced host devices:
``XLA_FLAGS=--xla_force_host_platform_device_count=D``, which must be set
before JAX starts) and writes ``benchmarks/results/scaling.json`` and
``benchmarks/results/scaling.md``.

1. Per-step time of ``gd.minimize(..., mesh=mesh)`` at a fixed global batch
   (a two-layer MLP on synthetic data, minibatch SGD), for a D-device mesh,
   D = 1, 2, 4; the ratio is against the one-device run without a mesh,
   measured in the same run of this script.
2. The all-reduce a data-parallel step performs once (the gradient, one
   float32 per parameter), timed alone on 4 devices for model sizes 1e3 to
   1e6 parameters.

What the figures can and cannot show: forced host devices are slices of the
same CPU. On a machine with C cores, D devices share those C cores (and the
XLA CPU backend already spreads one device's work over several threads), so
per-step time cannot fall like 1/D; with D > C it can only rise. What the
figures do show is the overhead data parallelism adds (partitioned program,
all-reduce, synchronisation) and how the all-reduce grows with model size. On
a multi-GPU host or a multi-host cluster each device brings its own compute
and the all-reduce runs over NVLink/NCCL or ICI; the same script and code run
there unchanged (``jax.devices()`` are then the accelerators), and that is
where speedups can be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEVICE_COUNTS = (1, 2, 4)
MODEL_SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _best(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (seconds), after one warm-up call."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def child_steps(devices: int, quick: bool) -> dict:
    """Per-step time of a minibatch MLP run, with and without a ``devices``-device mesh."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxgd as gd

    assert jax.device_count() == devices, jax.devices()
    n, features, hidden, batch = 8192, 64, 256, 1024
    steps = 50 if quick else 200
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=features) / 8).astype(np.float32)
    model = gd.problems.models.mlp((features, hidden, 1))
    params = model.init(jax.random.PRNGKey(0))

    def loss(p, b):
        bx, by = b
        return jnp.mean((model.apply(p, bx)[:, 0] - by) ** 2)

    mesh = gd.distributed.data_mesh()
    data = gd.distributed.shard_data((x, y), mesh)  # placed once, outside the timing
    local = (jnp.asarray(x), jnp.asarray(y))  # on the device too: no transfer in the timing
    key = jax.random.PRNGKey(1)
    kw = dict(steps=steps, batch_size=batch, key=key)
    out = {"devices": devices, "steps": steps, "global_batch": batch, "examples": n}
    out["params"] = int(sum(a.size for a in jax.tree.leaves(params)))
    repeats = 2 if quick else 3
    out["mesh_step_s"] = (
        _best(lambda: gd.minimize(loss, params, gd.sgd(0.01), data=data, mesh=mesh, **kw).loss,
              repeats) / steps
    )  # fmt: skip
    if devices == 1:
        out["plain_step_s"] = (
            _best(lambda: gd.minimize(loss, params, gd.sgd(0.01), data=local, **kw).loss, repeats)
            / steps
        )
    return out


def child_allreduce(quick: bool) -> list[dict]:
    """Time one all-reduce (sum) of a float32 vector of each model size over all devices."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P

    import jaxgd as gd

    mesh = gd.distributed.data_mesh()
    rounds = 20 if quick else 50

    def many(x):  # `rounds` all-reduces in one program, so dispatch does not count
        def body(_, v):
            return jax.lax.psum(v, "data") * (1.0 / mesh.devices.size)

        return jax.lax.fori_loop(0, rounds, body, x)

    run = jax.jit(jax.shard_map(many, mesh=mesh, in_specs=P(), out_specs=P()))
    out = []
    for size in MODEL_SIZES:
        x = gd.distributed.replicate(jnp.ones(size, jnp.float32), mesh)
        seconds = _best(lambda x=x: run(x), 2 if quick else 5) / rounds
        out.append(
            {
                "params": size,
                "devices": mesh.devices.size,
                "allreduce_s": seconds,
                "gb_per_s": size * 4 / seconds / 1e9,
            }
        )
    return out


def _child(args: argparse.Namespace) -> None:
    result = {"steps": child_steps(args.child, args.quick)}
    if args.child == max(DEVICE_COUNTS):
        result["allreduce"] = child_allreduce(args.quick)
    print("RESULTS " + json.dumps(result))


def _machine() -> dict:
    import jax

    return {
        "cpu_count": os.cpu_count(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _markdown(report: dict) -> str:
    m = report["machine"]
    base = report["one_device_plain_step_s"]
    lines = [
        "# Data-parallel scaling",
        "",
        f"Machine: {m['cpu_count']} CPU cores ({m['processor']}, {m['platform']}), "
        f"JAX {m['jax_version']}, backend {m['backend']} ({m['device_kind']}); devices are "
        f"forced host devices (`--xla_force_host_platform_device_count`). 1-minute load "
        f"average at the start: {m['load_average_1min']:.1f}.",
        "",
    ]
    load = m["load_average_1min"]
    if load is not None and load > m["cpu_count"]:
        lines += [
            f"**The machine was busy** (1-minute load {load:.1f} on {m['cpu_count']} cores, "
            "from other jobs): every timing below includes contention and varies between "
            "runs by tens of percent; read the ratios as rough, and rerun on an idle machine.",
            "",
        ]
    lines += [
        f"## Per-step time at a fixed global batch of {report['steps'][0]['global_batch']}",
        "",
        f"MLP with {report['steps'][0]['params']} params, minibatch SGD, "
        f"{report['steps'][0]['steps']} steps per timed run (best of several). Ratio: against "
        f"the one-device run without a mesh ({base * 1e3:.3f} ms/step), measured in this run.",
        "",
        "| devices | ms / step | ratio to 1 device |",
        "|---|---|---|",
        f"| 1 (mesh=None) | {base * 1e3:.3f} | 1.00 |",
    ]
    for row in report["steps"]:
        t = row["mesh_step_s"]
        lines.append(f"| {row['devices']} | {t * 1e3:.3f} | {t / base:.2f} |")
    lines += [
        "",
        "## All-reduce of the gradient against model size",
        "",
        "One float32 per parameter, summed over 4 devices: the communication a "
        "data-parallel step adds once per step.",
        "",
        "| params | µs per all-reduce | GB/s (payload) |",
        "|---|---|---|",
    ]
    for row in report["allreduce"]:
        lines.append(
            f"| {row['params']:,} | {row['allreduce_s'] * 1e6:.1f} | {row['gb_per_s']:.2f} |"
        )
    lines += ["", "## What these figures can and cannot show", "", report["caveat"], ""]
    return "\n".join(lines)


CAVEAT = (
    "Forced host devices are slices of one CPU: D devices share the same cores (and one "
    "device's XLA program already uses several threads), so on this machine per-step time "
    "cannot fall like 1/D; with more devices than cores it can only rise. The figures measure "
    "the overhead data parallelism adds (the partitioned program, the all-reduce, the "
    "synchronisation between devices) and how the all-reduce grows with model size, which "
    "are the costs a real cluster also pays. They say nothing about speedup on hardware "
    "where each device has its own compute: run the same script on a multi-GPU host (the "
    "devices are then GPUs and the all-reduce goes over NVLink/NCCL) or, with "
    "`gd.distributed.initialize()` in each process, on a multi-host cluster."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args)
        return 0

    machine = _machine()
    steps, allreduce = [], []
    for devices in DEVICE_COUNTS:
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        cmd = [sys.executable, __file__, "--child", str(devices)] + (
            ["--quick"] if args.quick else []
        )
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(lines[-1][len("RESULTS ") :])
        steps.append(result["steps"])
        allreduce += result.get("allreduce", [])
        print(f"{devices} device(s): {result['steps']['mesh_step_s'] * 1e3:.3f} ms/step")
    report = {
        "machine": machine,
        "one_device_plain_step_s": steps[0]["plain_step_s"],
        "steps": steps,
        "allreduce": allreduce,
        "caveat": CAVEAT,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "scaling.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

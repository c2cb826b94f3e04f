"""Target group: latency. The README quick start in a fresh process, the
compile time of a small ``minimize``, and compilations on second calls."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

import jaxgd as gd

from .run_loop import linear_loss, regression
from .timing import JAXGD_ROOT, CompileCounter, block, interleaved


def _quick_start_code() -> str:
    readme = (JAXGD_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


def bench_latency(repeats: int) -> dict:
    out: dict = {}
    code = _quick_start_code()
    walls = []
    for _ in range(max(3, repeats // 3)):
        start = time.perf_counter()
        command = [sys.executable, "-c", code]
        subprocess.run(command, check=True, capture_output=True, cwd=JAXGD_ROOT, timeout=300)
        walls.append(time.perf_counter() - start)
    imports = []
    for _ in range(max(3, repeats // 3)):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jaxgd"], check=True, capture_output=True)
        imports.append(time.perf_counter() - start)
    out["quick_start_s"] = statistics.median(walls)
    out["import_jaxgd_s"] = statistics.median(imports)

    # Compile time of a small minimize: a problem of its own, so nothing is cached.
    def fresh_loss(p):
        return jnp.sum((p - jnp.arange(3.0)) ** 2)

    p0 = jnp.zeros(3)
    start = time.perf_counter()
    block(gd.minimize(fresh_loss, p0, gd.adam(0.1), steps=200))
    first = time.perf_counter() - start
    warm = interleaved(
        {"warm": lambda: block(gd.minimize(fresh_loss, p0, gd.adam(0.1), steps=200))}, repeats
    )["warm"]
    out["small_minimize_first_call_s"] = first
    out["small_minimize_warm_call_s"] = warm
    out["small_minimize_compile_s"] = first - warm

    # Compilations on second calls (inputs built before counting).
    x, y = regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    other = {"w": jnp.ones(2), "b": jnp.ones(())}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)

    def run(p, opt, key):
        return block(gd.minimize(linear_loss, p, opt, steps=100, data=data, batch_size=32, key=key))

    run(params, gd.adam(1e-2), keys[0])
    counts = {}
    for name, args in {
        "new_hyperparameters": (params, gd.adam(3e-3, b1=0.8, b2=0.99, eps=1e-6), keys[0]),
        "new_initial_params": (other, gd.adam(1e-2), keys[0]),
        "new_key": (params, gd.adam(1e-2), keys[1]),
    }.items():
        with CompileCounter() as counter:
            run(*args)
        counts[name] = counter.count
    out["compilations_on_second_call"] = counts
    return out

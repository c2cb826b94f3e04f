"""Target group: one Adam step on 10M float32 params inside ``minimize`` against a
memory-bound XLA kernel moving the same bytes and the best hand-written loop;
the peak memory of that run; ``gd.make_step`` against a jitted optax step."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import optax

import jaxgd as gd

from .timing import block, on_gpu, per_step, samples

BIG = 10_000_000  # params in the big-step and make_step targets


def _half_square(p, target):
    """``0.5 |p - target|^2``: its gradient ``p - target`` reads one more array."""
    return 0.5 * jnp.sum((p - target) ** 2)


def _adam_kernel(p, g, m, v, b1=0.9, b2=0.999, lr=1e-3, eps=1e-8):
    """Adam's elementwise update: reads p, g, m, v; writes p, m, v."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr * m / (jnp.sqrt(v) + eps), m, v


def _big_lengths() -> tuple[int, int]:
    return (20, 120) if on_gpu() else (4, 16)


def _hlo_loop_body_stats(compiled_text: str) -> dict:
    """Count the ops of the largest while-loop body of a compiled HLO module."""
    bodies = re.findall(r"body=%?([\w.\-]+)", compiled_text)
    best = {}
    for name in set(bodies):
        m = re.search(r"^%?" + re.escape(name) + r" .*?\{\n(.*?)\n\}", compiled_text, re.M | re.S)
        if not m:
            continue
        ops = re.findall(r"= \S+ ([a-z][\w\-]*)\(", m.group(1))
        big = [
            line
            for line in m.group(1).splitlines()
            if re.search(r"= f32\[\d{6,}\]", line) and " get-tuple-element(" not in line
        ]
        stats = {
            "ops": len(ops),
            "fusions": ops.count("fusion"),
            "copies": ops.count("copy"),
            "conditionals": ops.count("conditional"),
            "full_size_ops": len(big),
            "full_size_copies": sum(" copy(" in line for line in big),
        }
        if stats["ops"] > best.get("ops", -1):
            best = stats
    return best


def bench_big_step(repeats: int) -> dict:
    short, long = _big_lengths()
    key = jax.random.PRNGKey(0)
    target = jax.random.normal(key, (BIG,), jnp.float32)
    p0 = jnp.zeros(BIG, jnp.float32)
    g = jax.random.normal(jax.random.fold_in(key, 1), (BIG,), jnp.float32)

    def kernel_run(n):
        @jax.jit
        def run(p, m, v):
            return jax.lax.fori_loop(
                0, n, lambda _, c: _adam_kernel(c[0], g, c[1], c[2]), (p, m, v)
            )

        donated = jax.jit(run, donate_argnums=(0, 1, 2))

        def go():
            bufs = (p0 + 0, jnp.zeros_like(p0), jnp.zeros_like(p0))
            return block(donated(*bufs))

        return go

    def handwritten_run(n):
        """The best hand-written loop of the same run: the gradient and the Adam
        kernel, donated, no history and no stopping rule."""

        @jax.jit
        def run(p, m, v):
            def body(_, c):
                return _adam_kernel(c[0], jax.grad(_half_square)(c[0], target), c[1], c[2])

            return jax.lax.fori_loop(0, n, body, (p, m, v))

        donated = jax.jit(run, donate_argnums=(0, 1, 2))
        return lambda: block(donated(p0 + 0, jnp.zeros_like(p0), jnp.zeros_like(p0)))

    def minimize_run(n):
        opt = gd.adam(1e-3)
        return lambda: block(gd.minimize(_half_square, p0, opt, steps=n, data=target))

    # Interleaved: the short and long runs of each in turn.
    runs = {"kernel": kernel_run, "handwritten": handwritten_run, "minimize": minimize_run}
    raw = samples(
        {f"{name}_{n}": make(n) for name, make in runs.items() for n in (short, long)}, repeats
    )

    def per_round(name):
        return [
            (b - a) / (long - short)
            for a, b in zip(raw[f"{name}_{short}"], raw[f"{name}_{long}"], strict=True)
        ]

    def step_of(name):
        median = statistics.median
        return (median(raw[f"{name}_{long}"]) - median(raw[f"{name}_{short}"])) / (long - short)

    def spread(ours, theirs):
        rounds = sorted(a / b for a, b in zip(per_round(ours), per_round(theirs), strict=True))
        return [rounds[len(rounds) // 10], rounds[(9 * len(rounds)) // 10]]

    kernel, ours, hand = step_of("kernel"), step_of("minimize"), step_of("handwritten")
    out = {
        "params": BIG,
        "run_lengths": [short, long],
        "seconds_per_step": {"minimize": ours, "adam_kernel": kernel, "handwritten": hand},
        "ratio_vs_kernel": ours / kernel,
        "ratio_rounds_p10_p90": spread("minimize", "kernel"),
        "ratio_vs_handwritten": ours / hand,
        "handwritten_rounds_p10_p90": spread("minimize", "handwritten"),
        "handwritten_vs_kernel": hand / kernel,
        "kernel_bandwidth_GBps": 7 * 4 * BIG / kernel / 1e9,
    }
    try:  # what the compiled loop does per step, read from minimize's HLO under jax.jit
        run = lambda p, t: gd.minimize(_half_square, p, gd.adam(1e-3), steps=long, data=t)  # noqa: E731
        text = jax.jit(run).lower(p0, target).compile().as_text()
        out["minimize_loop_body"] = _hlo_loop_body_stats(text)
    except Exception as err:  # pragma: no cover - diagnostics must not break the run
        out["minimize_loop_body"] = f"unavailable: {err!r}"
    out["memory"] = _big_memory()
    return out


_MEMORY_PROBE = """
import resource, sys, jax, jax.numpy as jnp
import jaxgd as gd
n = int(sys.argv[1])
def half_square(p, target):
    return 0.5 * jnp.sum((p - target) ** 2)
def status(field):  # Linux: VmRSS (now) and VmHWM (peak since the last reset), KiB
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
small = gd.minimize(half_square, jnp.zeros(8), gd.adam(1e-3), steps=3, data=jnp.ones(8))
jax.block_until_ready(small)
try:  # reset the peak, so it counts the big run only (not import-time transients)
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS:")
except OSError:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
target = jax.random.normal(jax.random.PRNGKey(0), (n,), jnp.float32)
p0 = jnp.zeros(n, jnp.float32)
jax.block_until_ready(gd.minimize(half_square, p0, gd.adam(1e-3), steps=5, data=target))
try:
    peak = status("VmHWM:")
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak)
"""


def _big_memory() -> dict:
    """Peak RSS of a fresh process running the 10M-param minimize (KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    try:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(BIG)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout.split()
    except (subprocess.SubprocessError, OSError) as err:  # pragma: no cover
        return {"error": repr(err)}
    base, peak = int(out[0]) * scale, int(out[1]) * scale
    array = 4 * BIG
    return {
        "peak_rss_bytes": peak,
        "rss_before_big_run_bytes": base,
        "big_run_rss_bytes": peak - base,
        "needed_bytes": {
            "params": array,
            "gradient": array,
            "adam_state": 2 * array,
            "data_target": array,
            "total": 5 * array,
        },
        "big_run_over_needed": (peak - base) / (5 * array),
        "note": "on a GPU the arrays live in device memory; RSS then counts host memory only",
    }


def bench_make_step(repeats: int) -> dict:
    short, long = _big_lengths()
    target = jax.random.normal(jax.random.PRNGKey(0), (BIG,), jnp.float32)
    p0 = jnp.zeros(BIG, jnp.float32)
    opt = optax.adam(1e-3)

    @jax.jit
    def plain(p, s, t):
        value, grads = jax.value_and_grad(_half_square)(p, t)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    step = gd.make_step(_half_square, gd.adam(1e-3))

    def loop(fn, init):
        def make(n):
            def go():
                p = p0 + 0
                s = init(p)
                for _ in range(n):
                    p, s, value = fn(p, s, target)
                return block((p, value))

            return go

        return make

    ours = per_step(loop(step, step.init), short, long, repeats)
    theirs = per_step(loop(plain, opt.init), short, long, repeats)
    return {
        "params": BIG,
        "run_lengths": [short, long],
        "seconds_per_step": {"make_step": ours, "optax_jit_step": theirs},
        "speedup": theirs / ours,
    }

"""Speed of jaxgd against the loops people write today, measured side by side.

Every figure is a ratio of two timings taken in the same process, interleaved
(one repeat of each in turn), as the median of several repeats, with
``block_until_ready`` on every result. The targets (see the README's Speed
section):

1. ``run_loop``: ``gd.minimize``, 1000 Adam steps on a 200x2 regression, against
   the Python loop of jitted optax steps (>= 25x) and torch.optim eager
   (>= 100x); the raw ``lax.scan`` of optax steps is shown for reference.
2. ``sweep``: 64 learning rates x 1000 steps in one vmapped call against 64
   sequential ``minimize`` calls (>= 8x).
3. ``big_step``: one Adam step on 10M float32 params inside ``minimize`` within
   1.2x of a memory-bound XLA kernel moving the same bytes (4 arrays read, 3
   written, donated); per-step times are differences of two run lengths. Also
   the peak resident memory of that run (in a fresh subprocess).
4. ``mlp``: 500 full-batch Adam steps of a 64-128-10 MLP on scikit-learn's
   digits against torch.optim eager (<= 0.6x the time).
5. ``latency``: the README quick start in a fresh process (<= 2 s), the compile
   time of a small ``minimize``, and compilations on second calls (0).
6. ``make_step``: ``gd.make_step`` (donated buffers) against a plain jitted
   optax step on 10M params.
7. ``per_call``: ``minimize(steps=1)`` against one call of a jitted optax step
   (<= 1.5x): what a warm call costs around its step.
8. ``optimistix``: ``minimize`` against ``optimistix.minimise`` with the same
   optax Adam, 5000 steps, both warm (< 1x).
9. ``cli``: ``jaxgd compare --quick`` twice, in fresh processes sharing a fresh
   cache folder (the second run shows the persistent compile cache, where the
   CLI has one).

Ratios of the run loop, the sweep, the per-call cost and optimistix are also
given over the fastest rounds and as the spread of the per-round ratios: on a
loaded machine the fastest rounds are the least disturbed, and the spread says
how noisy the figure is.

Run ``python benchmarks/speed.py`` (all, a few minutes on 2 CPU cores) or
``--only run_loop,sweep``. Results go to ``benchmarks/results/speed.json`` and
``speed.md``. torch is optional (``pip install -e ".[bench]"``); without it the
torch comparisons are reported as skipped. The script runs unchanged on a GPU
(it prints the device and sizes its step counts by backend).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BIG = 10_000_000  # params in the big-step and make_step targets

try:  # torch is an optional benchmark extra
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None


# --------------------------------------------------------------------------- #
# Timing
# --------------------------------------------------------------------------- #


def _block(x):
    return jax.block_until_ready(x)


def samples(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function in each of ``repeats`` rounds, timed in turn so
    load drifts hit all alike (a warm-up call of each first, outside the timing)."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return times


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn (see :func:`samples`)."""
    return {k: statistics.median(v) for k, v in samples(fns, repeats).items()}


def ratio_of(times: dict[str, list[float]], ours: str, theirs: str) -> dict:
    """``ours / theirs`` as the ratio of medians, the ratio of the fastest
    rounds (what a loaded machine disturbs least) and the spread of the
    per-round ratios (their 10th and 90th percentiles): how noisy it was."""
    rounds = sorted(a / b for a, b in zip(times[ours], times[theirs], strict=True))
    pick = lambda q: rounds[min(len(rounds) - 1, int(q * len(rounds)))]  # noqa: E731
    return {
        "median": statistics.median(times[ours]) / statistics.median(times[theirs]),
        "best": min(times[ours]) / min(times[theirs]),
        "rounds_p10_p90": [pick(0.1), pick(0.9)],
    }


def per_step(
    make: Callable[[int], Callable[[], object]], short: int, long: int, repeats: int
) -> float:
    """Seconds per step: (time of ``long`` steps - time of ``short``) / (long - short).

    Compile, dispatch and fixed costs are the same in both runs and fall out.
    """
    t = interleaved({"short": make(short), "long": make(long)}, repeats)
    return (t["long"] - t["short"]) / (long - short)


def machine() -> dict:
    dev = jax.devices()[0]
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "torch": None if torch is None else torch.__version__,
        "torch_threads": None if torch is None else torch.get_num_threads(),
        "torch_device": None if torch is None else _torch_device(),
    }


def _on_gpu() -> bool:
    return jax.default_backend() != "cpu"


def _torch_device() -> str:
    """torch runs where JAX runs: on the GPU when both have one, else the CPU."""
    return "cuda" if _on_gpu() and torch is not None and torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- #
# 1. The run loop
# --------------------------------------------------------------------------- #


def _regression():
    """The 200x2 regression: standardised student-marks data, a linear model."""
    x, y = gd.problems.student_marks_data()
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return x.astype(np.float32), y.astype(np.float32)


def _linear_loss(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _optax_step(opt):
    """A jitted optax step on the regression:
    ``(params, state, batch) -> (params, state, loss)``."""

    @jax.jit
    def step(p, s, batch):
        value, grads = jax.value_and_grad(_linear_loss)(p, batch)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    return step


def bench_run_loop(repeats: int) -> dict:
    steps, lr = 1000, 1e-2
    x, y = _regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    opt = optax.adam(lr)

    optax_step = _optax_step(opt)

    def python_loop():
        p, s = params, opt.init(params)
        for _ in range(steps):
            p, s, value = optax_step(p, s, data)
        return _block((p, value))

    @jax.jit
    def optax_scan(p, batch):
        def body(carry, _):
            p, s, value = optax_step(*carry, batch)  # inlined: one compiled loop
            return (p, s), value

        return jax.lax.scan(body, (p, opt.init(p)), length=steps)

    def run_minimize():
        return _block(gd.minimize(_linear_loss, params, gd.adam(lr), steps=steps, data=data))

    # Compile time of minimize, measured apart: first call minus a warm call.
    start = time.perf_counter()
    result = run_minimize()
    first = time.perf_counter() - start
    # The pair the target is about, timed in turn on their own (a round of the
    # 35 ms Python loop between them disturbs the 2 ms runs it sits next to),
    # then the Python loop against minimize.
    scan = lambda: _block(optax_scan(params, data))  # noqa: E731
    raw = samples({"minimize": run_minimize, "optax_scan": scan}, 4 * repeats)
    loop = interleaved({"minimize": run_minimize, "optax_python_loop": python_loop}, repeats)
    t = {k: statistics.median(v) for k, v in raw.items()}
    t["optax_python_loop"] = loop["optax_python_loop"]
    speedup = loop["optax_python_loop"] / loop["minimize"]
    out = {
        "steps": steps,
        "seconds": t,
        "minimize_vs_scan_ratio": ratio_of(raw, "minimize", "optax_scan"),
        "minimize_compile_s": first - t["minimize"],
        "speedup_vs_optax_loop": speedup,
        "scan_speedup_vs_optax_loop": speedup * t["minimize"] / t["optax_scan"],
        "minimize_vs_scan": t["minimize"] / t["optax_scan"],
        "final_loss": float(result.loss),
    }
    if torch is None:
        out["torch"] = "skipped: torch is not installed (pip install -e '.[bench]')"
        return out

    dev = _torch_device()
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def torch_loop():
        w = torch.zeros(2, requires_grad=True, device=dev)
        b = torch.zeros((), requires_grad=True, device=dev)
        optim = torch.optim.Adam([w, b], lr=lr)
        for _ in range(steps):
            optim.zero_grad()
            value = torch.mean((xt @ w + b - yt) ** 2)
            value.backward()
            optim.step()
        return value.item()  # .item() waits for the device

    tt = interleaved({"minimize": run_minimize, "torch_eager": torch_loop}, max(3, repeats // 3))
    out["seconds"]["torch_eager"] = tt["torch_eager"]
    out["speedup_vs_torch"] = tt["torch_eager"] / tt["minimize"]
    out["torch_final_loss"] = torch_loop()
    return out


# --------------------------------------------------------------------------- #
# 2. The sweep
# --------------------------------------------------------------------------- #


def bench_sweep(repeats: int) -> dict:
    steps, n = 1000, 64
    x, y = _regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    rates = np.logspace(-4, 0, n).astype(np.float32)
    rates_j = jnp.asarray(rates)

    @jax.jit
    def swept(lrs):
        return jax.vmap(
            lambda lr: gd.minimize(_linear_loss, params, gd.adam(lr), steps=steps, data=data)
        )(lrs)

    def sequential():
        return _block(
            [
                gd.minimize(_linear_loss, params, gd.adam(float(lr)), steps=steps, data=data)
                for lr in rates
            ]
        )

    @jax.jit
    def raw_scan(lrs):
        """The hand-written sweep: a vmapped lax.scan of optax Adam steps keeping its loss curve."""

        def one(lr):
            opt = optax.adam(lr)

            def body(carry, _):
                p, s = carry
                value, grads = jax.value_and_grad(_linear_loss)(p, data)
                updates, s = opt.update(grads, s, p)
                return (optax.apply_updates(p, updates), s), value

            return jax.lax.scan(body, (params, opt.init(params)), length=steps)

        return jax.vmap(one)(lrs)

    raw = samples(
        {
            "vmapped": lambda: _block(swept(rates_j)),
            "raw_vmapped_scan": lambda: _block(raw_scan(rates_j)),
            "sequential": sequential,
        },
        repeats,
    )
    t = {k: statistics.median(v) for k, v in raw.items()}
    return {
        "runs": n,
        "steps": steps,
        "seconds": t,
        "speedup": t["sequential"] / t["vmapped"],
        "vs_raw_vmapped_scan": ratio_of(raw, "vmapped", "raw_vmapped_scan"),
    }


# --------------------------------------------------------------------------- #
# 7. The per-call cost, 8. optimistix
# --------------------------------------------------------------------------- #


def bench_per_call(repeats: int) -> dict:
    """``minimize(steps=1)`` against one call of a jitted optax Adam step: what a
    warm call costs besides its one step (checks, dispatch, the final evaluation)."""
    x, y = _regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    opt, ours = optax.adam(1e-2), gd.adam(1e-2)
    state = opt.init(params)

    optax_step = _optax_step(opt)

    raw = samples(
        {
            "minimize_steps_1": lambda: _block(
                gd.minimize(_linear_loss, params, ours, steps=1, data=data)
            ),
            "optax_jit_step": lambda: _block(optax_step(params, state, data)),
        },
        60 * repeats,
    )
    return {
        "microseconds_median": {k: statistics.median(v) * 1e6 for k, v in raw.items()},
        "microseconds_best": {k: min(v) * 1e6 for k, v in raw.items()},
        "ratio": ratio_of(raw, "minimize_steps_1", "optax_jit_step"),
    }


def bench_optimistix(repeats: int) -> dict:
    """``minimize`` against ``optimistix.minimise`` with the same optax Adam, 5000
    steps on the 200x2 regression, both warm (compiled) and called from Python."""
    try:
        import optimistix as optx
    except ImportError:  # pragma: no cover - depends on the environment
        return {"skipped": "optimistix is not installed"}
    steps, lr = 5000, 1e-2
    x, y = _regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    # One optax object for both (an optax optimizer is compiled in: a new one
    # compiles anew); rtol = atol = 0: optimistix never stops early either.
    opt = optax.adam(lr)
    solver = optx.OptaxMinimiser(opt, rtol=0.0, atol=0.0)

    def run_optimistix():
        return _block(
            optx.minimise(_linear_loss, solver, params, data, max_steps=steps, throw=False)
        )

    def run_minimize():
        return _block(gd.minimize(_linear_loss, params, opt, steps=steps, data=data))

    raw = samples({"minimize": run_minimize, "optimistix": run_optimistix}, repeats)
    return {
        "steps": steps,
        "seconds": {k: statistics.median(v) for k, v in raw.items()},
        "ratio": ratio_of(raw, "minimize", "optimistix"),
        "optimistix_steps": int(run_optimistix().stats["num_steps"]),
    }


# --------------------------------------------------------------------------- #
# 3. The big step (and its memory), 6. make_step
# --------------------------------------------------------------------------- #


def _half_square(p, target):
    """``0.5 |p - target|^2``: its gradient ``p - target`` reads one more array."""
    return 0.5 * jnp.sum((p - target) ** 2)


def _adam_kernel(p, g, m, v, b1=0.9, b2=0.999, lr=1e-3, eps=1e-8):
    """Adam's elementwise update: reads p, g, m, v; writes p, m, v."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr * m / (jnp.sqrt(v) + eps), m, v


def _big_lengths() -> tuple[int, int]:
    return (20, 120) if _on_gpu() else (4, 16)


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
            return _block(donated(*bufs))

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
        return lambda: _block(donated(p0 + 0, jnp.zeros_like(p0), jnp.zeros_like(p0)))

    def minimize_run(n):
        opt = gd.adam(1e-3)
        return lambda: _block(gd.minimize(_half_square, p0, opt, steps=n, data=target))

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
    try:  # what the compiled loop does per step (private API: a diagnostic only)
        from jaxgd.run import loop

        prepared = sys.modules["jaxgd.minimize"]._prepared
        spec, *args = prepared(_half_square, p0, gd.adam(1e-3), steps=long, data=target)
        text = loop.first_segment.lower(spec, *args, long, True).compile().as_text()
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
                return _block((p, value))

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


# --------------------------------------------------------------------------- #
# 4. A compute-bound run: an MLP on digits
# --------------------------------------------------------------------------- #


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int32)


def _mlp_init(seed=0):
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out):
        return (
            (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32),
            np.zeros(n_out, np.float32),
        )

    (w1, b1), (w2, b2) = dense(64, 128), dense(128, 10)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def _mlp_loss(params, batch):
    x, y = batch
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    logits = hidden @ params["w2"] + params["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def bench_mlp(repeats: int) -> dict:
    steps, lr = 500, 1e-2
    x, y = _digits()
    data = (jnp.asarray(x), jnp.asarray(y))
    init = _mlp_init()
    params = jax.tree.map(jnp.asarray, init)

    def run_minimize():
        return _block(gd.minimize(_mlp_loss, params, gd.adam(lr), steps=steps, data=data))

    result = run_minimize()
    out = {"steps": steps, "examples": int(x.shape[0]), "final_loss": float(result.loss)}
    if torch is None:
        t = interleaved({"minimize": run_minimize}, repeats)
        out["seconds"] = t
        out["torch"] = "skipped: torch is not installed (pip install -e '.[bench]')"
        return out
    dev = _torch_device()
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).long().to(dev)

    def torch_loop():
        ps = {k: torch.tensor(v, requires_grad=True, device=dev) for k, v in init.items()}
        optim = torch.optim.Adam(ps.values(), lr=lr)
        for _ in range(steps):
            optim.zero_grad()
            hidden = torch.relu(xt @ ps["w1"] + ps["b1"])
            value = torch.nn.functional.cross_entropy(hidden @ ps["w2"] + ps["b2"], yt)
            value.backward()
            optim.step()
        return value.item()  # .item() waits for the device

    t = interleaved({"minimize": run_minimize, "torch_eager": torch_loop}, repeats)
    out["seconds"] = t
    out["ratio_vs_torch"] = t["minimize"] / t["torch_eager"]
    out["torch_final_loss"] = torch_loop()
    return out


# --------------------------------------------------------------------------- #
# 5. Latency: quick start, compile time, recompilations
# --------------------------------------------------------------------------- #


def _quick_start_code() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


class _CompileCounter:
    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0

    def __call__(self, event, duration_secs, **kwargs):
        if event == self.EVENT:
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def bench_latency(repeats: int) -> dict:
    out: dict = {}
    code = _quick_start_code()
    walls = []
    for _ in range(max(3, repeats // 3)):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT, timeout=300
        )
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
    _block(gd.minimize(fresh_loss, p0, gd.adam(0.1), steps=200))
    first = time.perf_counter() - start
    warm = interleaved(
        {"warm": lambda: _block(gd.minimize(fresh_loss, p0, gd.adam(0.1), steps=200))}, repeats
    )["warm"]
    out["small_minimize_first_call_s"] = first
    out["small_minimize_warm_call_s"] = warm
    out["small_minimize_compile_s"] = first - warm

    # Compilations on second calls (inputs built before counting).
    x, y = _regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    other = {"w": jnp.ones(2), "b": jnp.ones(())}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)

    def run(p, opt, key):
        return _block(
            gd.minimize(_linear_loss, p, opt, steps=100, data=data, batch_size=32, key=key)
        )

    run(params, gd.adam(1e-2), keys[0])
    counts = {}
    for name, args in {
        "new_hyperparameters": (params, gd.adam(3e-3, b1=0.8, b2=0.99, eps=1e-6), keys[0]),
        "new_initial_params": (other, gd.adam(1e-2), keys[0]),
        "new_key": (params, gd.adam(1e-2), keys[1]),
    }.items():
        with _CompileCounter() as counter:
            run(*args)
        counts[name] = counter.count
    out["compilations_on_second_call"] = counts
    return out


# --------------------------------------------------------------------------- #
# 9. The CLI: `jaxgd compare` run twice
# --------------------------------------------------------------------------- #


def bench_cli(repeats: int) -> dict:
    """``jaxgd compare --quick`` twice, each in a fresh process, with a fresh user
    cache folder (``XDG_CACHE_HOME``): the second run shows what the CLI's
    persistent compile cache saves, where the CLI has one (``--no-cache``)."""
    import tempfile

    del repeats  # two runs, by definition
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "jaxgd", "compare"]
    helptext = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    out: dict = {"compile_cache": "on" if "--no-cache" in helptext else "off (no --no-cache flag)"}
    for name, flags in (("default", []), ("quick", ["--quick"])):
        run = out[name] = {"command": " ".join(["jaxgd compare", *flags, "--no-progress"])}
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as report:
            env["XDG_CACHE_HOME"] = cache  # a cold cache for the first run
            for which in ("first_run_s", "second_run_s"):
                start = time.perf_counter()
                subprocess.run(
                    [*command, *flags, "--no-progress", "--out", report],
                    capture_output=True,
                    env=env,
                    check=True,
                    timeout=1800,
                    # Not a checkout: `python -m` imports from the current folder before
                    # PYTHONPATH, so run from a jaxgd checkout it would time that one.
                    cwd=cache,
                )
                run[which] = time.perf_counter() - start
        run["second_over_first"] = run["second_run_s"] / run["first_run_s"]
    return out


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #

BENCHES = {
    "run_loop": bench_run_loop,
    "sweep": bench_sweep,
    "big_step": bench_big_step,
    "mlp": bench_mlp,
    "latency": bench_latency,
    "make_step": bench_make_step,
    "per_call": bench_per_call,
    "optimistix": bench_optimistix,
    "cli": bench_cli,
}


def _fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def _rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, goal, met) rows of the Markdown table."""
    rows = []

    def add(target, value, goal, met):
        rows.append((target, value, goal, "n/a" if met is None else ("yes" if met else "no")))

    if "run_loop" in results:
        r = results["run_loop"]
        add(
            "1. minimize vs Python loop of jitted optax steps (1000 Adam steps, 200x2)",
            f"{r['speedup_vs_optax_loop']:.1f}x faster",
            ">= 25x",
            r["speedup_vs_optax_loop"] >= 25,
        )
        if "minimize_vs_scan_ratio" in r:
            add(
                "1. minimize vs the raw lax.scan of optax Adam steps",
                _ratio_text(r["minimize_vs_scan_ratio"]),
                "<= 1.05x",
                r["minimize_vs_scan_ratio"]["median"] <= 1.05,
            )
        add(
            "1. (reference) raw lax.scan of optax steps vs that loop",
            f"{r['scan_speedup_vs_optax_loop']:.1f}x faster",
            "-",
            None,
        )
        if "speedup_vs_torch" in r:
            add(
                "1. minimize vs torch.optim eager",
                f"{r['speedup_vs_torch']:.0f}x faster",
                ">= 100x",
                r["speedup_vs_torch"] >= 100,
            )
        else:
            add("1. minimize vs torch.optim eager", "skipped (no torch)", ">= 100x", None)
        add(
            "1. minimize compile time (measured apart)",
            f"{r['minimize_compile_s']:.2f} s",
            "reported",
            None,
        )
    if "sweep" in results:
        r = results["sweep"]
        add(
            "2. 64 learning rates x 1000 steps: one vmapped call vs 64 calls",
            f"{r['speedup']:.1f}x faster",
            ">= 8x",
            r["speedup"] >= 8,
        )
        if "vs_raw_vmapped_scan" in r:
            add(
                "2. 64 learning rates vmapped: minimize vs a raw vmapped optax scan with its "
                "loss curve",
                _ratio_text(r["vs_raw_vmapped_scan"]),
                "<= 1.15x",
                r["vs_raw_vmapped_scan"]["median"] <= 1.15,
            )
    if "big_step" in results:
        r = results["big_step"]
        s = r["seconds_per_step"]
        add(
            "3. Adam step on 10M params in minimize vs memory-bound kernel",
            f"{r['ratio_vs_kernel']:.2f}x the kernel ({s['minimize'] * 1e3:.1f} vs "
            f"{s['adam_kernel'] * 1e3:.1f} ms)",
            "<= 1.2x",
            r["ratio_vs_kernel"] <= 1.2,
        )
        if "ratio_rounds_p10_p90" in r:
            low, high = r["ratio_rounds_p10_p90"]
            add(
                "3. (same: spread of the per-round ratios, 10th-90th percentile)",
                f"{low:.2f}-{high:.2f}x",
                "stable",
                None,
            )
        if "ratio_vs_handwritten" in r:
            low, high = r["handwritten_rounds_p10_p90"]
            add(
                "3. (same) minimize vs the hand-written loop of the gradient and the kernel "
                f"(which is {r['handwritten_vs_kernel']:.2f}x the kernel)",
                f"{r['ratio_vs_handwritten']:.2f}x ({s['handwritten'] * 1e3:.1f} ms; "
                f"rounds {low:.2f}-{high:.2f}x)",
                "<= 1.2x",
                r["ratio_vs_handwritten"] <= 1.2,
            )
        mem = r.get("memory", {})
        if "big_run_rss_bytes" in mem:
            add(
                "3. peak RSS of the 10M run vs bytes needed (params, grad, m, v, data)",
                f"{mem['big_run_rss_bytes'] / 2**20:.0f} MiB vs "
                f"{mem['needed_bytes']['total'] / 2**20:.0f} MiB "
                f"({mem['big_run_over_needed']:.2f}x)",
                "reported",
                None,
            )
    if "mlp" in results:
        r = results["mlp"]
        if "ratio_vs_torch" in r:
            add(
                "4. MLP 64-128-10 on digits, 500 Adam steps: minimize vs torch eager",
                f"{r['ratio_vs_torch']:.2f}x the time",
                "<= 0.6x",
                r["ratio_vs_torch"] <= 0.6,
            )
        else:
            add("4. MLP on digits vs torch eager", "skipped (no torch)", "<= 0.6x", None)
    if "latency" in results:
        r = results["latency"]
        add(
            "5. README quick start in a fresh process (import, compile, run)",
            f"{r['quick_start_s']:.2f} s (import jaxgd {r['import_jaxgd_s']:.2f} s)",
            "<= 2 s",
            r["quick_start_s"] <= 2,
        )
        add(
            "5. compile time of a small minimize (200 Adam steps, 3 params)",
            f"{r['small_minimize_compile_s']:.2f} s",
            "reported",
            None,
        )
        counts = r["compilations_on_second_call"]
        add(
            "5. compilations on a 2nd call: new hyperparameters / params / key",
            " / ".join(str(counts[k]) for k in counts),
            "0 / 0 / 0",
            not any(counts.values()),
        )
    if "make_step" in results:
        r = results["make_step"]
        s = r["seconds_per_step"]
        add(
            "6. gd.make_step (donated) vs plain jitted optax step, 10M params",
            f"{r['speedup']:.2f}x faster ({s['make_step'] * 1e3:.1f} vs "
            f"{s['optax_jit_step'] * 1e3:.1f} ms/step)",
            "measured",
            None,
        )
    if "per_call" in results:
        r = results["per_call"]
        us = r["microseconds_median"]
        add(
            "7. minimize(steps=1) vs one call of a jitted optax step (per-call cost)",
            _ratio_text(r["ratio"])
            + f" ({us['minimize_steps_1']:.0f} vs {us['optax_jit_step']:.0f} us)",
            "<= 1.5x",
            r["ratio"]["median"] <= 1.5,
        )
    if "optimistix" in results:
        r = results["optimistix"]
        if "ratio" in r:
            add(
                "8. minimize vs optimistix.minimise, same optax Adam, 5000 steps, both warm",
                _ratio_text(r["ratio"]),
                "< 1x",
                r["ratio"]["median"] < 1,
            )
        else:
            add("8. minimize vs optimistix.minimise", r["skipped"], "< 1x", None)
    if "cli" in results:
        r = results["cli"]
        if "default" in r:
            d = r["default"]
            add(
                "9. jaxgd compare (default): first run (cold compile cache), fresh process",
                f"{d['first_run_s']:.1f} s",
                "<= 20 s",
                d["first_run_s"] <= 20,
            )
            add(
                "9. jaxgd compare (default): second run (warm compile cache)",
                f"{d['second_run_s']:.1f} s (compile cache: {r['compile_cache']})",
                "<= 8 s",
                d["second_run_s"] <= 8,
            )
            q = r["quick"]
            add(
                "9. jaxgd compare --quick: first / second run",
                f"{q['first_run_s']:.1f} s / {q['second_run_s']:.1f} s",
                "reported",
                None,
            )
    return rows


def _ratio_text(r: dict) -> str:
    low, high = r["rounds_p10_p90"]
    return f"{r['median']:.2f}x the time (fastest {r['best']:.2f}x; rounds {low:.2f}-{high:.2f}x)"


def to_markdown(results: dict, info: dict) -> str:
    head = (
        f"Machine: {info['cpu_count']} CPU cores ({info['processor']}), {info['platform']}; "
        f"JAX {info['jax']} on {info['backend']} ({info['device']}); "
        f"torch {info['torch'] or 'not installed'}."
        + (f" {info['note']}" if info.get("note") else "")
    )
    lines = [
        "# jaxgd speed",
        "",
        head,
        "",
        "| target | measured | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {t} | {v} | {g} | {m} |" for t, v, g, m in _rows(results)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}"
    )
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per figure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for speed.json/.md")
    parser.add_argument(
        "--note", default="", help="said of the machine in the results (e.g. 'shared, noisy')"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    info = machine()
    if args.note:
        info["note"] = args.note
    print(
        textwrap.dedent(f"""\
        jaxgd speed: {info["cpu_count"]} CPU cores, JAX {info["jax"]},
        backend {info["backend"]} ({info["device"]} x{info["device_count"]}),
        torch {info["torch"] or "not installed: torch comparisons skipped"}""")
    )
    results = {}
    for name in chosen:
        start = time.perf_counter()
        results[name] = BENCHES[name](args.repeats)
        print(f"\n[{name}] ({time.perf_counter() - start:.0f} s)")
        print(json.dumps(results[name], indent=2, default=float))
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": 1,
        "machine": info,
        "repeats": args.repeats,
        "peak_rss_of_this_process_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        * (1 if sys.platform == "darwin" else 1024),
        "results": results,
    }
    previous = args.out / "speed.json"
    if previous.exists() and set(chosen) != set(BENCHES):  # --only: update those entries
        old = json.loads(previous.read_text())
        if old.get("machine", {}).get("cpu_count") == info["cpu_count"]:
            results = {**old.get("results", {}), **results}
            payload["results"] = results
    (args.out / "speed.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    markdown = to_markdown(results, info)
    (args.out / "speed.md").write_text(markdown)
    print("\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

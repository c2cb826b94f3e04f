"""Target group: the run loop against the loops people write (a Python loop of
jitted optax steps, the raw ``lax.scan``, torch.optim eager, optimistix), and
the cost of one warm call.

The workload is a 200x2 linear regression (student marks, standardised),
shared with the sweep and compile-time groups.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd

from .timing import (
    TORCH_SKIPPED,
    block,
    interleaved,
    medians,
    ratio_of,
    samples,
    torch,
    torch_device,
)


def regression():
    """The 200x2 regression: standardised student-marks data, a linear model."""
    x, y = gd.problems.student_marks_data()
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return x.astype(np.float32), y.astype(np.float32)


def linear_loss(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def optax_step(opt, p, s, batch):
    """An optax step on the regression: ``(params, state, loss)``."""
    value, grads = jax.value_and_grad(linear_loss)(p, batch)
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value


def jitted_optax_step(opt):
    """:func:`optax_step` of ``opt``, jitted: ``(params, state, batch) -> (params, state,
    loss)``."""
    return jax.jit(lambda p, s, batch: optax_step(opt, p, s, batch))


def optax_scan(opt, params, batch, steps: int):
    """The hand-written run: a ``lax.scan`` of optax steps on the regression
    keeping its loss curve; ``((params, state), losses)``. Traceable (vmap it
    over a rate)."""

    def body(carry, _):
        p, s, value = optax_step(opt, *carry, batch)
        return (p, s), value

    return jax.lax.scan(body, (params, opt.init(params)), length=steps)


def bench_run_loop(repeats: int) -> dict:
    steps, lr = 1000, 1e-2
    x, y = regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    opt = optax.adam(lr)

    optax_step = jitted_optax_step(opt)

    def python_loop():
        p, s = params, opt.init(params)
        for _ in range(steps):
            p, s, value = optax_step(p, s, data)
        return block((p, value))

    scanned = jax.jit(lambda p, batch: optax_scan(opt, p, batch, steps))

    def run_minimize():
        return block(gd.minimize(linear_loss, params, gd.adam(lr), steps=steps, data=data))

    # Compile time of minimize, measured apart: first call minus a warm call.
    start = time.perf_counter()
    result = run_minimize()
    first = time.perf_counter() - start
    # The pair the target is about, timed in turn on their own (a round of the
    # 35 ms Python loop between them disturbs the 2 ms runs it sits next to),
    # then the Python loop against minimize.
    scan = lambda: block(scanned(params, data))  # noqa: E731
    raw = samples({"minimize": run_minimize, "optax_scan": scan}, 4 * repeats)
    loop = interleaved({"minimize": run_minimize, "optax_python_loop": python_loop}, repeats)
    t = medians(raw)
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
        out["torch"] = TORCH_SKIPPED
        return out

    dev = torch_device()
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


def bench_per_call(repeats: int) -> dict:
    """``minimize(steps=1)`` against one call of a jitted optax Adam step: what a
    warm call costs besides its one step (checks, dispatch, the final evaluation)."""
    x, y = regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    opt, ours = optax.adam(1e-2), gd.adam(1e-2)
    state = opt.init(params)

    optax_step = jitted_optax_step(opt)

    raw = samples(
        {
            "minimize_steps_1": lambda: block(
                gd.minimize(linear_loss, params, ours, steps=1, data=data)
            ),
            "optax_jit_step": lambda: block(optax_step(params, state, data)),
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
    x, y = regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    # One optax object for both (an optax optimizer is compiled in: a new one
    # compiles anew); rtol = atol = 0: optimistix never stops early either.
    opt = optax.adam(lr)
    solver = optx.OptaxMinimiser(opt, rtol=0.0, atol=0.0)

    def run_optimistix():
        return block(optx.minimise(linear_loss, solver, params, data, max_steps=steps, throw=False))

    def run_minimize():
        return block(gd.minimize(linear_loss, params, opt, steps=steps, data=data))

    raw = samples({"minimize": run_minimize, "optimistix": run_optimistix}, repeats)
    return {
        "steps": steps,
        "seconds": medians(raw),
        "ratio": ratio_of(raw, "minimize", "optimistix"),
        "optimistix_steps": int(run_optimistix().stats["num_steps"]),
    }

"""Timing helpers: interleaved rounds, ratios and their spread, per-step costs,
compilations counted, and the machine the figures were taken on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax

import jaxgd

try:  # torch is an optional benchmark extra
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

JAXGD_ROOT = Path(jaxgd.__file__).resolve().parents[1]
"""The checkout whose jaxgd is timed (the one imported, which may be an older
tree than this benchmark's): subprocesses run it, and read its README."""

TORCH_SKIPPED = "skipped: torch is not installed (pip install -e '.[bench]')"


def block(x):
    """``x`` once every array in it is computed."""
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


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each function's rounds."""
    return {k: statistics.median(v) for k, v in times.items()}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed in turn (see :func:`samples`)."""
    return medians(samples(fns, repeats))


def ratio_of(times: dict[str, list[float]], ours: str, theirs: str) -> dict:
    """``ours / theirs`` as the ratio of medians, the ratio of the fastest
    rounds (what a loaded machine disturbs least) and the spread of the
    per-round ratios (their 10th and 90th percentiles): how noisy it was."""
    rounds = sorted(a / b for a, b in zip(times[ours], times[theirs], strict=True))
    return {
        "median": statistics.median(times[ours]) / statistics.median(times[theirs]),
        "best": min(times[ours]) / min(times[theirs]),
        "rounds_p10_p90": [percentile(rounds, 0.1), percentile(rounds, 0.9)],
    }


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of an ascending list (the nearest rank below)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_step(
    make: Callable[[int], Callable[[], object]], short: int, long: int, repeats: int
) -> float:
    """Seconds per step: (time of ``long`` steps - time of ``short``) / (long - short).

    Compile, dispatch and fixed costs are the same in both runs and fall out.
    """
    t = interleaved({"short": make(short), "long": make(long)}, repeats)
    return (t["long"] - t["short"]) / (long - short)


class CompileCounter:
    """Counts XLA compilations inside a ``with`` block (``.count``)."""

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


def on_gpu() -> bool:
    return jax.default_backend() != "cpu"


def torch_device() -> str:
    """torch runs where JAX runs: on the GPU when both have one, else the CPU."""
    return "cuda" if on_gpu() and torch is not None and torch.cuda.is_available() else "cpu"


def machine() -> dict:
    """The machine, the libraries and the devices the figures were taken on."""
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
        "torch_device": None if torch is None else torch_device(),
    }

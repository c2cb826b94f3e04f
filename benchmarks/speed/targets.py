"""The speed targets: ONE list, read by the report table and ``--list``.

Each :class:`Target` says which benchmark group's results it reads, what is
timed, against which baseline, and its goal. The goal is written once, as the
table shows it; ``">= 25x"``, ``"<= 1.2x"``, ``"< 1x"`` or ``"<= 2 s"`` is also
the test the figure must pass, ``"0 / 0 / 0"`` the counts it must equal, and a
word (``reported``, ``measured``, ``stable``, ``-``) a figure with no goal.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_BOUND = re.compile(r"^(>=|<=|<|>)\s*([\d.]+)\s*(x|s)?$")
_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Target:
    """One row of the speed table.

    Attributes:
        group: the benchmark group whose results it reads (``--only`` names).
        name: the row's label; ``{key}`` fields are filled from the results.
        timed: what is timed.
        baseline: what it is timed against (in the same process, interleaved).
        goal: the goal as the table shows it (see the module docstring).
        figure: the number (or counts) the goal is tested on.
        measured: the table's "measured" cell.
        needs: a result key (dotted for nested ones) the row needs; when it is
            absent the row reads ``skipped`` (if given) or is left out.
        skipped: the "measured" cell when ``needs`` is absent.
        skipped_name: the row's label then (default ``name``).
    """

    group: str
    name: str
    timed: str
    baseline: str
    goal: str
    figure: Callable[[dict], Any]
    measured: Callable[[dict], str]
    needs: str | None = None
    skipped: Callable[[dict], str] | None = None
    skipped_name: str | None = None

    def met(self, results: dict) -> bool | None:
        """Whether the figure meets the goal; None where there is no goal."""
        value = self.figure(results)
        bound = _BOUND.match(self.goal)
        if bound:
            return _OPS[bound.group(1)](value, float(bound.group(2)))
        counts = self.goal.split(" / ")
        if all(c.strip().isdigit() for c in counts):
            return [int(c) for c in counts] == list(value)
        return None

    def row(self, results: dict) -> tuple[str, str, str, str] | None:
        """``(target, measured, goal, met)``, or None when the row is left out."""
        if self.needs is not None and not _has(results, self.needs):
            if self.skipped is None:
                return None
            return (self.skipped_name or self.name, self.skipped(results), self.goal, "n/a")
        met = self.met(results)
        verdict = "n/a" if met is None else ("yes" if met else "no")
        return (self.name.format(**results), self.measured(results), self.goal, verdict)


def _has(results: dict, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(results, dict) or key not in results:
            return False
        results = results[key]
    return True


def ratio_text(r: dict) -> str:
    """A ratio of times: the median, the fastest rounds and the per-round spread."""
    low, high = r["rounds_p10_p90"]
    return f"{r['median']:.2f}x the time (fastest {r['best']:.2f}x; rounds {low:.2f}-{high:.2f}x)"


def _fastest(r: dict) -> str:
    """A ratio whose goal is tested on the fastest rounds: those first, the median beside."""
    low, high = r["rounds_p10_p90"]
    spread = f"median {r['median']:.2f}x; rounds {low:.2f}-{high:.2f}x"
    return f"{r['best']:.2f}x the time, fastest rounds ({spread})"


def _instruments(batch: str, ratio: str, goal: str, name: str, timed: str, baseline: str):
    """A row of the instruments' cost (group ``diagnostics``): the ``ratio`` of the
    ``batch`` case, its goal tested on the fastest rounds."""
    return Target(
        "diagnostics", name, timed, baseline, goal,
        lambda r: r[batch][ratio]["best"], lambda r: _fastest(r[batch][ratio]),
    )  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _no_torch(r: dict) -> str:
    return "skipped (no torch)"


def _big_step(r: dict) -> str:
    s = r["seconds_per_step"]
    return (
        f"{r['ratio_vs_kernel']:.2f}x the kernel "
        f"({_ms(s['minimize'])} vs {_ms(s['adam_kernel'])} ms)"
    )


def _handwritten(r: dict) -> str:
    low, high = r["handwritten_rounds_p10_p90"]
    return (
        f"{r['ratio_vs_handwritten']:.2f}x ({_ms(r['seconds_per_step']['handwritten'])} ms; "
        f"rounds {low:.2f}-{high:.2f}x)"
    )


def _memory(r: dict) -> str:
    mem = r["memory"]
    return (
        f"{mem['big_run_rss_bytes'] / 2**20:.0f} MiB vs "
        f"{mem['needed_bytes']['total'] / 2**20:.0f} MiB ({mem['big_run_over_needed']:.2f}x)"
    )


def _make_step(r: dict) -> str:
    s = r["seconds_per_step"]
    return (
        f"{r['speedup']:.2f}x faster ({_ms(s['make_step'])} vs {_ms(s['optax_jit_step'])} ms/step)"
    )


def _per_call(r: dict) -> str:
    us = r["microseconds_median"]
    return ratio_text(r["ratio"]) + (
        f" ({us['minimize_steps_1']:.0f} vs {us['optax_jit_step']:.0f} us)"
    )


LOOP = "Python loop of jitted optax Adam steps"
KERNEL = "a memory-bound XLA Adam kernel moving the same bytes (4 arrays read, 3 written)"

TARGETS = [
    # 1. The run loop (run_loop.py)
    Target(
        "run_loop",
        "1. minimize vs Python loop of jitted optax steps (1000 Adam steps, 200x2)",
        "gd.minimize, 1000 Adam steps on the 200x2 regression", LOOP, ">= 25x",
        lambda r: r["speedup_vs_optax_loop"],
        lambda r: f"{r['speedup_vs_optax_loop']:.1f}x faster",
    ),
    Target(
        "run_loop", "1. minimize vs the raw lax.scan of optax Adam steps",
        "gd.minimize, as above", "jax.lax.scan of the jitted optax step", "<= 1.05x",
        lambda r: r["minimize_vs_scan_ratio"]["median"],
        lambda r: ratio_text(r["minimize_vs_scan_ratio"]),
        needs="minimize_vs_scan_ratio",
    ),
    Target(
        "run_loop", "1. (reference) raw lax.scan of optax steps vs that loop",
        "jax.lax.scan of the jitted optax step", LOOP, "-",
        lambda r: r["scan_speedup_vs_optax_loop"],
        lambda r: f"{r['scan_speedup_vs_optax_loop']:.1f}x faster",
    ),
    Target(
        "run_loop", "1. minimize vs torch.optim eager",
        "gd.minimize, as above", "torch.optim.Adam, eager", ">= 100x",
        lambda r: r["speedup_vs_torch"],
        lambda r: f"{r['speedup_vs_torch']:.0f}x faster",
        needs="speedup_vs_torch", skipped=_no_torch,
    ),
    Target(
        "run_loop", "1. minimize compile time (measured apart)",
        "first call of gd.minimize", "a warm call", "reported",
        lambda r: r["minimize_compile_s"],
        lambda r: f"{r['minimize_compile_s']:.2f} s",
    ),
    # 2. The sweep (sweep.py)
    Target(
        "sweep", "2. 64 learning rates x 1000 steps: one vmapped call vs 64 calls",
        "jax.vmap of gd.minimize over 64 learning rates", "64 sequential gd.minimize calls",
        ">= 8x",
        lambda r: r["speedup"],
        lambda r: f"{r['speedup']:.1f}x faster",
    ),
    Target(
        "sweep",
        "2. 64 learning rates vmapped: minimize vs a raw vmapped optax scan with its loss curve",
        "jax.vmap of gd.minimize", "jax.vmap of a lax.scan of optax Adam steps", "<= 1.15x",
        lambda r: r["vs_raw_vmapped_scan"]["median"],
        lambda r: ratio_text(r["vs_raw_vmapped_scan"]),
        needs="vs_raw_vmapped_scan",
    ),
    # 3. The big step (big_step.py)
    Target(
        "big_step", "3. Adam step on 10M params in minimize vs memory-bound kernel",
        "one Adam step on 10M float32 params in gd.minimize (difference of two lengths)",
        KERNEL, "<= 1.2x",
        lambda r: r["ratio_vs_kernel"],
        _big_step,
    ),
    Target(
        "big_step", "3. (same: spread of the per-round ratios, 10th-90th percentile)",
        "as above, per round", KERNEL, "stable",
        lambda r: r["ratio_rounds_p10_p90"],
        lambda r: "{:.2f}-{:.2f}x".format(*r["ratio_rounds_p10_p90"]),
        needs="ratio_rounds_p10_p90",
    ),
    Target(
        "big_step",
        "3. (same) minimize vs the hand-written loop of the gradient and the kernel "
        "(which is {handwritten_vs_kernel:.2f}x the kernel)",
        "as above", "a donated fori_loop of the gradient and the Adam kernel", "<= 1.2x",
        lambda r: r["ratio_vs_handwritten"],
        _handwritten,
        needs="ratio_vs_handwritten",
    ),
    Target(
        "big_step", "3. peak RSS of the 10M run vs bytes needed (params, grad, m, v, data)",
        "peak resident memory of the 10M run in a fresh process",
        "the bytes of params, gradient, m, v and data", "reported",
        lambda r: r["memory"]["big_run_over_needed"],
        _memory,
        needs="memory.big_run_rss_bytes",
    ),
    # 4. A compute-bound run (mlp.py)
    Target(
        "mlp", "4. MLP 64-128-10 on digits, 500 Adam steps: minimize vs torch eager",
        "gd.minimize, 500 full-batch Adam steps of a 64-128-10 MLP on digits",
        "torch.optim.Adam, eager", "<= 0.6x",
        lambda r: r["ratio_vs_torch"],
        lambda r: f"{r['ratio_vs_torch']:.2f}x the time",
        needs="ratio_vs_torch", skipped=_no_torch, skipped_name="4. MLP on digits vs torch eager",
    ),
    # 4b. The cost of the instruments (diagnostics.py; goals on the fastest rounds)
    _instruments(
        "full_batch", "alpha_cosine_over_plain", "<= 1.3x",
        "4b. MLP, 500 Adam steps, full batch: diagnostics alpha+cosine vs off",
        "gd.minimize(diagnostics=('alpha', 'cosine'))", "the same gd.minimize without",
    ),
    _instruments(
        "full_batch", "all_four_over_plain", "<= 2x",
        "4b. MLP, 500 Adam steps, full batch (1797): all four vs off",
        "gd.minimize(diagnostics=all four: alpha, cosine, update_ratio, noise_scale)",
        "the same gd.minimize without",
    ),
    _instruments(
        "batch_128", "alpha_cosine_over_plain", "<= 1.3x",
        "4b. MLP, 500 Adam steps, batch 128: alpha+cosine vs off",
        "gd.minimize(diagnostics=('alpha', 'cosine'), batch_size=128)",
        "the same gd.minimize without",
    ),
    _instruments(
        "batch_128", "all_four_over_plain", "<= 2x",
        "4b. MLP, 500 Adam steps, batch 128: all four vs off",
        "gd.minimize(diagnostics=all four, batch_size=128)", "the same gd.minimize without",
    ),
    _instruments(
        "full_batch", "all_four_mean_over_plain", "<= 2x",
        "4b. MLP, full batch: all four, loss a mean over examples, vs off",
        "gd.minimize(gd.run.mean_over_examples(loss), diagnostics=all four)",
        "gd.minimize(batch loss) without",
    ),
    _instruments(
        "batch_128", "all_four_mean_over_plain", "<= 2x",
        "4b. MLP, batch 128: all four, loss a mean over examples, vs off",
        "gd.minimize(gd.run.mean_over_examples(loss), diagnostics=all four, batch_size=128)",
        "gd.minimize(batch loss, batch_size=128) without",
    ),
    # 5. Latency (compile_time.py)
    Target(
        "latency", "5. README quick start in a fresh process (import, compile, run)",
        "the README quick start in a fresh python", "the goal in seconds", "<= 2 s",
        lambda r: r["quick_start_s"],
        lambda r: f"{r['quick_start_s']:.2f} s (import jaxgd {r['import_jaxgd_s']:.2f} s)",
    ),
    Target(
        "latency", "5. compile time of a small minimize (200 Adam steps, 3 params)",
        "first call of a small gd.minimize", "a warm call", "reported",
        lambda r: r["small_minimize_compile_s"],
        lambda r: f"{r['small_minimize_compile_s']:.2f} s",
    ),
    Target(
        "latency", "5. compilations on a 2nd call: new hyperparameters / params / key",
        "XLA compilations of a second gd.minimize call", "none", "0 / 0 / 0",
        lambda r: list(r["compilations_on_second_call"].values()),
        lambda r: " / ".join(str(c) for c in r["compilations_on_second_call"].values()),
    ),
    # 6. make_step (big_step.py)
    Target(
        "make_step", "6. gd.make_step (donated) vs plain jitted optax step, 10M params",
        "a Python loop of gd.make_step steps on 10M params", "the same of a jitted optax step",
        "measured",
        lambda r: r["speedup"],
        _make_step,
    ),
    # 7. The per-call cost (run_loop.py)
    Target(
        "per_call", "7. minimize(steps=1) vs one call of a jitted optax step (per-call cost)",
        "gd.minimize(steps=1), warm", "one call of the jitted optax step", "<= 1.5x",
        lambda r: r["ratio"]["median"],
        _per_call,
    ),
    # 8. optimistix (run_loop.py)
    Target(
        "optimistix",
        "8. minimize vs optimistix.minimise, same optax Adam, 5000 steps, both warm",
        "gd.minimize with an optax Adam, 5000 steps", "optimistix.minimise, the same Adam",
        "< 1x",
        lambda r: r["ratio"]["median"],
        lambda r: ratio_text(r["ratio"]),
        needs="ratio", skipped=lambda r: r["skipped"],
        skipped_name="8. minimize vs optimistix.minimise",
    ),
    # 9. The command line (cli.py)
    Target(
        "cli", "9. jaxgd compare (default): first run (cold compile cache), fresh process",
        "jaxgd compare in a fresh process, cold cache", "the goal in seconds", "<= 20 s",
        lambda r: r["default"]["first_run_s"],
        lambda r: f"{r['default']['first_run_s']:.1f} s "
        f"({r['default'].get('first_run_split', '')})",
        needs="default",
    ),
    Target(
        "cli", "9. jaxgd compare (default): second run (warm compile cache)",
        "jaxgd compare again, warm cache", "the goal in seconds", "<= 8 s",
        lambda r: r["default"]["second_run_s"],
        lambda r: f"{r['default']['second_run_s']:.1f} s (compile cache: {r['compile_cache']}; "
        f"{r['default'].get('second_run_split', '')})",
        needs="default",
    ),
    Target(
        "cli", "9. jaxgd compare --quick: first / second run",
        "jaxgd compare --quick, twice", "-", "reported",
        lambda r: r["quick"]["second_run_s"],
        lambda r: f"{r['quick']['first_run_s']:.1f} s / {r['quick']['second_run_s']:.1f} s",
        needs="quick",
    ),
    # 10. float64 mode (x64.py)
    Target(
        "x64",
        "10. x64 on: minimize vs the raw lax.scan of optax Adam, float64, 10k steps",
        "gd.minimize, 10k Adam steps on optimistix's Rosenbrock, float64 params, x64 on",
        "jax.lax.scan of optax Adam steps, the same, x64 on",
        "<= 3x",
        lambda r: r["float64"]["ratio"]["median"],
        lambda r: (
            f"{ratio_text(r['float64']['ratio'])}; x64/x32 time: minimize "
            f"{r['minimize_x64_over_x32']:.2f}x, scan {r['scan_x64_over_x32']:.2f}x"
        ),
        needs="float64",
    ),
    # 11. Runs sharded over the CPU cores (runs.py)
    Target(
        "runs", "11. 64 rates x 1000 steps sharded over a 'runs' mesh of the CPU cores",
        "jax.vmap of gd.minimize sharded over the runs axis ({devices} devices)",
        "the same vmap on one device", ">= 1.7x",
        lambda r: r["sweep"]["speedup"],
        lambda r: f"{r['sweep']['speedup']:.2f}x faster (load {r['load_average'][0]:.1f}; "
        f"worst difference {r['sweep']['worst_rel_difference']:.1e})",
    ),
    Target(
        "runs", "11. (bound) the same sweep written by hand, a vmapped lax.scan of optax Adam",
        "that scan sharded over the runs axis", "the same scan on one device", "reported",
        lambda r: r["sweep"]["optax_scan_speedup"],
        lambda r: f"{r['sweep']['optax_scan_speedup']:.2f}x faster",
        needs="sweep.optax_scan_speedup",
    ),
    Target(
        "runs", "11. DeepOBS protocol: quadratic_deep x 36 rates x 10 seeds x 3 optimizers x 700 "
        "steps (1,080 runs), runs mesh",
        "gd.compare over the runs mesh, first call (compiling included)",
        "the same on one device", "<= 60 s",
        lambda r: r["deepobs"]["runs_mesh"]["first_s"],
        lambda r: f"{r['deepobs']['runs_mesh']['first_s']:.1f} s first, "
        f"{r['deepobs']['runs_mesh']['again_s']:.1f} s again (one device "
        f"{r['deepobs']['one_device']['first_s']:.1f} s; chosen rates equal: "
        f"{r['deepobs']['chosen_equal']}, worst difference "
        f"{r['deepobs']['worst_rel_difference']:.1e})",
    ),
]  # fmt: skip


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, goal, met) rows of the Markdown table, in TARGETS order."""
    found = [t.row(results[t.group]) for t in TARGETS if t.group in results]
    return [row for row in found if row is not None]


def to_markdown(results: dict, info: dict) -> str:
    """The speed table (``benchmarks/results/speed.md``)."""
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
    lines += [f"| {t} | {v} | {g} | {m} |" for t, v, g, m in rows(results)]
    return "\n".join(lines) + "\n"

"""``python -m benchmarks.speed``: time the groups asked for, write
``speed.json`` and ``speed.md`` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import textwrap
import time
from pathlib import Path

from . import __doc__ as DOC
from .big_step import bench_big_step, bench_make_step
from .cli import bench_cli
from .compile_time import bench_latency
from .diagnostics import bench_diagnostics
from .mlp import bench_mlp
from .run_loop import bench_optimistix, bench_per_call, bench_run_loop
from .runs import bench_runs
from .sweep import bench_sweep
from .targets import TARGETS, to_markdown
from .timing import machine
from .x64 import bench_x64

RESULTS = Path(__file__).resolve().parent.parent / "results"

BENCHES = {
    "run_loop": bench_run_loop,
    "sweep": bench_sweep,
    "big_step": bench_big_step,
    "mlp": bench_mlp,
    "diagnostics": bench_diagnostics,
    "latency": bench_latency,
    "make_step": bench_make_step,
    "per_call": bench_per_call,
    "optimistix": bench_optimistix,
    "x64": bench_x64,
    "cli": bench_cli,
    "runs": bench_runs,
}
"""Each target group (``--only`` names) and the function that times it."""


def list_targets() -> str:
    """The targets, one a line: group, name, what is timed against what, goal."""
    return "\n".join(
        f"[{t.group}] {t.name}\n    {t.timed}  vs  {t.baseline}  (goal: {t.goal})" for t in TARGETS
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DOC.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}"
    )
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per figure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for speed.json/.md")
    parser.add_argument(
        "--note", default="", help="said of the machine in the results (e.g. 'shared, noisy')"
    )
    parser.add_argument("--list", action="store_true", help="list the targets; time nothing")
    args = parser.parse_args(argv)
    if args.list:
        print(list_targets())
        return 0
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

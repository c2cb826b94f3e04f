"""Convergence benchmark: the full comparison, more seeds and steps than the CLI default.

Runs vanilla gradient descent, momentum and Adam on the whole problem catalogue
(digits_mlp included) over the default learning-rate grid, with 5 seeds and
1000 steps per run, and writes the report (report.md, results.json, figures)
to ``benchmarks/results/convergence/``. It prints the summary table; the README
quotes it with the machine it ran on.

    python benchmarks/convergence.py            # the full run (a few minutes on 2 CPU cores)
    python benchmarks/convergence.py --seeds 2 --steps 200 --out /tmp/conv   # a quick look
"""

from __future__ import annotations

import argparse
import pathlib

import jaxgd as gd

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "results" / "convergence"))
    args = parser.parse_args()

    result = gd.compare(
        gd.problems.names(),
        list(gd.comparison.DEFAULT_OPTIMIZERS),
        learning_rates=gd.comparison.DEFAULT_LEARNING_RATES,
        seeds=args.seeds,
        steps=args.steps,
        progress=True,
    )
    report = gd.report.save(result, args.out)
    print(result.summary_table())
    print()
    print(result.profile_table())
    for line in result.edge_warnings():
        print(f"note: {line}")
    m = result.machine
    where = f"{m['cpu_count']} CPU cores, JAX {m['jax_version']} on {m['backend']}"
    print(f"\n{result.total_seconds:.0f} s on {where}. Report: {report}")


if __name__ == "__main__":
    main()

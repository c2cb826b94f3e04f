"""Convergence benchmark: the full comparison, more seeds and steps than the CLI default.

Runs vanilla gradient descent, momentum and Adam on the whole problem catalogue
(digits_mlp included) over 12 rates (``1e-4`` to ``31.6``), with 5 tuning
seeds, 20 evaluation seeds and 1000 steps per run (the committed report's
settings, pinned: the CLI's defaults changed in session 8), and writes the
report (report.md, results.json, figures) to
``benchmarks/results/convergence/``. It prints the summary table; the README
quotes it with the machine it ran on.

    python benchmarks/convergence.py            # the full run (a few minutes on 2 CPU cores)
    python benchmarks/convergence.py --seeds 2 --steps 200 --out /tmp/conv   # a quick look
"""

from __future__ import annotations

import argparse
import pathlib

import jaxgd as gd
from jaxgd.report import machine_line

HERE = pathlib.Path(__file__).resolve().parent
GRID = tuple(float(f"{10.0 ** (k / 2):.3g}") for k in range(-8, 4))  # 1e-4, 3.16e-4, ..., 31.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "results" / "convergence"))
    args = parser.parse_args()

    result = gd.compare(
        gd.problems.names(),
        list(gd.comparison.DEFAULT_OPTIMIZERS),
        learning_rates=GRID,
        seeds=args.seeds,
        eval_seeds=20,
        steps=args.steps,
        progress=True,
    )
    report = gd.report.save(result, args.out)
    print(gd.report.summary_table(result))
    print()
    print(gd.report.profile_table(result))
    for line in gd.report.edge_warnings(result):
        print(f"note: {line}")
    print(f"\n{result.total_seconds:.0f} s on {machine_line(result.machine)}. Report: {report}")


if __name__ == "__main__":
    main()

"""The ``jaxgd`` command (also ``python -m jaxgd``).

``jaxgd compare`` runs the comparison (vanilla gradient descent, momentum and
Adam on textbook functions, student marks and real data by default), shows a
progress bar, prints the summary table and writes the report folder.
``jaxgd problems`` lists the catalogue. ``--sharpness`` also records the
sharpness along each optimizer's chosen run (see ``gd.compare(sharpness=True)``);
a line search among the optimizers (``--optimizers vanilla,armijo,adam``) has its
evaluations and time per step reported.

Every argument is checked before anything compiles (through
:func:`jaxgd.comparison.check_arguments` and :func:`jaxgd.report.check_folder`):
a bad one gets a one-line error and exit status 2. An error during the run
itself is a real error: its traceback, exit status 1. Ctrl-C: exit status 130.

``jaxgd compare`` keeps XLA's compiled programs in JAX's persistent
compilation cache, in :func:`cache_dir` (``$XDG_CACHE_HOME/jaxgd/xla``,
by default ``~/.cache/jaxgd/xla``), so a second run compiles little;
``--no-cache`` switches it off.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import warnings
from collections.abc import Sequence

__all__ = ["QUICK", "cache_dir", "main"]

QUICK = {
    "problems": ("booth", "rosenbrock", "student_marks", "breast_cancer_logistic"),
    "steps": 100,
    "seeds": 2,
    "eval_seeds": 6,
    "learning_rates": (1e-3, 1e-2, 1e-1, 1.0),
}
"""What ``--quick`` runs (flags given explicitly still win): a smoke test in seconds."""


class _UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise _UsageError(message)


def cache_dir() -> pathlib.Path:
    """Where ``jaxgd compare`` keeps compiled programs: the user's cache folder + ``jaxgd/xla``.

    ``$XDG_CACHE_HOME`` when set, else ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows and ``~/.cache`` elsewhere (the
    conventions platformdirs follows).

    Examples:
        >>> cache_dir().parts[-2:]
        ('jaxgd', 'xla')
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        if sys.platform == "darwin":
            base = "~/Library/Caches"
        elif sys.platform == "win32":
            base = os.environ.get("LOCALAPPDATA", "~/AppData/Local")
        else:
            base = "~/.cache"
    return pathlib.Path(base).expanduser() / "jaxgd" / "xla"


def _use_compilation_cache(folder: pathlib.Path) -> None:
    """Turn on JAX's persistent compilation cache in ``folder``, for every program,
    and keep the compiled sweeps themselves beside it
    (:func:`jaxgd.comparison.use_program_cache`)."""
    import jax

    from jaxgd import comparison

    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Every program, however quick to compile: the sweeps take seconds, but the
    # many small ones (random starts, contour grids) add up too.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    comparison.use_program_cache(folder.parent / "sweeps")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _rates(text: str) -> list[float]:
    try:
        rates = [float(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--learning-rates takes comma-separated numbers such as 0.001,0.01,0.1; got {text!r}"
        ) from None
    return rates


def _parser() -> _Parser:
    from jaxgd import optimizers
    from jaxgd.comparison import (
        DEFAULT_EVAL_SEEDS,
        DEFAULT_OPTIMIZERS,
        DEFAULT_SEEDS,
        DEFAULT_STEPS,
    )

    parser = _Parser(prog="jaxgd", description="Learn, run and compare gradient descent with JAX.")
    sub = parser.add_subparsers(dest="command", metavar="{compare,problems}", parser_class=_Parser)
    sub.required = True
    c = sub.add_parser(
        "compare",
        help="compare optimizers over learning rates and seeds; write a report",
        description="Sweep every optimizer over a log grid of learning rates and several "
        "seeds on each problem, choose each optimizer's best rate, and write a report "
        "(Markdown, JSON, PNG figures).",
    )
    c.add_argument(
        "--problems",
        type=_names,
        help="comma-separated problem names, or 'all' (default: every problem but digits_mlp; "
        "see 'jaxgd problems')",
    )
    c.add_argument(
        "--optimizers",
        type=_names,
        help=f"comma-separated, from {', '.join(optimizers.names())} (default: "
        f"{','.join(DEFAULT_OPTIMIZERS)})",
    )
    c.add_argument("--steps", type=int, help=f"updates per run (default {DEFAULT_STEPS})")
    c.add_argument(
        "--seeds", type=int, help=f"tuning seeds, which choose the rates (default {DEFAULT_SEEDS})"
    )
    c.add_argument(
        "--eval-seeds",
        type=int,
        help=f"fresh evaluation seeds (at least 2) from which each chosen rate runs again; "
        f"every reported figure and verdict is theirs (default {DEFAULT_EVAL_SEEDS})",
    )
    c.add_argument(
        "--learning-rates",
        type=_rates,
        help="comma-separated grid (default: 1e-4 to 31.6, half a decade apart)",
    )
    c.add_argument(
        "--batch-size",
        type=int,
        help="minibatch size on every data problem, at most its number of examples "
        "(default: each problem's own; 0 for full batch everywhere)",
    )
    c.add_argument(
        "--out",
        default="jaxgd-report",
        help="report folder, replaced whole; a folder that is not a jaxgd report is refused "
        "(default ./jaxgd-report)",
    )
    c.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: 4 problems, 100 steps, 2 tuning and 6 evaluation seeds, 4 rates",
    )
    c.add_argument(
        "--sharpness",
        action="store_true",
        help="also run each optimizer once at its chosen rate recording the sharpness (the "
        "Hessian's largest eigenvalue) against its stability limit, and measure the evaluations "
        "and time per step; the report draws sharpness_<problem>.png (slower; off by default)",
    )
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.add_argument(
        "--no-cache",
        action="store_true",
        help=f"do not keep compiled programs in JAX's persistent cache (default: in {cache_dir()})",
    )
    sub.add_parser("problems", help="list the problem catalogue", description="List the problems.")
    return parser


def _compare_arguments(args: argparse.Namespace) -> tuple[dict, pathlib.Path]:
    """``compare``'s keyword arguments and the report folder, all checked (nothing compiles)."""
    from jaxgd import problems as problems_mod
    from jaxgd.comparison import (
        DEFAULT_EVAL_SEEDS,
        DEFAULT_LEARNING_RATES,
        DEFAULT_OPTIMIZERS,
        DEFAULT_PROBLEMS,
        DEFAULT_SEEDS,
        DEFAULT_STEPS,
        check_arguments,
    )
    from jaxgd.report import check_folder

    quick = QUICK if args.quick else {}

    def given(value, default):  # an explicit flag wins, even an empty one (then an error)
        return default if value is None else value

    problems = given(args.problems, list(quick.get("problems", DEFAULT_PROBLEMS)))
    if problems == ["all"]:
        problems = problems_mod.names()
    optimizers = given(args.optimizers, list(DEFAULT_OPTIMIZERS))
    steps = given(args.steps, quick.get("steps", DEFAULT_STEPS))
    seeds = given(args.seeds, quick.get("seeds", DEFAULT_SEEDS))
    eval_seeds = given(args.eval_seeds, quick.get("eval_seeds", DEFAULT_EVAL_SEEDS))
    rates = given(args.learning_rates, list(quick.get("learning_rates", DEFAULT_LEARNING_RATES)))
    if args.batch_size is not None and args.batch_size < 0:
        raise ValueError(f"--batch-size must be >= 1 (or 0 for full batch), got {args.batch_size}.")
    batch_size = {None: "problem", 0: None}.get(args.batch_size, args.batch_size)
    out = check_folder(args.out, caller="--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problems, optimizers, rates, seeds, steps, batch_size, eval_seeds = check_arguments(
            problems, optimizers, rates, seeds, steps, batch_size, eval_seeds
        )
    for w in caught:
        print(f"jaxgd: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    kwargs = dict(
        problems=problems,
        optimizers=optimizers,
        learning_rates=rates,
        seeds=seeds,
        eval_seeds=eval_seeds,
        steps=steps,
        batch_size=batch_size,
        progress=not args.no_progress,
        sharpness=args.sharpness,
    )
    return kwargs, out


def _compare(kwargs: dict, out: pathlib.Path) -> int:
    from jaxgd import comparison, report

    problems, optimizers = kwargs.pop("problems"), kwargs.pop("optimizers")
    # Each problem's figures are drawn on a worker thread while the next ones compile and run.
    with report.FigureDrawer(list(optimizers), kwargs["seeds"]) as drawer:
        result = comparison.compare(problems, optimizers, on_problem=drawer.add, **kwargs)
        path = report.save(result, out, figures=drawer.finish(result))
    print(report.seeds_line(result))
    print()
    print(report.summary_table(result))
    print()
    winners = report.verdict_table(result, winners_only=True)
    rows = result.pairwise()
    named = sum(r["verdict"] in ("a better", "b better") for r in rows)
    print(f"Verdicts naming a winner ({named} of {len(rows)} paired rows; the rest are no "
          "difference or incomparable, all in the report):")  # fmt: skip
    print(winners if named else "none")
    print()
    print(report.profile_table(result))
    for line in report.edge_warnings(result):
        print(f"note: {line}")
    print(f"\n{result.total_seconds:.1f} s. Report: {path}")
    return 0


def _problems() -> int:
    from jaxgd import problems

    width = max(len(n) for n in problems.names())
    for name in problems.names():
        print(f"{name.ljust(width)}  {problems.summary(name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxgd`` command; returns the exit status.

    Arguments are checked first: a bad one prints one line and returns 2.
    Then ``compare`` turns on JAX's persistent compilation cache for this
    process (unless ``--no-cache``) and the command runs; an error there
    propagates with its traceback (the console script exits 1), Ctrl-C
    returns 130.

    Examples:
        >>> main(["compare", "--steps", "0"])  # prints the one-line error to stderr
        2
    """
    try:
        args = _parser().parse_args(argv)
        if args.command == "compare":
            kwargs, out = _compare_arguments(args)
            if not args.no_cache:  # once the arguments are good, before the runs compile
                _use_compilation_cache(cache_dir())
    except (_UsageError, ValueError) as err:
        print(f"jaxgd: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    try:
        if args.command == "problems":
            return _problems()
        return _compare(kwargs, out)
    except KeyboardInterrupt:
        print("jaxgd: interrupted", file=sys.stderr)
        return 130

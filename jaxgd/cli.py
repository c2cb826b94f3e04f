"""The ``jaxgd`` command (also ``python -m jaxgd``).

``jaxgd compare`` runs the comparison (vanilla gradient descent, momentum and
Adam on textbook functions, student marks and real data by default), shows a
progress bar, prints the summary table and writes the report folder.
``jaxgd problems`` lists the catalogue. ``jaxgd reproduce NAME|all`` reproduces
a published result offline (``--list`` lists them; see
:func:`jaxgd.comparison.reproduce`), prints it and writes its report.
``--sharpness`` and ``--diagnostics`` measure each optimizer again at its chosen
rate (``gd.compare(sharpness=True, diagnostics=...)``); a line search among the
optimizers (``armijo``) has its evaluations and time per step reported.

Every argument is checked before anything compiles (through
:func:`jaxgd.comparison.check_arguments` and :func:`jaxgd.report.check_folder`;
``reproduce --out`` before anything is computed): a bad one gets a one-line
error and exit status 2. An error during the run itself is a real error: its
traceback, exit status 1. Ctrl-C: exit status 130,
answered within about a second at any moment (a Ctrl-C that an import or a gc
callback swallowed is raised again, see :class:`jaxgd._host.CtrlCNoted`), and an interrupted
run never replaces the old report. The report folder is held for the whole
command (:func:`jaxgd.report.folder_lock`; ``reproduce``'s by a lock inside it):
a second ``jaxgd compare`` (or ``reproduce``) into it is refused at once.
``--quick`` writes to its own default folder (``jaxgd-report-quick``), so a
smoke run never replaces the full report. The time printed at the end is the
command's whole wall time, from its first import, in parts that add up to it
(imports, checks and data, compare, figures and report), then compare's tracing
and compiling, and its sweeps, each summed over problems: a problem is traced
while the one before it compiles and the one before that runs (with an
executor, the workers' times add up), so these overlap and may exceed compare's.

``jaxgd compare`` keeps XLA's programs in JAX's compilation cache, in :func:`cache_dir`
(``$XDG_CACHE_HOME/jaxgd/xla``, by default ``~/.cache/jaxgd/xla``), and the data
sets' splits and optima beside it, so a second run compiles little and imports
no scikit-learn; ``--no-cache`` switches both off.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Sequence
from typing import NoReturn

from jaxgd._host import STARTED, CtrlCNoted, exit_now

__all__ = ["QUICK", "QUICK_OUT", "cache_dir", "command", "main"]

QUICK = {  # 12 evaluation seeds: the fewest at which a verdict survives Holm over ~30 rows
    "problems": ("booth", "rosenbrock", "student_marks", "breast_cancer_logistic"),
    **{"steps": 100, "seeds": 2, "eval_seeds": 12, "learning_rates": (1e-3, 1e-2, 1e-1, 1.0)},
}
"""What ``--quick`` runs (flags given explicitly still win): a smoke test in seconds."""

QUICK_OUT = "jaxgd-report-quick"  # --quick's default folder: never the full report's


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

    comparison.check_compilation_cache(folder)  # damaged or swapped entries: deleted
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
        return [float(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--learning-rates takes comma-separated numbers such as 0.001,0.01,0.1; got {text!r}"
        ) from None


def _measure_flags(c: argparse.ArgumentParser) -> None:
    """The flags that measure each optimizer again around its chosen rate."""
    c.add_argument(
        "--sharpness",
        action="store_true",
        help="also run each optimizer once at its chosen rate recording the sharpness (the "
        "Hessian's largest eigenvalue) against its stability limit, and measure the evaluations "
        "and time per step; the report draws sharpness_<problem>.png (slower; off by default)",
    )
    c.add_argument(
        "--diagnostics",
        action="store_true",
        help="also run each optimizer at its chosen rate and one grid step up recording "
        "Cockpit's alpha and the cosine between updates every step; the report draws "
        "diagnostics_<problem>.png and says when a rate overshoots (alpha above 1 for long "
        "stretches; slower; off by default)",
    )


_COMMANDS = "{compare,problems,reproduce}"


def _parser() -> _Parser:
    from jaxgd import comparison as cmp
    from jaxgd import optimizers

    parser = _Parser(prog="jaxgd", description="Learn, run and compare gradient descent with JAX.")
    sub = parser.add_subparsers(dest="command", metavar=_COMMANDS, parser_class=_Parser)
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
        help="comma-separated problem names, or 'all' (default: all but digits_mlp and "
        "quadratic_deep; see 'jaxgd problems')",
    )
    c.add_argument(
        "--optimizers",
        type=_names,
        help=f"comma-separated, from {', '.join(optimizers.names())}, or optax.contrib's "
        f"{', '.join(optimizers.names(contrib=True)[len(optimizers.names()) :])} (default: "
        f"{','.join(cmp.DEFAULT_OPTIMIZERS)})",
    )
    c.add_argument("--steps", type=int, help=f"updates per run (default {cmp.DEFAULT_STEPS})")
    c.add_argument(
        "--seeds", type=int, help=f"tuning seeds, choosing the rates (default {cmp.DEFAULT_SEEDS})"
    )
    c.add_argument(
        "--eval-seeds",
        type=int,
        help=f"fresh evaluation seeds (at least 2) from which each chosen rate runs again; "
        f"every reported figure and verdict is theirs (default {cmp.DEFAULT_EVAL_SEEDS})",
    )
    c.add_argument(
        "--learning-rates",
        type=_rates,
        help="comma-separated grid (default: 1e-4 to 100, half a decade apart)",
    )
    c.add_argument(
        "--batch-size",
        type=int,
        help="minibatch size on every data problem, at most its number of examples "
        "(default: each problem's own; 0 for full batch everywhere)",
    )
    c.add_argument(
        "--out",
        help="report folder, replaced whole; a folder that is not a jaxgd report is refused "
        f"(default ./jaxgd-report; with --quick ./{QUICK_OUT})",
    )
    c.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: 4 problems, 100 steps, 2 tuning and 12 evaluation seeds, 4 rates "
        f"(its report goes to ./{QUICK_OUT} unless --out is given)",
    )
    _measure_flags(c)
    _spread_arguments(c)
    c.add_argument(
        "--no-cache",
        action="store_true",
        help=f"do not keep compiled programs in JAX's persistent cache (default: in {cache_dir()})",
    )
    sub.add_parser("problems", help="list the problem catalogue", description="List the problems.")
    _reproduce_parser(sub)
    return parser


def _spread_arguments(c) -> None:
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.add_argument(
        "--devices",
        type=int,
        help="devices the runs are sharded over (a 'runs' mesh axis); default: on a CPU-only "
        "machine, one CPU device per core, unless XLA_FLAGS is set; 1 turns it off",
    )
    c.add_argument(
        "--executor",
        help="run the sweeps as jobs on dask://HOST:PORT (a running Dask scheduler) or "
        "processes:N (a local pool of N processes); the numbers equal one process's",
    )


def _reproduce_parser(sub) -> None:
    r = sub.add_parser(
        "reproduce",
        help="reproduce a published result offline; write its report",
        description="Reproduce a published result (or all of them) offline: print the published "
        "numbers beside jaxgd's with their tolerances, and write NAME.md and NAME.png.",
    )
    r.add_argument("name", nargs="?", help="the reproduction, or 'all' (see --list)")
    r.add_argument("--list", action="store_true", help="list the reproductions and exit")
    r.add_argument(
        "--out",
        default="jaxgd-reproduce",
        help="folder for the reports (default ./jaxgd-reproduce)",
    )


def _reproduce_names(args: argparse.Namespace) -> list[str]:
    """The reproductions ``jaxgd reproduce`` runs (an unknown name: a usage error)."""
    from jaxgd.comparison import reproductions

    known = reproductions()
    if args.list:
        return []
    if args.name is None:
        raise _UsageError(f"reproduce: name a reproduction, 'all' or --list: {', '.join(known)}")
    if args.name != "all" and args.name not in known:
        raise _UsageError(
            f"reproduce: unknown reproduction {args.name!r}; the known ones are: "
            f"{', '.join(known)} (or 'all')"
        )
    return known if args.name == "all" else [args.name]


def _hold_reproduce_folder(out: str, held: contextlib.ExitStack) -> None:
    """Check ``reproduce --out`` (made if missing) and hold it until ``held`` closes:
    a second ``jaxgd reproduce`` into it is refused at once (its lock inside it)."""
    from jaxgd import report

    folder = pathlib.Path(out).expanduser().resolve()
    fix = "pass a folder you can write to, such as jaxgd-reproduce (made if missing)"
    if not out.strip():
        raise ValueError(f"--out: the folder is an empty name (an unset variable?); {fix}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        held.enter_context(report.folder_lock(folder / "reproduce", caller="--out", wait=False))
    except report.FolderInUseError:
        fix = "in use by another jaxgd reproduce; wait for it to finish, or pass another folder"
        raise ValueError(f"--out: {str(folder)!r} is {fix}.") from None
    except OSError as err:
        why = "is a file" if folder.is_file() else f"cannot be made or written ({err.strerror})"
        raise ValueError(f"--out: {str(folder)!r} {why}; {fix}.") from None


def _reproduce(names: list[str], out: str) -> int:
    from jaxgd import comparison, report

    if not names:  # --list
        for name in comparison.reproductions():
            print(f"{name}  {comparison.describe(name)}")
        return 0
    failed = []
    for name in names:
        rep = comparison.reproduce(name)
        paths = report.save_reproduction(rep, out)
        print(f"{report.reproduction_text(rep)}\nReport: {paths[0]}\n")
        if not rep.passed:
            failed.append(name)
    if len(names) > 1:
        print(f"{len(names) - len(failed)} of {len(names)} reproduced" + (
            f"; not: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


def _compare_arguments(args: argparse.Namespace) -> tuple[dict, pathlib.Path]:
    """``compare``'s keyword arguments and the report folder, all checked (nothing compiles)."""
    from jaxgd import comparison as cmp
    from jaxgd import problems as problems_mod
    from jaxgd.distributed import runs_mesh_for
    from jaxgd.report import check_folder

    if not args.no_cache:  # splits and optima kept: no scikit-learn, no L-BFGS next time
        problems_mod.use_dataset_cache(cache_dir().parent / "datasets")
    runs_mesh_for(args.devices, 1, caller="--devices")  # a bad count: refused before the data
    executor = cmp.connect_executor(args.executor) if args.executor else None
    quick = QUICK if args.quick else {}

    def given(value, default):  # an explicit flag wins, even an empty one (then an error)
        return default if value is None else value

    problems = given(args.problems, list(quick.get("problems", cmp.DEFAULT_PROBLEMS)))
    if problems == ["all"]:
        problems = problems_mod.names()
    optimizers = given(args.optimizers, list(cmp.DEFAULT_OPTIMIZERS))
    steps = given(args.steps, quick.get("steps", cmp.DEFAULT_STEPS))
    seeds = given(args.seeds, quick.get("seeds", cmp.DEFAULT_SEEDS))
    eval_seeds = given(args.eval_seeds, quick.get("eval_seeds", cmp.DEFAULT_EVAL_SEEDS))
    rates = list(quick.get("learning_rates", cmp.DEFAULT_LEARNING_RATES))
    rates = given(args.learning_rates, rates)
    if args.batch_size is not None and args.batch_size < 0:
        raise ValueError(f"--batch-size must be >= 1 (or 0 for full batch), got {args.batch_size}.")
    batch_size = {None: "problem", 0: None}.get(args.batch_size, args.batch_size)
    default_out = QUICK_OUT if args.quick else "jaxgd-report"
    out = check_folder(default_out if args.out is None else args.out, caller="--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problems, optimizers, rates, seeds, steps, batch_size, eval_seeds = cmp.check_arguments(
            problems, optimizers, rates, seeds, steps, batch_size, eval_seeds
        )
    for w in caught:
        print(f"jaxgd: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    fewest = min(len(r) for r in rates.values()) * len(seeds)
    kwargs = dict(
        mesh=None if executor else runs_mesh_for(args.devices, fewest, caller="--devices"),
        executor=executor,
        job_folder=None if args.no_cache else cache_dir().parent / "jobs",
        problems=problems,
        optimizers=optimizers,
        learning_rates=rates,
        seeds=seeds,
        eval_seeds=eval_seeds,
        steps=steps,
        batch_size=batch_size,
        progress=not args.no_progress,
        sharpness=args.sharpness,
        diagnostics=("alpha", "cosine") if args.diagnostics else (),
    )
    return kwargs, out


def _compare(kwargs: dict, out: pathlib.Path, ctrl_c: CtrlCNoted, parts: dict, began: float) -> int:
    from jaxgd import comparison, report

    problems, optimizers = kwargs.pop("problems"), kwargs.pop("optimizers")
    # Each problem's figures are drawn on a worker thread while the next ones compile and run.
    with report.FigureDrawer(list(optimizers), kwargs["seeds"]) as drawer:
        result = comparison.compare(problems, optimizers, on_problem=drawer.add, **kwargs)
        parts["compare"] = time.perf_counter() - began - sum(parts.values())  # since the checks
        figures = drawer.finish(result)
        ctrl_c.check()  # a Ctrl-C that something swallowed: the old report stays
        path = report.save(result, out, figures=figures)
    print(f"{report.seeds_line(result)}\n\n{report.summary_table(result)}\n")
    winners = report.verdict_table(result, winners_only=True)
    rows = result.pairwise()
    named = sum(r["verdict"] in ("a better", "b better") for r in rows)
    print(f"Verdicts naming a winner ({named} of {len(rows)} paired rows; the rest are no "
          "difference or incomparable, all in the report):")  # fmt: skip
    print(winners if named else "none", end="\n\n")
    print(report.profile_table(result))
    for line in [*report.edge_warnings(result), *_none_solved(result, kwargs["steps"])]:
        print(f"note: {line}")
    print(f"\n{_times(result, parts, began)}\nReport: {path}")
    return 0


def _none_solved(result, steps: int) -> list[str]:
    """Why an optimizer solved no problem, when one did not (``--quick``'s 100 steps)."""
    from jaxgd.comparison import DEFAULT_STEPS

    lines = []
    for label in result.optimizer_labels:
        if not any(p.solved_steps(label) < float("inf") for p in result.problems):
            shorter = f" (the default run takes {DEFAULT_STEPS})" if steps < DEFAULT_STEPS else ""
            lines.append(
                f"{label} solved none of the {len(result.problems)} problems: a problem counts as "
                f"solved when every seed reaches its target within the {steps} steps of a "
                f"run{shorter}."
            )
    return lines


def _times(result, parts: dict, began: float) -> str:
    """The command's wall time since ``began`` (its first import, or :func:`main`'s call)
    in consecutive parts that add up to it; then compare's tracing and compiling, and
    sweeps, each summed over problems that overlap (see the module docstring)."""
    total = time.perf_counter() - began
    wall = {**parts, "figures and report": total - sum(parts.values())}
    said = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in wall.items())
    compiling = sum(p.compile_seconds for p in result.problems)
    sweeps = sum(p.run_seconds for p in result.problems)
    return (
        f"{total:.1f} s in all: {said}; inside compare, summed over threads (or workers) that "
        f"overlap: tracing and compiling {compiling:.1f} s, sweeps {sweeps:.1f} s."
    )


def _problems() -> int:
    from jaxgd import problems

    width = max(len(n) for n in problems.names())
    for name in problems.names():
        print(f"{name.ljust(width)}  {problems.summary(name)}")
    return 0


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    """Run the ``jaxgd`` command; returns the exit status.

    Arguments are checked first: a bad one prints one line and returns 2.
    Then ``compare`` turns on JAX's persistent compilation cache for this
    process (unless ``--no-cache``) and the command runs; an error there
    propagates with its traceback (the console script exits 1), Ctrl-C
    returns 130. ``started``: when the process began (:func:`command` passes
    the time of jaxgd's first import), so that the time printed counts the
    imports too.

    Examples:
        >>> main(["compare", "--steps", "0"])  # prints the one-line error to stderr
        2
    """
    t0 = time.perf_counter()
    ctrl_c = CtrlCNoted()  # a Ctrl-C swallowed on the way (an import) is never lost
    parts = {"starting (imports)": t0 - started} if started is not None else {}
    try:
        return _run(argv, ctrl_c, parts, t0)
    except KeyboardInterrupt:
        print("jaxgd: interrupted", file=sys.stderr)  # the old report, if any, is as it was
        return 130
    finally:
        ctrl_c.release(check=False)


def _run(argv: Sequence[str] | None, ctrl_c: CtrlCNoted, parts: dict, t0: float) -> int:
    """:func:`main` once Ctrl-C is noted: check the arguments, hold the folder, run."""
    with contextlib.ExitStack() as held:
        try:
            args = _parser().parse_args(argv)
            if args.command == "reproduce" and (names := _reproduce_names(args)):
                _hold_reproduce_folder(args.out, held)  # before anything is computed
            if args.command == "compare":
                if args.devices is None or args.devices > 1:  # before JAX starts its backends
                    from jaxgd.distributed import expose_cpu_devices

                    expose_cpu_devices(args.devices)
                kwargs, out = _compare_arguments(args)
                if (pool := kwargs["executor"]) is not None:  # released as the run ends:
                    release = getattr(pool, "close", None)  # a Dask client disconnects
                    held.callback(release or (lambda: pool.shutdown(False, cancel_futures=True)))
                from jaxgd import report

                # The folder is ours for the whole run: a second run into it is refused now.
                held.enter_context(report.folder_lock(out, caller="--out", wait=False))
                if not args.no_cache:  # once the arguments are good, before the runs compile
                    _use_compilation_cache(cache_dir())
        except (_UsageError, ValueError) as err:
            print(f"jaxgd: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        parts["checks and data"] = time.perf_counter() - t0
        ctrl_c.check()
        if args.command == "problems":
            return _problems()
        if args.command == "reproduce":
            return _reproduce(names, args.out)
        status = _compare(kwargs, out, ctrl_c, parts, t0 - parts.get("starting (imports)", 0.0))
        if not args.no_cache:  # what this run added to JAX's cache, sealed against damage
            from jaxgd import comparison

            comparison.seal_compilation_cache(cache_dir())
        return status


def command() -> NoReturn:
    """The ``jaxgd`` command (``python -m jaxgd``): :func:`main`, then the process ends at
    once (:func:`jaxgd._host.exit_now`; after Ctrl-C without waiting). Nothing is left to
    write: the report is saved, or the interrupt removed its temporary folder and lock."""
    try:
        status = main(started=STARTED)  # its time counted from jaxgd's first import
    except BrokenPipeError:  # the reader went away (`jaxgd problems | head -1`)
        status = 141  # 128 + SIGPIPE: what a shell reports for a command its pipe ended
    exit_now(status, finish=status != 130)

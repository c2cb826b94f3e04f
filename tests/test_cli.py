"""Tests for the jaxgd command: listing, a small run, its defaults, one-line errors with
status 2 before anything compiles, real errors with their traceback, and the compile cache."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd
from jaxgd import problems
from jaxgd.cli import cache_dir, main
from jaxgd.comparison import _checks as checks

cmp = gd.comparison  # the CLI calls gd.comparison.compare
ROOT = pathlib.Path(__file__).parents[1]
SMALL = ["--problems", "booth", "--optimizers", "vanilla", "--steps", "10", "--seeds", "1"]
SMALL += ["--learning-rates", "0.1", "--no-progress"]


def _env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's jaxgd."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_problems_lists_the_catalogue(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == len(problems.names())
    for name in problems.names():
        assert re.search(rf"^{name} +{re.escape(problems.summary(name))}$", out, re.M)
    assert "banana" in out


def test_compare_small_run(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", "--problems", "booth", "--optimizers", "vanilla,adam", "--steps", "30"]
    argv += ["--seeds", "1", "--learning-rates", "0.01,0.1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "booth" in printed and "vanilla" in printed and "adam" in printed
    assert str(out / "report.md") in printed
    assert (out / "results.json").is_file()
    assert (out / "figures" / "loss_booth.png").is_file()


def test_compare_with_sharpness_and_a_line_search(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", "--problems", "quadratic", "--optimizers", "vanilla,armijo", "--steps"]
    argv += ["20", "--seeds", "1", "--learning-rates", "0.01,1.0", "--out", str(out)]
    assert main([*argv, "--sharpness", "--no-progress", "--no-cache"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("problem "))
    assert "evaluations per step" in header and "time to target" in header
    assert (out / "figures" / "sharpness_quadratic.png").is_file()
    sharpness = json.loads((out / "results.json").read_text())["problems"][0]["sharpness"]
    assert sorted(sharpness) == ["armijo", "vanilla"]


@pytest.mark.slow
def test_compare_with_diagnostics_draws_alpha_and_says_who_overshoots(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", "--problems", "booth", "--optimizers", "vanilla", "--steps", "30"]
    argv += ["--seeds", "1", "--learning-rates", "0.1,0.3", "--out", str(out), "--no-progress"]
    assert main([*argv, "--diagnostics", "--no-cache"]) == 0
    assert (out / "figures" / "diagnostics_booth.png").is_file()
    diag = json.loads((out / "results.json").read_text())["problems"][0]["diagnostics"]
    assert diag["vanilla"]["up"]["learning_rate"] == pytest.approx(0.3)
    assert "one grid step up (0.3) overshoots" in (out / "report.md").read_text()


def test_the_defaults_are_the_documented_ones(tmp_path, monkeypatch):
    """`jaxgd compare` with no flags runs what the comparing guide says it runs."""
    called = {}

    def fake_compare(problem_list, optimizers, **kwargs):
        called.update(problems=problem_list, optimizers=optimizers, **kwargs)
        raise KeyboardInterrupt  # stop before running anything

    monkeypatch.setattr(cmp, "compare", fake_compare)
    assert main(["compare", "--out", str(tmp_path / "r"), "--no-cache"]) == 130
    names = [p.name for p in called["problems"]]
    assert names == [n for n in problems.names() if n not in ("digits_mlp", "quadratic_deep")]
    assert list(called["optimizers"]) == ["vanilla", "momentum", "adam"]
    rates = called["learning_rates"]["vanilla"]
    np.testing.assert_allclose(rates, [10 ** (k / 2) for k in range(-8, 5)], rtol=2e-3)
    assert called["seeds"] == (0,) and called["steps"] == 500
    assert called["batch_size"] == "problem" and called["progress"] is True
    assert called["sharpness"] is False  # off by default: the default run costs nothing more
    assert called["diagnostics"] == ()
    readme = " ".join((ROOT / "docs" / "guides" / "comparing.md").read_text().split())
    said = re.search(
        r"default `jaxgd compare` \((\d+) problems x (\d+) optimizers x (\d+) rates x (\d+) "
        r"seeds? = (\d+) runs of (\d+) steps",
        readme,
    )
    assert said, "the comparing guide's runtime paragraph moved"
    n_problems, n_opt, n_rates, n_seeds, n_runs, steps = map(int, said.groups())
    assert (n_problems, n_opt, n_rates, n_seeds, steps) == (len(names), 3, len(rates), 1, 500)
    assert n_runs == n_problems * n_opt * n_rates * n_seeds
    assert called["eval_seeds"] == tuple(range(1000, 1013))
    assert "`1e-4` to `100`; 1 tuning seed, 13 evaluation seeds; 500 steps" in readme
    assert "jaxgd compare # vanilla, momentum, Adam on 9 problems" in readme


BAD = [
    (["compare", "--steps", "0"], "steps"),
    (["compare", "--steps", "ten"], "--steps"),
    (["compare", "--seeds", "0"], "seeds"),
    (["compare", "--problems", "nope"], "unknown problem 'nope'"),
    (["compare", "--optimizers", "sgd"], "unknown optimizer 'sgd'"),
    (["compare", "--learning-rates", "0.1,x"], "--learning-rates"),
    (["compare", "--learning-rates", "0,0.1"], "learning_rates"),
    (["compare", "--learning-rates", ","], "learning_rates is empty"),
    (["compare", "--batch-size", "-3"], "batch-size"),
    (["compare", "--batch-size", "201", "--problems", "student_marks"], "has 200, got 201"),
    (
        ["compare", "--seeds", "9999", "--steps", "999999", "--problems", "booth,student_marks"],
        "GiB of memory; use fewer seeds",
    ),
    (["compare", "--devices", "0"], "--devices must be >= 1"),
    (["compare", "--devices", "64"], "--devices 64: this process has"),
    (["compare", "--executor", "ftp://x"], "--executor takes dask://HOST:PORT or processes:N"),
    (["compare", "--executor", "processes:0"], "processes:N (N >= 1), got 'processes:0'"),
    (["compare", "--frob"], "unrecognized arguments"),
    (["frob"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize(("argv", "match"), BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(argv, match, capsys, tmp_path, count_compiles):
    argv = [*argv, "--out", str(tmp_path / "r")] if argv[:1] == ["compare"] else argv
    with count_compiles() as compiles:
        status = main([*argv, "--no-cache"] if argv[:1] == ["compare"] else argv)
    assert status == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxgd: error:")
    assert match in lines[0]
    assert not (tmp_path / "r").exists()  # nothing written
    assert compiles.count == 0  # nothing compiled
    assert jax.config.jax_compilation_cache_dir is None  # the cache left off


def test_the_compile_counter_counts_here(count_compiles):
    """Positive control for the test above: a fresh jit counts one compilation."""
    x = jnp.ones(3)
    with count_compiles() as compiles:
        jax.jit(lambda v: v * 3.0 + 1.0)(x).block_until_ready()
    assert compiles.count == 1


@pytest.mark.parametrize(
    ("out", "match"),
    [
        ("", "the report folder is an empty name"),
        (".", "is the current folder"),
        ("mine", "is not a jaxgd report"),
        ("a-file/report", "cannot write the report folder"),
    ],
)
def test_bad_out_folders_exit_2_and_leave_everything(out, match, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("my own notes")
    (tmp_path / "a-file").write_text("")
    assert main(["compare", "--out", out, "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and match in err and "--out: " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "mine"]
    assert (tmp_path / "mine" / "report.md").read_text() == "my own notes"


@pytest.mark.parametrize(
    ("out", "match"),
    [
        ("a-file", "a-file' is a file"),
        ("", "the folder is an empty name"),
        ("a-file/report", "report' cannot be made or written (Not a directory)"),
    ],
)
@pytest.mark.parametrize("name", ["edge-of-stability", "all"])
def test_reproduce_checks_its_folder_before_computing(
    out, match, name, tmp_path, monkeypatch, capsys
):
    """Refused as compare refuses it: one line, status 2, and nothing computed first
    (a reproduction takes seconds to minutes)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("mine")
    computed = []
    monkeypatch.setattr(cmp, "reproduce", computed.append)
    assert main(["reproduce", "--out", out, name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("jaxgd: error: --out: ") and match in err
    assert "pass a folder you can write to" in err
    assert computed == []  # refused before the first reproduction began
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_second_reproduce_into_a_folder_in_use_is_refused_at_once(tmp_path, monkeypatch, capsys):
    out = tmp_path / "reps"
    second = {}

    def reproducing(name):  # meanwhile, another jaxgd reproduce into the same folder
        runner = threading.Thread(target=lambda: second.update(status=main(argv)))
        runner.start()
        runner.join()
        raise RuntimeError("the first reproduction stops here")

    argv = ["reproduce", "--out", str(out), "algoperf-score"]
    monkeypatch.setattr(cmp, "reproduce", reproducing)
    with pytest.raises(RuntimeError, match="stops here"):
        main(argv)
    assert second == {"status": 2}
    err = capsys.readouterr().err.strip()
    assert err == f"jaxgd: error: --out: {str(out)!r} is in use by another jaxgd reproduce; " + (
        "wait for it to finish, or pass another folder."
    )
    assert list(out.iterdir()) == []  # the lock went with the first run


def test_a_big_comparison_gets_a_one_line_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checks, "HISTORY_WARNING_BYTES", 100)
    monkeypatch.setattr(cmp, "compare", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["compare", *SMALL, "--out", str(tmp_path / "r"), "--no-cache"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    # 1 tuning run, then the 13 evaluation seeds in 13 calls of its one slot.
    assert err[0].startswith("jaxgd: warning: compare: a big comparison: 14 runs x their steps")
    assert "GiB of history" in err[0] and err[1] == "jaxgd: interrupted"


def test_the_time_line_adds_up_and_labels_the_overlapping_times(tmp_path, monkeypatch, capsys):
    """The command's wall time in consecutive parts that add up to it; then compare's
    compile and sweep times, summed over problems that compile and run at once
    (threads, or an executor's workers), labelled so: here made larger than the whole
    run, as overlapping threads can make them."""
    real = cmp.compare

    def overlapping(*args, **kwargs):
        result = real(*args, **kwargs)
        for p in result.problems:
            p.compile_seconds = 500.0
        return result

    monkeypatch.setattr(cmp, "compare", overlapping)
    began = time.perf_counter() - 2.0  # as if the imports had taken 2 s
    argv = ["compare", *SMALL, "--out", str(tmp_path / "r"), "--no-cache"]
    assert main(argv, started=began) == 0
    out = capsys.readouterr().out
    said = "; inside compare, summed over threads (or workers) that overlap: "
    line = re.search(rf"^([\d.]+) s in all: (.*){re.escape(said)}(.*)\.$", out, re.M)
    assert line, out
    total = float(line[1])
    wall, summed = (
        dict(re.findall(r"([a-z() ]+?) ([\d.]+) s(?:, |$)", p)) for p in line.groups()[1:]
    )
    assert list(wall) == ["starting (imports)", "checks and data", "compare", "figures and report"]
    assert sum(map(float, wall.values())) == pytest.approx(total, abs=0.25)  # rounding only
    assert float(wall["starting (imports)"]) >= 2.0
    assert list(summed) == ["tracing and compiling", "sweeps"]
    assert float(summed["tracing and compiling"]) == 500.0 > total


def test_an_error_during_the_run_is_not_a_usage_error(tmp_path, monkeypatch):
    """A ValueError raised by the run itself keeps its traceback (exit status 1)."""

    def broken(*args, **kwargs):
        raise ValueError("something deep in a run")

    monkeypatch.setattr(cmp, "compare", broken)
    with pytest.raises(ValueError, match="something deep in a run"):
        main(["compare", *SMALL, "--out", str(tmp_path / "r"), "--no-cache"])


def test_console_script_exit_status_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgd", "compare", "--problems", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "unknown problem" in proc.stderr


def test_the_command_ends_its_process_after_what_a_shutdown_would_finish(tmp_path):
    """`command()` skips the interpreter's teardown (os._exit), but the output is
    flushed, a non-daemon thread is waited for and the atexit functions run."""
    done = tmp_path / "thread-done"
    code = (
        "import atexit, pathlib, sys, threading, time\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        f"def late(): time.sleep(0.5); pathlib.Path({str(done)!r}).write_text('y')\n"
        "threading.Thread(target=late).start()\n"
        "import concurrent.futures\n"
        "concurrent.futures.ThreadPoolExecutor(1).submit(print, end='').result()  # left idle\n"
        "from jaxgd.cli import command\n"
        "print('unflushed', end='')\n"
        "command()\n"
        "print('never here')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "problems"], capture_output=True, text=True, timeout=120,
        env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unflushed") and "booth" in proc.stdout
    assert proc.stdout.rstrip().endswith("atexit ran") and "never here" not in proc.stdout
    assert done.read_text() == "y"
    entry = "from jaxgd.cli import command; command()"
    gone = subprocess.Popen(
        [sys.executable, "-c", entry, "problems"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**_env(), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    gone.stdout.close()  # the reader is gone before the list is printed
    status, err = gone.wait(timeout=120), gone.stderr.read()
    gone.stderr.close()
    assert status == 141 and b"Traceback" not in err, err
    bad = subprocess.run(
        [sys.executable, "-c", entry, "compare", "--steps", "0"],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert bad.returncode == 2 and "steps" in bad.stderr


def test_the_executor_the_command_opened_is_released(tmp_path, monkeypatch):
    """--executor's pool is shut down when the run ends (queued jobs cancelled, not
    waited for: after Ctrl-C the command must not wait for running jobs)."""
    released = []

    class Pool(concurrent.futures.ThreadPoolExecutor):
        def shutdown(self, wait=True, *, cancel_futures=False):
            released.append((wait, cancel_futures))
            super().shutdown(wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(cmp, "connect_executor", lambda spec: Pool(2))
    flags = ["--executor", "processes:2", "--out", str(tmp_path / "r"), "--no-cache"]
    assert main(["compare", *SMALL, *flags]) == 0
    assert released == [(False, True)]


def test_a_run_error_exits_1_with_its_traceback(tmp_path):
    code = (
        "import importlib, sys\n"
        "c = importlib.import_module('jaxgd.comparison')\n"
        "def broken(*a, **k): raise ValueError('deep in the run')\n"
        "c.compare = broken\n"
        "from jaxgd.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "compare", *SMALL, "--out", str(tmp_path / "r"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: deep in the run" in proc.stderr


def test_the_cache_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "jaxgd" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    if sys.platform.startswith("linux"):
        assert cache_dir() == pathlib.Path.home() / ".cache" / "jaxgd" / "xla"


def _cli(tmp_path: pathlib.Path, *flags: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgd", "compare", *SMALL, "--out", str(tmp_path / "r"), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _entries(folder: pathlib.Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_a_second_run_compiles_nothing_new(tmp_path):
    """The persistent compilation cache: the first run fills it, the second only reads."""
    cache = tmp_path / "cache" / "jaxgd" / "xla"
    _cli(tmp_path, "--no-cache")
    assert not cache.exists()
    _cli(tmp_path)
    first = _entries(cache)
    assert len(first) >= 2  # the sweep and the figures' small programs at least
    _cli(tmp_path)
    assert _entries(cache) == first  # every program came from the cache


@pytest.mark.slow
def test_quick_compare_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgd", "compare", "--quick", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Report:" in proc.stdout and (tmp_path / "r" / "report.md").is_file()
    # The tqdm bar over the 4 problems: its last state shows 4/4 done and a rate.
    bar = proc.stderr.replace("\r", "\n").strip().splitlines()
    assert re.search(r"compare: 100%\|.*\| 4/4 \[.*(s/problem|problem/s)", bar[-1]), bar[-1]


def test_the_progress_bar_counts_problems(tmp_path, capsys):
    argv = ["compare", "--problems", "booth,beale", "--optimizers", "vanilla", "--steps", "10"]
    argv += ["--seeds", "1", "--learning-rates", "0.1", "--out", str(tmp_path / "r")]
    assert main([*argv, "--no-cache"]) == 0
    states = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    assert re.match(r"compare:\s+0%\|.*\| 0/2 \[", states[0]), states[0]
    assert re.search(r"compare: 100%\|.*\| 2/2 \[.*(s/problem|problem/s), beale\]", states[-1])

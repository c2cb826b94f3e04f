"""Tests for the jaxgd command: listing, a small run, and one-line errors with status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jaxgd import problems
from jaxgd.cli import main


def test_problems_lists_the_catalogue(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    for name in problems.names():
        assert name in out
    assert "banana" in out


def test_compare_small_run(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", "--problems", "booth", "--optimizers", "vanilla,adam", "--steps", "30"]
    argv += ["--seeds", "1", "--learning-rates", "0.01,0.1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "booth" in printed and "vanilla" in printed and "adam" in printed
    assert str(out / "report.md") in printed
    assert (out / "results.json").is_file()
    assert (out / "figures" / "loss_booth.png").is_file()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["compare", "--steps", "0"], "steps"),
        (["compare", "--steps", "ten"], "--steps"),
        (["compare", "--seeds", "0"], "seeds"),
        (["compare", "--problems", "nope"], "unknown problem 'nope'"),
        (["compare", "--optimizers", "sgd"], "unknown optimizer 'sgd'"),
        (["compare", "--learning-rates", "0.1,x"], "--learning-rates"),
        (["compare", "--learning-rates", "0,0.1"], "learning_rates"),
        (["compare", "--learning-rates", ","], "learning_rates is empty"),
        (["compare", "--batch-size", "-3"], "batch-size"),
        (["compare", "--frob"], "unrecognized arguments"),
        (["frob"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, match, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "r")] if argv[:1] == ["compare"] else argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxgd: error:")
    assert match in lines[0]
    assert not (tmp_path / "r").exists()  # nothing written, nothing compiled


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["compare", "--out", str(blocker / "report")]) == 2
    assert "cannot write the report folder" in capsys.readouterr().err


def test_console_script_exit_status_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgd", "compare", "--problems", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "unknown problem" in proc.stderr


@pytest.mark.slow
def test_quick_compare_end_to_end(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgd", "compare", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Report:" in proc.stdout and (tmp_path / "report.md").is_file()
    assert "compare" in proc.stderr  # the tqdm progress bar

"""issue 23: ``jaxgd compare`` attacked: Ctrl-C at any moment (an import that
swallows it included) never lets the run replace the old report, a second run
into the same folder is refused at once, ``--quick`` keeps to its own folder,
and the time printed is the whole time, in parts."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import jaxgd as gd
from jaxgd import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = ["--problems", "booth", "--optimizers", "vanilla", "--steps", "2", "--seeds", "1"]
SMALL += ["--learning-rates", "0.001", "--no-progress", "--no-cache"]


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_time_printed_is_the_whole_time_in_parts_and_none_solved_is_explained(tmp_path, capsys):
    began = time.perf_counter() - 3.0  # as if the imports had taken 3 s
    assert cli.main(["compare", *SMALL, "--out", str(tmp_path / "r")], started=began) == 0
    out = capsys.readouterr().out
    line = re.search(r"^([\d.]+) s in all: (.*); inside compare, summed over .*\.$", out, re.M)
    assert line, out
    parts = dict(re.findall(r"([a-z() ]+?) ([\d.]+) s(?:, |$)", line[2]))
    assert list(parts) == ["starting (imports)", "checks and data", "compare", "figures and report"]
    assert float(parts["starting (imports)"]) == pytest.approx(3.0, abs=0.2)
    assert sum(map(float, parts.values())) == pytest.approx(float(line[1]), abs=0.5)
    assert "vanilla solved none of the 1 problems" in out and "within the 2 steps" in out


def test_quick_writes_to_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli._parser().parse_args(["compare", "--quick"])
    assert cli._compare_arguments(args)[1] == tmp_path / cli.QUICK_OUT
    args = cli._parser().parse_args(["compare"])
    assert cli._compare_arguments(args)[1] == tmp_path / "jaxgd-report"


def test_a_ctrl_c_that_was_swallowed_never_replaces_the_old_report(tmp_path, monkeypatch):
    folder = tmp_path / "r"
    assert cli.main(["compare", *SMALL, "--out", str(folder)]) == 0
    before = _tree(folder)
    real = gd.comparison.compare

    def swallowing(*args, **kwargs):  # as `import jax` does in its first seconds
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(gd.comparison, "compare", swallowing)
    assert cli.main(["compare", *SMALL, "--out", str(folder)]) == 130
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_second_run_into_the_same_folder_is_refused_at_once(tmp_path, capsys):
    folder, held, done = tmp_path / "r", threading.Event(), threading.Event()

    def first_run():  # holds the folder as a running `jaxgd compare` does
        with gd.report.folder_lock(folder, wait=False):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        held.wait(60)
        assert cli.main(["compare", *SMALL, "--out", str(folder)]) == 2
    finally:
        done.set()
        thread.join()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("jaxgd: error: --out: ") and "in use" in err


@pytest.mark.slow  # starts `python -m jaxgd compare` a few times (about 10 s each)
@pytest.mark.parametrize("delay", [0.5, 1.5, 4.0, 8.0])
def test_ctrl_c_at_any_moment_exits_soon_and_keeps_the_old_report(tmp_path, delay):
    folder = tmp_path / "r"
    assert cli.main(["compare", *SMALL, "--out", str(folder)]) == 0
    before = _tree(folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    quick = ["compare", "--quick", "--no-progress", "--no-cache", "--out", str(folder)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxgd", *quick], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    _, err = proc.communicate(timeout=120)
    answered = time.perf_counter() - sent
    # The issue asks for 2 s; 5 s leaves room for a loaded machine.
    assert answered < 5.0, f"answered after {answered:.1f} s: {err[-500:]}"
    assert proc.returncode in (130, -signal.SIGINT, 1), err[-500:]  # 1: an extension's import
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_ctrl_c_that_something_swallowed_still_ends_the_pipelines_waits():
    # A KeyboardInterrupt raised inside a garbage-collector callback (JAX registers one)
    # is only printed. CtrlCNoted notes the press, and wait_for, which the compare
    # pipeline and the figure drawer wait with, raises it: a future or thread that would
    # finish in 5 s is not waited for.
    import concurrent.futures
    import contextlib

    from jaxgd import _host

    noted = _host.CtrlCNoted()
    try:
        done = concurrent.futures.Future()
        done.set_result(7)
        assert _host.wait_for(done) == 7  # nothing pressed: the result
        with contextlib.suppress(KeyboardInterrupt):  # swallowed, as in a gc callback
            noted._handler(signal.SIGINT, None)
        later = concurrent.futures.ThreadPoolExecutor(1).submit(time.sleep, 5)
        with pytest.raises(KeyboardInterrupt):
            _host.wait_for(later, poll=0.05)
        sleeper = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        sleeper.start()
        with pytest.raises(KeyboardInterrupt):
            _host.wait_for(sleeper, poll=0.05)
    finally:
        noted.release(check=False)
    assert not _host.CtrlCNoted().pressed  # a new one starts unpressed: the note is cleared
    _host.CtrlCNoted().release(check=False)

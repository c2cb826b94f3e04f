"""issue 23: saves into one report folder take turns, a user's PNG is never
deleted, and nothing is left beside the folder."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import pytest

import jaxgd as gd

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small():
    return gd.compare(["booth"], ["vanilla"], learning_rates=[0.01, 0.1], seeds=1, steps=20)


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_png_the_user_added_to_figures_is_refused_not_deleted(small, tmp_path):
    folder = tmp_path / "report"
    gd.report.save(small, folder)
    (folder / "figures" / "my_plot.png").write_bytes(b"\x89PNG mine")
    before = _tree(folder)
    with pytest.raises(ValueError, match=r"figures/my_plot\.png.*pass a new or empty folder"):
        gd.report.save(small, folder)
    assert _tree(folder) == before
    (folder / "figures" / "my_plot.png").unlink()
    gd.report.save(small, folder)  # the report's own figures are replaced as before


def test_saves_from_several_threads_take_turns(small, tmp_path):
    folder, errors = tmp_path / "report", []

    def save():
        try:
            gd.report.save(small, folder)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no lock or temp left
    assert sorted(p.name for p in folder.iterdir()) == ["figures", "report.md", "results.json"]


HOLDER = textwrap.dedent(
    """
    import sys
    from jaxgd.report import folder_lock

    with folder_lock(sys.argv[1]):
        print("HELD", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    """
)


@pytest.mark.slow  # a second Python process imports jaxgd (about 5 s)
def test_another_process_saving_there_is_waited_for_or_named(small, tmp_path):
    folder = tmp_path / "report"
    gd.report.save(small, folder)
    (tmp_path / ".report.jaxgd-tmp-killed").mkdir()  # what a SIGKILLed save left
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        assert not (tmp_path / ".report.jaxgd-tmp-killed").exists()  # cleaned on taking it
        in_use = pytest.raises(gd.report.FolderInUseError, match=rf"in use by .*pid {holder.pid}")
        with in_use, gd.report.folder_lock(folder, caller="--out", wait=False):
            pass
        waiting = threading.Thread(target=gd.report.save, args=(small, folder))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive()  # waits for its turn
        holder.stdin.close()
        waiting.join(timeout=60)
        assert not waiting.is_alive()
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]

"""Saving a report folder: whole or not at all, and never over files jaxgd did not write.

:func:`save` writes ``report.md``, ``results.json`` and ``figures/*.png`` into
a fresh hidden folder beside the target and, once everything is written,
swaps it in for the target in two renames (Ctrl-C is held off between them).
An interrupted save therefore leaves the previous report whole, and a new
report never mixes with an older one's figures. :func:`check_folder` refuses,
before anything runs, a target that is empty (``""``), the current folder,
a file, or a folder holding anything but a jaxgd report (recognised by its
``results.json`` schema, see :func:`jaxgd.comparison.load`): a file the user
added, a PNG in ``figures/`` included, is never deleted.

Saves into one folder take turns: :func:`folder_lock` holds an ``flock`` on
``.<name>.jaxgd-lock`` beside the folder (removed when released), which
``save`` waits for, and which ``jaxgd compare`` takes for its whole run (a
second one is refused at once, :class:`FolderInUseError`). Whoever holds it
removes what saves killed earlier left (``.<name>.jaxgd-tmp-*``), and a save
that fails removes its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping

from jaxgd._host import ctrl_c_held
from jaxgd.comparison import Comparison, load
from jaxgd.report._text import markdown
from jaxgd.report.figures import draw_all

__all__ = ["REPORT_FILES", "FolderInUseError", "check_folder", "folder_lock", "save"]

REPORT_FILES = ("report.md", "results.json", "figures")
"""What a report folder holds; ``figures/`` holds only PNG files."""

_TMP, _OLD = "jaxgd-tmp", "jaxgd-old"  # hidden siblings: .<name>.jaxgd-tmp-<id>, ...-old-<id>
_LOCK, _PROBE = "jaxgd-lock", "jaxgd-probe"  # .<name>.jaxgd-lock, .<name>.jaxgd-probe-<id>
_LINKED = re.compile(r"\(figures/([^)/]+\.png)\)")  # report.md's links to its figures


def _fix(folder: pathlib.Path) -> str:
    return (
        f"pass a new or empty folder (e.g. {str(folder.parent / 'jaxgd-report')!r}), or move "
        "those files away: a report replaces its folder whole"
    )


def _figures_written(folder: pathlib.Path) -> set[str]:
    """The figure files the report in ``folder`` wrote: those its ``report.md``
    links to (it links every figure it draws)."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return set(_LINKED.findall((folder / "report.md").read_text()))
    return set()


def _foreign_entries(folder: pathlib.Path) -> list[str]:
    """What in ``folder`` a jaxgd report did not write (empty: it is a jaxgd report)."""
    entries = sorted(e.name for e in folder.iterdir())
    foreign = [e for e in entries if e not in REPORT_FILES]
    figures = folder / "figures"
    if figures.is_dir():
        written = _figures_written(folder)
        foreign += [
            f"figures/{f.name}"
            for f in sorted(figures.iterdir())
            if not (f.is_file() and f.name in written)
        ]
    elif figures.exists():
        foreign.append("figures")
    if (folder / "report.md").exists() and not (folder / "report.md").is_file():
        foreign.append("report.md")
    return foreign


def check_folder(directory: str | os.PathLike, *, caller: str = "check_folder") -> pathlib.Path:
    """Check that a report may be saved to ``directory``; nothing is written there.

    A new folder, an empty one, or a jaxgd report (its ``results.json`` of
    schema ``jaxgd.comparison`` and nothing but ``report.md`` and
    ``figures/*.png`` beside it) may be replaced; its parent folders are made.

    Returns:
        The folder as an absolute path.

    Raises:
        ValueError: naming the folder, what is wrong and what to do, after
            ``caller``: the function the user called (``save``), or the
            command's option (``--out``).

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "report"
        >>> check_folder(folder) == folder.resolve(), folder.exists()
        (True, False)
    """
    if directory is None or not str(directory).strip():
        raise ValueError(
            f"{caller}: the report folder is an empty name (an unset variable?); pass a folder "
            "name such as jaxgd-report."
        )
    folder = pathlib.Path(directory).expanduser().resolve()
    cwd = pathlib.Path.cwd().resolve()
    if folder == cwd or folder in cwd.parents:
        raise ValueError(
            f"{caller}: {str(folder)!r} is the current folder (or holds it); a report replaces "
            "its folder whole, so pass a folder of its own, such as jaxgd-report."
        )
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{caller}: {str(folder)!r} is a file, not a folder; {_fix(folder)}.")
    if folder.is_dir() and any(folder.iterdir()):
        try:
            load(folder / "results.json")
        except ValueError:
            raise ValueError(
                f"{caller}: {str(folder)!r} holds files and is not a jaxgd report (no results.json "
                f"of schema jaxgd.comparison); jaxgd never writes over files it did not "
                f"write: {_fix(folder)}."
            ) from None
        foreign = _foreign_entries(folder)
        if foreign:
            raise ValueError(
                f"{caller}: the jaxgd report {str(folder)!r} also holds files jaxgd did not write "
                f"({', '.join(foreign)}); {_fix(folder)}."
            )
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        probe = folder.parent / f".{folder.name}.{_PROBE}-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise ValueError(
            f"{caller}: cannot write the report folder {str(folder)!r} ({err.strerror or err}); "
            "pass a folder you can write to."
        ) from None
    return folder


class FolderInUseError(ValueError):
    """Another process (or thread) is saving a report into the same folder."""


_HELD: dict[str, list] = {}  # lock file -> [its descriptor, how deep it is held]
_THREADS: dict[str, threading.RLock] = {}  # lock file -> the lock among this process's threads
_GUARD = threading.Lock()


def _flock(path: str, wait: bool) -> int:
    """An exclusive ``flock`` on the file ``path`` (created); its descriptor. The file
    must still be the one at ``path`` once locked (a releasing holder unlinks it)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            same = os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderInUseError(holder) from None
        except BaseException:
            os.close(fd)
            raise
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)  # unlinked by the holder that released it: lock the new file


@contextlib.contextmanager
def folder_lock(
    directory: str | os.PathLike, *, caller: str = "folder_lock", wait: bool = True
) -> Iterator[pathlib.Path]:
    """Hold the report folder ``directory`` for saving: one holder at a time (other
    processes and threads wait, or, with ``wait=False``, get a
    :class:`FolderInUseError` naming the holder's pid). Re-entrant in one thread.
    On taking it, what earlier saves killed mid-way left is removed. Yields the
    folder as an absolute path; its parent folder must exist."""
    folder = pathlib.Path(directory).expanduser().resolve()
    path = str(folder.parent / f".{folder.name}.{_LOCK}")
    with _GUARD:
        among_threads = _THREADS.setdefault(path, threading.RLock())
    if not among_threads.acquire(blocking=wait):
        raise FolderInUseError(
            f"{caller}: the report folder {str(folder)!r} is in use by another thread of this "
            "process saving into it; wait for it, or pass another folder."
        )
    try:
        held = _HELD.get(path)
        if held is None:
            try:
                held = _HELD[path] = [_flock(path, wait), 0]
            except FolderInUseError as err:
                raise FolderInUseError(
                    f"{caller}: the report folder {str(folder)!r} is in use by another jaxgd "
                    f"process (pid {err}) writing a report there; wait for it to finish, or "
                    "pass another folder."
                ) from None
            _clean_up(folder)
        held[1] += 1
        try:
            yield folder
        finally:
            held[1] -= 1
            if held[1] == 0:
                del _HELD[path]
                with contextlib.suppress(OSError):
                    os.unlink(path)  # before the release: nothing is left beside the folder
                os.close(held[0])
    finally:
        among_threads.release()


def _leftovers(folder: pathlib.Path, kind: str) -> list[pathlib.Path]:
    return sorted(folder.parent.glob(f".{folder.name}.{kind}-*"))


def _clean_up(folder: pathlib.Path) -> None:
    """Remove what an earlier save killed mid-way left beside ``folder``: its
    unfinished new report, and the old report once a new one is in place (an old
    report whose replacement never arrived is put back)."""
    for tmp in _leftovers(folder, _TMP):
        shutil.rmtree(tmp, ignore_errors=True)
    for old in _leftovers(folder, _OLD):
        if not folder.exists():
            old.rename(folder)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _swap_in(new: pathlib.Path, folder: pathlib.Path) -> None:
    """Put ``new`` where ``folder`` is; the old folder is kept until that succeeded."""
    old = folder.parent / f".{folder.name}.{_OLD}-{uuid.uuid4().hex[:8]}"
    with ctrl_c_held():  # the one guard: Ctrl-C held off until the swap is done
        if folder.exists():
            folder.rename(old)
        try:
            new.rename(folder)
        except BaseException:
            if old.exists():
                old.rename(folder)
            raise
    shutil.rmtree(old, ignore_errors=True)


def save(
    comparison: Comparison,
    directory: str | os.PathLike = "jaxgd-report",
    figures: Mapping[str, bytes] | None = None,
) -> pathlib.Path:
    """Write the report of ``comparison``: ``report.md``, ``results.json``, ``figures/*.png``.

    The report replaces ``directory`` whole, or, if interrupted, leaves it as
    it was; a folder that is not a jaxgd report is refused (see
    :func:`check_folder`). ``figures``: figures already drawn (name -> PNG
    bytes, from a :class:`jaxgd.report.FigureDrawer`); the others are drawn here.

    Returns:
        The path of ``report.md``.

    Examples:
        >>> import pathlib, tempfile
        >>> import jaxgd as gd
        >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20)
        >>> path = gd.report.save(c, pathlib.Path(tempfile.mkdtemp()) / "report")
        >>> sorted(p.name for p in path.parent.iterdir())
        ['figures', 'report.md', 'results.json']
    """
    folder = check_folder(directory, caller="save")
    with folder_lock(folder, caller="save"):  # saves into one folder take turns
        check_folder(folder, caller="save")  # as it is now that it is ours
        new = folder.parent / f".{folder.name}.{_TMP}-{uuid.uuid4().hex[:8]}"
        try:
            (new / "figures").mkdir(parents=True)
            drawn = draw_all(comparison, new / "figures", figures)
            (new / "results.json").write_text(comparison.to_json() + "\n")
            links = {name: f"figures/{path.name}" for name, path in drawn.items()}
            (new / "report.md").write_text(markdown(comparison, links))
            _swap_in(new, folder)
        finally:
            shutil.rmtree(new, ignore_errors=True)
    return folder / "report.md"

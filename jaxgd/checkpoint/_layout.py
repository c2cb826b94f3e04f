"""The checkpoint directory: its layout, who owns it, and orbax's view of it.

A checkpoint is a directory that jaxgd owns; the user names it (``"run.ckpt"``) and
jaxgd creates it. Inside, `orbax-checkpoint <https://orbax.readthedocs.io>`_'s
:class:`~orbax.checkpoint.CheckpointManager` keeps one numbered step directory, the
latest save (the number counts saves)::

    run.ckpt/
      jaxgd-checkpoint         an empty file: jaxgd made this directory and owns it
      jaxgd.lock               held by the live run using the checkpoint (see lock())
      7/                       the checkpoint, written by the 8th save
        state/                 the arrays: orbax's StandardCheckpointHandler (tensorstore)
        jaxgd/metadata         JSON: format, version, tree structure, leaves, metadata
        _CHECKPOINT_METADATA   orbax's own bookkeeping
      8.orbax-checkpoint-tmp-1712345678/   a save in progress

A save writes the next step into orbax's temporary directory and renames it into place
once complete; only then is the previous step deleted. A save that was interrupted
leaves its temporary directory behind, and the next :func:`save` or :func:`lock`
removes it. ``state/`` is an ordinary orbax checkpoint of the pytree (NamedTuples as
dicts of their fields), readable by plain orbax too; ``jaxgd/metadata`` describes the
tree (see :mod:`~jaxgd.checkpoint._description`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

import jax

if TYPE_CHECKING:
    import orbax.checkpoint as ocp

__all__ = [
    "DESCRIPTION",
    "INTERRUPTED",
    "LOCK_NAME",
    "STATE",
    "check_path",
    "claim",
    "exists",
    "latest_step",
    "orbax_manager",
    "orbax_reader",
    "path_problem",
]

STATE = "state"  # orbax item holding the arrays
DESCRIPTION = "jaxgd"  # orbax item holding the JSON description
LOCK_NAME = "jaxgd.lock"
_MARKER = "jaxgd-checkpoint"  # created with the directory: jaxgd owns what is inside
# What may sit in a checkpoint directory beside the marker: the lock, orbax's step
# directories, and the temporary directories of saves in progress (or interrupted).
INTERRUPTED = re.compile(r"\d+\.orbax-checkpoint-tmp.*")  # orbax's TMP_DIR_SUFFIX
_OURS = re.compile(rf"{_MARKER}|jaxgd\.lock|\d+|{INTERRUPTED.pattern}")


def directory_of(path: str | os.PathLike[str]) -> pathlib.Path:
    """``path`` as an absolute :class:`pathlib.Path`, ``~`` expanded (``"~/run"`` is
    the ``run`` folder in the home directory, not a folder named ``~``)."""
    return pathlib.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def remove_interrupted(directory: pathlib.Path) -> None:
    """Removes what interrupted or failed saves left in ``directory`` (orbax's
    temporary directories); only process 0 writes."""
    if jax.process_index() != 0 or not directory.is_dir():
        return
    # orbax's writer threads of a failed save may still be finishing a file in there: try
    # again until nothing is left (at most about a second).
    for _ in range(40):
        left = [e for e in directory.iterdir() if INTERRUPTED.fullmatch(e.name)]
        if not left:
            return
        for entry in left:
            shutil.rmtree(entry, ignore_errors=True)
        time.sleep(0.025)


def check_path(path: str | os.PathLike[str]) -> pathlib.Path:
    """Checks that ``path`` can hold a jaxgd checkpoint, without writing anything.

    It can if it does not exist yet (its folder must exist and be writable), if it is an
    empty directory, or if it is a directory jaxgd made (it holds the ``jaxgd-checkpoint``
    marker) holding only what jaxgd writes there. jaxgd replaces and deletes what is in
    such a directory, so a directory of the user's own is never taken (even if its
    entries are named like orbax's steps).

    Args:
        path: The checkpoint directory.

    Returns:
        ``path`` as an absolute :class:`pathlib.Path`.

    Raises:
        ValueError: ``path`` is a file (a checkpoint of the older ``.npz`` format, for
            example), a directory holding files jaxgd did not write, or a path in a
            folder that does not exist or cannot be written. The message says what to
            do.

    Examples:
        >>> import os, tempfile
        >>> from jaxgd import checkpoint
        >>> folder = tempfile.mkdtemp()
        >>> checkpoint.check_path(os.path.join(folder, "run.ckpt")).name
        'run.ckpt'
        >>> checkpoint.check_path(folder + "/missing/run.ckpt")
        Traceback (most recent call last):
        ...
        ValueError: checkpoint path '.../missing/run.ckpt' must be in an existing folder; ...
    """
    directory = directory_of(path)
    problem = path_problem(directory)
    if problem is not None:
        raise ValueError(problem[1])
    return directory


def path_problem(directory: pathlib.Path) -> tuple[type[Exception], str] | None:
    """Why ``directory`` cannot hold a checkpoint, with the exception a save raises."""
    shown = str(directory)
    if directory.is_dir():
        names = sorted(p.name for p in directory.iterdir())
        if names and _MARKER in names:
            foreign = [name for name in names if not _OURS.fullmatch(name)]
        else:  # not made by jaxgd: only an empty directory is taken over
            foreign = names
        if foreign:
            return ValueError, (
                f"checkpoint path {shown!r} is a directory holding files jaxgd did not write "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); jaxgd owns "
                "its checkpoint directory, so pass a new path (jaxgd creates it)."
            )
        folder = directory
    elif directory.exists():
        return ValueError, (
            f"checkpoint path {shown!r} is a file, not a checkpoint directory (checkpoints "
            "are directories; a file of the older .npz format cannot be resumed); pass a "
            "new path (jaxgd creates it) or delete the file."
        )
    else:
        folder = directory.parent
        if not folder.is_dir():
            return FileNotFoundError, (
                f"checkpoint path {shown!r} must be in an existing folder; create "
                f"{str(folder)!r} first."
            )
    if not os.access(folder, os.W_OK):
        return PermissionError, (
            f"cannot write checkpoints in {str(folder)!r} (it is not writable); pick another path."
        )
    return None


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether a complete checkpoint is at ``path`` (a save finished there).

    Args:
        path: The checkpoint directory.

    Returns:
        True if ``path`` is a directory holding at least one finished save.

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
        >>> checkpoint.exists(path)
        False
        >>> _ = checkpoint.save(path, {"w": jnp.ones(2)})
        >>> checkpoint.exists(path)
        True
    """
    directory = directory_of(path)
    return directory.is_dir() and latest_step(directory) is not None


def _handlers() -> dict[str, Any]:
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    return {STATE: ocp.StandardCheckpointHandler(), DESCRIPTION: ocp.JsonCheckpointHandler()}


def orbax_manager(directory: pathlib.Path) -> ocp.CheckpointManager:
    """Orbax's manager of ``directory``, for saving: it keeps one save, and removes what
    interrupted saves left before it saves."""
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    options = ocp.CheckpointManagerOptions(
        enable_async_checkpointing=False,
        max_to_keep=1,
        cleanup_tmp_directories=True,
        create=True,
    )
    return ocp.CheckpointManager(directory, options=options, item_handlers=_handlers())


def orbax_reader() -> ocp.Checkpointer:
    """Orbax's reader of one save (a step directory)."""
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    return ocp.Checkpointer(ocp.CompositeCheckpointHandler(**_handlers()))


def latest_step(directory: pathlib.Path) -> int | None:
    """The number of the latest finished save in ``directory`` (None if there is none)."""
    steps = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(steps, default=None)


def claim(directory: pathlib.Path) -> None:
    """Creates the directory (if needed) and marks it as jaxgd's, before anything else
    goes in: a directory with the marker is one whose contents jaxgd may replace."""
    directory.mkdir(exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(directory / _MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))

"""The lock on a checkpoint: one live run at a time (see :func:`lock`)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import threading
import time
from collections.abc import Iterator

import jax

from jaxgd.checkpoint._collective import agree, barrier
from jaxgd.checkpoint._layout import LOCK_NAME, check_path, claim, remove_interrupted

__all__ = ["CheckpointInUseError", "held_here", "lock"]

# The directories this process's `lock` blocks hold, each with the thread inside the
# block: its saves are the run's own. (Every process of a multi-process run enters
# the block, though only process 0 holds the flock.)
_HELD: dict[pathlib.Path, int] = {}


class CheckpointInUseError(ValueError):
    """Another live run holds the checkpoint (see :func:`lock`)."""

    __module__ = "jaxgd.checkpoint"  # its public name, in tracebacks and reprs


@contextlib.contextmanager
def lock(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
    """Holds the checkpoint at ``path`` for a run: a second live run is refused.

    Creates the directory if needed, takes the lock (an exclusive :func:`fcntl.flock`
    on ``path/jaxgd.lock``, which records the holder's pid and host), then removes what
    an interrupted save left (orbax's temporary directories). The operating system drops
    the lock when the holder's process ends, however it ends, so a lock left by a killed
    run never blocks a resume. ``flock`` is not re-entrant across file descriptions: a
    second ``lock`` of the same path in the same process is refused too. (``flock`` is
    POSIX; across hosts it holds where the shared file system supports it, as NFSv4
    does.) A run holds the lock around all its saves: :func:`save` called inside the
    block, by the thread that entered it, writes under it; any other :func:`save` of
    the path takes the lock itself for the time of its write, so it is refused while a
    run holds it (another process's, or another thread's of this process).

    In a multi-process run every process enters ``lock`` (it is collective): process 0
    takes the one lock of the run and tells the others whether it got it, so all
    processes go on, or all raise; on leaving the block normally, process 0 releases
    the lock once every process has left it.

    Args:
        path: The checkpoint directory (see :func:`check_path`).

    Yields:
        The checkpoint directory, as an absolute :class:`pathlib.Path`.

    Raises:
        CheckpointInUseError: Another live process holds the lock; the message names
            its pid and host. It is a :class:`ValueError`.
        ValueError: ``path`` cannot hold a checkpoint (see :func:`check_path`).

    Examples:
        >>> import os, tempfile
        >>> from jaxgd import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
        >>> with checkpoint.lock(path):
        ...     with checkpoint.lock(path):  # a second run of the same path
        ...         pass
        Traceback (most recent call last):
        ...
        jaxgd.checkpoint.CheckpointInUseError: checkpoint '.../run.ckpt' is in use by process ...
    """
    directory = check_path(path)
    fd, error = None, None
    if jax.process_index() == 0:
        try:
            fd = _acquire(directory)
        except Exception as err:  # every process must learn that process 0 failed
            error = err
    if not agree(int(fd is not None)):
        if error is not None:
            raise error
        raise CheckpointInUseError(
            f"checkpoint {str(directory)!r} could not be locked by process 0 of this run: "
            f"{_holder(directory)}"
        )
    _HELD[directory] = threading.get_ident()
    try:
        if fd is not None:
            remove_interrupted(directory)  # what interrupted saves left
        yield directory
        barrier("jaxgd.checkpoint.lock")  # every process is done before the lock goes
    finally:
        del _HELD[directory]
        if fd is not None:
            _release(directory, fd)


def held_here(directory: pathlib.Path) -> bool:
    """Whether this thread is inside a :func:`lock` block of ``directory`` (an absolute
    path, as :func:`lock` yields it)."""
    return _HELD.get(directory) == threading.get_ident()


def _acquire(directory: pathlib.Path) -> int:
    """Takes the lock file's flock and writes who holds it; returns its descriptor."""
    import fcntl

    claim(directory)
    lock_path = directory / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointInUseError(
                f"checkpoint {str(directory)!r} is in use by {_holder(directory)}; wait "
                "for that run to end (or stop it), or pass another checkpoint path."
            ) from None
        # The holder before us may have unlinked the file between our open and flock.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder).encode())
    return fd


def _holder(directory: pathlib.Path) -> str:
    """Who holds the lock, from the lock file (the holder may still be writing it)."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            holder = json.loads((directory / LOCK_NAME).read_text())
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
            return f"process {int(holder['pid'])} on {holder['host']} (since {since})"
        time.sleep(0.05)
    return "another process"


def _release(directory: pathlib.Path, fd: int) -> None:
    """Removes the lock file, then drops the flock (a waiter sees the file is gone)."""
    with contextlib.suppress(OSError):
        os.unlink(directory / LOCK_NAME)
    os.close(fd)

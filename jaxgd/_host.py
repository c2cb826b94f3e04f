"""The host process: its memory, Ctrl-C, a progress bar, and the caches jaxgd keeps.

One home each for what every wing asks of the machine it runs on:

* :func:`memory_bytes` (the default device's memory) and :func:`tree_bytes`
  (what a pytree of arrays holds), for the checks that refuse what cannot fit;
* :func:`ctrl_c_held`, the one Ctrl-C guard: a run between two segments and a
  report folder between two renames both hold Ctrl-C off and act on it after;
  :class:`CtrlCNoted` keeps a Ctrl-C that a library swallowed (``import jax``)
  from being lost: ``import jaxgd`` and the ``jaxgd`` command raise it again;
* :func:`progress_bar`, the one tqdm bar of ``minimize`` and ``compare``;
* :func:`exit_now`, how the ``jaxgd`` command ends its process;
* :func:`agree`: what the processes of a multi-process run decide from their own
  clocks (a run's segment lengths, Ctrl-C), taken from process 0 by every process;
* :func:`register_cache` and :func:`clear_caches`: every cache jaxgd keeps
  between calls (the warm-call memory of :func:`jaxgd.minimize`, the checks'
  memos, ...) registers how to empty itself here, so that
  :func:`clear_caches` forgets them all.

Imports nothing of jaxgd, and JAX only inside the functions that need it (the
report wing, which computes nothing, imports this module too).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

__all__ = [
    "CtrlC",
    "CtrlCNoted",
    "DURING_IMPORT",
    "STARTED",
    "agree",
    "clear_caches",
    "ctrl_c_held",
    "exit_now",
    "memory_bytes",
    "progress_bar",
    "register_cache",
    "tree_bytes",
    "wait_for",
]

_CLEARERS: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> Callable[[], None]:
    """Register ``clear`` (no arguments) to be called by :func:`clear_caches`."""
    _CLEARERS.append(clear)
    return clear


def clear_caches() -> None:
    """Forget every call jaxgd remembers between calls.

    The next call of :func:`jaxgd.minimize`, :func:`jaxgd.make_step` or a
    calculus function runs its checks and builds its programs again, as a
    first call does (JAX's own compilation cache is left alone:
    ``jax.clear_caches()`` empties it). For tests and for long sessions that
    want the memory back.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> _ = gd.minimize(lambda w: jnp.sum(w**2), jnp.ones(2), gd.sgd(0.1), steps=3)
        >>> gd.clear_caches()
    """
    for clear in _CLEARERS:
        clear()


def physical_memory() -> int | None:
    """The host's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def memory_bytes() -> int:
    """The memory of the default device (the host's physical memory for a CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend reports it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return physical_memory() or 0


def tree_bytes(tree: Any) -> int:
    """The bytes the array leaves of ``tree`` hold (shapes and dtypes only: nothing is read).

    Examples:
        >>> import numpy as np
        >>> tree_bytes({"w": np.zeros((2, 3), np.float32), "b": np.zeros((), np.float64)})
        32
    """
    import jax
    import numpy as np

    return sum(np.size(a) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


class CtrlC:
    """What :func:`ctrl_c_held` saw: ``pressed`` once a Ctrl-C came in the block."""

    def __init__(self) -> None:
        self.received: list[tuple] = []

    @property
    def pressed(self) -> bool:
        return bool(self.received)


@contextlib.contextmanager
def ctrl_c_held(*, deliver: bool = True, second_interrupts: bool = False) -> Iterator[CtrlC]:
    """Hold off SIGINT (Ctrl-C) in the block; yields a :class:`CtrlC` that says if one came.

    Args:
        deliver: after the block, hand a Ctrl-C
            that came to the handler there was before (Python's raises
            ``KeyboardInterrupt``): for a block that must finish whole, such
            as swapping a folder in. False: the block acts on
            ``CtrlC.pressed`` itself (a run stops between two segments).
        second_interrupts: a second Ctrl-C in the block raises
            ``KeyboardInterrupt`` at once (the user does not want to wait).

    Outside the main thread signals cannot be caught: the block runs unguarded.
    """
    seen = CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(*args):
        if second_interrupts and seen.received:
            raise KeyboardInterrupt
        seen.received.append(args)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
        if deliver and seen.received:
            if callable(previous):
                previous(*seen.received[0])  # Python's own handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


_NOTED = threading.Event()  # a CtrlCNoted saw a Ctrl-C (read by wait_for)


def wait_for(task: concurrent.futures.Future | threading.Thread, poll: float = 0.1) -> Any:
    """``task.result()`` (a future) or ``task.join()`` (a thread), but a Ctrl-C that a
    :class:`CtrlCNoted` noted and something swallowed (a ``KeyboardInterrupt``
    raised inside a garbage-collector callback is only printed) still raises
    ``KeyboardInterrupt`` within ``poll`` seconds: the main thread does not sit
    out the rest of a sweep or of the figures."""
    while True:
        if isinstance(task, threading.Thread):
            task.join(poll)
            if not task.is_alive():
                return None
        else:
            try:
                return task.result(timeout=poll)
            except concurrent.futures.TimeoutError:
                pass
        if _NOTED.is_set():
            raise KeyboardInterrupt


class CtrlCNoted:
    """Ctrl-C raises ``KeyboardInterrupt`` as usual, and is also noted, so that a
    library that swallows the ``KeyboardInterrupt`` (``import jax`` does, in its
    first seconds) cannot lose it: :meth:`check` raises it again.

    Installed only over Python's own handler, in the main thread (else inert);
    :meth:`release` puts that handler back.
    """

    def __init__(self) -> None:
        self.pressed = False
        _NOTED.clear()
        self._installed = (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if self._installed:
            signal.signal(signal.SIGINT, self._handler)

    def _handler(self, *args) -> None:
        self.pressed = True
        _NOTED.set()
        signal.default_int_handler(*args)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since this was made."""
        if self.pressed:
            raise KeyboardInterrupt

    def release(self, check: bool = True) -> None:
        """Put Python's handler back (if this one is still there), then :meth:`check`."""
        if self._installed and signal.getsignal(signal.SIGINT) == self._handler:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._installed = False
        if check:
            self.check()


STARTED = time.perf_counter()  # when jaxgd began to import (the jaxgd command's start)
DURING_IMPORT = CtrlCNoted()  # made as jaxgd begins to import (this module comes first);
# jaxgd/__init__.py checks it right after ``import jax`` and releases it at its end


def progress_bar(total: int, *, desc: str, unit: str, initial: int = 0, leave: bool = False):
    """A tqdm progress bar (tqdm is imported only when a bar is asked for)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, leave=leave)


def exit_now(status: int, *, finish: bool = True) -> NoReturn:
    """End the process with ``status`` once stdout and stderr are flushed, without
    the interpreter's shutdown, which frees every object one by one (JAX's and
    matplotlib's: 0.45 s after the default ``jaxgd compare``). With ``finish``
    the other threads are waited for and the ``atexit`` functions run first, as
    that shutdown would; without it (after Ctrl-C) neither: a worker thread still
    running would be waited for, or XLA's threads abort the shutdown."""
    if finish:
        # The interpreter's own first step: tell idle pool workers (concurrent.futures
        # registers that here) to stop, then join every non-daemon thread. Joining them
        # alone would wait for ever on an executor nobody shut down.
        threading._shutdown()
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (`| head`), or closed
            stream.flush()
    os._exit(status)


def agree(value: int) -> int:
    """Process 0's ``value``, on every process (a collective in a multi-process run,
    which every process must call, in the same order; ``value`` itself in one process).

    What a process decides from its own clock (how many steps the next segment
    takes, whether Ctrl-C was pressed) must be one decision for the whole run: two
    processes that ran segments of other lengths would wait on each other's
    collectives for ever.
    """
    import jax

    if jax.process_count() == 1:
        return value
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))

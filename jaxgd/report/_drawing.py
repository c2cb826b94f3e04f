"""Drawing a comparison's figures while it computes: :class:`FigureDrawer`.

Drawing the default comparison's 24 figures takes seconds of Python. A
:class:`FigureDrawer` draws each problem's figures on a worker thread as soon
as :func:`jaxgd.compare` hands the problem over (its ``on_problem``), while
the next problems compile and run: XLA lets go of Python's lock while it
compiles and runs, so the drawing takes what would otherwise be idle time.
:func:`jaxgd.report.save` then writes the figures drawn and draws the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import NamedTuple

from jaxgd._host import wait_for
from jaxgd.comparison import Comparison, ProblemResult
from jaxgd.report.figures import problem_pngs

__all__ = ["FigureDrawer"]


class _Context(NamedTuple):
    """What a problem's figures read of the comparison (known before it is over)."""

    optimizer_labels: list[str]
    seeds: tuple[int, ...]


_DONE = None  # the end of the queue
CANCEL_WAIT = 1.0  # seconds a cancelled drawer waits for its thread (Ctrl-C: answered soon)


class FigureDrawer:
    """Draws each problem's figures on a worker thread as the comparison hands them over.

    Args:
        optimizer_labels: the comparison's optimizers, in order (the colours follow it).
        seeds: the comparison's seeds.

    Use it as a context manager (the thread is stopped however the block
    ends); :meth:`add` is ``compare``'s ``on_problem``; :meth:`finish` waits
    for the drawing and gives the figures for ``report.save(figures=...)``.

    Examples:
        >>> import pathlib, tempfile
        >>> import jaxgd as gd
        >>> with gd.report.FigureDrawer(["vanilla"], (0,)) as drawer:
        ...     c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20,
        ...                    on_problem=drawer.add)
        ...     drawn = drawer.finish(c)
        >>> sorted(drawn)
        ['loss_booth', 'lr_booth', 'paths_booth']
        >>> path = gd.report.save(c, pathlib.Path(tempfile.mkdtemp()) / "r", figures=drawn)
    """

    def __init__(self, optimizer_labels: Sequence[str], seeds: Sequence[int]) -> None:
        self._context = _Context(list(optimizer_labels), tuple(seeds))
        self._queue: queue.SimpleQueue[ProblemResult | None] = queue.SimpleQueue()
        self._drawn: dict[str, bytes] = {}
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._draw, name="jaxgd-figures", daemon=True)
        self._thread.start()

    def _draw(self) -> None:
        try:  # matplotlib is imported while the first sweeps compile and run
            import matplotlib.backends.backend_agg  # noqa: F401
        except BaseException as err:
            self._error = err
        while (problem := self._queue.get()) is not _DONE:
            if self._error is not None or self._cancelled:
                continue  # after a failure, only wait for the end
            try:
                self._drawn.update(problem_pngs(self._context, problem))
            except BaseException as err:  # handed to the caller by finish()
                self._error = err

    def add(self, problem: ProblemResult) -> None:
        """Queue ``problem``'s figures (returns at once)."""
        self._queue.put(problem)

    def finish(self, comparison: Comparison) -> dict[str, bytes]:
        """Wait for the queued figures: name -> PNG bytes.

        Raises what drawing raised; figures of problems drawn with other
        optimizers or seeds than ``comparison``'s are left out (drawn again by
        ``report.save``).
        """
        self.close()
        if self._error is not None:
            raise self._error
        same = self._context.optimizer_labels == list(
            comparison.optimizer_labels
        ) and self._context.seeds == tuple(comparison.seeds)
        return dict(self._drawn) if same else {}

    def close(self, cancel: bool = False) -> None:
        """Stop the thread once the figures queued are drawn, or, with ``cancel``,
        once the figure being drawn is (again: nothing). Cancelled (Ctrl-C, an
        error), it waits :data:`CANCEL_WAIT` seconds at most: a thread stuck (on an
        import lock an interrupted import left) is a daemon, left behind."""
        self._cancelled = self._cancelled or cancel
        if self._thread.is_alive():
            self._queue.put(_DONE)
            if self._cancelled:
                self._thread.join(timeout=CANCEL_WAIT)
            else:
                wait_for(self._thread)  # a Ctrl-C something swallowed still ends the wait

    def __enter__(self) -> FigureDrawer:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(cancel=exc_type is not None)  # after an error, draw nothing more

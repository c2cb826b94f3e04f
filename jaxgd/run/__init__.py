"""The minimize wing: one compiled run loop, what prepares it and what it returns.

| module | concept |
| --- | --- |
| ``_api`` | :func:`minimize`: check, plan, execute |
| ``_result`` | what a run returns: :class:`Status`, :class:`History`, :class:`Result` |
| ``_batches`` | minibatch order, and the default gather |
| ``_loop`` | the compiled loop: evaluate, record, stop rules, update |
| ``_checks`` | every argument check of a run, before anything compiles |
| ``_fingerprint`` | what a checkpoint must agree on to be resumed |
| ``_segments`` | runs in segments: checkpoints, progress, Ctrl-C |
| ``_warm`` | calls seen before: what makes a warm call cheap |
| ``_make_step`` | :func:`make_step`: one compiled step for a loop of your own |

Imports point down: ``_result`` and ``_batches`` import nothing of the wing;
``_loop`` imports them; ``_segments`` imports ``_loop`` and
:mod:`jaxgd.checkpoint`; ``_api`` sits above them all.
"""

from jaxgd.run._api import minimize
from jaxgd.run._batches import batch_indices
from jaxgd.run._make_step import Step, make_step
from jaxgd.run._result import History, Result, Status
from jaxgd.run._segments import RunInterrupted

__all__ = [
    "History",
    "Result",
    "RunInterrupted",
    "Status",
    "Step",
    "batch_indices",
    "make_step",
    "minimize",
]

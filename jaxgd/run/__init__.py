"""The minimize wing: one compiled run loop, what prepares it and what it returns.

| module | concept |
| --- | --- |
| ``_api`` | :func:`minimize`: warm call, or check -> plan -> execute |
| ``_result`` | what a run returns: :class:`Status`, :class:`History`, :class:`Result` |
| ``_batches`` | minibatch order, and the default gather |
| ``_state`` | plain data: the static ``Spec``, ``LoopKind``, ``Carry``, ``Inputs``, ``Finish`` |
| ``_checks`` | the run's own argument checks (the generic ones: :mod:`jaxgd._checks`) |
| ``_values`` | the checks that look at values: the loss's output, the data's finiteness |
| ``_threaded`` | what a run threads besides params: ``opt_state=``, the model ``state=`` |
| ``_plan`` | every static decision once: history layout, loop kind, backend knobs |
| ``_body`` | the one step: evaluate, record, stop rules, update; start and finish |
| ``_diagnostics`` | why a step overshoots: alpha, cosine, update ratio, noise scale, effective lr |
| ``_outer`` | per-example gradient moments from an outer product's factors (the noise scale) |
| ``_examples`` | :func:`mean_over_examples`: a loss said to be a mean over examples |
| ``_loop`` | the compiled programs: four small drivers of the step, chosen by ``LoopKind`` |
| ``_fingerprint`` | what a checkpoint must agree on to be resumed |
| ``_segments`` | runs in segments: checkpoints, progress, Ctrl-C |
| ``_warm`` | calls seen before: what makes a warm call cheap (one clearable cache) |
| ``_make_step`` | :func:`make_step`: one compiled step for a loop of your own |

Imports point down: ``_result``, ``_batches``, ``_outer`` and ``_examples``
import nothing of the wing;
``_state`` imports them; ``_diagnostics`` imports ``_result`` (and asks
:mod:`jaxgd.optimizers` for the effective learning rate); ``_body``
imports ``_state`` and ``_diagnostics``; ``_loop`` imports ``_body``;
``_checks`` (with ``_values`` and ``_threaded``) and ``_plan`` sit beside;
``_segments`` imports ``_loop`` and :mod:`jaxgd.checkpoint`; ``_warm``
imports ``_segments``; ``_api`` sits above them all.
"""

from jaxgd.run._api import minimize
from jaxgd.run._batches import batch_indices
from jaxgd.run._diagnostics import NAMES as DIAGNOSTICS
from jaxgd.run._examples import mean_over_examples
from jaxgd.run._make_step import Step, make_step
from jaxgd.run._result import History, Result, Status
from jaxgd.run._segments import RunInterrupted

__all__ = [
    "DIAGNOSTICS",
    "History",
    "Result",
    "RunInterrupted",
    "Status",
    "Step",
    "batch_indices",
    "make_step",
    "mean_over_examples",
    "minimize",
]

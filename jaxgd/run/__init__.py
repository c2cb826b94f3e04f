"""The run layer: one compiled loop and what prepares and drives it.

| module | concept |
| --- | --- |
| :mod:`~jaxgd.run.result` | what a run returns: ``Status``, ``History``, ``Result`` |
| :mod:`~jaxgd.run.batches` | minibatch order, and the default gather |
| :mod:`~jaxgd.run.loop` | the compiled loop: evaluate, record, stop rules, update |
| :mod:`~jaxgd.run.checks` | every argument check, before anything compiles |
| :mod:`~jaxgd.run.fingerprint` | what a checkpoint must agree on to be resumed |
| :mod:`~jaxgd.run.chunks` | runs in segments: checkpoints, progress, Ctrl-C |
| :mod:`~jaxgd.run.warm_calls` | calls seen before: what makes a warm call cheap |

Imports point down: ``result`` and ``batches`` import nothing of jaxgd but
each other's floor; ``loop`` imports them and :mod:`jaxgd.partition`;
``chunks`` imports ``loop`` and :mod:`jaxgd.checkpoint`. The public entry,
:func:`jaxgd.minimize`, sits above them all.
"""

"""The pieces of :func:`jaxgd.compare`: checks, one problem's sweep, the chosen rates.

| module | concept |
| --- | --- |
| :mod:`~jaxgd.sweep.checks` | the defaults, every argument check, the footprint |
| :mod:`~jaxgd.sweep.chosen` | at each chosen rate: a step's cost, the sharpness |
| :mod:`~jaxgd.sweep.grid` | one problem: every optimizer x rate x seed, vmapped |

Imports point down: ``checks`` imports nothing of ``sweep``; ``chosen``
imports ``checks``; ``grid`` imports both. They compute and never import the
renderer (:mod:`jaxgd.report`); what they return is plain data
(:mod:`jaxgd.results`). The public entry, :func:`jaxgd.compare`, sits above
them all, and its module re-exports their public names.
"""

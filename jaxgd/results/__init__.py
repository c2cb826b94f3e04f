"""The results of a comparison: plain data, its summary tables and its JSON.

:func:`jaxgd.compare` computes a :class:`Comparison`; :mod:`jaxgd.report`
renders it (Markdown and figures). This package imports neither: it holds the
runs (:class:`OptimizerRuns` per optimizer, :class:`ProblemResult` per
problem), the per-problem summary rows, the plain-text tables printed by the
``jaxgd`` command, and the JSON written as ``results.json`` (schema
:data:`SCHEMA`, version :data:`SCHEMA_VERSION`), which :func:`load` reads back.

Beside the sweep, a comparison may measure each optimizer once more at its
chosen rate: what a step costs (:class:`StepCost`: function evaluations and
wall time per step, with a line search in the comparison or with
``curvature=True``) and the sharpness along the run (:class:`SharpnessRun`,
with ``curvature=True``).

| module | concept |
| --- | --- |
| :mod:`~jaxgd.results.schema` | the JSON's schema and versions, :func:`load` |
| :mod:`~jaxgd.results.tables` | numbers, durations and tables as text |
| :mod:`~jaxgd.results.runs` | one problem's runs: ``OptimizerRuns``, ``ProblemResult`` |
| :mod:`~jaxgd.results.comparison` | the whole comparison, its tables and JSON |

Every public name is importable from ``jaxgd.results``.
"""

from jaxgd.results.comparison import Comparison
from jaxgd.results.runs import OptimizerRuns, ProblemResult, SharpnessRun, StepCost
from jaxgd.results.schema import SCHEMA, SCHEMA_VERSION, SCHEMA_VERSIONS, load
from jaxgd.results.tables import cost_cells, format_number, format_seconds, format_table

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "Comparison",
    "OptimizerRuns",
    "ProblemResult",
    "SharpnessRun",
    "StepCost",
    "cost_cells",
    "format_number",
    "format_seconds",
    "format_table",
    "load",
]

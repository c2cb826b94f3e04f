"""The JSON of a comparison: its schema, its versions, and :func:`load`.

:meth:`jaxgd.comparison.Comparison.to_dict` writes schema :data:`SCHEMA` at
version :data:`SCHEMA_VERSION` (``results.json``); :func:`load` reads back
every version of :data:`SCHEMA_VERSIONS`. :func:`json_number` is how every
number goes into that JSON (non-finite ones become None).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "SCHEMA_VERSION", "SCHEMA_VERSIONS", "json_number", "load"]

SCHEMA = "jaxgd.comparison"
SCHEMA_VERSION = 5
"""Version 2 adds, per problem, ``step_costs`` and ``sharpness`` (None when not
measured) and, per summary row, ``evaluations_per_step``,
``microseconds_per_step`` and ``seconds_to_target``. Version 3 adds the
evaluation seeds: top-level ``eval_seeds`` and ``pairwise`` (the rows of
:meth:`~jaxgd.comparison.Comparison.pairwise`), per problem ``eval_target``
and ``evaluation`` (label -> its runs from the evaluation seeds), per summary
row ``tuning_seeds`` and the held-out figures (``eval_loss_mean``,
``eval_loss_ci_low``, ``eval_loss_ci_high``, ``eval_target``,
``steps_to_eval_target_mean``, ``reached_eval_target``,
``seconds_to_eval_target``); its summary figures are the evaluation seeds'.
Version 4 adds, per problem, ``diagnostics`` (None when not recorded): label
-> ``{"chosen", "up"}``, each the instruments along a run at the chosen rate
and one grid step up (:class:`jaxgd.comparison.DiagnosticsRun`). Version 5
adds, per problem, ``shares_program_with``: the other problems whose sweeps
are the same compiled program (then its ``compile_seconds`` is its share)."""
SCHEMA_VERSIONS = (1, 2, 3, 4, 5)
"""The versions :func:`load` reads (an older file lacks the later additions)."""


def json_number(x: Any) -> Any:
    """``x`` for JSON: a Python number, None where not finite (anything else as is).

    Examples:
        >>> json_number(np.float32(0.5)), json_number(float("nan")), json_number(np.int64(3))
        (0.5, None, 3)
    """
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` back: the dict :meth:`jaxgd.comparison.Comparison.to_dict` wrote.

    Reads every version of :data:`SCHEMA_VERSIONS`; an older file lacks the
    later additions (read them with ``.get``).

    Raises:
        ValueError: the file is missing, is not JSON, or is not a jaxgd
            comparison of a schema version this jaxgd reads.

    Examples:
        >>> import json, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
        >>> _ = path.write_text(json.dumps({"schema": SCHEMA, "schema_version": 1, "steps": 5}))
        >>> load(path)["steps"]
        5
    """
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{str(path)!r} is not a jaxgd results.json ({type(err).__name__}: {err}); "
            "pass the results.json of a jaxgd report."
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(
            f"{str(path)!r} is not a jaxgd comparison (no schema {SCHEMA!r}); "
            "pass the results.json of a jaxgd report."
        )
    if data.get("schema_version") not in SCHEMA_VERSIONS:
        raise ValueError(
            f"{str(path)!r} has schema version {data.get('schema_version')!r}; this jaxgd "
            f"reads versions {', '.join(map(str, SCHEMA_VERSIONS))}: rerun the comparison "
            "with this jaxgd."
        )
    return data

"""What a reproduction is: published numbers beside jaxgd's, as plain data.

A :class:`Reproduction` holds :class:`Check` rows (the published number,
jaxgd's, the tolerance and the verdict) and the data of its figure
(:class:`Panel` of :class:`Series`); :mod:`jaxgd.report` renders it (Markdown
and a PNG) and computes nothing. The entries themselves, by name, are in
:mod:`._reproduce`; the published numbers they read are vendored in
``jaxgd/comparison/data/`` with their sources named in its ``README.md``.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

__all__ = ["DATA", "STATUSES", "Check", "Panel", "Reproduction", "Series"]

DATA = pathlib.Path(__file__).parent / "data"
"""The vendored published numbers (read at run time: nothing is downloaded)."""

STATUSES = ("pass", "fail", "not reached")
"""A check's verdict. ``"not reached"``: the run never got where the published
result is about (say, the edge of stability within its budget): reported as
such, never counted as a pass."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One published number beside jaxgd's.

    Attributes:
        label: what is compared (a submission, a setting and seed, a step size).
        published: the published number (NaN where the published result is a claim,
            stated in ``tolerance``).
        measured: jaxgd's number (NaN where nothing was measured).
        tolerance: how close counts as reproduced, in words (``"|diff| <= 1e-12"``).
        status: one of :data:`STATUSES`.
        digits: significant digits to print the two numbers with.
    """

    label: str
    published: float
    measured: float
    tolerance: str
    status: str
    digits: int = 6

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Check: status must be one of {STATUSES}, got {self.status!r}.")

    @property
    def difference(self) -> float:
        """``measured - published`` (NaN if either is)."""
        return self.measured - self.published


@dataclasses.dataclass(frozen=True)
class Series:
    """One line or set of points of a figure panel (plain lists of floats).

    ``kind``: ``"line"``, ``"points"`` or ``"hline"`` (a horizontal reference
    line at ``y[0]``, drawn dashed).
    """

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: str = "line"


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of a reproduction's figure."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    yscale: str = "linear"
    xscale: str = "linear"


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A published result and jaxgd's attempt at it.

    Attributes:
        name: the entry's name (``jaxgd reproduce NAME``).
        title: one line.
        claim: what was published, in a few sentences.
        source: where the published numbers come from (repository, commit, path).
        checks: the comparisons, one row each.
        passed: whether the entry reproduces (every check that ran passed, and
            as many as the entry needs did; a ``"not reached"`` never counts).
        verdict: one sentence saying why ``passed`` is what it is.
        panels: the figure's data.
        notes: what else a reader should know (differences of implementation).
        seconds: wall time of the entry.
    """

    name: str
    title: str
    claim: str
    source: str
    checks: tuple[Check, ...]
    passed: bool
    verdict: str
    panels: tuple[Panel, ...]
    notes: tuple[str, ...] = ()
    seconds: float = math.nan

    def counts(self) -> dict[str, int]:
        """How many checks have each status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready; NaN stays NaN)."""
        return dataclasses.asdict(self)


def within(published: float, measured: float, *, rel: float = 0.0, abs_: float = 0.0) -> str:
    """``"pass"`` if ``|measured - published| <= abs_ + rel * |published|``, else ``"fail"``
    (a NaN measurement fails)."""
    ok = abs(measured - published) <= abs_ + rel * abs(published)
    return "pass" if ok else "fail"

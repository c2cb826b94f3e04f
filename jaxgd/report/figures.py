"""The report's figures, drawn with matplotlib (Agg backend: no display needed).

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (so a
test or a notebook can read the plotted data from its artists, named by
``gid``), made without pyplot and laid out by fixed margins
(:mod:`jaxgd.report._axes`); :func:`draw_all` saves every figure of a
comparison as a PNG:

- ``loss_<problem>``: loss over steps at each optimizer's chosen rate, the
  median over the evaluation seeds with a band from the best to the worst
  seed (``gid="band:<label>"``);
- ``heldout_<problem>`` (problems with held-out data): the held-out loss over
  steps at each chosen rate, over the evaluation seeds, with the held-out target;
- ``lr_<problem>``: final loss against learning rate per optimizer, every
  seed a dot, diverged runs a cross at the top (``gid="diverged:<label>"``),
  vanilla's stability limit ``2/L`` a dotted line (``gid="stability-limit"``);
- ``paths_<problem>`` (2-D problems): each optimizer's paths over the loss
  contours (computed by the comparison: :class:`jaxgd.comparison.Contours`);
- ``sharpness_<problem>`` (with ``compare(sharpness=True)``): top, the
  sharpness along each optimizer's run at its chosen rate (the
  preconditioned one for Adam-type optimizers; ``gid="sharpness:<label>"``)
  and its stability limit as a dashed line of the same colour
  (``gid="limit:<label>"``); bottom, that run's loss on the same step axis
  (``gid="loss:<label>"``);
- ``diagnostics_<problem>`` (with ``compare(diagnostics=...)``): alpha's
  running median per optimizer against the line alpha = 1 (top;
  ``gid="alpha:<label>"``, one grid step up ``"alpha-up:<label>"``) and the
  cosine between successive updates (bottom; ``"cosine:<label>"``);
- ``ratios_<problem>`` (two optimizers or more): each against the first, per
  metric, the paired ratio over the evaluation seeds with its 95 % bootstrap
  interval as an error bar (``gid="ratio:<metric>:<label>"``);
- ``performance_profile``: the fraction of problems solved within a factor
  tau of the fastest optimizer.

The figures compute nothing: what they draw arrives as data on the
:class:`jaxgd.comparison.Comparison`. The curves are drawn by
:mod:`jaxgd.report._curves`, the paths and the sharpness by
:mod:`jaxgd.report._paths`. :func:`figure_names` says which figures a comparison gets;
:func:`problem_pngs` draws one problem's as soon as its sweep is over (see
:class:`jaxgd.report.FigureDrawer`).
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Mapping

from jaxgd.comparison import Comparison, ProblemResult
from jaxgd.report._axes import limit_formula
from jaxgd.report._curves import (
    heldout_figure,
    loss_figure,
    profile_figure,
    ratios_figure,
    sensitivity_figure,
)
from jaxgd.report._diagnosed import diagnostics_figure
from jaxgd.report._paths import paths_figure, sharpness_figure

__all__ = [
    "diagnostics_figure",
    "draw_all",
    "figure_names",
    "figure_png",
    "heldout_figure",
    "limit_formula",
    "loss_figure",
    "paths_figure",
    "problem_figure_names",
    "problem_pngs",
    "profile_figure",
    "ratios_figure",
    "sensitivity_figure",
    "sharpness_figure",
]


def _has_paths(p: ProblemResult) -> bool:
    return all(r.paths is not None for r in p.optimizers.values())


def problem_figure_names(p: ProblemResult) -> list[str]:
    """One problem's figures: ``loss_<name>`` and ``lr_<name>``, ``paths_<name>`` for a
    2-D problem (its params recorded), ``sharpness_<name>`` where the sharpness was
    recorded (``compare(sharpness=True)``), ``diagnostics_<name>`` where the instruments
    were (``compare(diagnostics=...)``), ``ratios_<name>`` for two optimizers or more."""
    names = [f"loss_{p.name}", f"lr_{p.name}"]
    if all(r.evaluation and r.evaluation.held_out is not None for r in p.optimizers.values()):
        names.append(f"heldout_{p.name}")
    if _has_paths(p):
        names.append(f"paths_{p.name}")
    if p.measured_sharpness:
        names.append(f"sharpness_{p.name}")
    if p.measured_diagnostics:
        names.append(f"diagnostics_{p.name}")
    if len(p.optimizers) > 1 and all(r.evaluation for r in p.optimizers.values()):
        names.append(f"ratios_{p.name}")
    return names


def figure_names(comparison: Comparison) -> list[str]:
    """The figures :func:`draw_all` draws for ``comparison``, in drawing order.

    Per problem those of :func:`problem_figure_names`, then one ``performance_profile``.
    """
    return [n for p in comparison.problems for n in problem_figure_names(p)] + [
        "performance_profile"
    ]


def _draw(name: str):
    """The figure ``name`` of a problem is drawn by this function (looked up when called)."""
    return {
        "loss": loss_figure,
        "lr": sensitivity_figure,
        "paths": paths_figure,
        "sharpness": sharpness_figure,
        "diagnostics": diagnostics_figure,
        "ratios": ratios_figure,
        "heldout": heldout_figure,
    }[name.split("_", 1)[0]]


def _dpi(name: str) -> int:
    return 80 if name.startswith("paths_") else 100


def _png(fig, name: str) -> bytes:
    buffer = io.BytesIO()
    # zlib's fastest level: its encoding took a third less time than level 6
    fig.savefig(buffer, format="png", dpi=_dpi(name), pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def problem_pngs(c: Comparison, p: ProblemResult) -> dict[str, bytes]:
    """The figures of one problem (those :func:`problem_figure_names` lists) as PNG
    bytes. Of ``c`` only ``optimizer_labels`` and ``seeds`` are read, so they
    can be drawn before the comparison is over (:class:`jaxgd.report.FigureDrawer`)."""
    return {name: _png(_draw(name)(c, p), name) for name in problem_figure_names(p)}


def figure_png(c: Comparison, name: str) -> bytes:
    """The figure ``name`` (one of :func:`figure_names`) as PNG bytes."""
    if name == "performance_profile":
        return _png(profile_figure(c), name)
    p = next(q for q in c.problems if name in problem_figure_names(q))
    return _png(_draw(name)(c, p), name)


def draw_all(
    c: Comparison, directory: pathlib.Path, drawn: Mapping[str, bytes] | None = None
) -> dict[str, pathlib.Path]:
    """Write every figure of :func:`figure_names` into ``directory`` as PNG; name -> path.

    ``drawn``: figures already drawn (name -> PNG bytes, as
    :func:`problem_pngs` gives them), written as they are; the others are drawn here.
    """
    drawn = drawn or {}
    out = {}
    for name in figure_names(c):
        out[name] = pathlib.Path(directory) / f"{name}.png"
        out[name].write_bytes(drawn[name] if name in drawn else figure_png(c, name))
    return out

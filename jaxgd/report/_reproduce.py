"""A reproduction's report: the terminal table, the Markdown page and its figure.

Renders a :class:`jaxgd.comparison.Reproduction` (plain data) and computes
nothing: the numbers, verdicts and the figure's series arrive made.
:func:`save_reproduction` writes ``NAME.md`` and ``NAME.png`` into a folder
(each file whole or not at all), which the docs' gallery reads
(``python -m jaxgd reproduce NAME --out DIR``).
"""

from __future__ import annotations

import os
import pathlib
import uuid

from jaxgd.comparison import Check, Reproduction

__all__ = ["draw_reproduction", "reproduction_markdown", "reproduction_text", "save_reproduction"]

_MARK = {"pass": "pass", "fail": "FAIL", "not reached": "not reached"}


def _number(value: float, digits: int) -> str:
    return "—" if value != value else f"{value:.{digits}g}"


def _rows(checks: tuple[Check, ...]) -> list[tuple[str, ...]]:
    return [
        (c.label, _number(c.published, c.digits), _number(c.measured, c.digits), c.tolerance,
         _MARK[c.status])
        for c in checks
    ]  # fmt: skip


_HEADER = ("check", "published", "jaxgd", "tolerance", "result")


def _verdict(rep: Reproduction) -> str:
    return f"{'REPRODUCED' if rep.passed else 'NOT REPRODUCED'}: {rep.verdict}"


def reproduction_text(rep: Reproduction) -> str:
    """The terminal's view: title, an aligned table of every check, the verdict and the time.

    Examples:
        >>> import jaxgd as gd
        >>> text = gd.report.reproduction_text(gd.comparison.reproduce("algoperf-score"))
        >>> text.splitlines()[0]
        'algoperf-score: AlgoPerf v0.6 self-tuning leaderboard: the 16 published scores'
    """
    rows = [_HEADER, *_rows(rep.checks)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = [f"{rep.name}: {rep.title}"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"{_verdict(rep)} ({rep.seconds:.1f} s)")
    return "\n".join(lines)


def reproduction_markdown(rep: Reproduction, figure: str | None = None) -> str:
    """The Markdown page: the claim, the source, the table, the verdict, the notes and
    the figure (``figure``: its file name beside the page; None leaves it out)."""
    rows = [_HEADER, tuple("---" for _ in _HEADER), *_rows(rep.checks)]
    table = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    parts = [
        f"# {rep.title}",
        f"`jaxgd reproduce {rep.name}`: **{_verdict(rep)}** (in {rep.seconds:.1f} s).",
        f"**Published.** {rep.claim}",
        f"**Source.** {rep.source}.",
        "\n".join(table),
    ]
    if figure:
        parts.append(f"![{rep.title}]({figure})")
    if rep.notes:
        parts.append("\n".join(f"- {note}" for note in rep.notes))
    return "\n\n".join(parts) + "\n"


def draw_reproduction(rep: Reproduction):
    """The figure (a matplotlib ``Figure``): one panel per :class:`Panel` of ``rep``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(rep.panels), 1)
    wide = any(sum(s.kind != "hline" for s in p.series) > 8 for p in rep.panels)
    size = (6.2 * n + (3.0 if wide else 0.0), 4.4)
    fig, axes = plt.subplots(1, n, figsize=size, layout="constrained", squeeze=False)
    for ax, panel in zip(axes[0], rep.panels, strict=False):
        drawn = [s for s in panel.series if s.kind != "hline"]
        many = len(drawn) > 8
        for i, s in enumerate(panel.series):
            color = plt.cm.tab20(i % 20) if many else f"C{i % 10}"
            if s.kind == "hline":
                ax.axhline(s.y[0], ls="--", lw=1, color="0.4", label=None)
            elif s.kind == "points":
                ax.plot(s.x, s.y, "o", ms=5, label=s.label, color=color)
            else:
                ax.plot(s.x, s.y, lw=1.3, label=s.label, color=color)
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.set_xscale(panel.xscale)
        ax.set_yscale(panel.yscale)
        ax.grid(alpha=0.3)
        if many:  # beside the panel, not over the curves
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(fontsize=7)
    fig.suptitle(f"{rep.title}: {'reproduced' if rep.passed else 'NOT reproduced'}", fontsize=11)
    return fig


def _write_atomic(path: pathlib.Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_reproduction(rep: Reproduction, directory: str | os.PathLike) -> list[pathlib.Path]:
    """Write ``NAME.md`` and ``NAME.png`` of ``rep`` into ``directory`` (created if
    missing; each file is written whole or not at all). Returns the two paths.

    Examples:
        >>> import pathlib, tempfile, jaxgd as gd
        >>> rep = gd.comparison.reproduce("algoperf-score")
        >>> paths = gd.report.save_reproduction(rep, tempfile.mkdtemp())
        >>> [p.name for p in paths]
        ['algoperf-score.md', 'algoperf-score.png']
    """
    import matplotlib.pyplot as plt

    folder = pathlib.Path(directory)
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"gd.report.save_reproduction: directory {str(folder)!r} is a file; pass a folder."
        )
    folder.mkdir(parents=True, exist_ok=True)
    md, png = folder / f"{rep.name}.md", folder / f"{rep.name}.png"
    fig = draw_reproduction(rep)
    try:
        _write_atomic(png, lambda p: fig.savefig(p, dpi=110, format="png"))
    finally:
        plt.close(fig)
    text = reproduction_markdown(rep, figure=png.name)
    _write_atomic(md, lambda p: p.write_text(text))
    return [md, png]

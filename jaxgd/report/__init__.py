"""The report of a comparison: Markdown, tables, figures, and the folder that holds them.

:func:`jaxgd.compare` computes a :class:`jaxgd.comparison.Comparison` (plain
data, with its JSON); this package renders it and imports nothing that
computes (no JAX: the contour grids and the stability limits arrive as data):

| module | concept |
| --- | --- |
| ``_text`` | :func:`markdown`; :func:`edge_warnings`, :func:`machine_line`, :func:`seeds_line` |
| ``_tables`` | :func:`summary_table`, :func:`verdict_table`, :func:`profile_table`: tables |
| ``figures`` | the PNG figures (public: ``gd.report.figures``), each also a matplotlib ``Figure`` |
| ``_axes``, ``_curves``, ``_paths`` | what the figures share; the curves; paths and sharpness |
| ``_drawing`` | :class:`FigureDrawer` draws each problem's figures on a worker thread |
| ``_folder`` | :func:`save`: the report folder, whole or not at all (:func:`check_folder`) |
| ``_lr_range`` | :func:`draw_lr_range`, the figure of a learning-rate range test |
| ``_reproduce`` | a reproduction's table, Markdown page and figure (:func:`save_reproduction`) |

Examples:
    >>> import jaxgd as gd
    >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20)
    >>> gd.report.figures.figure_names(c)
    ['loss_booth', 'lr_booth', 'paths_booth', 'performance_profile']
"""

from jaxgd.comparison import Comparison as Comparison  # jaxgd/__init__.py imported it from here
from jaxgd.report import figures
from jaxgd.report._drawing import FigureDrawer
from jaxgd.report._folder import FolderInUseError, check_folder, folder_lock, save
from jaxgd.report._lr_range import draw_lr_range
from jaxgd.report._reproduce import (
    draw_reproduction,
    reproduction_markdown,
    reproduction_text,
    save_reproduction,
)
from jaxgd.report._tables import profile_table, summary_table, verdict_table
from jaxgd.report._text import edge_warnings, machine_line, markdown, seeds_line

__all__ = [
    "FigureDrawer",
    "FolderInUseError",
    "check_folder",
    "draw_lr_range",
    "draw_reproduction",
    "edge_warnings",
    "figures",
    "folder_lock",
    "machine_line",
    "markdown",
    "profile_table",
    "reproduction_markdown",
    "reproduction_text",
    "save",
    "save_reproduction",
    "seeds_line",
    "summary_table",
    "verdict_table",
]

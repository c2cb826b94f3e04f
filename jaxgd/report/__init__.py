"""The report of a comparison: Markdown, figures, and the folder that holds them.

:func:`jaxgd.compare` computes a :class:`jaxgd.comparison.Comparison` (plain
data, with its JSON); this package renders it and imports nothing that
computes:

- :mod:`jaxgd.report._text`: :func:`markdown`, the report as Markdown;
- :mod:`jaxgd.report._figures`: the PNG figures, each also available as a
  matplotlib ``Figure``;
- :mod:`jaxgd.report._drawing`: :class:`FigureDrawer` draws each problem's
  figures on a worker thread while the comparison goes on;
- :mod:`jaxgd.report._folder`: :func:`save` writes ``report.md``,
  ``results.json`` and ``figures/`` whole or not at all, and never over files
  jaxgd did not write (:func:`check_folder` says so before a run).

Example:
    >>> import jaxgd as gd
    >>> c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=20)
    >>> gd.report.figures.figure_names(c)
    ['loss_booth', 'lr_booth', 'paths_booth', 'performance_profile']
"""

from jaxgd.report import _figures as figures
from jaxgd.report._drawing import FigureDrawer
from jaxgd.report._folder import check_folder, save
from jaxgd.report._text import markdown
from jaxgd.comparison import Comparison as Comparison  # jaxgd/__init__.py imported it from here

__all__ = ["FigureDrawer", "check_folder", "figures", "markdown", "save"]

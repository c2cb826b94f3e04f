"""MkDocs hook: serve MathJax from the installed package, not from a CDN.

The site's formulas (``pymdownx.arithmatex``, the notebooks' ``$...$``) are
typeset by MathJax 3 in the reader's browser. Its files come from the
``django-static-mathjax`` package of the ``docs`` extra (MathJax's own build,
no Django needed) and are copied into the built site, so the site builds and
reads offline.
"""

import pathlib
import shutil

# What tex-chtml.js loads: the combined component, the TeX extensions it may
# autoload, the CommonHTML fonts, and the menu's lazily loaded parts.
PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y")
TARGET = "javascripts/mathjax"


def mathjax_source() -> pathlib.Path:
    import mathjax  # django-static-mathjax

    return pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def on_post_build(config, **kwargs):
    source = mathjax_source()
    target = pathlib.Path(config["site_dir"]) / TARGET
    for part in PARTS:
        src, dst = source / part, target / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)

// MathJax 3's configuration, read when tex-chtml.js loads (after this file).
// The Markdown pages' formulas come from pymdownx.arithmatex (\( \) and
// \[ \]); the notebooks' Markdown cells keep Jupyter's $ and $$. Code (pre,
// code) is never typeset, MathJax's default; the site's prose holds no other
// $ (tests/test_docs.py checks it).
// Loaded twice on a notebook page (mkdocs-jupyter's own MathJax slot points
// here too): the second load keeps the first, or MathJax once it has started.
window.MathJax = window.MathJax || {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
};

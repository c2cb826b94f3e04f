"""The documentation site stays true: its pages' code runs, its tutorials
execute, it builds without a warning, and its API reference lists every public
name.

The guides' ```python blocks run in order, one namespace per page, in a
temporary folder (as tests/test_readme.py runs the README's). The notebooks
execute with nbclient, and ``mkdocs build --strict`` (which executes them again,
as the published site does) must pass with every notebook figure in the built
pages. Everything the build needs is in the ``test`` extra.
"""

import html.parser
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import jaxgd as gd

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "api" not in p.relative_to(DOCS).parts)
NOTEBOOKS = sorted((DOCS / "tutorials").glob("*.ipynb"))
# The gallery's pages: Python scripts (jupytext percent format) that the build executes.
GALLERY = sorted((DOCS / "gallery").glob("[!_]*.py"))
# Pages whose examples compile several comparisons or chunked runs: tens of seconds on
# 2 cores. (The comparing, ecosystem and devices pages hold what the README ran in the
# fast suite: they stay in it.)
SLOW_PAGES = {"own-variant.md", "checkpoints.md"}


def python_blocks(page: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def run_page(page: pathlib.Path) -> dict:
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(python_blocks(page)):
        exec(compile(code, f"{page.relative_to(ROOT)} block {i + 1}", "exec"), namespace)
    return namespace


def _page_param(page):
    marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
    return pytest.param(page, id=str(page.relative_to(DOCS)), marks=marks)


def test_the_pages_are_found():
    names = {p.name for p in PAGES}
    assert {"index.md", "getting-started.md", "run-loop.md", "own-variant.md"} <= names
    assert names >= SLOW_PAGES
    assert {p.name for p in NOTEBOOKS} == {
        "gradient-descent-lesson.ipynb",
        "choosing-an-optimizer.ipynb",
    }
    assert len(GALLERY) >= 8


@pytest.mark.long  # 13 pages of 0.5 to 3 minutes each: `python -m pytest -m long`
@pytest.mark.parametrize("script", GALLERY, ids=lambda p: p.stem)
def test_gallery_page_runs(script, tmp_path):
    """Each gallery page runs as the script it is (``python docs/gallery/NAME.py``,
    as its index says), in a process of its own: one page sets XLA's device
    count before JAX starts. Its asserts are the page's claims."""
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**_kernel_env(), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write (a report, a checkpoint) write here
    run_page(page)


def _api_directives() -> list[str]:
    """The dotted path each ``::: jaxgd...`` directive of docs/api documents."""
    paths = []
    for page in sorted((DOCS / "api").glob("*.md")):
        paths += re.findall(r"^::: (jaxgd(?:\.\w+)+)\s*$", page.read_text(), re.M)
    return paths


def test_api_reference_lists_every_public_name_once():
    paths = _api_directives()
    assert sorted(paths) == sorted(set(paths)), "a name is documented twice"
    top = {p.split(".")[1] for p in paths if p.count(".") == 1}
    assert top == set(gd.__all__), (
        f"missing from docs/api: {sorted(set(gd.__all__) - top)}; "
        f"not public: {sorted(top - set(gd.__all__))}"
    )


def test_the_api_reference_documents_public_places_only():
    """Every documented object is reached through public names (no ``_module``),
    from a wing's face, and exists there."""
    for path in _api_directives():
        parts = path.split(".")
        assert not any(part.startswith("_") for part in parts), path
        obj = gd
        for part in parts[1:]:
            obj = getattr(obj, part)
        if len(parts) == 3:  # gd.<wing>.<name>: the wing lists it
            assert parts[2] in getattr(gd, parts[1]).__all__, path


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in [*DOCS.rglob("*.md"), *NOTEBOOKS]:
        assert str(page.relative_to(DOCS)) in nav, page


def _kernel_env() -> dict:
    # The kernel and the build import this checkout's jaxgd, not another install.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # A kernel draws its figures inline only with its own backend (an inherited
    # MPLBACKEND=Agg would draw nothing into the page).
    env.pop("MPLBACKEND", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(notebook, tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("PYTHONPATH", _kernel_env()["PYTHONPATH"])
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(notebook, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "store the notebook without outputs: the site build executes it"
    )
    # Raises CellExecutionError (with the cell and traceback) if any cell fails,
    # an assert on a claim of the text included.
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 3, f"{notebook.name} drew {len(images)} figures"


def _build(site: pathlib.Path, *, execute: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={
            # The default build: no published address (mkdocs.yml's site_url).
            **{k: v for k, v in _kernel_env().items() if k != "JAXGD_SITE_URL"},
            "NO_MKDOCS_2_WARNING": "1",
            "JAXGD_DOCS_EXECUTE": "true" if execute else "false",
        },
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # --strict turns mkdocs' warnings into a failure; none may even be logged.
    # (The kernel's own "[IPKernelApp] WARNING" about TCP is not the site's.)
    log = done.stdout + done.stderr
    assert not re.search(r"^WARNING\s+-", log, re.M), log


# LaTeX that a reader must never see as typed: it is MathJax's to typeset.
LATEX = re.compile(
    r"\\(beta|eta|alpha|lambda|epsilon|rho|mu|leftarrow|frac|sqrt|hat|nabla|partial)\b"
)


class _Prose(html.parser.HTMLParser):
    """The text a reader sees as typed: outside code, scripts and the formulas
    MathJax typesets (arithmatex's elements; ``$...$`` in a notebook's Markdown)."""

    SKIP = {"code", "pre", "script", "style"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str]] = []  # (tag, kind): kind "skip", "math", "nb" or ""
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in {"br", "img", "hr", "input", "meta", "link", "source"}:
            return
        classes = (dict(attrs).get("class") or "").split()
        kind = (
            "skip"
            if tag in self.SKIP or "arithmatex" in classes
            else "nb"
            if "jp-MarkdownOutput" in classes
            else ""
        )
        self.stack.append((tag, kind))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        kinds = {kind for _, kind in self.stack}
        if "skip" in kinds:
            return
        if "nb" in kinds:  # Jupyter's own delimiters, typeset on the notebook's page
            data = re.sub(r"\$\$.*?\$\$|\$[^$]+\$", "", data, flags=re.S)
        self.text.append(data)


def _visible_text(page: str) -> str:
    parser = _Prose()
    parser.feed(page)
    return "".join(parser.text)


def test_site_builds_strict_with_formulas_typeset_offline(tmp_path):
    """The layout build (notebooks not executed: seconds): strict, every formula
    in MathJax's hands, MathJax served from the site itself, nothing fetched from
    another host, and the gallery's index listing every script."""
    site = tmp_path / "site"
    _build(site, execute=False)
    pages = {p: p.read_text() for p in site.rglob("*.html")}
    for path, page in pages.items():
        assert ".. math::" not in page, path
        visible = _visible_text(page)
        seen = LATEX.search(visible)
        assert seen is None, f"{path.relative_to(site)}: {seen[0]} shown untypeset"
        if "tutorials" not in path.parts and "gallery" not in path.parts:
            # MathJax typesets $...$ wherever it finds it: the Markdown pages'
            # prose holds none (their formulas are arithmatex's).
            assert "$" not in visible, path.relative_to(site)
        # Offline: no script, style sheet or font from another host.
        # (The canonical address, a link the reader may follow, is not fetched.)
        fetched = (
            r'<script[^>]+src="(?:https?:)?//'
            r'|<link(?![^>]*"canonical")[^>]+href="(?:https?:)?//'
        )
        assert not re.search(fetched, page), path
    # No made-up address: site_url comes from JAXGD_SITE_URL only (unset here), so no
    # page names a canonical address and the sitemap, whose entries must be full
    # addresses, lists none.
    assert not any('rel="canonical"' in page for page in pages.values())
    assert "<loc>" not in (site / "sitemap.xml").read_text()
    optimizers = pages[site / "api" / "optimizers" / "index.html"]
    assert optimizers.count('class="arithmatex"') >= 7  # the seven rules' formulas
    assert "javascripts/mathjax/tex-chtml.js" in optimizers
    assert (site / "javascripts" / "mathjax" / "tex-chtml.js").stat().st_size > 500_000
    assert list((site / "javascripts" / "mathjax" / "output" / "chtml").rglob("*.woff"))
    lesson = pages[site / "tutorials" / "gradient-descent-lesson" / "index.html"]
    assert 'src="../../javascripts/mathjax-config.js"' in lesson  # the notebook's slot
    assert "$\\eta$" in lesson or "\\eta" in lesson  # the lesson writes its formulas in TeX
    # The API signatures are formatted (ruff, from the docs extra): minimize's
    # signature has one parameter a line.
    running = pages[site / "api" / "running" / "index.html"]
    signature = re.search(r'<div class="doc-signature.*?</div>', running, re.S)[0]
    assert signature.count("\n") > 10
    # The prose links into the API reference.
    for guide in ("run-loop", "comparing", "optimizers", "troubleshooting", "how-to-choose"):
        html = pages[site / "guides" / guide / "index.html"]
        assert re.search(r'href="\.\./\.\./api/\w+/#jaxgd\.', html), guide
    gallery = pages[site / "gallery" / "index.html"]
    for script in GALLERY:
        assert f'href="{script.stem}/"' in gallery, script.name
    assert len(GALLERY) >= 8


@pytest.mark.long  # the whole site executed: about 9.5 minutes on 2 cores
def test_site_builds_strict_with_the_notebook_figures(tmp_path):
    site = tmp_path / "site"
    _build(site, execute=True)
    for notebook in NOTEBOOKS:
        html = (site / "tutorials" / notebook.stem / "index.html").read_text()
        # The executed notebook's figures are embedded in the page as PNG images.
        images = re.findall(r'<img[^>]+src="data:image/png;base64,', html)
        assert len(images) >= 3, f"{notebook.name}: {len(images)} figures in the built page"
        assert "Traceback" not in html
    for script in GALLERY:
        html = (site / "gallery" / script.stem / "index.html").read_text()
        assert re.search(r'<img[^>]+src="data:image/png;base64,', html), script.name
        assert "Traceback" not in html
    reference = "".join(p.read_text() for p in (site / "api").rglob("index.html"))
    rendered = set(re.findall(r'id="jaxgd(?:\.\w+)*\.(\w+)"', reference))
    assert set(gd.__all__) <= rendered, f"not rendered: {set(gd.__all__) - rendered}"


def _how_far_to_step():
    import importlib.util

    path = ROOT / "examples" / "how_far_to_step.py"
    spec = importlib.util.spec_from_file_location("how_far_to_step", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_the_alpha_section_quotes_its_numbers():
    """The alpha / edge-of-stability table of the step-size guide, recomputed by
    the example that draws its figure: alpha settles at lr * L - 1."""
    example = _how_far_to_step()
    section = " ".join((DOCS / "guides" / "step-size.md").read_text().split())
    runs = example.alpha_runs()
    for name, label in (("student_marks", "student marks"), ("booth", "Booth")):
        curvature, results = runs[name]
        settled = [example.settled_alpha(results[f]) for f in example.FACTORS]
        assert settled == pytest.approx([2 * f - 1 for f in example.FACTORS], abs=0.01)
        quoted = " / ".join(f"{a:.2f}" for a in settled)
        assert f"| {label} | {curvature:.2f} | {quoted} |" in section
    first = [float(r.history.alpha[0]) for r in runs["student_marks"][1].values()]
    assert "({:.2f}, {:.2f}, {:.2f} at step 0)".format(*first) in section
    assert "(figures/alpha_edge.png)" in section


@pytest.mark.slow
def test_the_diagnostics_guide_quotes_its_numbers():
    """The numbers of the diagnostics guide: its figure's runs (recomputed by the
    example that draws it) and its cost table (benchmarks/results/speed.json)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("diag", ROOT / "examples" / "diagnostics.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    page = " ".join((DOCS / "guides" / "diagnostics.md").read_text().split())
    numbers = example.summary(example.runs())
    slow, good, fast = (numbers[r] for r in example.RATES)
    assert f"(median α {fast['alpha_first_5']:.2f} over the first five steps" in page
    assert fast["alpha_first_5"] > 1 > good["alpha_first_5"]
    assert (
        f"loss ends at {fast['final_loss']:.2f}, where 0.03 reaches {good['final_loss']:.4f}"
        in (page)
    )
    assert f"At 0.001 α starts near {slow['alpha_first_5']:.2f}" in page
    cost = json.loads((ROOT / "benchmarks" / "results" / "speed.json").read_text())
    measured = cost["results"]["diagnostics"]

    def cell(r):
        low, high = r["rounds_p10_p90"]
        return f"{r['best']:.2f}x (median {r['median']:.2f}x; rounds {low:.2f}-{high:.2f}x)"

    for row, key in (
        ("alpha + cosine", "alpha_cosine_over_plain"),
        ("all four", "all_four_over_plain"),
        ("all four, loss a mean over examples", "all_four_mean_over_plain"),
    ):
        full, mini = (cell(measured[batch][key]) for batch in ("full_batch", "batch_128"))
        assert f"| {row} | {full} | {mini} |" in page


def test_how_far_to_step_quotes_its_numbers():
    """The student-marks numbers of the "How far to step" guide, recomputed by the
    example that draws its figures (the MLP's numbers are in test_sharpness)."""
    marks = _how_far_to_step().student_marks()
    section = " ".join((DOCS / "guides" / "step-size.md").read_text().split())
    lr = marks["lr"]
    assert f"`L = {lr.curvature:.2f}`" in section and f"`2/L = {lr.max_stable:.3f}`" in section
    below, above = marks["runs"][0.9], marks["runs"][1.1]
    assert float(below.loss) == pytest.approx(24.47, abs=0.01)
    assert f"{float(above.loss):.1e}".replace("+", "") in section
    # the text's factor |1 - lr L| = 1.2 a step: the loss grows by 1.2^2 a step once the
    # top direction dominates
    curve = above.history.loss
    assert float(curve[-1] / curve[-2]) == pytest.approx(1.2**2, rel=1e-3)
    assert f"({marks['test'].suggested:.3f} here)" in section
    for figure in ("overshoot", "range_test", "edge_of_stability"):
        assert f"(figures/{figure}.png)" in section
        assert (DOCS / "guides" / "figures" / f"{figure}.png").is_file()


@pytest.mark.slow
def test_how_far_to_step_quotes_the_edge_of_stability():
    """The sharpness numbers of the guide's "Along a run" section, from the run
    that draws its figure (2 x 2000 full-batch steps of the digits MLP)."""
    import importlib.util

    path = ROOT / "examples" / "how_far_to_step.py"
    spec = importlib.util.spec_from_file_location("how_far_to_step", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    runs = example.digits_mlp()
    section = " ".join((DOCS / "guides" / "step-size.md").read_text().split())

    def curve(rate):
        sharpness = np.asarray(runs[rate].history.sharpness)
        seen = ~np.isnan(sharpness)
        return np.asarray(runs[rate].history.step)[seen], sharpness[seen]

    steps, fast = curve(0.1)
    assert f"({fast[0]:.2f} at the start)" in section and fast[0] > 20  # above 2/lr
    assert f"({fast[steps == 50][0]:.2f} by step 50)" in section and fast[steps == 50][0] < 20
    # back to 20 around step 200: below it until then, at it (to 1 %) there
    assert np.all(fast[(steps > 0) & (steps < 200)] < 20)
    assert fast[steps == 200][0] == pytest.approx(20, rel=0.01)
    late = fast[steps >= 500]
    assert f"({late.min():.1f} to {late.max():.1f} from step 500 on)" in section
    assert float(runs[0.1].loss) < float(runs[0.1].history.loss[0]) / 4  # the loss falls
    steps, slow = curve(0.05)
    assert f"({slow[0]:.1f} to {slow[-1]:.1f} in 2000 steps" in section
    assert np.all(np.diff(slow) > 0) and slow.max() < 2 / 0.05

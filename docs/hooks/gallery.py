"""MkDocs hook: the gallery's navigation and index, written from its scripts.

Each ``docs/gallery/*.py`` is one page: a Python script in jupytext's percent
format (``# %%`` cells), executed by mkdocs-jupyter on every build like the
tutorials. Its first Markdown cell opens with the page's title (``# ...``) and
a one-paragraph summary. This hook lists the scripts, in file-name order,
under the navigation's "Gallery" section and writes ``gallery/index.md``: a
table of titles and summaries. Nothing is pasted: a new script is a new page.
"""

import pathlib
import re

from mkdocs.structure.files import File

GALLERY = "gallery"


def scripts(docs_dir) -> list[pathlib.Path]:
    return sorted((pathlib.Path(docs_dir) / GALLERY).glob("[!_]*.py"))


def title_and_summary(script: pathlib.Path) -> tuple[str, str]:
    """The first Markdown cell's ``# title`` and its first paragraph."""
    text = script.read_text()
    cell = re.search(r"^# %% \[markdown\]\n((?:#.*\n?)+)", text, re.M)
    if cell is None:
        raise ValueError(f"{script}: no Markdown cell to take a title from")
    lines = [
        line[2:] if line.startswith("# ") else line[1:]
        for line in cell[1].splitlines()
    ]
    if not lines or not lines[0].startswith("# "):
        raise ValueError(
            f"{script}: its first Markdown cell must open with '# title'"
        )
    body = "\n".join(lines[1:]).strip().split("\n\n")[0]
    return lines[0][2:].strip(), " ".join(body.split())


def index(docs_dir) -> str:
    rows = [
        "# Gallery",
        "",
        "Worked examples, each a Python script executed when the site is built "
        "(every number a page states is asserted by its own code). Run one "
        "yourself with `python docs/gallery/NAME.py`.",
        "",
        "| example | what it shows |",
        "| --- | --- |",
    ]
    for script in scripts(docs_dir):
        title, summary = title_and_summary(script)
        rows.append(f"| [{title}]({script.name}) | {summary} |")
    return "\n".join(rows) + "\n"


def on_config(config, **kwargs):
    pages = [f"{GALLERY}/index.md"] + [
        f"{GALLERY}/{script.name}" for script in scripts(config["docs_dir"])
    ]
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Gallery" in entry:
            entry["Gallery"] = pages
    return config


def on_files(files, config, **kwargs):
    files.append(
        File.generated(
            config, f"{GALLERY}/index.md", content=index(config["docs_dir"])
        )
    )
    return files

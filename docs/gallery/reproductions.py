# %% [markdown]
# # Published results, reproduced: jaxgd beside the papers
#
# `jaxgd reproduce` reruns published results offline and sets the published
# numbers beside jaxgd's, each with its tolerance and a verdict: AlgoPerf's
# self-tuning leaderboard scores, Crowded Valley's SGD, momentum and Adam on
# DeepOBS `quadratic_deep`, and the edge of stability (Cohen et al.). This
# page runs the command as you would and shows the reports it writes.

# %%
import pathlib
import re
import subprocess
import sys
import tempfile

from IPython.display import Image, Markdown, display

# %% [markdown]
# The list, then every entry: `python -m jaxgd reproduce all --out DIR`
# (a few minutes on two CPU cores). The exit status is 0 only if every entry
# reproduced.

# %%
listing = subprocess.run(
    [sys.executable, "-m", "jaxgd", "reproduce", "--list"],
    capture_output=True,
    text=True,
    check=True,
)
print(listing.stdout)
names = [
    line.split()[0] for line in listing.stdout.splitlines() if line.strip()
]
out = pathlib.Path(tempfile.mkdtemp()) / "reproductions"
done = subprocess.run(
    [sys.executable, "-m", "jaxgd", "reproduce", "all", "--out", str(out)],
    capture_output=True,
    text=True,
)
print(done.stdout.splitlines()[-1])
assert done.returncode == 0, done.stdout + done.stderr
assert sorted(p.name for p in out.glob("*.md")) == sorted(
    f"{n}.md" for n in names
)


# %%
def show(name):
    """A report as the command wrote it, its figure shown where it links it."""
    text = (out / f"{name}.md").read_text()
    assert "**REPRODUCED" in text.split("\n\n")[1], name  # the verdict line
    before, image, after = re.split(
        r"^(!\[[^\]]*\]\([^)]*\))$", text, maxsplit=1, flags=re.M
    )
    display(Markdown(before.replace("# ", "## ", 1)))
    display(Image(filename=str(out / f"{name}.png")))
    display(Markdown(after))


# %% [markdown]
# ## The reports

# %%
for name in names:
    show(name)

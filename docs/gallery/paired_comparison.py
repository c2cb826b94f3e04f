# %% [markdown]
# # A comparison read with intervals
#
# Which is faster, and is the difference real? Momentum, Nesterov and Adam on
# three problems, ten evaluation seeds each: every pair's ratio of steps to
# the target, a 95 % bootstrap interval over the seeds, and a Wilcoxon test
# whose p-values are Holm-corrected across the whole table. A verdict is
# given only where the corrected test says so.

# %%
import jaxgd as gd
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

problems = ["booth", "quadratic", "beale"]
comparison = gd.compare(
    problems,
    ["momentum", "nesterov", "adam"],
    learning_rates=[0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    seeds=3,
    eval_seeds=10,
    steps=400,
)
display(Markdown(gd.report.summary_table(comparison, markdown=True)))

# %% [markdown]
# Each optimizer's rate is chosen on 3 tuning seeds; then each runs at its
# chosen rate on 10 fresh evaluation seeds, and seed `s` gives every
# optimizer the same start, so the evaluation runs pair up seed by seed.
# [`Comparison.pairwise`](../../api/comparison/#jaxgd.Comparison.pairwise)
# compares every pair on them (the [statistics
# guide](../../guides/statistics/) states its rules).

# %%
rows = comparison.pairwise(["steps_to_target"])
table = ["| problem | a | b | ratio b/a | 95 % interval | Holm p | verdict |"]
table.append("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    table.append(
        f"| {r['problem']} | {r['a']} | {r['b']} | {r['ratio']:.2f} | "
        f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['p_value']:.3f} | "
        f"{r['verdict']} |"
    )
display(Markdown("\n".join(table)))

# %%
fig, ax = plt.subplots(figsize=(6.4, 4))
for i, r in enumerate(rows):
    color = "0.5" if r["verdict"] == "no difference" else "C3"
    ax.errorbar(
        r["ratio"],
        i,
        xerr=[[r["ratio"] - r["ci_low"]], [r["ci_high"] - r["ratio"]]],
        fmt="o",
        color=color,
        capsize=3,
    )
ax.axvline(1.0, color="k", lw=1)
ax.set_xscale("log")
ax.set_yticks(
    range(len(rows)), [f"{r['problem']}: {r['b']} / {r['a']}" for r in rows]
)
ax.invert_yaxis()
ax.set(
    xlabel="ratio of steps to target (below 1: b faster)",
    title="Paired ratios, 95 % intervals (red: a verdict)",
)
plt.show()

# %% [markdown]
# How to read it, checked below. A verdict always comes with an interval that
# leaves out 1 and a corrected p-value below 0.05. Nesterov needs less than
# half of momentum's steps on Booth and on the quadratic, and more than
# momentum on Beale: which is faster depends on the problem. Adam and
# momentum show no difference on any of the three: every interval holds 1.

# %%
by_pair = {(r["problem"], r["a"], r["b"]): r for r in rows}
assert all(r["n"] == 10 for r in rows)
for r in rows:
    if r["verdict"] != "no difference":
        assert r["p_value"] < 0.05 and not r["ci_low"] <= 1 <= r["ci_high"], r
for problem in ("booth", "quadratic"):
    row = by_pair[problem, "momentum", "nesterov"]
    assert row["verdict"] == "b better" and row["ci_high"] < 0.5, row
assert by_pair["beale", "momentum", "nesterov"]["verdict"] == "a better"
for problem in problems:
    row = by_pair[problem, "momentum", "adam"]
    print(
        f"{problem}: adam / momentum {row['ratio']:.2f} "
        f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}], {row['verdict']}"
    )
    assert row["verdict"] == "no difference"
    assert row["ci_low"] <= 1 <= row["ci_high"]

"""Speed of jaxgd against the loops people write today, measured side by side.

Every figure is a ratio of two timings taken in the same process, interleaved
(one repeat of each in turn), as the median of several repeats, with
``block_until_ready`` on every result. The targets (see the README's Speed
section):

1. ``run_loop``: ``gd.minimize``, 1000 Adam steps on a 200x2 regression, against
   the Python loop of jitted optax steps (>= 25x) and torch.optim eager
   (>= 100x); the raw ``lax.scan`` of optax steps is shown for reference.
2. ``sweep``: 64 learning rates x 1000 steps in one vmapped call against 64
   sequential ``minimize`` calls (>= 8x).
3. ``big_step``: one Adam step on 10M float32 params inside ``minimize`` within
   1.2x of a memory-bound XLA kernel moving the same bytes (4 arrays read, 3
   written, donated); per-step times are differences of two run lengths. Also
   the peak resident memory of that run (in a fresh subprocess).
4. ``mlp``: 500 full-batch Adam steps of a 64-128-10 MLP on scikit-learn's
   digits against torch.optim eager (<= 0.6x the time).
5. ``latency``: the README quick start in a fresh process (<= 2 s), the compile
   time of a small ``minimize``, and compilations on second calls (0).
6. ``make_step``: ``gd.make_step`` (donated buffers) against a plain jitted
   optax step on 10M params.
7. ``per_call``: ``minimize(steps=1)`` against one call of a jitted optax step
   (<= 1.5x): what a warm call costs around its step.
8. ``optimistix``: ``minimize`` against ``optimistix.minimise`` with the same
   optax Adam, 5000 steps, both warm (< 1x).
9. ``cli``: ``jaxgd compare --quick`` twice, in fresh processes sharing a fresh
   cache folder (the second run shows the persistent compile cache, where the
   CLI has one).
10. ``x64``: ``minimize`` with ``jax_enable_x64`` on and float64 params against
   the raw ``lax.scan`` of optax Adam steps (<= 3x), and the cost the float64
   mode adds to each (x64 time over x32 time).

The package: ``targets.py`` holds the ONE list of targets (what is timed,
against which baseline, the goal), ``timing.py`` the timing helpers, and one
file per target group: ``run_loop.py`` (1, 7, 8), ``sweep.py`` (2), ``x64.py`` (10),
``big_step.py`` (3, 6), ``mlp.py`` (4), ``compile_time.py`` (5), ``cli.py``
(9). It uses only jaxgd's public names (``gd.minimize``, ``gd.adam``,
``gd.make_step``, ``gd.problems.student_marks_data``), so it times an older
jaxgd tree as well, from a folder holding neither tree (``python -m`` looks in
the current folder first): ``cd /tmp && PYTHONPATH=/path/to/old:/path/to/this
python -m benchmarks.speed`` (``benchmarks`` here is a regular package, so it
wins over the old tree's folder; the old jaxgd comes first on the path).

Ratios of the run loop, the sweep, the per-call cost and optimistix are also
given over the fastest rounds and as the spread of the per-round ratios: on a
loaded machine the fastest rounds are the least disturbed, and the spread says
how noisy the figure is.

Run it from the repository root as a module: ``python -m benchmarks.speed``
(all, a few minutes on 2 CPU cores), ``--only run_loop,sweep`` for some
groups, ``--list`` for the targets without timing anything. Results go to
``benchmarks/results/speed.json`` and ``speed.md``. torch is optional
(``pip install -e ".[bench]"``); without it the torch comparisons are reported
as skipped. The script runs unchanged on a GPU (it prints the device and sizes
its step counts by backend).
"""

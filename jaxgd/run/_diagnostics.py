"""Why a step overshoots: Cockpit's instruments, measured inside the compiled loop.

``minimize(diagnostics=...)`` names any of :data:`NAMES`; each is recorded
per history entry (``history.alpha``, ``.cosine``, ``.update_ratio``,
``.noise_scale``), ``NaN`` where it is undefined. Every instrument looks at
the update the optimizer actually took, ``delta_k = params_{k+1} -
params_k`` (whatever the optimizer: jaxgd's, optax's, a line search), never
at what a rule would have done.

* **alpha**, the effective relative step size (Cockpit, Schneider, Dangel &
  Hennig 2021). Along the step, a quadratic ``q(s) = a + b s + c s^2`` is
  fitted to the loss and the directional derivative at both ends, ``f_0,
  f_1`` and ``d_0 = g_0 . u``, ``d_1 = g_1 . u`` with ``u = delta / t`` and
  ``t = |delta|``, by least squares with equal weights (Cockpit's fit when
  the observations' variances are equal, as in full-batch runs):
  ``c = (d_1 - d_0) / 2t`` and
  ``b = ((t^2 + 8) d_0 - t^2 d_1 + 2 t (f_1 - f_0)) / (2 (t^2 + 4))``. Then
  ``alpha = 2 t c / (-b) - 1``: 0 where the step lands on the fitted
  minimum, 1 on its mirror point, above 1 an overshoot that climbs, and -1
  where the fit is not convex (``d_1 <= d_0``), as Cockpit logs it. On an
  exact quadratic the fit is exact and ``alpha = -(g_1 . delta) / (g_0 .
  delta)``; for gradient descent along an eigendirection of curvature
  ``lambda``, ``alpha = lr * lambda - 1``, so ``alpha = 1`` at ``lr = 2 /
  lambda``, the edge of stability. The end point is the next step's own
  evaluation (no extra gradient): in minibatch runs that is the next batch,
  as in Cockpit, so ``f_1 - f_0`` and ``d_1`` carry the difference between
  two batches (noise whose mean is zero in ``d_1``, but which enters
  alpha's denominator: a noisy, slightly biased estimate). The last step's
  alpha is ``NaN`` (its end point is past the loop).
* **cosine** between the update and the one before: ``delta_k .
  delta_{k-1} / (|delta_k| |delta_{k-1}|)``; ``NaN`` at step 0 and next to
  a zero update.
* **update_ratio**, per leaf: ``|delta_k| / |params_k|`` for each leaf of
  the params (a pytree like them, one value per entry; ``NaN`` for a leaf
  whose norm is 0). Per leaf because the rule of thumb (about 1e-3) is per
  layer; a global ratio hides a layer that overshoots.
* **noise_scale**, the simple noise scale ``B_simple = tr(Sigma) / |G|^2``
  (McCandlish et al. 2018) of the step's batch (all the data in a
  full-batch run), from the per-example gradients ``g_i = grad
  loss(params, example_i)`` (the loss of a batch of one, under ``vmap``):
  ``G`` their mean and ``tr(Sigma) = sum_i |g_i - G|^2 / (B - 1)``. It
  needs data with at least two examples a batch, and takes the batch in
  chunks of about :data:`CHUNK_BYTES` of per-example gradients written out
  (so a full batch of any size fits; a dense layer's are not written out,
  and an MLP's batch is one chunk). It costs about one more batch gradient: a dense
  layer's per-example gradient is an outer product ``a_i (x) b_i``, whose
  squared norm is ``|a_i|^2 |b_i|^2`` and whose sum over the batch is one
  matrix product, so neither is written out (:mod:`jaxgd.run._outer`; other
  layers' per-example gradients are). ``E|G|^2 = |G_true|^2 + tr(Sigma) /
  B``, so the estimate is low: ``1 / B_est ~ 1 / B_true + 1 / B`` (invert
  this to correct it; averaging over steps, McCandlish's advice, tames the
  noise).
* **effective_lr**, the effective learning rate ``d * lr`` of the update
  taken at the step, for the optimizers that adapt it (optax.contrib's
  ``prodigy`` and ``dadapt_adamw``, alone or in optax's wrappers): the D
  the update used times the schedule's rate there, read from the
  optimizer's state by :func:`jaxgd.optimizers.effective_lr` (no extra
  evaluation). Another optimizer is refused before compiling.

Off (an empty tuple), nothing here is traced: the compiled program is the
one without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd.optimizers import effective_lr
from jaxgd.run._outer import per_example_moments, written_bytes
from jaxgd.run._result import History, bookkeeping_dtype

HIGHEST = jax.lax.Precision.HIGHEST  # dot products in full float32 (not TF32 on a GPU)

__all__ = [
    "CHUNK_BYTES",
    "JOIN_LIMIT",
    "NAMES",
    "LastUpdate",
    "alpha",
    "buffers",
    "effective_lr",
    "noise_and_step",
    "noise_scale",
    "observe",
    "start",
]

NAMES = ("alpha", "cosine", "update_ratio", "noise_scale", "effective_lr")
"""The instruments ``minimize(diagnostics=...)`` knows, in the order they are recorded."""


class LastUpdate(NamedTuple):
    """What the last update taken leaves for the next step (alpha and the cosine)."""

    delta: jax.Array  # params_{k+1} - params_k, its leaves joined (zeros before the first)
    loss: jax.Array  # f_0: the loss where the update started
    slope: jax.Array  # g_0 . delta
    size: jax.Array  # |delta|^2 (0 before the first update)


def _joined(leaves, kind) -> jax.Array:
    """The leaves raveled and joined into one vector of dtype ``kind``."""
    return jnp.concatenate([jnp.ravel(x).astype(kind) for x in leaves])


def _kind(tree, dtype) -> Any:
    """The dtype the last update is kept in: ``dtype`` or wider, complex for complex
    params."""
    return jnp.result_type(dtype, *(leaf.dtype for leaf in jax.tree.leaves(tree)))


JOIN_LIMIT = 1 << 22
"""Parameters up to which alpha and the cosine take their dot products from one
Gram matrix of the joined vectors (the fewest kernels); above, leaf by leaf
(no params-sized copies of the gradient and the updates)."""


def _update_dots(grads: list, delta: list, joined, previous, dtype) -> dict[str, jax.Array]:
    """``g . d``, ``d . d``, ``g . d_last``, ``d . d_last`` of the gradient ``g`` at the
    start of this update ``d`` (``joined``: its leaves joined) and of the last
    update ``d_last`` (``previous``, joined)."""
    if previous.size <= JOIN_LIMIT:
        gram = _gram([_joined(grads, previous.dtype), joined, previous], dtype)
        return {
            "slope0": gram[0, 1],
            "size": gram[1, 1],
            "slope1": gram[0, 2],
            "across": gram[1, 2],
        }
    ends = np.cumsum([leaf.size for leaf in delta])[:-1]
    last = [p.reshape(d.shape) for p, d in zip(jnp.split(previous, ends), delta, strict=True)]
    pairs = {"slope0": (grads, delta), "size": (delta, delta)}
    pairs |= {"slope1": (grads, last), "across": (delta, last)}
    return {name: _dot(a, b, dtype) for name, (a, b) in pairs.items()}


def _dot(a: list, b: list, dtype) -> jax.Array:
    """``Re sum(conj(a) . b)`` over the leaves, in ``dtype``."""
    wide = lambda x: x.astype(jnp.promote_types(x.dtype, jnp.float32))  # noqa: E731
    parts = [jnp.real(jnp.vdot(wide(x), wide(y))).astype(dtype) for x, y in zip(a, b, strict=True)]
    return sum(parts, jnp.zeros((), dtype))


def _gram(rows: list[jax.Array], dtype) -> jax.Array:
    """``Re(conj(rows[i]) . rows[j])`` for every pair, as one matrix product (XLA:CPU
    runs each small reduction as a chain of kernels of its own: four dot products
    over an MLP's four leaves, one at a time, were half the kernels of a
    minibatch step)."""
    x = jnp.stack(rows)
    gram = jnp.matmul(jnp.conj(x), x.T, precision=HIGHEST)
    return jnp.real(gram).astype(dtype)


def buffers(names: tuple[str, ...], params: Any, length: int, dtype) -> dict[str, Any]:
    """The NaN-filled history buffers of the named instruments (the others None)."""
    nan = jnp.full((length,), jnp.nan, dtype)
    out = {name: (nan if name in names else None) for name in NAMES}
    if "update_ratio" in names:
        out["update_ratio"] = jax.tree.map(lambda _: nan, params)
    return out


def start(names: tuple[str, ...], params: Any, dtype) -> LastUpdate | None:
    """The carry before the first update (None unless alpha or the cosine is on)."""
    if not {"alpha", "cosine"} & set(names):
        return None
    nan = jnp.full((), jnp.nan, dtype)
    size = sum(leaf.size for leaf in jax.tree.leaves(params))
    return LastUpdate(jnp.zeros((size,), _kind(params, dtype)), nan, nan, jnp.zeros((), dtype))


def alpha(f0, f1, slope0, slope1, size) -> jax.Array:
    """Cockpit's alpha from the loss ``f0, f1`` and ``g . delta`` (``slope0,
    slope1``) at both ends of a step of squared length ``size`` (NaN for a
    zero step, -1 where the fit along the step is not convex).

    Examples:
        >>> # f = x^2 / 2 from x = 1 with lr 1.5: delta = -1.5, lands at -0.5
        >>> float(alpha(0.5, 0.125, -1.5, 0.75, 2.25))  # lr * lambda - 1
        0.5
    """
    q = size
    top = 2 * (q + 4) * (slope0 - slope1)
    bottom = slope0 * (q + 8) - slope1 * q + 2 * q * (f1 - f0)
    value = jnp.where(slope1 > slope0, top / bottom - 1, -1.0)
    return jnp.where(q > 0, value, jnp.nan)


CHUNK_BYTES = 64 << 20
"""Per-example gradients the noise scale writes out at once, about (a batch is taken
in chunks of examples whose written-out gradients fit, so a full batch of any
size does). A dense layer's are not written out (:func:`written_bytes`), so an
MLP's full batch is one chunk: on the 64-128-10 MLP two chunks of 899 examples
were 1.4x slower than one of 1797 in the compiled loop."""


def noise_scale(loss_of, params, batch) -> jax.Array:
    """``tr(Sigma) / |G|^2`` from the per-example gradients of ``loss_of(params,
    example)`` (each example as a batch of one) on ``batch``: ``G`` their mean,
    ``tr(Sigma) = sum_i |g_i - G|^2 / (B - 1)``, accumulated over chunks of
    examples as ``sum_i |g_i|^2`` and ``sum_i g_i`` (in float32 or wider).

    A dense layer's ``g_i`` is an outer product: its sum and squared norms are
    computed from the factors (:func:`per_example_moments`)."""
    one = lambda p, example: loss_of(p, jax.tree.map(lambda a: a[None], example))  # noqa: E731
    n, squares, sums = _example_sums(jax.vmap(jax.grad(one), (None, 0)), params, batch, 0)
    return _ratio(n, squares, sums, bookkeeping_dtype(params))


def noise_and_step(example_loss, params, batch) -> tuple[jax.Array, Any, jax.Array]:
    """``(loss, grads, noise)`` of the mean of ``example_loss(params, example)`` over
    ``batch`` (:func:`jaxgd.run.mean_over_examples`), all from one per-example
    pass: the loss and gradient are the means of the per-example ones, as the
    batch loss's are, and the noise scale as :func:`noise_scale` gives it."""
    per_example = jax.vmap(jax.value_and_grad(example_loss), (None, 0))
    n, squares, sums = _example_sums(per_example, params, batch, 1)
    dtype = bookkeeping_dtype(params)
    leaves, treedef = jax.tree.flatten(params)
    grads = [(s / n).astype(leaf.dtype) for s, leaf in zip(sums[1:], leaves, strict=True)]
    example = jax.tree.map(lambda a: a[0], batch)
    loss = (sums[0] / n).astype(jax.eval_shape(example_loss, params, example).dtype)
    return loss, treedef.unflatten(grads), _ratio(n, squares, sums[1:], dtype)


def _example_sums(per_example, params, batch, first: int) -> tuple[int, jax.Array, list]:
    """``(n, sum_i |g_i|^2, [sum_i leaf_i])`` over the ``n`` examples of ``batch`` for
    the output leaves of ``per_example(params, examples)``, the squared norms of
    those from ``first`` on (the gradient's), in float32 or wider, in chunks of
    about :data:`CHUNK_BYTES` of per-example leaves written out."""
    dtype = bookkeeping_dtype(params)
    n = jax.tree.leaves(batch)[0].shape[0]
    first_row = jax.tree.map(lambda a: a[:1], batch)
    size = written_bytes(per_example, params, first_row)
    count = -(-n // max(1, CHUNK_BYTES // max(1, size)))
    chunk = -(-n // count)  # as even as can be: at most count - 1 padded examples
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[:1], count * chunk - n, 0)])  # noqa: E731
    rows = jax.tree.map(lambda a: pad(a).reshape(count, chunk, *a.shape[1:]), batch)
    weight = (jnp.arange(count * chunk) < n).astype(dtype).reshape(count, chunk)
    weight = None if count * chunk == n else weight  # none padded: plain sums
    moments = per_example_moments(per_example)

    def add(total, part):
        rows, w = part
        sums, norms = moments(w, params, rows)
        norm = sum(v.astype(dtype) for v in norms[first:])  # |g_i|^2: one product with w
        squares = total[0] + (jnp.sum(norm) if w is None else jnp.dot(norm, w, precision=HIGHEST))
        return (squares, [s + v.astype(s.dtype) for s, v in zip(total[1], sums, strict=True)]), None

    shapes = jax.tree.leaves(jax.eval_shape(per_example, params, first_row))
    wide = lambda leaf: jnp.result_type(dtype, leaf.dtype)  # noqa: E731  (a float64 loss stays)
    start = (jnp.zeros((), dtype), [jnp.zeros(leaf.shape[1:], wide(leaf)) for leaf in shapes])
    if count == 1:  # the whole batch at once: no loop
        (squares, sums), _ = add(start, (jax.tree.map(lambda a: a[0], rows), weight))
    else:
        (squares, sums), _ = jax.lax.scan(add, start, (rows, weight))
    return n, squares, sums


def _ratio(n: int, squares, sums: list, dtype) -> jax.Array:
    """``tr(Sigma) / |G|^2`` from ``sum_i |g_i|^2`` and the leaves of ``sum_i g_i``."""
    mean_squared = _gram([_joined(sums, _kind(sums, dtype))], dtype)[0, 0] / n**2
    return (squares / n - mean_squared) * (n / (n - 1)) / mean_squared


def _leaf_ratio(delta, param, dtype) -> jax.Array:
    norm = lambda x: jnp.sqrt(jnp.sum(jnp.abs(x).astype(dtype) ** 2))  # noqa: E731
    top, bottom = norm(delta), norm(param)
    return jnp.where(bottom > 0, top / bottom, jnp.nan)


def observe(
    names: tuple[str, ...],
    history: History,
    last: LastUpdate | None,
    before: Any,
    after: Any,
    loss,
    grads,
    go,
    at,
    steps: int,
    noise=None,
    rate=None,
) -> tuple[History, LastUpdate | None]:
    """``(history, last)`` with this step's instruments written.

    The step evaluated ``loss`` and ``grads`` at ``before`` (step ``at``; ``at
    == steps`` for a step whose writes are dropped) and moved to ``after``
    where ``go``. Written: the alpha of the previous update (whose end point
    this evaluation is) at its entry, and the cosine and update ratio of
    this update (where ``go``), ``noise`` (the noise scale, or None) at
    this step's entry and ``rate`` (the effective learning rate of the
    update, or None) where ``go``.
    """
    dtype = history.loss.dtype
    flat_before, flat_after = jax.tree.leaves(before), jax.tree.leaves(after)
    delta = [b - a for a, b in zip(flat_before, flat_after, strict=True)]
    if last is not None:  # the slopes along the last update and this one, their lengths
        joined = _joined(delta, last.delta.dtype)
        dots = _update_dots(jax.tree.leaves(grads), delta, joined, last.delta, dtype)
    taken = history.entry(jnp.where(go, at, steps))
    put = lambda buffer, where, v: buffer.at[where].set(v.astype(buffer.dtype), mode="drop")  # noqa: E731
    new: dict[str, Any] = {}
    if "alpha" in names:  # the previous update's alpha, at its own entry
        value = alpha(last.loss, loss.astype(dtype), last.slope, dots["slope1"], last.size)
        ended = history.entry(jnp.where((at >= 1) & (at < steps), at - 1, steps))
        new["alpha"] = put(history.alpha, ended, value)
    if "cosine" in names:
        size, across = dots["size"], dots["across"]
        both = size * last.size
        cosine = jnp.where(both > 0, across * jax.lax.rsqrt(jnp.where(both > 0, both, 1)), jnp.nan)
        new["cosine"] = put(history.cosine, taken, cosine)
    if "update_ratio" in names:
        ratios = [_leaf_ratio(d, p, dtype) for d, p in zip(delta, flat_before, strict=True)]
        leaves, treedef = jax.tree.flatten(history.update_ratio)
        new["update_ratio"] = treedef.unflatten(
            [put(b, taken, r) for b, r in zip(leaves, ratios, strict=True)]
        )
    if noise is not None:
        new["noise_scale"] = put(history.noise_scale, history.entry(at), noise)
    if rate is not None:
        new["effective_lr"] = put(history.effective_lr, taken, rate)
    if last is not None:
        now = LastUpdate(joined, loss.astype(dtype), dots["slope0"], dots["size"])
        last = jax.tree.map(lambda a, b: jnp.where(go, a, b), now, last)
    return dataclasses.replace(history, **new), last


def noise_scale_at(loss_of, params, batch, due_at, stride: int, steps: int, dtype) -> jax.Array:
    """The noise scale where ``due_at`` has a history entry (else NaN, not computed
    but under vmap, where a cond computes both sides)."""
    if stride == 1:
        return noise_scale(loss_of, params, batch).astype(dtype)
    due = (due_at % stride == 0) & (due_at < steps)
    nan = jnp.full((), jnp.nan, dtype)
    return jax.lax.cond(due, lambda: noise_scale(loss_of, params, batch).astype(dtype), lambda: nan)

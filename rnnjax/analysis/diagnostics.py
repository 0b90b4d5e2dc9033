"""Gradient diagnostics for recurrent classifiers: how strongly the loss reaches back to each input step.

``input_gradients`` differentiates the mean loss with respect to the embedded input ``x [B, T, E]`` (the
embedding lookup's output, not the embedding table). ``input_gradient_norms`` turns it into one curve: the
norm of each step's gradient, averaged over the batch, indexed by distance from each sequence's end, so a
vanishing gradient shows as a curve that falls with distance. ``plot_gradient_norms`` draws such curves.

``chrono_init`` (chrono initialisation, which these curves motivate) lives in ``rnnjax/initializers.py`` and is
importable from here too. Models and losses live in ``models.py``/``losses.py``; training loops in
``rnnjax/training``; this file only measures.
"""

from collections.abc import Mapping
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import losses, models
from rnnjax.initializers import chrono_init  # noqa: F401  (diagnostics.chrono_init, as before)
from rnnjax.types import Batch, Params


def _check_batch(batch: Batch) -> None:
    missing = {"tokens", "lengths", "label"} - set(batch)
    if missing:
        raise ValueError(
            f"batch is missing {sorted(missing)}; batches are {{tokens [B, T], lengths [B], label [B]}}."
        )


def input_gradients(
    spec: models.ModelSpec, params: Params, batch: Batch, *, use_lengths: bool = True
) -> jax.Array:
    """Gradient of the mean loss with respect to the embedded input at every position.

    Each position gets its own row in a per-batch embedding table (row ``1 + b*T + t`` holds
    ``embeddings[tokens[b, t]]``), and the model runs on those row ids, so the table's gradient is the
    gradient with respect to the embedded input, position by position, through the unchanged ``apply_model``.
    Row 0 stands for id 0 when the Embedding has ``mask_zero``, so masking is unchanged too.

    Args:
        spec: the model (its first layer is the Embedding).
        params: the model's parameters.
        batch: ``{tokens [B, T] int, lengths [B] int, label [B] int}``; rows with label -1 are padding.
        use_lengths: mask by ``lengths`` (right-padded batches), as ``train.ModelConfig.use_lengths``.

    Returns:
        [B, T, E] float32 gradients; exactly zero at masked (padded) positions.

    Raises:
        ValueError: if the batch lacks a field.
    """
    _check_batch(batch)
    return _input_gradients(
        spec, params, batch["tokens"], batch["lengths"], batch["label"], use_lengths=use_lengths
    )


@partial(jax.jit, static_argnames=("spec", "use_lengths"))
def _input_gradients(
    spec: models.ModelSpec,
    params: Params,
    tokens: jax.Array,
    lengths: jax.Array,
    labels: jax.Array,
    *,
    use_lengths: bool,
) -> jax.Array:
    b, t = tokens.shape
    embedding = spec.layers[0]
    embedded = jnp.take(params[models.layer_names(spec)[0]]["embeddings"], tokens, axis=0)  # [B, T, E]
    positions = 1 + jnp.arange(b * t, dtype=jnp.int32).reshape(b, t)
    if embedding.mask_zero:
        positions = jnp.where(tokens == 0, 0, positions)
    position_spec = models.replace_layer(spec, 0, vocab_size=b * t + 1)
    lengths = lengths if use_lengths else None
    name = models.layer_names(spec)[0]

    def loss_fn(x_btf: jax.Array) -> jax.Array:
        table = jnp.concatenate([jnp.zeros_like(x_btf[:1, 0]), x_btf.reshape(b * t, -1)], axis=0)
        position_params = {**params, name: {"embeddings": table}}
        logits = models.apply_model(position_spec, position_params, positions, lengths)
        return losses.mean_loss(logits, labels)

    return jax.grad(loss_fn)(embedded)


def position_gradient_norms(
    spec: models.ModelSpec, params: Params, batch: Batch, *, use_lengths: bool = True
) -> jax.Array:
    """The L2 norm of ``input_gradients`` over the embedding axis: [B, T] float32."""
    return jnp.linalg.norm(input_gradients(spec, params, batch, use_lengths=use_lengths), axis=-1)


def align_to_end(values_bt: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Re-indexes right-padded per-position values by distance from each sequence's last real step.

    Args:
        values_bt: [B, T] values per position.
        lengths: [B] int, real steps per row.

    Returns:
        ``(sums [T], counts [T])``: at index d, the sum over rows with ``lengths > d`` of
        ``values_bt[b, lengths[b] - 1 - d]``, and the number of such rows. Padding never enters a sum.
    """
    t = values_bt.shape[1]
    distance = jnp.arange(t)[None, :]  # [1, T]
    index = jnp.asarray(lengths)[:, None] - 1 - distance  # [B, T]
    real = index >= 0
    gathered = jnp.take_along_axis(values_bt, jnp.clip(index, 0, t - 1), axis=1)
    return jnp.sum(jnp.where(real, gathered, 0.0), axis=0), jnp.sum(real, axis=0)


def input_gradient_norms(
    spec: models.ModelSpec, params: Params, batch: Batch, *, use_lengths: bool = True
) -> np.ndarray:
    """Mean norm of the loss gradient w.r.t. the embedded input, by distance from the end of each sequence.

    Args:
        spec: the model.
        params: its parameters.
        batch: a right-padded batch ``{tokens [B, T], lengths [B], label [B]}``.
        use_lengths: mask by ``lengths``, as ``train.ModelConfig.use_lengths``.

    Returns:
        [T] float64 on the host: index d is the mean over the batch's real rows long enough to have a step d
        steps before their end (d = 0 is the last real step); NaN where no row is that long.
    """
    norms = position_gradient_norms(spec, params, batch, use_lengths=use_lengths)
    labels = np.asarray(batch["label"])
    lengths = np.where(labels >= 0, np.asarray(batch["lengths"]), 0)  # padding rows contribute nothing
    sums, counts = jax.device_get(align_to_end(norms, jnp.asarray(lengths)))
    sums, counts = np.asarray(sums, np.float64), np.asarray(counts)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_gradient_norms(curves: Mapping[str, np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """Draws gradient-norm curves (log scale) against distance from the end and saves them as a PNG.

    Args:
        curves: label -> [T] norms from ``input_gradient_norms`` (NaN entries are skipped).
        path: the PNG file to write.
        title: the figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, values in curves.items():
        values = np.asarray(values, np.float64)
        keep = np.isfinite(values) & (values > 0)
        ax.plot(np.arange(len(values))[keep], values[keep], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("distance from the end of the sequence (steps)")
    ax.set_ylabel("|dL / dx_t| (mean over the batch)")
    ax.set_title(title or "Loss gradient w.r.t. the embedded input")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

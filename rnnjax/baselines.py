"""Non-recurrent baselines, trained beside the recurrent models by the same fit loop (``model_api.Model``).

* ``bag_of_words(vocab_size, num_classes, *, dense_units=(16, 16))``: Deep Learning with Python's first IMDB
  model (§3.4): each review as a multi-hot vector over the vocabulary (1 where a word id occurs, its order and
  count ignored), then Dense(16, relu) -> Dense(16, relu) -> Dense(1) (sigmoid in the loss), with Keras'
  initialisation (glorot_uniform kernels, zero biases) and Keras' parameter count (160,305 for 10,000 ids).
  The padding id 0 never counts; the start and out-of-vocabulary ids do, as in the book's ``vectorize_sequences``.
"""

import jax
import jax.numpy as jnp

from rnnjax.gates import glorot_uniform
from rnnjax.model_api import Model
from rnnjax.types import Batch, Params, PRNGKey


def multi_hot(tokens: jax.Array, vocab_size: int) -> jax.Array:
    """[B, T] ids -> [B, V] float32: 1 where an id other than the padding id 0 occurs in the row."""
    rows = jnp.arange(tokens.shape[0])[:, None]
    hot = jnp.zeros((tokens.shape[0], vocab_size), jnp.float32).at[rows, tokens].set(1.0)
    return hot.at[:, 0].set(0.0)


def bag_of_words(vocab_size: int, num_classes: int, *, dense_units: tuple[int, ...] = (16, 16)) -> Model:
    """The multi-hot bag-of-words MLP as a Model: logits [B] for 2 classes, [B, C] for C > 2."""
    sizes = (vocab_size, *dense_units, 1 if num_classes == 2 else num_classes)

    def init(key: PRNGKey) -> Params:
        keys = jax.random.split(key, len(sizes) - 1)
        return {
            f"dense_{i}": {"kernel": glorot_uniform(k, (n_in, n_out)), "bias": jnp.zeros((n_out,), jnp.float32)}
            for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:]))
        }

    def apply(params: Params, batch: Batch, *, rng: PRNGKey | None = None, train: bool = False) -> jax.Array:
        x = multi_hot(batch["tokens"], vocab_size)
        for i in range(len(sizes) - 1):
            layer = params[f"dense_{i}"]
            x = x @ layer["kernel"].astype(x.dtype) + layer["bias"].astype(x.dtype)[None, :]
            if i < len(sizes) - 2:
                x = jax.nn.relu(x)
        return x[:, 0] if num_classes == 2 else x

    return Model(init=init, apply=apply)


def dlwp_bag_of_words(vocab_size: int, num_classes: int) -> Model:
    """``bag_of_words`` as the book builds it (two Dense(16, relu) layers): the factory its config names."""
    return bag_of_words(vocab_size, num_classes)

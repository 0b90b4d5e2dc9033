"""Benchmark: Keras 3 ``fit`` (JAX backend) of the same model on the same data, for the fit-time comparison.

    python -m experiments.benchmarks.keras_fit --config=experiments/configs/lstm.py --workdir=runs/chapter/lstm

It builds the config's model as a Keras ``Sequential`` (Embedding, SpatialDropout1D, SimpleRNN/LSTM/GRU
layers, optionally Bidirectional, Dropout, Dense; or the bag-of-words baseline of ``rnnjax.baselines`` on the
same multi-hot vectors), trains it with Keras' RMSprop or Adam on the arrays that
``rnnjax.data.datasets.load_splits`` gives (same vocabulary, padding and validation split; post-padded batches are
masked with ``mask_zero=True``, as rnnjax masks them by length), evaluates it on the test split, and writes
``<workdir>/keras_fit.json`` (fit time, epoch times, history, test accuracy), which experiments.compare reads.
"""

import json
import os
import time
from pathlib import Path

# Before keras is imported; Keras would otherwise look for TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import flags
from ml_collections import config_flags

from experiments import _cli

_CONFIG = config_flags.DEFINE_config_file("config", str(_cli.CONFIGS / "lstm.py"), "experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "where keras_fit.json goes (default: runs/<config name>)")


def _build_bag_of_words(keras, vocab_size: int):
    """rnnjax.baselines.dlwp_bag_of_words in Keras: the book's multi-hot -> Dense(16) x 2 -> Dense(1) model."""
    return keras.Sequential([
        keras.Input((vocab_size,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def _multi_hot(tokens, vocab_size: int):
    """The book's ``vectorize_sequences`` of padded id rows (the padding id 0 never counts)."""
    import numpy as np

    hot = np.zeros((len(tokens), vocab_size), np.float32)
    hot[np.arange(len(tokens))[:, None], tokens] = 1.0
    hot[:, 0] = 0.0
    return hot


def _build(keras, config, vocab_size: int):
    model_cfg = config.model
    if model_cfg.get("factory"):
        if model_cfg.factory != "rnnjax.baselines:dlwp_bag_of_words":
            raise _cli.UsageError(f"keras_fit has no Keras twin of model.factory={model_cfg.factory!r}")
        return _build_bag_of_words(keras, vocab_size)
    if model_cfg.attention_units or model_cfg.recurrent_dropout:
        raise _cli.UsageError(
            "keras_fit covers the chapter's layers only (no attention or recurrent_dropout)"
        )
    mask_zero = config.data.padding == "post" or model_cfg.mask_zero
    layers = [
        keras.Input((config.data.maxlen,), dtype="int32"),
        keras.layers.Embedding(vocab_size, model_cfg.embed_dim, mask_zero=mask_zero),
    ]
    if model_cfg.spatial_dropout:
        layers.append(keras.layers.SpatialDropout1D(model_cfg.spatial_dropout))
    cell = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[
        model_cfg.cell
    ]
    for index in range(model_cfg.num_layers):
        options = {"return_sequences": index < model_cfg.num_layers - 1}
        if model_cfg.cell == "gru":
            options["reset_after"] = model_cfg.reset_after
        layer = cell(model_cfg.hidden_size, **options)
        layers.append(keras.layers.Bidirectional(layer) if model_cfg.bidirectional else layer)
    if model_cfg.dropout:
        layers.append(keras.layers.Dropout(model_cfg.dropout))
    for units in model_cfg.dense_units:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if model_cfg.dense_dropout:
            layers.append(keras.layers.Dropout(model_cfg.dense_dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)


def main(argv: list[str]) -> None:
    _cli.no_positional(argv)
    import keras

    from rnnjax.data import datasets as data

    config = _cli.with_data_location(_CONFIG.value)
    opt = config.opt
    if opt.name not in ("rmsprop", "adam") or opt.clip_norm or opt.schedule != "constant" or opt.warmup_steps:
        raise _cli.UsageError("keras_fit reproduces plain RMSprop and Adam (constant rate, no clipping) only")
    workdir = Path(_WORKDIR.value or Path("runs") / _cli.config_name(_CONFIG))
    splits = data.load_splits(config.data, seed=config.seed)
    keras.utils.set_random_seed(config.seed)
    vocab_size = splits["vocabulary"].size
    model = _build(keras, config, vocab_size)
    if config.model.get("factory"):  # the bag of words reads multi-hot vectors
        for split in ("train", "validation", "test"):
            splits[split] = {**splits[split], "tokens": _multi_hot(splits[split]["tokens"], vocab_size)}
    optimizer = (
        keras.optimizers.RMSprop(learning_rate=opt.learning_rate, rho=opt.rho, epsilon=opt.eps, momentum=opt.momentum)
        if opt.name == "rmsprop"
        else keras.optimizers.Adam(learning_rate=opt.learning_rate, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.eps)
    )
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    validation = splits["validation"]
    epoch_times, starts = [], []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: epoch_times.append(time.perf_counter() - starts[-1]),
    )
    start = time.perf_counter()
    history = model.fit(
        splits["train"]["tokens"],
        splits["train"]["label"],
        batch_size=config.train.batch_size,
        epochs=config.train.epochs,
        validation_data=(validation["tokens"], validation["label"]) if len(validation["label"]) else None,
        callbacks=[timer],
        verbose=2,
    )
    fit_time = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(
        splits["test"]["tokens"], splits["test"]["label"], batch_size=config.train.eval_batch_size, verbose=0
    )
    result = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "params": model.count_params(),
        "fit_time_s": fit_time,
        "epoch_times_s": epoch_times,
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "keras_fit.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"Keras fit: {fit_time:.1f} s, test accuracy {test_accuracy:.4f} -> {workdir / 'keras_fit.json'}")


if __name__ == "__main__":
    _cli.run(main)

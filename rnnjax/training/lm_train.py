"""Training a language model: its data rows, the jitted steps, the fit loop ``train_lm`` and ``load_lm_run``.

``train_lm(config, workdir)`` follows ``train.py``'s run-directory conventions: ``config.json``, ``lm.json``
(the ``LMSpec``), ``vocabulary.json``, Orbax ``checkpoints/`` and ``best/`` (lowest validation loss),
``history.json``, ``curves.png``, ``tensorboard/{train,validation}`` and ``results.json``. Resume is exact:
the root key never advances (dropout comes from ``fold_in(key, step)``), an epoch's row order is a function
of (seed, epoch) and a checkpoint carries the history and a partial epoch's sums.

Rows: each review is tokenized as for the classifier (``rnnjax.data.text``), encoded with the start id first and
cut into rows of at most ``data.maxlen`` ids that overlap by one id, so every next-word target is predicted
exactly once. Validation rows come from held-out reviews. The vocabulary (with the start id) is fitted on the
training reviews, or read from the run directory when resuming.

Only the builders here (``make_lm_spec``, ``load_lm_splits``, ``train_lm``) read the ConfigDict; the model
and its loss live in ``lm.py``.
"""

import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rnnjax import lm
from rnnjax.training import runs as checkpoint
from rnnjax.data import datasets as data
from rnnjax.training import optim
from rnnjax.analysis import plots
from rnnjax.data import synthetic
from rnnjax.training import tensorboard
from rnnjax.data import text
from rnnjax.training.train import TrainState, early_stopping_status
from rnnjax.types import Batch, Params, PRNGKey

LM_FILE = "lm.json"
METRICS = ("loss_sum", "n_correct", "n_tokens", "n_steps")
_DROPOUT = 0  # purpose index for fold_in(step key, purpose)
_VALIDATION_STREAM = 2  # SeedSequence stream of the held-out reviews (as data.py's validation stream)


def make_lm_spec(model_cfg: ml_collections.ConfigDict, *, vocab_size: int) -> lm.LMSpec:
    """Builds the LMSpec from ``config.model`` and the vocabulary size V."""
    return lm.LMSpec(
        cell=model_cfg.cell,
        vocab_size=vocab_size,
        embed_dim=int(model_cfg.embed_dim),
        hidden_size=int(model_cfg.hidden_size),
        num_layers=int(model_cfg.num_layers),
        input_dropout=float(model_cfg.input_dropout),
        dropout=float(model_cfg.dropout),
        recurrent_dropout=float(model_cfg.recurrent_dropout),
        tie_embeddings=bool(model_cfg.tie_embeddings),
        reset_after=bool(model_cfg.reset_after),
    )


# ------------------------------------------------------------------------------------------------ data


def _read_texts(data_cfg: ml_collections.ConfigDict, *, seed: int) -> tuple[str, list[str]]:
    """Returns (dataset name, review texts) for the language model: IMDB's configured splits or synthetic."""
    if data_cfg.name == "imdb_reviews":
        try:
            sources = data.prepare_imdb(data_dir=data_cfg.data_dir, source_dir=data_cfg.source_dir or None)
            texts = []
            for split in data_cfg.splits:
                if split not in sources:
                    raise ValueError(
                        f"config.data.splits: IMDB has no split {split!r}; choose from {sorted(sources)}."
                    )
                source = sources[split]
                texts += [
                    record["text"].decode("utf-8") for record in source.__getitems__(range(len(source)))
                ]
            return "imdb_reviews", texts
        except data.DataError as error:
            if data_cfg.source_dir or not data_cfg.fallback_to_synthetic:
                raise
            print(f"IMDB is not available ({error}); using the synthetic reviews instead.", file=sys.stderr)
    elif data_cfg.name != "synthetic":
        raise ValueError(f"config.data.name must be imdb_reviews or synthetic, got {data_cfg.name!r}.")
    texts, _ = synthetic.generate_reviews(
        int(data_cfg.synthetic_examples),
        seed=seed,
        length=int(data_cfg.synthetic_length),
        distance=int(data_cfg.synthetic_distance),
    )
    return "synthetic", list(texts)


def make_rows(sequences: Iterable[list[int]], maxlen: int) -> dict[str, np.ndarray]:
    """Cuts id sequences into right-padded rows of at most ``maxlen`` ids that overlap by one id.

    Row k of a sequence holds ids ``k * (maxlen - 1)`` to ``k * (maxlen - 1) + maxlen``, so the last id of a row
    is the first of the next and every next-word target of the sequence is in exactly one row. Sequences of
    fewer than two ids give no row.

    Args:
        sequences: id lists.
        maxlen: T >= 2.

    Returns:
        ``{"tokens": [N, T] int32, "lengths": [N] int32, "label": [N] int32 zeros}`` (the batch layout of
        ``data.batches``, whose padding rows get label -1 and length 0).

    Raises:
        ValueError: for maxlen < 2.
    """
    if maxlen < 2:
        raise ValueError(f"config.data.maxlen must be >= 2 for a language model, got {maxlen}.")
    chunks = [
        seq[start : start + maxlen]
        for seq in sequences
        for start in range(0, max(len(seq) - 1, 0), maxlen - 1)
    ]
    return {
        "tokens": text.pad_sequences(chunks, maxlen, padding="post", truncating="post"),
        "lengths": text.sequence_lengths(chunks, maxlen),
        "label": np.zeros(len(chunks), np.int32),
    }


def load_lm_splits(
    data_cfg: ml_collections.ConfigDict, *, seed: int, workdir: str | Path | None = None
) -> dict[str, Any]:
    """Reads, tokenizes and encodes the language model's reviews into training and validation rows.

    Args:
        data_cfg: ``config.data``.
        seed: ``config.seed``; it fixes the held-out reviews (and the synthetic texts).
        workdir: the run directory: its ``vocabulary.json`` is read when present, written otherwise.

    Returns:
        ``{"train", "validation"}`` rows (see ``make_rows``), ``"vocabulary"``, ``"name"`` and
        ``"reviews"`` (reviews per split).

    Raises:
        ValueError, DataError: for invalid settings or data.
    """
    if not 0 <= data_cfg.validation_split < 1:
        raise ValueError(f"config.data.validation_split={data_cfg.validation_split} must be in [0, 1).")
    name, texts = _read_texts(data_cfg, seed=seed)
    if data_cfg.max_reviews:
        order = np.random.default_rng([seed, _VALIDATION_STREAM, 1]).permutation(len(texts))
        texts = [texts[i] for i in np.sort(order[: int(data_cfg.max_reviews)])]
    words = text.tokenize(texts, method=data_cfg.tokenizer, strip_html=data_cfg.strip_html)
    order = np.random.default_rng([seed, _VALIDATION_STREAM]).permutation(len(words))
    num_kept = int(len(words) * (1 - data_cfg.validation_split))
    train_words = [words[i] for i in np.sort(order[:num_kept])]
    validation_words = [words[i] for i in np.sort(order[num_kept:])]
    vocab = None
    if workdir is not None and (Path(workdir) / text.VOCABULARY_FILE).exists():
        vocab = text.load_vocabulary(workdir)
    if vocab is None:
        vocab = text.fit_vocabulary(train_words, int(data_cfg.num_words), oov=True, start=True)
        if workdir is not None:
            text.save_vocabulary(vocab, workdir)
    maxlen = int(data_cfg.maxlen)
    return {
        "train": make_rows((text.encode(vocab, ws) for ws in train_words), maxlen),
        "validation": make_rows((text.encode(vocab, ws) for ws in validation_words), maxlen),
        "vocabulary": vocab,
        "name": name,
        "reviews": {"train": len(train_words), "validation": len(validation_words)},
    }


# ----------------------------------------------------------------------------------------------- steps


def create_lm_state(spec: lm.LMSpec, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """The state before the first step; params and training key are independent streams of ``seed``."""

    @jax.jit
    def create(root: PRNGKey) -> TrainState:
        init_key, train_key = jax.random.split(root)
        params = lm.init_lm(spec, init_key)
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), key=train_key
        )

    return create(jax.random.key(seed))


def make_lm_train_step(
    spec: lm.LMSpec, tx: optax.GradientTransformation
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds the jitted ``train_step(state, batch) -> (state, metrics)`` (state donated).

    The loss is the mean cross-entropy over the batch's real next-word targets. ``metrics`` holds scalar sums
    ``loss_sum``, ``n_correct``, ``n_tokens``, ``n_steps`` and the gradient's global norm ``grad_norm``.
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        rng = jax.random.fold_in(jax.random.fold_in(state.key, state.step), _DROPOUT)

        def loss_fn(params):
            counts = lm.lm_counts(spec, params, batch["tokens"], batch["lengths"], train=True, rng=rng)
            return counts["loss_sum"] / jnp.maximum(counts["n_tokens"], 1), counts

        (_, counts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(counts, n_steps=jnp.ones((), jnp.int32), grad_norm=optax.global_norm(grads))
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state, key=state.key), metrics

    return jax.jit(train_step, donate_argnums=0)


def make_lm_eval_step(spec: lm.LMSpec) -> Callable[[Params, Batch], dict[str, jax.Array]]:
    """Builds the jitted ``eval_step(params, batch) -> counts`` without dropout."""
    return jax.jit(lambda params, batch: lm.lm_counts(spec, params, batch["tokens"], batch["lengths"]))


@jax.jit
def _add(totals: dict[str, jax.Array], counts: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return jax.tree.map(jnp.add, totals, counts)


def _host(tree: dict[str, jax.Array]) -> dict[str, Any]:
    return {name: value.item() for name, value in jax.device_get(tree).items()}


def _zero_sums() -> dict[str, jax.Array]:
    return {
        "loss_sum": jnp.zeros((), jnp.float32),
        "n_correct": jnp.zeros((), jnp.int32),
        "n_tokens": jnp.zeros((), jnp.int32),
        "n_steps": jnp.zeros((), jnp.int32),
    }


def _summary(sums: dict[str, Any]) -> dict[str, float]:
    """Mean loss, next-word accuracy and perplexity from host sums."""
    n = max(sums["n_tokens"], 1)
    return {
        "loss": sums["loss_sum"] / n,
        "accuracy": sums["n_correct"] / n,
        "perplexity": lm.perplexity(sums["loss_sum"], sums["n_tokens"]),
    }


def evaluate_lm(eval_step: Callable, params: Params, batches: Iterable[Batch]) -> dict[str, float]:
    """Sums the eval counts over batches on the device, fetches them once.

    Returns:
        ``loss_sum``, ``n_correct``, ``n_tokens``, ``loss`` (mean nats per token), ``accuracy`` and
        ``perplexity``.

    Raises:
        ValueError: for no batches.
    """
    totals = None
    for batch in batches:
        counts = eval_step(params, jax.device_put(batch))
        totals = counts if totals is None else _add(totals, counts)
    if totals is None:
        raise ValueError("evaluate_lm: no batches; the split is empty.")
    host = _host(totals)
    return {**host, **_summary(host)}


# ------------------------------------------------------------------------------------------------ loop


def train_lm(config: ml_collections.ConfigDict, workdir: str | Path) -> tuple[TrainState, dict[str, Any]]:
    """Trains (or resumes) the language model described by ``config`` in ``workdir``.

    Args:
        config: an LM config (see ``experiments/configs/lm_gru.py``).
        workdir: the run directory; an existing one is resumed from its newest checkpoint.

    Returns:
        ``(state, results)``: the final state (the best one when ``train.restore_best``) and the contents of
        ``results.json`` (history, validation loss and perplexity, timings, parameter count).

    Raises:
        ValueError: for invalid settings or data.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_cfg = config.train
    splits = load_lm_splits(config.data, seed=config.seed, workdir=workdir)
    rows, validation = splits["train"], splits["validation"]
    if not len(rows["label"]):
        raise ValueError("train_lm: no training rows; the corpus has no review with two or more ids.")
    has_validation = len(validation["label"]) > 0
    spec = make_lm_spec(config.model, vocab_size=splits["vocabulary"].size)
    batch_size, epochs = int(train_cfg.batch_size), int(train_cfg.epochs)
    if batch_size <= 0 or epochs <= 0:
        raise ValueError(
            f"train.batch_size and train.epochs must be positive, got {batch_size} and {epochs}."
        )
    steps_per_epoch = math.ceil(len(rows["label"]) / batch_size)
    total_steps = int(train_cfg.max_steps) or epochs * steps_per_epoch
    epochs = min(epochs, math.ceil(total_steps / steps_per_epoch))
    tx = optim.make_optimizer(config.opt, total_steps)
    schedule = optim.make_schedule(config.opt, total_steps)

    checkpoint.write_config(workdir, config)
    checkpoint.write_json(workdir / LM_FILE, lm.spec_to_dict(spec))
    state = create_lm_state(spec, tx, config.seed)
    latest = checkpoint.make_manager(
        workdir / checkpoint.CHECKPOINTS, max_to_keep=int(train_cfg.keep_checkpoints)
    )
    best = checkpoint.make_manager(workdir / checkpoint.BEST, max_to_keep=1)
    history: dict[str, list] = {}
    partial = None
    restored = checkpoint.restore_latest(latest, state)
    if restored is not None:
        state, meta = restored
        history, partial = meta["history"], meta.get("epoch_sums")
        print(
            f"Resuming {workdir} at step {int(state.step)} (epoch {len(history.get('epoch', []))}).",
            flush=True,
        )
    train_step, eval_step = make_lm_train_step(spec, tx), make_lm_eval_step(spec)
    param_count = int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(state.params)))
    print(
        f"{splits['name']}: {splits['reviews']['train']} training reviews ({len(rows['label'])} rows, "
        f"{int(rows['lengths'].sum())} ids), {splits['reviews']['validation']} validation reviews; "
        f"vocabulary {spec.vocab_size}; {param_count:,} parameters; {total_steps} steps.",
        flush=True,
    )
    train_events = tensorboard.create_event_file(workdir / "tensorboard" / "train")
    val_events = tensorboard.create_event_file(workdir / "tensorboard" / "validation")
    show_bar = bool(train_cfg.progress_bar) and sys.stdout.isatty()
    every = int(train_cfg.checkpoint_every_steps)
    log_every = int(train_cfg.log_every_steps)
    step = int(state.step)
    for epoch in range(step // steps_per_epoch, epochs):
        if step >= total_steps:
            break
        skip = step - epoch * steps_per_epoch
        sums = _zero_sums()
        if skip and partial:
            sums = {name: jnp.asarray(partial[name], sums[name].dtype) for name in sums}
        partial = None
        start = last_draw = time.perf_counter()
        for index, batch in enumerate(
            data.batches(rows, batch_size, shuffle=True, seed=config.seed, epoch=epoch)
        ):
            if index < skip:
                continue
            if step >= total_steps:
                break
            state, metrics = train_step(state, jax.device_put(batch))
            sums = _add(sums, {name: metrics[name] for name in METRICS})
            step += 1
            if log_every and step % log_every == 0:
                host = _host(metrics)
                tensorboard.write_scalars(
                    train_events,
                    step,
                    {
                        "batch_loss": host["loss_sum"] / max(host["n_tokens"], 1),
                        "grad_norm": host["grad_norm"],
                        "learning_rate": float(schedule(step - 1)),
                    },
                )
            if show_bar and time.perf_counter() - last_draw > 0.5:
                last_draw = time.perf_counter()
                now = _summary(_host(sums))
                print(
                    f"\rEpoch {epoch + 1}/{epochs} {index + 1}/{steps_per_epoch} - {last_draw - start:.0f}s "
                    f"- loss: {now['loss']:.4f} - perplexity: {now['perplexity']:.1f}",
                    end="",
                    flush=True,
                )
            if every and step % every == 0 and step % steps_per_epoch and step < total_steps:
                checkpoint.save(latest, step, state, {"history": history, "epoch_sums": _host(sums)})
        epoch_sums = _host(sums)
        if step % steps_per_epoch and step >= total_steps:
            checkpoint.save(latest, step, state, {"history": history, "epoch_sums": epoch_sums})
            if show_bar:
                print(flush=True)
            break
        train_time = time.perf_counter() - start
        row: dict[str, Any] = {"epoch": epoch + 1, **_summary(epoch_sums)}
        if has_validation:
            val = evaluate_lm(
                eval_step,
                state.params,
                data.batches(validation, int(train_cfg.eval_batch_size), shuffle=False),
            )
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"], val_perplexity=val["perplexity"])
        row.update(
            time_s=time.perf_counter() - start,
            train_time_s=train_time,
            steps_per_s=epoch_sums["n_steps"] / max(train_time, 1e-9),
            tokens_per_s=epoch_sums["n_tokens"] / max(train_time, 1e-9),
            learning_rate=float(schedule(step - 1)),
        )
        for name, value in row.items():
            history.setdefault(name, []).append(value)
        shown = " - ".join(
            f"{k}: {row[k]:.4f}" if "perplexity" not in k else f"{k}: {row[k]:.1f}"
            for k in ("loss", "perplexity", "val_loss", "val_perplexity")
            if k in row
        )
        print(
            ("\r" if show_bar else "") + f"Epoch {epoch + 1}/{epochs} - {train_time:.0f}s - {shown}",
            flush=True,
        )
        tensorboard.write_scalars(
            train_events, epoch + 1, {"epoch_loss": row["loss"], "epoch_perplexity": row["perplexity"]}
        )
        if has_validation:
            tensorboard.write_scalars(
                val_events,
                epoch + 1,
                {"epoch_loss": row["val_loss"], "epoch_perplexity": row["val_perplexity"]},
            )
        monitor = "val_loss" if has_validation else "loss"
        if early_stopping_status(history, monitor, 0.0)[0] == epoch + 1:
            checkpoint.save(best, step, state, {"history": history, "monitor": monitor, "epoch": epoch + 1})
        checkpoint.save(latest, step, state, {"history": history, "epoch_sums": None})
        checkpoint.write_json(workdir / "history.json", history)

    if history:
        plots.plot_history(history, workdir / "curves.png", title=workdir.name)
    used = "latest"
    best_step = best.latest_step()
    if train_cfg.restore_best and best_step is not None:
        if best_step != int(state.step):
            state, _ = checkpoint.restore(best, best_step, state)
        used = "best"
    results: dict[str, Any] = {
        "workdir": str(workdir),
        "dataset": splits["name"],
        "params": param_count,
        "step": int(state.step),
        "epochs_run": len(history.get("epoch", [])),
        "fit_time_s": float(sum(history.get("time_s", []))),
        "checkpoint": used,
        "history": history,
    }
    if has_validation:
        val = evaluate_lm(
            eval_step, state.params, data.batches(validation, int(train_cfg.eval_batch_size), shuffle=False)
        )
        results["validation"] = val
        print(
            f"Validation: loss {val['loss']:.4f} - perplexity {val['perplexity']:.2f} - next-word accuracy "
            f"{val['accuracy']:.4f} ({val['n_tokens']} tokens)",
            flush=True,
        )
    checkpoint.write_json(workdir / "results.json", results)
    return state, results


# ---------------------------------------------------------------------------------------------- loading


def load_lm_run(
    workdir: str | Path, *, which: str = "best"
) -> tuple[lm.LMSpec, Params, text.Vocabulary, ml_collections.ConfigDict]:
    """Restores a language model from its run directory.

    Args:
        workdir: a run directory written by ``train_lm``.
        which: "best" (lowest validation loss; the latest when there is no best yet) or "latest".

    Returns:
        ``(spec, params, vocabulary, config)``.

    Raises:
        ValueError: if the directory is not a language-model run or holds no complete checkpoint.
    """
    workdir = Path(workdir)
    if which not in ("best", "latest"):
        raise ValueError(f"checkpoint must be 'best' or 'latest', got {which!r}.")
    if not (workdir / LM_FILE).exists():
        raise ValueError(
            f"{workdir / LM_FILE} not found; is {workdir} a run directory written by experiments.train_lm?"
        )
    spec = lm.spec_from_dict(json.loads((workdir / LM_FILE).read_text()))
    config = checkpoint.read_config(workdir)
    vocab = text.load_vocabulary(workdir)
    keep = max(int(config.train.keep_checkpoints), 1)
    manager = checkpoint.make_manager(
        workdir / (checkpoint.BEST if which == "best" else checkpoint.CHECKPOINTS), max_to_keep=keep
    )
    if manager.latest_step() is None and which == "best":
        manager = checkpoint.make_manager(workdir / checkpoint.CHECKPOINTS, max_to_keep=keep)
    step = manager.latest_step()
    if step is None:
        raise ValueError(f"no complete checkpoint in {workdir}; train (or resume) the language model first.")
    tx = optim.make_optimizer(config.opt, total_steps=1)  # only the structure of the optimizer state matters
    target = jax.eval_shape(lambda: create_lm_state(spec, tx, int(config.seed)))
    state, _ = checkpoint.restore(manager, step, target)
    return spec, state.params, vocab, config

"""The word-level language model as a task of the fit loop, and ``train_lm``, its config builder.

``lm_task`` turns an ``LMSpec`` into a ``loop.Task`` (mean next-word cross-entropy over the real targets;
perplexity among the metrics). ``train_lm`` reads an LM config, validates it before anything is written, loads
the rows (``data/lm_rows.py``), opens the run directory (``runs.open_run``) and hands everything to
``loop.fit``: resume, the signal save, the non-finite guard, data parallelism and bfloat16 are the loop's, as
for every task.
"""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rnnjax import lm
from rnnjax.data import availability, lm_rows, text
from rnnjax.training import loop, optim, runs, settings, tensorboard
from rnnjax.types import Batch, Params, PRNGKey


def make_lm_spec(model_cfg: ml_collections.ConfigDict, *, vocab_size: int) -> lm.LMSpec:
    """Builds the LMSpec from ``config.model`` and the vocabulary size V (``use_bias`` defaults to True)."""
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
        use_bias=bool(model_cfg.get("use_bias", True)),  # configs written before the option had biases
    )


def lm_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Mean loss (nats per token), next-word accuracy and perplexity from host sums."""
    n = max(sums["n_tokens"], 1)
    return {
        "loss": sums["loss_sum"] / n,
        "accuracy": sums["n_correct"] / n,
        "perplexity": lm.perplexity(sums["loss_sum"], sums["n_tokens"]),
    }


def lm_task(spec: lm.LMSpec) -> loop.Task:
    """The language model as a fit-loop task."""

    def loss(params: Params, batch: Batch, rng: PRNGKey):
        counts = lm.lm_counts(spec, params, batch["tokens"], batch["lengths"], train=True, rng=rng)
        return counts["loss_sum"] / jnp.maximum(counts["n_tokens"], 1), counts

    def counts(params: Params, batch: Batch):
        return lm.lm_counts(spec, params, batch["tokens"], batch["lengths"])

    return loop.Task(
        kind="language_model",
        init=lambda key: lm.init_lm(spec, key),
        loss=loss,
        counts=counts,
        metrics=lm_metrics,
        shown=("loss", "perplexity"),
    )


def train_lm(
    config: ml_collections.ConfigDict, workdir: str | Path
) -> tuple[loop.TrainState, dict[str, Any]]:
    """Trains (or resumes) the language model described by ``config`` in ``workdir``.

    Writes ``run.json``, ``config.json``, ``lm.json``, ``vocabulary.json``, ``checkpoints/``, ``best/``
    (lowest validation loss), ``history.json``, ``tensorboard/`` and ``results.json``.

    Returns:
        ``(state, results)``: the final state (the best one with ``train.restore_best``) and results.json.

    Raises:
        ValueError: invalid settings or data; ``runs.RunError``: a run directory that cannot take this
        command; ``loop.TrainingStopped``: SIGINT/SIGTERM (after a save) or a non-finite step.
    """
    workdir, train_cfg = Path(workdir), config.train
    # Every setting, the data actually used, then the run directory (its kind, its config): before any write.
    make_lm_spec(config.model, vocab_size=2)
    optim.make_optimizer(config.opt, 1)
    settings.check_train_settings(train_cfg, seed=int(config.seed), metrics=("loss", "accuracy", "perplexity"))
    config = availability.with_available_data(config)
    runs.check_run(workdir, kind="language_model", config=config.to_dict(), mutable=settings.MUTABLE)
    saved_vocab = workdir if (workdir / text.VOCABULARY_FILE).exists() else None
    splits = lm_rows.load_lm_splits(config.data, seed=int(config.seed), workdir=saved_vocab)
    rows, validation = splits["train"], splits["validation"]
    if not len(rows["label"]):
        raise ValueError("train_lm: no training rows; the corpus has no sequence with two or more ids.")
    spec = make_lm_spec(config.model, vocab_size=splits["vocabulary"].size)
    steps_per_epoch, total_steps, epochs = settings.steps_for(
        len(rows["label"]), int(train_cfg.batch_size), int(train_cfg.epochs), int(train_cfg.max_steps)
    )
    tx = optim.make_optimizer(config.opt, total_steps)
    options = settings.fit_options(train_cfg, epochs=epochs, total_steps=total_steps)
    train_data, val_data = settings.loaders(
        rows, int(train_cfg.batch_size), int(train_cfg.eval_batch_size), int(config.seed), validation
    )
    with runs.open_run(
        workdir,
        kind="language_model",
        config=config.to_dict(),
        mutable=settings.MUTABLE,
        keep_checkpoints=int(train_cfg.keep_checkpoints),
    ) as run:
        if jax.process_index() == 0:  # in a multi-process run, process 0 writes the run's files
            if saved_vocab is None:
                text.save_vocabulary(splits["vocabulary"], workdir)
            runs.write_json(workdir / runs.KINDS["language_model"], lm.spec_to_dict(spec))
        task = lm_task(spec)
        state = loop.create_state(task, tx, int(config.seed))
        reviews, sentences = splits["reviews"], ""
        if config.data.get("unit", "review") == "sentence":
            sentences = f"{splits['sequences']['train']} sentences, "
        print(
            f"{splits['name']}: {reviews['train']} training reviews ({sentences}{len(rows['label'])} rows, "
            f"{int(rows['lengths'].sum())} ids), {reviews['validation']} validation reviews; "
            f"vocabulary {spec.vocab_size}; {total_steps} steps.",
            flush=True,
        )
        result = loop.fit(
            task, tx, state, run, train_data, val_data, options, optim.make_schedule(config.opt, total_steps)
        )
        results: dict[str, Any] = {"workdir": str(workdir), "dataset": splits["name"], **result.record()}
        if val_data is not None:
            sums = result.evaluate(val_data.epoch(0))
            results["validation"] = {**sums, **lm_metrics(sums)}
            val = results["validation"]
            print(
                f"Validation: loss {val['loss']:.4f} - perplexity {val['perplexity']:.2f} - next-word accuracy "
                f"{val['accuracy']:.4f} ({val['n_tokens']} tokens)",
                flush=True,
            )
            if jax.process_index() == 0:
                metrics = {f"val_{k}": val[k] for k in ("loss", "perplexity", "accuracy")}
                tensorboard.log_hparams(workdir / "tensorboard" / "hparams", config.to_dict(), metrics)
        if jax.process_index() == 0:
            runs.write_json(workdir / "results.json", results)
    return result.state, results

"""The word-level language model as a task of the fit loop, and ``train_lm``, its config builder.

``lm_task`` turns an ``LMSpec`` into a ``loop.Task`` (mean next-word cross-entropy over the real targets;
perplexity among the metrics). With ``model.num_sampled = S > 0`` the training loss is a sampled softmax
(``losses.sampled_logits``: the true word against S words drawn per step from ``model.sampler``'s proposal,
with TensorFlow's log Q correction and accidental hits removed), so its training loss, perplexity and accuracy
are the sampled ones; evaluation always uses the full softmax, so validation numbers stay comparable.
``train_lm`` reads an LM config, validates it before anything is written, loads the rows
(``data/lm_rows.py``), opens the run directory (``runs.open_run``) and hands everything to ``loop.fit``:
resume, the signal save, the non-finite guard, data parallelism and bfloat16 are the loop's, as for every
task.
"""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rnnjax import lm, losses
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
        weight_dropout=float(model_cfg.get("weight_dropout", 0.0)),
        tie_embeddings=bool(model_cfg.tie_embeddings),
        reset_after=bool(model_cfg.reset_after),
        use_bias=bool(model_cfg.get("use_bias", True)),  # configs written before the option had biases
    )


SAMPLERS = ("log_uniform", "unigram")  # model.sampler: Zipfian over the frequency-sorted ids, or word counts


def sampling_options(model_cfg: ml_collections.ConfigDict) -> tuple[int, str]:
    """``(num_sampled, sampler)`` of ``config.model``; configs older than the option mean the full softmax.

    Raises:
        ValueError: for a negative ``num_sampled`` or an unknown sampler.
    """
    num_sampled, sampler = model_cfg.get("num_sampled", 0), model_cfg.get("sampler", "log_uniform")
    if not isinstance(num_sampled, int) or num_sampled < 0:
        raise ValueError(f"config.model.num_sampled={num_sampled!r} must be an integer >= 0 (0: full)")
    if sampler not in SAMPLERS:
        raise ValueError(f"config.model.sampler={sampler!r} must be one of {', '.join(SAMPLERS)}.")
    return num_sampled, sampler


def target_counts(rows: dict[str, np.ndarray], vocab_size: int) -> np.ndarray:
    """[V] int64: how often each id is a next-word target of the rows (``lm_rows.make_rows``' layout)."""
    targets = rows["tokens"][:, 1:]
    real = np.arange(targets.shape[1])[None, :] < rows["lengths"][:, None] - 1
    return np.bincount(targets[real], minlength=vocab_size)


def sampled_counts(
    spec: lm.LMSpec,
    params: Params,
    batch: Batch,
    rng: PRNGKey,
    *,
    num_sampled: int,
    proposal: losses.Proposal,
) -> dict[str, jax.Array]:
    """``lm.lm_counts``' sums with a sampled softmax: S = ``num_sampled`` words drawn once for the batch.

    Args:
        spec: the model (training mode: its dropout is applied).
        params: its parameters.
        batch: ``tokens [B, T]`` and ``lengths [B]`` right-padded rows.
        rng: the step's key; split into the dropout key and the sampling key.
        num_sampled: S >= 1.
        proposal: the distribution over the V ids the words are drawn from (``losses.log_uniform_proposal``).

    Returns:
        ``loss_sum`` (sampled cross-entropy), ``n_correct`` (the true word outscores every sampled one) and
        ``n_tokens``, summed over real targets.
    """
    tokens, lengths = jnp.asarray(batch["tokens"]), jnp.asarray(batch["lengths"])
    inputs, targets, mask = lm.next_word_targets(tokens, lengths)
    dropout_rng, sample_rng = jax.random.split(rng)
    h = lm.apply_lm(
        spec, params, inputs, jnp.maximum(lengths - 1, 0), train=True, rng=dropout_rng, return_hidden=True
    )
    x, weights, bias = lm.output_layer(spec, params, h)
    sampled = losses.sample_candidates(sample_rng, proposal, num_sampled)
    logits = losses.sampled_logits(
        x.reshape(-1, x.shape[-1]), weights, bias, targets.reshape(-1), sampled, jnp.asarray(proposal.log_q)
    )
    real = mask.reshape(-1)
    per_target = losses.sampled_cross_entropy(logits)
    return {
        "loss_sum": jnp.sum(jnp.where(real, per_target, 0.0)),
        "n_correct": jnp.sum((jnp.argmax(logits, axis=-1) == 0) & real, dtype=jnp.int32),
        "n_tokens": jnp.sum(real, dtype=jnp.int32),
    }


def lm_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Mean loss (nats per token), next-word accuracy and perplexity from host sums."""
    n = max(sums["n_tokens"], 1)
    return {
        "loss": sums["loss_sum"] / n,
        "accuracy": sums["n_correct"] / n,
        "perplexity": lm.perplexity(sums["loss_sum"], sums["n_tokens"]),
    }


def lm_task(spec: lm.LMSpec, *, num_sampled: int = 0, proposal: losses.Proposal | None = None) -> loop.Task:
    """The language model as a fit-loop task.

    Args:
        spec: the model.
        num_sampled: S > 0 trains with a sampled softmax of S words per step (``sampled_counts``); 0: full.
        proposal: the distribution the sampled words are drawn from; None: log-uniform over the ids.
    """
    if num_sampled and proposal is None:
        proposal = losses.log_uniform_proposal(spec.vocab_size)

    def loss(params: Params, batch: Batch, rng: PRNGKey):
        if num_sampled:
            counts = sampled_counts(spec, params, batch, rng, num_sampled=num_sampled, proposal=proposal)
        else:
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
    num_sampled, sampler = sampling_options(config.model)
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
    _, total_steps, epochs = settings.steps_for(
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
        proposal = None
        if sampler == "unigram":
            proposal = losses.unigram_proposal(target_counts(rows, spec.vocab_size))
        task = lm_task(spec, num_sampled=num_sampled, proposal=proposal)
        state = loop.create_state(task, tx, int(config.seed))
        reviews, sentences = splits["reviews"], ""
        if config.data.get("unit", "review") == "sentence":
            sentences = f"{splits['sequences']['train']} sentences, "
        print(
            f"{splits['name']}: {reviews['train']} training reviews ({sentences}{len(rows['label'])} rows, "
            f"{int(rows['lengths'].sum())} ids), {reviews['validation']} validation reviews; "
            f"vocabulary {spec.vocab_size}; {total_steps} steps"
            + (f"; sampled softmax of {num_sampled} {sampler} words per step." if num_sampled else "."),
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

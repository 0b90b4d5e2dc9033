"""The text classifier as a task of the fit loop, and ``train_and_evaluate``, its config builder.

``classifier_task`` turns a ``ModelSpec`` into a ``loop.Task`` (mean binary cross-entropy over the real
examples; confusion counts as sums). ``train_and_evaluate`` is the one place that reads a classifier's
ConfigDict: it validates every setting before anything is written, loads the data, opens the run directory
(``runs.open_run``: lock, config comparison), builds the model, optimizer and initial state (with
``config.init``: a language model's layers or word vectors, frozen or slower pretrained layers, gradual
unfreezing), hands them to ``loop.fit`` and evaluates the result on the test split.
"""

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from rnnjax import losses, models
from rnnjax.data import datasets, embeddings, text
from rnnjax.initializers import chrono_init
from rnnjax.training import loop, optim, runs, settings, tensorboard, transfer
from rnnjax.types import Batch, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the steps need to know about the model: its spec and how batches are masked."""

    spec: models.ModelSpec
    # Mask by batch["lengths"] (right-padded data); False for Keras-style pre-padding.
    use_lengths: bool = True


def make_model_config(model_cfg: ml_collections.ConfigDict, *, vocab_size: int, padding: str) -> ModelConfig:
    """Builds the ModelConfig from ``config.model``; "post" padding is masked by lengths, "pre" is not.

    Raises:
        ValueError: for an invalid model block or padding.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"data.padding must be 'pre' or 'post', got {padding!r}.")
    spec = models.make_classifier(
        cell=model_cfg.cell,
        vocab_size=vocab_size,
        embed_dim=model_cfg.embed_dim,
        hidden_size=model_cfg.hidden_size,
        num_layers=model_cfg.num_layers,
        bidirectional=model_cfg.bidirectional,
        mask_zero=model_cfg.mask_zero,
        spatial_dropout=model_cfg.spatial_dropout,
        dropout=model_cfg.dropout,
        recurrent_dropout=model_cfg.recurrent_dropout,
        attention_units=model_cfg.attention_units,
        dense_units=tuple(model_cfg.dense_units),
        dense_dropout=model_cfg.dense_dropout,
        reset_after=model_cfg.reset_after,
        unroll=model_cfg.unroll,
        parallel=bool(model_cfg.get("parallel", False)),
    )
    return ModelConfig(spec=spec, use_lengths=padding == "post")


def _check_batch(batch: Batch) -> None:
    missing = {"tokens", "lengths", "label"} - set(batch)
    if missing:
        raise ValueError(
            f"batch is missing {sorted(missing)}; batches are {{tokens [B, T], lengths [B], label [B]}}."
        )
    size = batch["tokens"].shape[0]
    if batch["label"].shape != (size,):
        raise ValueError(
            f"batch['label'] must have shape [B]=({size},), got {batch['label'].shape}; one 0/1 label per row "
            "(-1 for padding rows)."
        )


def logits(
    model_cfg: ModelConfig, params: Params, batch: Batch, *, train: bool = False, rng: PRNGKey | None = None
):
    """[B] float32 logits of a batch (masked by its lengths when the model uses them)."""
    _check_batch(batch)
    lengths = batch["lengths"] if model_cfg.use_lengths else None
    out = models.apply_model(model_cfg.spec, params, batch["tokens"], lengths, train=train, rng=rng)
    return out.astype(jnp.float32)


def classification_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Mean loss and accuracy over the real examples, from host sums (0 when there were none)."""
    n = max(sums["n_examples"], 1)
    return {"loss": sums["loss_sum"] / n, "accuracy": sums["n_correct"] / n}


def classifier_task(model_cfg: ModelConfig) -> loop.Task:
    """The binary classifier as a fit-loop task: Keras-initialised params, mean binary cross-entropy."""

    def loss(params: Params, batch: Batch, rng: PRNGKey):
        out = logits(model_cfg, params, batch, train=True, rng=rng)
        return losses.mean_loss(out, batch["label"]), losses.binary_counts(out, batch["label"])

    def counts(params: Params, batch: Batch):
        return losses.binary_counts(logits(model_cfg, params, batch), batch["label"])

    return loop.Task(
        kind="classifier",
        init=lambda key: models.init_model(model_cfg.spec, key),
        loss=loss,
        counts=counts,
        metrics=classification_metrics,
    )


# --------------------------------------------------------------------------------------- config builder


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """``config.init`` unpacked: where the pretrained layers come from and how they are fine-tuned."""

    from_lm_workdir: str = ""  # a language model's run directory: its embedding and recurrent layers
    lm_checkpoint: str = "best"  # that run's "best" or "latest" checkpoint
    embeddings_file: str = ""  # word vectors (word2vec/GloVe text) for the embedding
    pretrained_lr_multiplier: float = 1.0  # factor on the pretrained layers' updates
    gradual_unfreezing: bool = False  # ULMFiT: the top pretrained layer from epoch 1, one more each epoch
    freeze_embeddings: bool = False  # the embedding never trains


def init_block(config: ml_collections.ConfigDict) -> InitSpec | None:
    """``config.init`` as an InitSpec, None when it asks for no pretrained start.

    Raises:
        ValueError: both sources set, an unknown field or checkpoint, or a negative multiplier.
    """
    block = config.get("init")
    if block is None or not (block.get("from_lm_workdir") or block.get("embeddings_file")):
        return None
    fields = {f.name for f in dataclasses.fields(InitSpec)}
    unknown = sorted(set(block.keys()) - fields)
    if unknown:
        raise ValueError(
            f"config.init has no field {unknown[0]!r}; its fields are {', '.join(sorted(fields))}."
        )
    init = InitSpec(**{name: block[name] for name in block.keys()})
    if init.from_lm_workdir and init.embeddings_file:
        raise ValueError("config.init: set from_lm_workdir or embeddings_file, not both.")
    if init.lm_checkpoint not in ("best", "latest"):
        raise ValueError(f"config.init.lm_checkpoint must be 'best' or 'latest', got {init.lm_checkpoint!r}.")
    if not float(init.pretrained_lr_multiplier) >= 0:
        raise ValueError(
            f"config.init.pretrained_lr_multiplier={init.pretrained_lr_multiplier} must be >= 0."
        )
    return init


def make_optimizer(
    config: ml_collections.ConfigDict, spec: models.ModelSpec, total_steps: int, steps_per_epoch: int
) -> optax.GradientTransformation:
    """``optim.make_optimizer(config.opt)``, wrapped by ``transfer.finetune_optimizer`` as ``config.init`` asks."""
    tx = optim.make_optimizer(config.opt, total_steps)
    init = init_block(config)
    if init is None:
        return tx
    pretrained = transfer.pretrained_layers(spec, from_lm=bool(init.from_lm_workdir))
    factor = float(init.pretrained_lr_multiplier)
    multipliers = {name: factor for name in pretrained} if factor != 1.0 else {}
    trainable_from: dict[str, int | None] = {}
    if init.gradual_unfreezing:
        trainable_from.update(transfer.gradual_unfreezing(pretrained, steps_per_epoch))
    if init.freeze_embeddings:
        trainable_from["embedding"] = None
    return transfer.finetune_optimizer(tx, lr_multipliers=multipliers, trainable_from=trainable_from)


def initial_params(
    config: ml_collections.ConfigDict, spec: models.ModelSpec, vocab: text.Vocabulary
) -> Params:
    """The initial params: Keras' initialisation, chrono gate biases, then ``config.init``'s pretrained layers."""
    params = models.init_model(spec, jax.random.split(jax.random.key(int(config.seed)))[0])
    if int(config.model.get("chrono", 0)):
        params = chrono_init(params, spec, int(config.model.chrono), jax.random.key(int(config.seed) + 1))
    init_cfg = init_block(config)
    if init_cfg is None:
        return params
    if init_cfg.from_lm_workdir:
        params, copied = transfer.init_from_lm(
            params, spec, init_cfg.from_lm_workdir, vocab, which=init_cfg.lm_checkpoint
        )
        print(
            f"Initialised {sorted(copied)} from the language model in {init_cfg.from_lm_workdir}.", flush=True
        )
        return params
    key = jax.random.fold_in(jax.random.key(int(config.seed)), 7)
    params, coverage = embeddings.init_embedding(params, vocab, init_cfg.embeddings_file, key=key)
    print(
        f"Embedding from {init_cfg.embeddings_file}: {coverage['found']} of {coverage['words']} vocabulary words "
        f"found ({100 * coverage['fraction']:.1f}%); the others are random.",
        flush=True,
    )
    return params


def _load_data(config: ml_collections.ConfigDict, workdir: Path) -> dict[str, Any]:
    """The splits, with the run's own vocabulary when it has one (read only: nothing is written here)."""
    init = init_block(config)
    vocab_dir = None
    if (workdir / text.VOCABULARY_FILE).exists():
        vocab_dir = workdir
    elif init is not None and init.from_lm_workdir:  # started from a language model: its words
        vocab_dir = Path(init.from_lm_workdir)
        if not (vocab_dir / text.VOCABULARY_FILE).exists():
            raise ValueError(
                f"config.init.from_lm_workdir: {vocab_dir / text.VOCABULARY_FILE} not found; train the language model first."
            )
    splits = datasets.load_splits(config.data, seed=int(config.seed), workdir=vocab_dir)
    if not len(splits["train"]["label"]):
        raise ValueError(
            "the training split is empty; check config.data (validation_split, test_split, the data file)."
        )
    if int(config.train.batch_size) > len(splits["train"]["label"]):
        raise ValueError(
            f"train.batch_size={int(config.train.batch_size)} is larger than the {len(splits['train']['label'])} "
            "training examples; use a smaller batch size or more data."
        )
    return splits


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path
) -> tuple[loop.TrainState, dict[str, Any]]:
    """Trains (or resumes) the classifier of ``config`` in ``workdir``, then evaluates it on the test split.

    Writes ``run.json``, ``config.json``, ``model.json``, ``vocabulary.json``, ``checkpoints/``, ``best/``,
    ``history.json``, ``tensorboard/`` and ``results.json``.

    Returns:
        ``(state, results)``: the final TrainState (the best one with ``train.restore_best``) and
        results.json.

    Raises:
        ValueError: invalid settings or data; ``runs.RunError``: a run directory that cannot take this
        command. loop.TrainingStopped: SIGINT/SIGTERM (after a save) or a non-finite step.
    """
    workdir, train_cfg = Path(workdir), config.train
    # The run directory first (its kind, its config), then every setting: all before anything is written.
    runs.check_run(workdir, kind="classifier", config=config.to_dict(), mutable=settings.MUTABLE)
    make_model_config(config.model, vocab_size=2, padding=config.data.padding)  # every check before any write
    optim.make_optimizer(config.opt, 1)
    settings.check_train_settings(train_cfg)
    init_block(config)
    splits = _load_data(config, workdir)
    vocab = splits["vocabulary"]
    model_cfg = make_model_config(config.model, vocab_size=vocab.size, padding=config.data.padding)
    validation = splits["validation"] if len(splits["validation"]["label"]) else None
    train_data, val_data = settings.loaders(
        splits["train"],
        int(train_cfg.batch_size),
        int(train_cfg.eval_batch_size),
        int(config.seed),
        validation,
    )
    steps_per_epoch, total_steps, epochs = settings.steps_for(
        len(splits["train"]["label"]),
        int(train_cfg.batch_size),
        int(train_cfg.epochs),
        int(train_cfg.max_steps),
    )
    tx = make_optimizer(config, model_cfg.spec, total_steps, steps_per_epoch)
    options = settings.fit_options(train_cfg, epochs=epochs, total_steps=total_steps)
    with runs.open_run(
        workdir,
        kind="classifier",
        config=config.to_dict(),
        mutable=settings.MUTABLE,
        keep_checkpoints=int(train_cfg.keep_checkpoints),
    ) as run:
        if jax.process_index() == 0:  # in a multi-process run, process 0 writes the run's files
            if not (workdir / text.VOCABULARY_FILE).exists():
                text.save_vocabulary(vocab, workdir)
            runs.write_json(
                workdir / runs.KINDS["classifier"],
                {"use_lengths": model_cfg.use_lengths, **models.spec_to_dict(model_cfg.spec)},
            )
        task = classifier_task(model_cfg)
        state = loop.create_state(
            task,
            tx,
            int(config.seed),
            initial_params(config, model_cfg.spec, vocab) if not run.resumed else None,
        )
        result = loop.fit(
            task, tx, state, run, train_data, val_data, options, optim.make_schedule(config.opt, total_steps)
        )
        results = _results(config, run, splits, result)
    return result.state, results


def _results(config, run: runs.Run, splits: dict, result: loop.FitResult) -> dict[str, Any]:
    results: dict[str, Any] = {
        "workdir": str(run.workdir),
        "dataset": splits["name"],
        **result.record(),
        "monitor": result.monitor,
        "best_epoch": result.best_epoch,
    }
    test = splits["test"]
    if len(test["label"]) and config.train.evaluate_test:
        counts = result.evaluate(settings.eval_loader(test, int(config.train.eval_batch_size)).epoch(0))
        results["test"] = {**counts, **classification_metrics(counts)}
        if jax.process_index() == 0:
            print(
                f"Test: loss {results['test']['loss']:.4f} - accuracy {results['test']['accuracy']:.4f} "
                f"({counts['n_examples']} reviews)",
                flush=True,
            )
    if jax.process_index() == 0:
        if "test" in results:
            metrics = {f"test_{k}": results["test"][k] for k in ("loss", "accuracy")}
            tensorboard.log_hparams(run.workdir / "tensorboard" / "hparams", config.to_dict(), metrics)
        runs.write_json(run.workdir / "results.json", results)
    return results


def load_params(workdir: str | Path, which: str = "final") -> Params:
    """The parameters of a classifier run's checkpoint (``runs.load_run``)."""
    return runs.load_run(workdir, which=which, kind="classifier").params

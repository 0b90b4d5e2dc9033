"""The text classifier as a task of the fit loop, and ``train_and_evaluate``, its config builder.

``classifier_task`` turns any ``model_api.Model`` (a ModelSpec's, or a researcher's) into a ``loop.Task``: binary
or softmax cross-entropy over the real examples, confusion counts as sums. ``train_and_evaluate`` alone reads
the classifier's ConfigDict: it validates every setting before anything is written, loads the data, opens the run directory
(``runs.open_run``: lock, config comparison), builds the model, optimizer and initial state (with
``config.init``: a language model's layers or word vectors, frozen or slower pretrained layers, gradual
unfreezing), hands them to ``loop.fit`` and evaluates the result on the test split.
"""

import dataclasses
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rnnjax import losses, model_api, models
from rnnjax.data import availability, datasets, text, unlabelled
from rnnjax.training import adversarial, loop, optim, runs, settings, tensorboard
from rnnjax.training.pretrained import InitSpec, init_block, initial_params, make_optimizer  # noqa: F401
from rnnjax.types import Batch, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What the steps need to know about the model: its spec and how batches are masked."""

    spec: models.ModelSpec
    # Mask by batch["lengths"] (right-padded data); False for Keras-style pre-padding.
    use_lengths: bool = True


def make_model_config(
    model_cfg: ml_collections.ConfigDict, *, vocab_size: int, padding: str, num_classes: int = 2
) -> ModelConfig:
    """Builds the ModelConfig from ``config.model``; "post" padding is masked by lengths, "pre" is not.

    Raises:
        ValueError: for an invalid model block or padding.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"data.padding must be 'pre' or 'post', got {padding!r}.")
    _check_model_block(model_cfg)
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
        pooling=str(model_cfg.get("pooling", "")) or None,
        weight_dropout=float(model_cfg.get("weight_dropout", 0.0)),
        num_classes=num_classes,
    )
    return ModelConfig(spec=spec, use_lengths=padding == "post")


def _check_model_block(model_cfg: ml_collections.ConfigDict) -> None:
    """Names the ``config.model`` field of a size or rate out of range (the layer checks name layers instead)."""
    for name, low in (("embed_dim", 1), ("hidden_size", 1), ("num_layers", 1), ("unroll", 1), ("attention_units", 0),
                      ("chrono", 0)):
        if int(model_cfg.get(name, low)) < low:
            meaning = " (0: none)" if low == 0 else ""
            raise ValueError(f"model.{name}={model_cfg[name]} must be >= {low}{meaning}.")
    for name in ("spatial_dropout", "dropout", "recurrent_dropout", "dense_dropout", "weight_dropout"):
        if not 0 <= float(model_cfg.get(name, 0.0)) < 1:
            raise ValueError(f"model.{name}={model_cfg[name]} must be a rate in [0, 1).")
    if any(int(units) < 1 for units in model_cfg.get("dense_units", ())):
        raise ValueError(f"model.dense_units={tuple(model_cfg.dense_units)} must hold positive sizes, e.g. (32, 32).")


def _check_batch(batch: Batch) -> None:
    missing = {"tokens", "lengths", "label"} - set(batch)
    if missing:
        raise ValueError(
            f"batch is missing {sorted(missing)}; batches are {{tokens [B, T], lengths [B], label [B]}}."
        )
    size = batch["tokens"].shape[0]
    if batch["label"].shape != (size,):
        raise ValueError(
            f"batch['label'] must have shape [B]=({size},), got {batch['label'].shape}; one class id per row "
            "(-1 for padding rows)."
        )


def as_model(model: "model_api.Model | ModelConfig") -> model_api.Model:
    """A Model; a ModelConfig becomes its spec's (``model_api.spec_model``)."""
    return model_api.spec_model(model.spec, use_lengths=model.use_lengths) if isinstance(model, ModelConfig) else model


def logits(model, params: Params, batch: Batch, *, train: bool = False, rng: PRNGKey | None = None):
    """float32 logits of a batch: [B] for a binary model, [B, C] for C classes (``model``: Model or ModelConfig)."""
    _check_batch(batch)
    return as_model(model).apply(params, batch, rng=rng, train=train).astype(jnp.float32)


def classification_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Mean loss and accuracy over the real examples, from host sums (0 when there were none)."""
    n = max(sums["n_examples"], 1)
    return {"loss": sums["loss_sum"] / n, "accuracy": sums["n_correct"] / n}


def classifier_task(
    model: "model_api.Model | ModelConfig", adversarial_options: adversarial.AdversarialOptions | None = None
) -> loop.Task:
    """A classifier as a fit-loop task: the model's own init; binary cross-entropy for [B] logits, sparse
    categorical cross-entropy (softmax) for [B, C]; confusion counts as sums. With ``adversarial_options``
    (method other than "none"), the training loss adds adversarial and virtual adversarial terms
    (``adversarial.classifier_loss``; the model must be split around its word vectors).

    Raises:
        ValueError: for adversarial options out of range, or a model they cannot perturb.
    """
    model = as_model(model)
    options = adversarial_options if adversarial_options and adversarial_options.method != "none" else None
    if options is not None:
        adversarial.check_options(options)
        adversarial.check_model(model)

    def loss(params: Params, batch: Batch, rng: PRNGKey):
        _check_batch(batch)
        if options is not None:
            return adversarial.classifier_loss(model, options, params, batch, rng)
        out = logits(model, params, batch, train=True, rng=rng)
        return losses.classification_loss(out, batch["label"]), losses.classification_counts(out, batch["label"])

    def counts(params: Params, batch: Batch):
        return losses.classification_counts(logits(model, params, batch), batch["label"])

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {**classification_metrics(sums), **adversarial.adversarial_metrics(sums)}

    return loop.Task(kind="classifier", init=model.init, loss=loss, counts=counts, metrics=metrics)


def check_outputs(model: model_api.Model, batch: Batch, classes: tuple[str, ...]) -> None:
    """Raises ValueError unless the model's logits fit the classes: [B] for 2, [B, C] for C (shapes traced only)."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    shape = jax.eval_shape(lambda p: model.apply(p, batch, rng=None, train=False), params).shape
    size = batch["tokens"].shape[0]
    if shape == (size,) and len(classes) == 2 or shape == (size, len(classes)):
        return
    raise ValueError(
        f"the model gives logits of shape {shape} for a batch of {size}, but the data has {len(classes)} classes "
        f"{list(classes)[:10]}; end it in Dense(1) for two classes or Dense({len(classes)}) (softmax) for "
        f"{len(classes)}."
    )


# --------------------------------------------------------------------------------------- config builder


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
    count = int(config.data.get("unlabelled", 0))
    if count:
        rows = unlabelled.unlabelled_rows(config.data, splits["vocabulary"], count=count, seed=int(config.seed))
        splits["train"] = unlabelled.add_rows(splits["train"], rows)
    if jax.process_index() == 0:
        sizes = ", ".join(f"{split} {len(splits[split]['label']):,}" for split in datasets.SPLITS)
        if count:
            sizes += f" (train includes {len(rows['label']):,} unlabelled)"
        names = splits["classes"]
        classes = ", ".join(names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else "")
        print(f"Data: {splits['source']}: {sizes} examples; classes {classes}; vocabulary "
              f"{splits['vocabulary'].size:,} ids", flush=True)
    return splits


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, *, model_fn=None
) -> tuple[loop.TrainState, dict[str, Any]]:
    """Trains (or resumes) the classifier of ``config`` in ``workdir``, then evaluates it on the test split.

    The model is ``config.model``'s spec, or a researcher's own: ``model_fn(vocab_size=V, num_classes=C) ->
    model_api.Model`` (or ``config.model.factory = "module:function"`` naming one), trained with every
    guarantee of the fit loop. Writes ``run.json``, ``config.json``, ``model.json``, ``vocabulary.json``,
    ``classes.json``, ``checkpoints/``, ``best/``, ``history.json``, ``tensorboard/`` and ``results.json``.

    Returns:
        ``(state, results)``: the final TrainState (the best one with ``train.restore_best``) and
        results.json.

    Raises:
        ValueError: invalid settings or data; ``runs.RunError``: a run directory that cannot take this
        command. loop.TrainingStopped: SIGINT/SIGTERM (after a save) or a non-finite step.
    """
    workdir, train_cfg = Path(workdir), config.train
    # Every setting, the data actually used, then the run directory (its kind, its config): before any write.
    optim.make_optimizer(config.opt, 1)
    settings.check_train_settings(train_cfg, seed=int(config.seed))
    init_block(config)
    options = adversarial_options(config)
    if config.model.get("normalize_embeddings", False) and (model_fn or config.model.get("factory", "")):
        raise ValueError("model.normalize_embeddings applies to models built from config.model only.")
    config = availability.with_available_data(config)
    runs.check_run(workdir, kind="classifier", config=config.to_dict(), mutable=settings.MUTABLE)
    if (workdir / runs.KINDS["classifier"]).exists():  # a resumed run's registered cells, by their modules
        model_api.import_modules(runs.read_json(workdir / runs.KINDS["classifier"]).get("modules", ()))
    model_fn, factory = _model_factory(config, model_fn)
    if model_fn is None:
        make_model_config(config.model, vocab_size=2, padding=config.data.padding)
    splits = _load_data(config, workdir)
    vocab, classes = splits["vocabulary"], tuple(splits["classes"])
    model, model_cfg, description = _build_model(
        config, model_fn, factory, vocab.size, classes, splits["train"]["tokens"]
    )
    task = classifier_task(model, options)
    check_outputs(model, next(iter(settings.eval_loader(splits["train"], 2).epoch(0))), classes)
    _check_description(workdir, description)
    validation = splits["validation"] if len(splits["validation"]["label"]) else None
    train_data, val_data = settings.loaders(
        splits["train"], int(train_cfg.batch_size), int(train_cfg.eval_batch_size), int(config.seed), validation
    )
    steps_per_epoch, total_steps, epochs = settings.steps_for(
        len(splits["train"]["label"]), int(train_cfg.batch_size), int(train_cfg.epochs), int(train_cfg.max_steps)
    )
    tx = make_optimizer(config, model_cfg.spec if model_cfg else None, total_steps, steps_per_epoch)
    options = settings.fit_options(train_cfg, epochs=epochs, total_steps=total_steps)
    with runs.open_run(
        workdir, kind="classifier", config=config.to_dict(), mutable=settings.MUTABLE,
        keep_checkpoints=int(train_cfg.keep_checkpoints),
    ) as run:
        if jax.process_index() == 0:  # in a multi-process run, process 0 writes the run's files
            if not (workdir / text.VOCABULARY_FILE).exists():
                text.save_vocabulary(vocab, workdir)
            if not (workdir / datasets.CLASSES_FILE).exists():
                datasets.save_classes(classes, workdir)
            runs.write_json(workdir / runs.KINDS["classifier"], description)
        given = initial_params(config, model_cfg.spec, vocab) if model_cfg is not None and not run.resumed else None
        state = loop.create_state(task, tx, int(config.seed), given)
        result = loop.fit(
            task, tx, state, run, train_data, val_data, options,
            optim.make_schedule(config.opt, total_steps),
        )
        results = _results(config, run, splits, result)
    return result.state, results


def adversarial_options(config: ml_collections.ConfigDict) -> adversarial.AdversarialOptions:
    """``config.train``'s adversarial fields (absent in older configs: none), checked against ``config.data``.

    Raises:
        ValueError: naming the field, for a value out of range or unlabelled reviews without VAT.
    """
    train_cfg = config.train
    options = adversarial.AdversarialOptions(
        method=str(train_cfg.get("adversarial", "none")),
        epsilon=float(train_cfg.get("adv_epsilon", 5.0)),
        weight=float(train_cfg.get("adv_weight", 1.0)),
        xi=float(train_cfg.get("vat_xi", 0.1)),
    )
    adversarial.check_options(options)
    if int(config.data.get("unlabelled", 0)) and "vat" not in options.method:
        raise ValueError(
            f"data.unlabelled={config.data.unlabelled} adds unlabelled reviews, which only virtual adversarial "
            "training learns from: set train.adversarial=vat (or at+vat), or data.unlabelled=0."
        )
    return options


def _model_factory(config: ml_collections.ConfigDict, model_fn) -> tuple[Any, str]:
    """The researcher's model factory (given, or ``config.model.factory``) and the name model.json records."""
    factory = str(config.model.get("factory", "") or "")
    if model_fn is None and factory:
        model_fn = model_api.load_object(factory)
    if model_fn is not None and not callable(model_fn):
        raise ValueError(f"model_fn must be a function (vocab_size, num_classes) -> Model, got {model_fn!r}.")
    if model_fn is not None and init_block(config) is not None:
        raise ValueError("config.init (pretrained layers) applies to models built from config.model only.")
    return model_fn, factory or (model_api.object_name(model_fn) if model_fn is not None else "")


def _build_model(config, model_fn, factory: str, vocab_size: int, classes: tuple[str, ...], train_tokens):
    """``(model, ModelConfig or None, model.json's description)`` for a spec'd or a researcher's model; with
    ``model.normalize_embeddings``, the Embedding normalises by the id counts of ``train_tokens``."""
    if model_fn is None:
        model_cfg = make_model_config(
            config.model, vocab_size=vocab_size, padding=config.data.padding, num_classes=len(classes)
        )
        if config.model.get("normalize_embeddings", False):
            counts = unlabelled.word_counts(train_tokens, vocab_size)
            model_cfg = dataclasses.replace(model_cfg, spec=models.replace_layer(model_cfg.spec, 0, frequencies=counts))
        modules = model_api.cell_modules(model_cfg.spec)
        description = {"use_lengths": model_cfg.use_lengths, **models.spec_to_dict(model_cfg.spec)}
        if modules:
            description["modules"] = modules
        return as_model(model_cfg), model_cfg, description
    model = model_fn(vocab_size=vocab_size, num_classes=len(classes))
    if not isinstance(model, model_api.Model):
        raise ValueError(f"{factory} must return rnnjax.model_api.Model(init, apply), got {type(model).__name__}.")
    return model, None, {"factory": factory, "vocab_size": vocab_size, "num_classes": len(classes)}


def _check_description(workdir: Path, description: Mapping[str, Any]) -> None:
    """Raises RunError for a damaged model.json, or one naming another model factory: a run keeps its model."""
    path = Path(workdir) / runs.KINDS["classifier"]
    if not path.exists():
        return
    saved = runs.read_json(path)
    old, new = saved.get("factory", ""), description.get("factory", "")
    if not old:
        try:
            models.spec_from_dict(saved)
        except ValueError as error:
            raise runs.RunError(f"{path}: {error}; the file is damaged.") from None
    if old != new:
        raise runs.RunError(
            f"{path} describes the model {old or 'built from config.model'}, not {new or 'built from config.model'};"
            " a run keeps its model: give this one another --workdir."
        )


def _results(config, run: runs.Run, splits: dict, result: loop.FitResult) -> dict[str, Any]:
    results: dict[str, Any] = {
        "workdir": str(run.workdir),
        "dataset": splits["name"],
        "classes": list(splits["classes"]),
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
                f"({counts['n_examples']} examples)",
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

"""A classifier's start from ``config.init``: a language model's layers or word vectors, and how they train.

``init_block`` reads and checks the block (``InitSpec``); ``initial_params`` builds the starting parameters
(Keras' initialisation, chrono gate biases, then the pretrained layers); ``make_optimizer`` wraps the optimizer
with the block's learning-rate multiplier, frozen embedding and gradual unfreezing. The pieces themselves are
``transfer.py``'s (copying an LM's layers, the fine-tuning optimizer) and ``data/embeddings.py``'s (word vectors).
"""

import dataclasses
from pathlib import Path

import jax
import ml_collections
import optax

from rnnjax import models
from rnnjax.data import embeddings, text
from rnnjax.initializers import chrono_init
from rnnjax.training import optim, runs, transfer
from rnnjax.types import Params


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
    _check_direction(init, config)
    return init


def _check_direction(init: "InitSpec", config: ml_collections.ConfigDict) -> None:
    """Refuses a classifier that reads its reviews the other way round from the language model it starts from."""
    lm_config = Path(init.from_lm_workdir) / runs.CONFIG_FILE
    if not init.from_lm_workdir or not lm_config.exists():
        return  # a missing language model is named where it is read
    lm_reverse = bool(runs.read_config(lm_config).get("data", {}).get("reverse", False))
    if lm_reverse != bool(config.data.get("reverse", False)):
        way = "backwards" if lm_reverse else "forwards"
        raise ValueError(
            f"the language model in {init.from_lm_workdir} reads reviews {way} (data.reverse={lm_reverse}); "
            f"set --config.data.reverse={lm_reverse} for the classifier started from it."
        )


def make_optimizer(
    config: ml_collections.ConfigDict, spec: models.ModelSpec | None, total_steps: int, steps_per_epoch: int
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
    # One compiled program instead of a dispatch and a compilation per operation (the same numbers, bit for bit).
    init = jax.jit(lambda key: models.init_model(spec, key))
    params = init(jax.random.split(jax.random.key(int(config.seed)))[0])
    if int(config.model.get("chrono", 0)):
        params = chrono_init(params, spec, int(config.model.chrono), jax.random.key(int(config.seed) + 1))
    init_cfg = init_block(config)
    if init_cfg is None:
        return params
    if init_cfg.from_lm_workdir:
        params, copied = transfer.init_from_lm(
            params, spec, init_cfg.from_lm_workdir, vocab, which=init_cfg.lm_checkpoint
        )
        print(f"Initialised {sorted(copied)} from the language model in {init_cfg.from_lm_workdir}.", flush=True)
        params, folded = transfer.fold_embedding_moments(params, spec)
        if folded:
            print(f"Normalised embeddings: the table's moments are folded into {folded}'s input projection, so "
                  "the classifier starts from the language model's function.", flush=True)
        return params
    key = jax.random.fold_in(jax.random.key(int(config.seed)), 7)
    params, coverage = embeddings.init_embedding(params, vocab, init_cfg.embeddings_file, key=key)
    print(
        f"Embedding from {init_cfg.embeddings_file}: {coverage['found']} of {coverage['words']} vocabulary words "
        f"found ({100 * coverage['fraction']:.1f}%); the others are random.",
        flush=True,
    )
    return params

"""Virtual adversarial training at CPU size: Miyato, Dai & Goodfellow's (2017) recipe, scaled to a 2-core CPU.

Question: on top of the same language-model start, how much does virtual adversarial training (VAT) on the
normalised word vectors add, with IMDB's own reviews only? ``imdb_vat.py`` is the full-scale recipe.
Model: Embedding(10000, 128, normalised by the training words' frequencies) -> SpatialDropout1D(0.3) ->
GRU(256) -> Dropout(0.3) -> Dense(1, sigmoid); the embedding and the GRU start from runs/lm_cpu (lm_cpu.py),
whose vocabulary is used (pad 0, start 1, OOV 2), with the table's moments folded into the GRU's input
projection (``transfer.fold_embedding_moments``), so that the classifier starts as the language model's
function on the normalised word vectors. The last 100 words of each review,
right-padded and masked.
Training: Adam(1e-3, warm-up 50 steps, cosine decay), the pretrained layers at 0.3x the learning rate,
gradients clipped to norm 1, batch 64, one epoch. VAT:
perturbation norm ε = 5, probe ξ = 0.1, one power iteration, on the labelled rows and 2,500 of IMDB's
unlabelled reviews (``data.unlabelled``). The baseline is the same config with ``train.adversarial=none``
and ``data.unlabelled=0``.

Commands (the whole recipe; seeds 0, 1, 2):
    python -m experiments.train_lm --config=experiments/configs/lm_cpu.py --workdir=runs/lm_cpu
    python -m experiments.train --config=experiments/configs/imdb_vat_cpu.py --workdir=runs/vat_cpu-s0 \\
        --config.seed=0
    python -m experiments.train --config=experiments/configs/imdb_vat_cpu.py --workdir=runs/base_cpu-s0 \\
        --config.seed=0 --config.train.adversarial=none --config.data.unlabelled=0

Result: measured in one session on this project's shared 2-core CPU; see the README's results table.
"""

import ml_collections

from rnnjax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.num_words = 10000  # as the language model (its vocabulary.json is used)
    config.data.start_token = True  # the LM's vocabulary reserves id 1 for the start of a review
    config.data.maxlen = 100
    config.data.padding = "post"
    config.data.truncating = "pre"  # keep a long review's end
    config.data.unlabelled = 2500  # IMDB unlabelled reviews VAT also learns from

    config.model.cell = "gru"  # as lm_cpu.py
    config.model.embed_dim = 128
    config.model.hidden_size = 256
    config.model.num_layers = 1
    config.model.spatial_dropout = 0.3
    config.model.dropout = 0.3
    config.model.normalize_embeddings = True

    config.opt.name = "adam"
    config.opt.learning_rate = 1e-3
    config.opt.clip_norm = 1.0
    config.opt.schedule = "cosine"
    config.opt.warmup_steps = 50
    config.opt.final_fraction = 0.0

    config.train.batch_size = 64
    config.train.epochs = 1
    config.train.monitor = "val_accuracy"
    config.train.restore_best = True
    config.train.progress_bar = False
    config.train.adversarial = "vat"
    config.train.adv_epsilon = 5.0
    config.train.vat_xi = 0.1

    config.init.from_lm_workdir = "runs/lm_cpu"
    config.init.lm_checkpoint = "best"
    config.init.pretrained_lr_multiplier = 0.3
    return config

"""IMDB with virtual adversarial training at full scale (Miyato, Dai & Goodfellow, ICLR 2017: 94.09%).

Question: does VAT on the normalised word vectors of an LSTM pretrained on IMDB's own reviews reach the
paper's 5.91% test error (94.09%) and beyond, with no data beyond IMDB?
Model: Embedding(50000, 256, normalised by word frequency) -> SpatialDropout1D(0.5) -> LSTM(1024) ->
Dense(30, relu) -> Dense(1, sigmoid); the embedding and the LSTM from runs/lm_lstm (lm_lstm.py) and its
vocabulary. The last 400 words of each review, right-padded and masked.
Training: Adam(5e-4, warm-up 100 steps, cosine decay), gradients clipped to norm 1, batch 64, 10 epochs, the
best epoch by validation accuracy restored. VAT: ε = 5, ξ = 0.1, one power iteration, on the labelled rows and
all 50,000 unlabelled reviews. Ablations: ``--config.train.adversarial=none --config.data.unlabelled=0`` (the
language-model baseline), ``--config.train.adversarial=at --config.data.unlabelled=0`` (AT, the paper's
6.21%), ``--config.train.adversarial=at+vat``; ULMFiT's pieces with ``--config.model.pooling=concat`` and
``--config.model.weight_dropout=0.5``.

Commands (an accelerator):
    python -m experiments.train_lm --config=experiments/configs/lm_lstm.py --workdir=runs/lm_lstm
    python -m experiments.train --config=experiments/configs/imdb_vat.py --workdir=runs/imdb_vat

Result: not measured yet (no accelerator was available). The CPU-sized recipe (imdb_vat_cpu.py) measures
VAT's gain at small scale.
"""

import ml_collections

from experiments.configs import imdb_vat_cpu


def get_config() -> ml_collections.ConfigDict:
    config = imdb_vat_cpu.get_config()
    config.data.num_words = 50000
    config.data.maxlen = 400
    config.data.unlabelled = -1  # all 50,000
    config.model.cell = "lstm"  # as lm_lstm.py
    config.model.embed_dim = 256
    config.model.hidden_size = 1024
    config.model.spatial_dropout = 0.5
    config.model.dropout = 0.0
    config.model.dense_units = (30,)
    config.opt.learning_rate = 5e-4
    config.opt.warmup_steps = 100
    config.train.epochs = 10
    config.train.eval_batch_size = 256
    config.init.from_lm_workdir = "runs/lm_lstm"
    return config

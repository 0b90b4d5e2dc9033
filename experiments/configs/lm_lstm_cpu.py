"""The CPU-sized language model of the adversarial-training recipe (imdb_vat_cpu.py): an LSTM on IMDB.

Question: what small LSTM language model can a 2-core CPU pretrain in minutes, to start the VAT classifier
from, as Miyato, Dai & Goodfellow (2017) start theirs from an LSTM language model of IMDB's own reviews?
Model: Embedding(10000, 128) -> LSTM(256) -> Dense(256 -> 128) -> tied softmax over the vocabulary (as
lm_cpu.py, with the LSTM cell the classifier uses). A seeded subset of 4,000 of IMDB's unlabelled and
training reviews (never the test reviews), rows of up to 64 ids; 5% held out for validation perplexity.
Training: Adam(3e-3, warm-up 50 steps, cosine decay), gradients clipped to norm 1, batch 64, 2 epochs.

Command:
    python -m experiments.train_lm --config=experiments/configs/lm_lstm_cpu.py --workdir=runs/lm_lstm_cpu

Result: see imdb_vat_cpu.py, which states the whole recipe's measurements.
"""

import ml_collections

from experiments.configs import lm_cpu


def get_config() -> ml_collections.ConfigDict:
    config = lm_cpu.get_config()
    config.data.max_reviews = 4000
    config.model.cell = "lstm"
    config.train.epochs = 2
    return config

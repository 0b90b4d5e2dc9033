"""The language model of Miyato, Dai & Goodfellow (2017) on IMDB: LSTM(1024) over IMDB's own reviews.

Question: the pretraining of the full-scale adversarial-training recipe (imdb_vat.py, imdb_at.py).
Model: Embedding(50000, 256) -> locked dropout 0.5 -> LSTM(1024) -> locked dropout 0.5 -> Dense(1024 -> 256)
-> tied softmax, trained with a sampled softmax of 1,024 words per step (the paper's; validation perplexity
is always the full softmax). The paper keeps every word seen at least twice (87,007); 50,000 here.
Data: IMDB's 50,000 unlabelled and 25,000 training reviews (never the test reviews), rows of up to 400 ids,
2% of the reviews held out. Training: Adam(1e-3, cosine decay), gradients clipped to norm 1, batch 256.
The backward model of the forward + backward pair adds --config.data.reverse=True.

Command (an accelerator; about an hour on one GPU is the expected order, not measured here):
    python -m experiments.train_lm --config=experiments/configs/lm_lstm.py --workdir=runs/lm_lstm

Result: not measured yet (no accelerator was available); see imdb_vat.py.
"""

import ml_collections

from experiments.configs import lm_gru


def get_config() -> ml_collections.ConfigDict:
    config = lm_gru.get_config()
    config.data.num_words = 50000
    config.data.maxlen = 400
    config.model.cell = "lstm"
    config.model.embed_dim = 256
    config.model.hidden_size = 1024
    config.model.num_layers = 1
    config.model.input_dropout = 0.5
    config.model.dropout = 0.5
    config.model.num_sampled = 1024
    config.opt.learning_rate = 1e-3
    config.train.batch_size = 256
    config.train.epochs = 10
    return config

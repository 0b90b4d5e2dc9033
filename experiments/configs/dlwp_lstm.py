"""Deep Learning with Python, §6.2 (Chollet): the same recipe as dlwp_simple_rnn.py with LSTM(32).

Question: does rnnjax reproduce the book's LSTM on IMDB (about 89% validation accuracy)?
Data and training: as ``dlwp_simple_rnn.py`` (keras.datasets.imdb semantics with num_words=10000,
pad_sequences(maxlen=500), no mask, the last 20% for validation, RMSprop(1e-3), 10 epochs of batch 128).
Model: Embedding(10000, 32) -> LSTM(32) -> Dense(1, sigmoid).

Command:
    python -m experiments.train --config=experiments/configs/dlwp_lstm.py --workdir=runs/dlwp/dlwp_lstm

Result: see README's "Other texts' recipes" table.
"""

from experiments.configs import dlwp_simple_rnn

SOURCE = ("Deep Learning with Python §6.2", 89.0)


def get_config():
    config = dlwp_simple_rnn.get_config()
    config.model.cell = "lstm"
    return config

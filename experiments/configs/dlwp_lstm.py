"""Deep Learning with Python, §6.2 (Chollet): the same recipe as dlwp_simple_rnn.py with LSTM(32).

Question: does rnnjax reproduce the book's LSTM on IMDB (about 89% validation accuracy)?
Data and training: as ``dlwp_simple_rnn.py`` (keras.datasets.imdb semantics with num_words=10000,
pad_sequences(maxlen=500), no mask, the last 20% for validation, RMSprop(1e-3), 10 epochs of batch 128).
Model: Embedding(10000, 32) -> LSTM(32) -> Dense(1, sigmoid).

Command:
    python -m experiments.train --config=experiments/configs/dlwp_lstm.py --workdir=runs/dlwp/dlwp_lstm

Result (seeds 0-2, 2-core CPU): test accuracy after the 10th epoch 86.07 +- 1.44% (84.42, 86.77, 87.02); the
best epoch's validation accuracy 88.59% on average (the book: about 89%), the last epoch's 86.99 +- 1.81%.
Keras 3's fit of the same model on the same arrays: 85.74 +- 0.99% test. Fit 58 s against Keras' 143 s (seed 0,
idle machine).
"""

from experiments.configs import dlwp_simple_rnn

SOURCE = ("Deep Learning with Python §6.2", 89.0)


def get_config():
    config = dlwp_simple_rnn.get_config()
    config.model.cell = "lstm"
    return config

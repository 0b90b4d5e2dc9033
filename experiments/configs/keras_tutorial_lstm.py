"""The Keras LSTM tutorial's IMDB recipe: Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), Adam.

Question: does rnnjax reproduce the tutorial's 87.09% test accuracy with its 76,051 parameters?
Data: keras.datasets.imdb semantics with ``num_words=5000`` (ids 0 padding, 1 start, 2 out-of-vocabulary, words
from 3 by training frequency; see ``dlwp_simple_rnn.py`` for what differs from Keras' download),
``pad_sequences(maxlen=300)`` (pre-padding and pre-truncation, no mask), the last 20% of the training reviews for
validation. Training: Adam(1e-3), binary cross-entropy, batch 128, 5 epochs.

Command:
    python -m experiments.train --config=experiments/configs/keras_tutorial_lstm.py --workdir=runs/dlwp/keras_tutorial_lstm

Result (seeds 0-2, 2-core CPU): test accuracy 86.25 +- 0.36% (85.87, 86.28, 86.58) against the tutorial's
87.09%; Keras 3's fit of the same model on the same arrays 86.86 +- 0.16%; fit 12 s against Keras' 22 s (seed 0,
idle machine).
"""

from experiments.configs import dlwp_simple_rnn

SOURCE = ("Keras LSTM tutorial", 87.09)  # its test accuracy (%)


def get_config():
    config = dlwp_simple_rnn.get_config()
    config.data.num_words = 5000
    config.data.maxlen = 300
    config.model.cell = "lstm"
    config.model.embed_dim = 15
    config.model.hidden_size = 10
    config.opt.name = "adam"
    config.train.epochs = 5
    return config

"""The long-range lab (experiments/configs/long_range.py), cut to seconds, on the registered CIFG LSTM."""

import experiments.own.cifg  # noqa: F401  (registers cifg_lstm)
from experiments.configs import long_range


def get_config():
    config = long_range.get_config()
    config.data.synthetic_examples = 240
    config.model.hidden_size = 8
    config.train.epochs = 1
    config.train.batch_size = 32
    config.long_range.cells = ("cifg_lstm", "lstm")
    config.long_range.distances = (10,)
    config.long_range.chrono = False
    config.long_range.gradient_distance = 10
    return config

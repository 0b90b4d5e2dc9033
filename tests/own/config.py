"""experiments/configs/tiny.py with the hand-written model of experiments/own/cifg.py (``model.factory``), or with its
registered cell in the stock classifier (``--config.model.factory=`` and ``--config.model.cell=cifg_lstm``)."""

import experiments.own.cifg  # noqa: F401  (registers cifg_lstm)
from experiments.configs import tiny


def get_config():
    config = tiny.get_config()
    config.model.factory = "experiments.own.cifg:cifg_maxpool"
    return config

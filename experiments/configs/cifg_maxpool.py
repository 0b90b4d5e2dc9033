"""A researcher's own model: Embedding -> CIFG LSTM over every step -> max over the real steps -> Dense(1),
written by hand in experiments/own/cifg.py (``cifg_maxpool``) and named by ``model.factory``.

Question: does max-pooling over all steps, instead of reading the last state, help the CIFG LSTM on IMDB?
Training: the chapter's recipe (RMSprop(1e-3), batch 128, validation split 0.2, 5 epochs); ``config.model``'s
layer fields do not apply to a factory's model.

Command:
    python -m experiments.train --config=experiments/configs/cifg_maxpool.py --workdir=runs/cifg_maxpool

Result (seed 0, 2-core CPU): test accuracy 85.16% (loss 0.366; the model has no dropout), best validation
accuracy 86.10% in epoch 4; fit 31 s, 54 s from command to result. ``python -m experiments.evaluate`` and
``experiments.predict`` rebuild the model from the factory name the run directory records.
"""

from experiments.configs import lstm


def get_config():
    config = lstm.get_config()
    config.model.factory = "experiments.own.cifg:cifg_maxpool"
    return config

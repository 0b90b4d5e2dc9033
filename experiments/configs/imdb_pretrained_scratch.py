"""The model of imdb_pretrained.py trained from random weights: the baseline for language-model pretraining.

Question: what does the same GRU classifier reach on IMDB without the language model?
Model and training: as imdb_pretrained.py, with its own 20,000-word vocabulary fitted on the training
reviews and no ``init`` source (every layer at the full learning rate).

Result (one NVIDIA H100 shared with the language model's run): test accuracy 87.13% (loss 0.395) from the
epoch-3 parameters (validation accuracy per epoch 81.82, 87.52, 88.72, 88.72%; training accuracy 99.3% by
epoch 4: it overfits); 52 s of training.

Command:
    python -m experiments.train --config=experiments/configs/imdb_pretrained_scratch.py --workdir=runs/imdb_scratch
"""

from experiments.configs import imdb_pretrained


def get_config():
    config = imdb_pretrained.get_config()
    config.init.from_lm_workdir = ""
    config.init.pretrained_lr_multiplier = 1.0
    return config

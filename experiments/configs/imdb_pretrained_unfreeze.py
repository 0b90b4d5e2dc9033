"""imdb_pretrained.py with ULMFiT's gradual unfreezing.

Question: does training only the new layers in epoch 1, then the top GRU, then the lower GRU and the
embedding, beat fine-tuning every layer from the start at a lower rate?
Model and training: as imdb_pretrained.py with ``init.gradual_unfreezing = True`` and 5 epochs.

Result (one NVIDIA H100 shared with another run): test accuracy 91.94% (loss 0.218) from the epoch-4
parameters (validation accuracy per epoch 88.62, 90.60, 91.14, 91.38, 91.28%); 89 s of training. Slower to
start than imdb_pretrained.py (92.30%) and not better within 5 epochs.

Command (after the language model):
    python -m experiments.train --config=experiments/configs/imdb_pretrained_unfreeze.py --workdir=runs/imdb_pretrained_unfreeze
"""

from experiments.configs import imdb_pretrained


def get_config():
    config = imdb_pretrained.get_config()
    config.init.gradual_unfreezing = True
    config.train.epochs = 5
    return config

"""minGRU(32) on IMDB, trained parallel in time: the chapter's LSTM recipe with the cell swapped.

Question: does a minimal GRU whose gates see only the input (Feng et al., 2024), trained with a log-space
associative scan instead of a sequential one, match the chapter's LSTM (87.0%)?
Model: Embedding(8000, 32) -> SpatialDropout1D(0.4) -> minGRU(32) -> Dropout(0.4) -> Dense(1, sigmoid);
RMSprop(1e-3), batch 128, validation split 0.2, 5 epochs.

Command:
    python -m experiments.train --config=experiments/configs/min_gru.py --workdir=runs/min_gru

Result: see the README's "Beyond the chapter" section.
"""

from rnnjax.configs import default


def get_config():
    config = default.get_config()
    config.model.cell = "min_gru"
    config.model.parallel = True
    config.train.epochs = 5
    return config

"""IMDB star ratings: eight classes (1-4 and 7-10 stars) instead of two, from the same reviews.

Question: how much of the rating does the chapter's LSTM recover from the text, against the majority-class
baseline, in accuracy and in mean absolute rating error (stars)?
Data: IMDB's train/test splits with ``data.label_column = "rating"`` (the rating in each review's file name
``<n>_<rating>.txt``, or the ``rating`` field of the JSON-lines copy); classes "1".."4", "7".."10".
Model: Embedding(8000, 32) -> SpatialDropout1D(0.4) -> LSTM(64) -> Dropout(0.4) -> Dense(8, softmax);
sparse categorical cross-entropy, RMSprop(1e-3), batch 128, validation split 0.2, 6 epochs, best epoch by
validation loss.

Command:
    python -m experiments.train --config=experiments/configs/imdb_ratings.py --workdir=runs/imdb_ratings
    python -m experiments.evaluate --workdir=runs/imdb_ratings     # per-class report, confusion matrix, MAE

Result: see the README's results (multi-class row).
"""

from experiments.configs import lstm


def get_config():
    config = lstm.get_config()
    config.data.label_column = "rating"
    config.data.fallback_to_synthetic = False  # the ratings exist only in IMDB
    config.model.hidden_size = 64
    config.train.epochs = 6
    config.train.restore_best = True
    return config

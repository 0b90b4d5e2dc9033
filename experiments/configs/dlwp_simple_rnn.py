"""Deep Learning with Python, §6.2 (Chollet): SimpleRNN(32) on IMDB as the book trains it.

Question: does rnnjax reproduce the book's first recurrent IMDB model (about 85% validation accuracy)?
Data: ``keras.datasets.imdb.load_data(num_words=10000)`` semantics rebuilt from the raw reviews — id 0 padding,
1 the start of every review, 2 out-of-vocabulary words, words from 3 by frequency in the training reviews, so
9,997 words; ``pad_sequences(maxlen=500)``: pre-padding and pre-truncation, no mask (Keras' ``mask_zero=False``:
the padding steps are processed). Validation is the last 20% of the training reviews (Keras'
``validation_split=0.2``). What differs from Keras' own download: the word index is rebuilt from the same
reviews with Keras' ``text_to_word_sequence`` tokenization (``<br />`` removed), ranked on the 20,000 training
reviews of the split rather than on Keras' precomputed index of the whole dataset.
Model: Embedding(10000, 32) -> SimpleRNN(32) -> Dense(1, sigmoid); RMSprop(1e-3), binary cross-entropy,
10 epochs of batch 128, the last epoch's parameters.

Command:
    python -m experiments.train --config=experiments/configs/dlwp_simple_rnn.py --workdir=runs/dlwp/dlwp_simple_rnn
    python -m experiments.compare --workdir=runs/dlwp --models=dlwp_simple_rnn,dlwp_lstm,bow_dense --seeds=0,1,2

Result (seeds 0-2, 2-core CPU): test accuracy after the 10th epoch 81.39 +- 2.63% (81.11, 78.92, 84.15); the
best epoch's validation accuracy 85.91% on average (the book: about 85%), the last epoch's 82.16 +- 2.96%: the
recipe overfits and validation accuracy swings by several points between epochs. Keras 3's fit of the same model
on the same arrays: 83.09 +- 0.49% test (82.57, 83.17, 83.54). Fit 31 s against Keras' 53 s (seed 0, idle
machine).
"""

from rnnjax.configs import default

SOURCE = ("Deep Learning with Python §6.2", 85.0)  # the book's validation accuracy (%)


def get_config():
    config = default.get_config()
    data = config.data
    data.num_words = 10000  # ids incl. 0 padding, 1 start, 2 out-of-vocabulary (Keras' num_words)
    data.start_token = True  # id 1 first in every review, as keras.datasets.imdb
    data.oov_token = True  # unknown words -> 2
    data.maxlen = 500  # pad_sequences(maxlen=500)
    data.padding = "pre"  # pad_sequences' defaults: pre-padding ...
    data.truncating = "pre"  # ... and pre-truncation (a long review keeps its end)
    data.validation_mode = "last"  # Keras' validation_split: the last 20% of the training reviews
    model = config.model
    model.cell = "simple_rnn"
    model.embed_dim = 32
    model.hidden_size = 32
    model.mask_zero = False  # Keras' Embedding default: the padding steps are processed
    model.spatial_dropout = 0.0
    model.dropout = 0.0
    config.train.epochs = 10
    config.train.batch_size = 128
    return config

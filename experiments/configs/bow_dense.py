"""Deep Learning with Python, §3.4 (Chollet): the dense bag-of-words baseline on IMDB.

Question: how does the book's non-recurrent baseline (about 88% test accuracy) compare with the recurrent
recipes on the same data? A non-recurrent baseline belongs beside recurrent models in any comparison.
Data: keras.datasets.imdb semantics with ``num_words=10000`` (see ``dlwp_simple_rnn.py``); each review as a
multi-hot vector of its ids (the book's ``vectorize_sequences``), from the first 2,000 ids of each review (the
longest IMDB review has about 2,500 words; 2,000 covers every word of 99.9% of them). The book's final run
trains on all 25,000 training reviews: no validation split.
Model: multi-hot(10000) -> Dense(16, relu) -> Dense(16, relu) -> Dense(1, sigmoid) (``rnnjax.baselines``,
160,305 parameters as Keras); RMSprop(1e-3), binary cross-entropy, 4 epochs of batch 512.

Command:
    python -m experiments.train --config=experiments/configs/bow_dense.py --workdir=runs/dlwp/bow_dense

Result (seeds 0-2, 2-core CPU): test accuracy 88.57 +- 0.28% (88.68, 88.79, 88.26); Keras 3's fit of the
same model on the same multi-hot vectors 88.63 +- 0.09%; fit 3 s against Keras' 3 s (seed 0, idle machine).
"""

from experiments.configs import dlwp_simple_rnn

SOURCE = ("Deep Learning with Python §3.4", 88.0)


def get_config():
    config = dlwp_simple_rnn.get_config()
    config.data.maxlen = 2000  # ids kept per review (multi-hot: order does not matter)
    config.data.padding = "post"
    config.data.truncating = "post"
    config.data.validation_split = 0.0  # the book's final fit uses every training review
    config.model.factory = "rnnjax.baselines:dlwp_bag_of_words"
    config.train.epochs = 4
    config.train.batch_size = 512
    config.train.monitor = "loss"
    return config

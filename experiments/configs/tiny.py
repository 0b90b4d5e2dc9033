"""A seconds-long smoke run: a tiny SimpleRNN on a small embedded synthetic set (no files needed).

Question: do training, checkpointing, evaluation and prediction work end to end? (Used by the tests.)

Command:
    python -m experiments.train --config=experiments/configs/tiny.py --workdir=runs/tiny

Result: not a benchmark; the synthetic cue sits 4 words before the end, and 2 epochs of 8 steps reach
only chance accuracy. Runtime: a few seconds, most of it compilation.
"""

from rnnjax.configs import default


def get_config():
    config = default.get_config()
    config.data.name = "synthetic"
    config.data.synthetic_examples = 200
    config.data.synthetic_length = 24
    config.data.synthetic_distance = 4
    config.data.maxlen = 24
    config.data.num_words = 60
    config.model.cell = "simple_rnn"  # the cheapest cell to compile; the library paths are the same
    config.model.embed_dim = 4
    config.model.hidden_size = 4
    config.train.batch_size = 16
    config.train.eval_batch_size = 32
    config.train.epochs = 2
    config.train.log_every_steps = 4
    return config

"""A word-level GRU language model on IMDB sized for a laptop-class CPU: minutes, not hours.

Question: how far does a small GRU language model get on IMDB's reviews in a few minutes of a 2-core CPU,
for trying the language-model tools (``experiments.train_lm``, ``experiments.generate``, transfer into a
classifier) without an accelerator? ``lm_gru.py`` is the full-size model.
Model: Embedding(10000, 128) -> GRU(256) -> Dense(256 -> 128) -> embeddings^T + bias (tied softmax over the
vocabulary), no dropout (three passes over a small subset). A seeded subset of 3,000 of IMDB's unlabelled and
training reviews, cut into rows of up to 64 ids; 5% of them held out for validation.
Training: Adam(3e-3, warm-up 50 steps, cosine decay), gradients clipped to norm 1, batch 64, 3 epochs.

Command:
    python -m experiments.train_lm --config=experiments/configs/lm_cpu.py --workdir=runs/lm_cpu
    python -m experiments.generate --workdir=runs/lm_cpu --prompt="this movie" --num_words=20 \
        --temperature=0.8

Result (this project's 2-core CPU, shared with other jobs throughout, load average about 4; JAX 0.10):
3 epochs of 187 steps (2,850 reviews, 674k ids) in 537 s of training, 561 s (9.4 min) from command to
result; validation perplexity 414.2, 295.1, 280.4 per epoch: 280.4 on 150 held-out reviews (37k tokens,
next-word accuracy 13.8%), still falling. The steps took 0.77-1.06 s here against 0.43 s with the two cores
to itself (a 127-step epoch of this model in 55 s, compilation included), so about 4.5 min alone.
Samples (temperature 0.8, seed 0, and greedy):
    this movie >> is in this film most character of the comedy and a couple of all to work and comment they is
    the worst >> movie is a good movie i was a good movie i was a good movie i was a good movie   (greedy)

The fields below are those that differ from the LM defaults (rnnjax/configs/lm.py).
"""

import ml_collections

from rnnjax.configs import lm


def get_config() -> ml_collections.ConfigDict:
    config = lm.get_config()  # the LM defaults (rnnjax/configs/lm.py), at CPU size:
    config.data.max_reviews = 3000
    config.data.validation_split = 0.05
    config.data.num_words = 10000
    config.data.maxlen = 64
    config.model.embed_dim = 128
    config.model.hidden_size = 256
    config.model.num_layers = 1
    config.model.input_dropout = 0.0
    config.model.dropout = 0.0
    config.opt.learning_rate = 3e-3
    config.opt.warmup_steps = 50
    config.train.batch_size = 64
    config.train.epochs = 3
    config.train.checkpoint_every_steps = 200
    return config

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

The fields below are the LM's own; ``opt`` is the classifier's optimizer block (rnnjax/configs/default.py).
"""

import ml_collections

from rnnjax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # the only seed: parameters, dropout, shuffling and the held-out reviews derive from it

    config.data = ml_collections.ConfigDict()
    config.data.name = "imdb_reviews"  # imdb_reviews | synthetic
    config.data.splits = ("unsupervised", "train")  # IMDB splits whose texts are read (never "test")
    config.data.data_dir = "~/tensorflow_datasets"  # TFDS data dir: prepared datasets are cached here
    config.data.source_dir = ""  # local IMDB copy (rnnjax.data.sources.prepare_imdb); "" = prepared or download
    config.data.max_reviews = 3000  # keep a seeded random subset of this many reviews (0: all)
    config.data.validation_split = 0.05  # fraction of the reviews held out for validation perplexity
    config.data.tokenizer = "keras"  # keras | porter, as the classifier's pipeline (rnnjax.data.text)
    config.data.strip_html = True  # replace <br /> by spaces before tokenizing
    config.data.num_words = 10000  # vocabulary size V including pad 0, start 1 and OOV 2
    config.data.maxlen = 64  # ids per row; longer reviews are cut into rows that overlap by one id
    config.data.synthetic_examples = 2000  # synthetic: reviews generated
    config.data.synthetic_length = 40  # synthetic: words in the longest review
    config.data.synthetic_distance = 5  # synthetic: words between the cue and the end
    config.data.reverse = False  # backward model: read every sequence from its last id to its first

    config.model = ml_collections.ConfigDict()
    config.model.cell = "gru"  # simple_rnn | lstm | gru
    config.model.embed_dim = 128  # embedding size E
    config.model.hidden_size = 256  # units H of every recurrent layer
    config.model.num_layers = 1  # stacked recurrent layers
    config.model.input_dropout = 0.0  # locked dropout on the embeddings
    config.model.dropout = 0.0  # locked dropout on each recurrent layer's outputs
    config.model.recurrent_dropout = 0.0  # Keras' recurrent_dropout (runs the slower plain scan)
    config.model.weight_dropout = 0.0  # DropConnect on each recurrent_kernel while training (AWD-LSTM)
    config.model.tie_embeddings = True  # output softmax shares the embedding table (+ a projection as H != E)
    config.model.reset_after = True  # GRU: Keras/cuDNN variant
    config.model.num_sampled = 0  # sampled softmax: words drawn per training step (0: full softmax)
    config.model.sampler = "log_uniform"  # num_sampled's proposal: log_uniform (Zipfian ids) | unigram

    config.opt = default.get_config().opt
    config.opt.name = "adam"
    config.opt.learning_rate = 3e-3  # peak learning rate
    config.opt.clip_norm = 1.0  # clip gradients to this global norm
    config.opt.schedule = "cosine"
    config.opt.warmup_steps = 50  # linear warm-up, in steps
    config.opt.final_fraction = 0.05  # learning rate at the last step, as a fraction of the peak

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 64  # rows per step
    config.train.eval_batch_size = 256  # rows per evaluation step
    config.train.epochs = 3  # passes over the training rows
    config.train.max_steps = 0  # stop after this many optimizer steps in total (0: epochs * steps per epoch)
    config.train.restore_best = True  # end with the checkpoint of the lowest validation loss
    config.train.keep_checkpoints = 2  # most recent checkpoints kept (the best is kept separately)
    config.train.checkpoint_every_steps = 200  # also checkpoint every N steps in an epoch (0: epoch ends only)
    config.train.log_every_steps = 50  # TensorBoard batch loss / learning rate every N steps (0: never)
    config.train.progress_bar = True  # progress line on a terminal
    return config

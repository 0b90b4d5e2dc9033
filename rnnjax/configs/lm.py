"""The language model's default configuration: every field of an LM run, with its meaning.

``experiments/configs/lm_gru.py`` is this config; the other LM configs state their own fields. A field that a run's
saved config.json lacks (the run predates the field) was trained as this default, so ``runs`` refuses a resume
that would set it otherwise.
"""

import ml_collections

from rnnjax.configs import default


def get_config() -> ml_collections.ConfigDict:
    """Returns the language model's default config: a 2-layer GRU(512) LM on IMDB (experiments/configs/lm_gru.py)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # the only seed: parameters, dropout, shuffling and the held-out reviews derive from it

    config.data = ml_collections.ConfigDict()
    config.data.name = "imdb_reviews"  # imdb_reviews | synthetic
    config.data.splits = ("unsupervised", "train")  # IMDB splits whose texts are read (never "test")
    config.data.data_dir = "~/tensorflow_datasets"  # TFDS data dir: prepared datasets are cached here
    config.data.source_dir = ""  # local IMDB copy (see rnnjax.data.sources.prepare_imdb); "" = prepared or download
    config.data.max_reviews = 0  # keep a seeded random subset of this many reviews (0: all)
    config.data.validation_split = 0.02  # fraction of the reviews held out for validation perplexity
    config.data.tokenizer = "keras"  # keras | porter, as the classifier's pipeline (rnnjax.data.text)
    config.data.strip_html = True  # replace <br /> by spaces before tokenizing
    config.data.num_words = 20000  # vocabulary size V including pad 0, start 1 and OOV 2
    config.data.maxlen = 256  # ids per row; longer reviews are cut into rows that overlap by one id
    config.data.synthetic_examples = 2000  # synthetic: reviews generated
    config.data.synthetic_length = 40  # synthetic: words in the longest review
    config.data.synthetic_distance = 5  # synthetic: words between the cue and the end
    config.data.unit = "review"  # review | sentence: one sequence per review or per sentence
    config.data.end_token = False  # append the end id to every sequence (generation stops there)
    config.data.reverse = False  # backward model: read every sequence from its last id to its first

    config.model = ml_collections.ConfigDict()
    config.model.cell = "gru"  # simple_rnn | lstm | gru
    config.model.embed_dim = 256  # embedding size E
    config.model.hidden_size = 512  # units H of every recurrent layer
    config.model.num_layers = 2  # stacked recurrent layers
    config.model.input_dropout = 0.1  # locked dropout on the embeddings
    config.model.dropout = 0.2  # locked dropout on each recurrent layer's outputs
    config.model.recurrent_dropout = 0.0  # Keras' recurrent_dropout (runs the slower plain scan)
    config.model.weight_dropout = 0.0  # DropConnect on each recurrent_kernel while training (AWD-LSTM)
    config.model.tie_embeddings = (
        True  # output softmax shares the embedding table (+ a projection when H != E)
    )
    config.model.reset_after = True  # GRU: Keras/cuDNN variant
    config.model.use_bias = True  # recurrent layers with biases
    config.model.num_sampled = 0  # sampled softmax: words drawn per training step (0: full softmax)
    config.model.sampler = "log_uniform"  # num_sampled's proposal: log_uniform (Zipfian ids) | unigram

    config.opt = default.get_config().opt
    config.opt.name = "adam"
    config.opt.learning_rate = 2e-3  # peak learning rate
    config.opt.clip_norm = 1.0  # clip gradients to this global norm
    config.opt.schedule = "cosine"
    config.opt.warmup_steps = 200  # linear warm-up, in steps
    config.opt.final_fraction = 0.05  # learning rate at the last step, as a fraction of the peak

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 128  # rows per step
    config.train.eval_batch_size = 256  # rows per evaluation step
    config.train.epochs = 6  # passes over the training rows
    config.train.max_steps = 0  # stop after this many optimizer steps in total (0: epochs * steps per epoch)
    config.train.restore_best = True  # end with the checkpoint of the lowest validation loss
    config.train.keep_checkpoints = 2  # most recent checkpoints kept (the best is kept separately)
    config.train.checkpoint_every_steps = (
        500  # also checkpoint every N steps within an epoch (0: epoch ends only)
    )
    config.train.log_every_steps = 50  # TensorBoard batch loss / learning rate every N steps (0: never)
    config.train.progress_bar = True  # progress line on a terminal
    return config

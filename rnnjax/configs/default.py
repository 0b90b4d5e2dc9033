"""The default configuration: every hyperparameter of a run, with its meaning; experiment configs derive from it."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Returns the default config: an LSTM sentiment classifier on IMDB (the chapter's LSTM model)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # the only seed: parameters, dropout, shuffling and splits derive from it
    config.data = _data()
    config.model = _model()
    config.init = _init()
    config.opt = _opt()
    config.train = _train()
    return config


def _data() -> ml_collections.ConfigDict:
    """``config.data``."""
    data = ml_collections.ConfigDict()
    data.name = "imdb_reviews"  # imdb_reviews | amazon_reviews | csv | synthetic
    data.data_dir = "~/tensorflow_datasets"  # TFDS data dir: prepared datasets are cached here
    data.cache = True  # keep the encoded splits and vocabulary under data_dir/rnnjax_splits (False: rebuild each run)
    data.source_dir = ""  # local IMDB copy: aclImdb_v1.tar.gz, aclImdb/ or *.jsonl.gz folder; "" = download
    data.fallback_to_synthetic = False  # IMDB neg/pos not to be had: the embedded synthetic set (said) instead of an error
    data.source_file = ""  # amazon_reviews / csv: JSON-lines or CSV/TSV file of (text, label) rows
    data.text_column = "text"  # amazon_reviews / csv: field or column with the review text
    data.label_column = "label"  # field or column of the label (ints or names); imdb_reviews: label | rating
    data.classes = ()  # class names in id order, e.g. ("neg", "pos"); () = the dataset's own or inferred
    data.test_split = 0.2  # amazon_reviews / csv / synthetic: seeded fraction held out as the test set
    data.validation_split = 0.2  # fraction of the training set held out for validation
    data.validation_mode = "random"  # random: seeded random rows; last: the last rows (Keras' semantics)
    data.tokenizer = "keras"  # keras: text_to_word_sequence; porter: the chapter's Amazon cleaning
    data.strip_html = True  # replace the <br /> line breaks in IMDB texts by spaces before tokenizing
    data.num_words = 8000  # vocabulary size including the reserved ids (Keras' num_words)
    data.oov_token = True  # unknown words get id 1; False drops them (Keras' Tokenizer without oov_token)
    data.start_token = False  # prepend id 1 to every review (keras.datasets.imdb); OOV then is id 2
    data.maxlen = 200  # tokens per review after truncation
    data.padding = "post"  # post: right padding, masked by lengths; pre: Keras' default, unmasked
    data.truncating = "pre"  # pre keeps a long review's end (Keras' default); post keeps its start
    data.synthetic_examples = 4000  # synthetic: reviews generated (train + validation + test)
    data.synthetic_length = 80  # synthetic: words in the longest review (the shortest has 3/4 of it)
    data.synthetic_distance = 10  # synthetic: words between the label cue and the end (longer: harder)
    data.reverse = False  # read every review backwards (a backward language model's classifier; post padding)
    data.unlabelled = 0  # IMDB's unlabelled reviews added to the training rows for VAT (-1: all 50,000)
    return data


def _model() -> ml_collections.ConfigDict:
    """``config.model``."""
    model = ml_collections.ConfigDict()
    model.cell = "lstm"  # simple_rnn | lstm | gru | min_gru | min_lstm | a cell the config file registers
    model.factory = ""  # "module:function" (vocab_size, num_classes) -> model_api.Model: your own model instead
    model.embed_dim = 32  # embedding size E
    model.hidden_size = 32  # units H per recurrent layer
    model.num_layers = 1  # stacked recurrent layers (all but the last return sequences)
    model.bidirectional = False  # wrap each recurrent layer in Bidirectional (concat)
    model.mask_zero = False  # mask token id 0 in the embedding (only useful with data.padding = "pre")
    model.spatial_dropout = 0.4  # SpatialDropout1D rate on the embeddings (0: no layer)
    model.dropout = 0.4  # Dropout rate before the dense head (0: no layer)
    model.recurrent_dropout = 0.0  # Keras' recurrent_dropout of every recurrent layer
    model.attention_units = 0  # units A of additive attention pooling after the recurrent stack (0: none)
    model.pooling = ""  # "" (the last output) | avg | max | concat: pooling over the top layer's outputs
    model.weight_dropout = 0.0  # DropConnect rate on every recurrent_kernel during training (AWD-LSTM)
    model.dense_units = ()  # hidden Dense(relu) layers before the Dense(1) output, e.g. (32, 32)
    model.dense_dropout = 0.0  # Dropout rate after each hidden Dense layer
    model.reset_after = True  # GRU: Keras 2.x/3 default (True) or the original formulation (False)
    model.parallel = False  # min_gru/min_lstm: parallel-in-time (associative scan) instead of a sequential scan
    model.chrono = 0  # chrono init of the LSTM/GRU/min_* gate biases, time scales up to N steps (0: off)
    model.unroll = 1  # time steps per lax.scan iteration (speed only; results are unchanged)
    model.normalize_embeddings = False  # word vectors normalised by their training-frequency moments (Miyato et al.)
    return model


def _init() -> ml_collections.ConfigDict:
    """``config.init``."""
    init = ml_collections.ConfigDict()
    init.from_lm_workdir = ""  # a language model's run directory: its embedding and recurrent layers ("" = none)
    init.lm_checkpoint = "best"  # that run's best or latest checkpoint
    init.embeddings_file = ""  # word vectors (word2vec/GloVe text) for the embedding ("" = none)
    init.pretrained_lr_multiplier = 1.0  # factor on the pretrained layers' updates
    init.gradual_unfreezing = False  # ULMFiT: the top pretrained layer from epoch 1, one more each epoch
    init.freeze_embeddings = False  # the embedding never trains
    return init


def _opt() -> ml_collections.ConfigDict:
    """``config.opt``."""
    opt = ml_collections.ConfigDict()
    opt.name = "rmsprop"  # rmsprop | adam | sgd
    opt.learning_rate = 1e-3  # peak learning rate (Keras' RMSprop and Adam default)
    opt.rho = 0.9  # RMSprop: decay of the mean squared gradient (Keras' rho)
    opt.eps = 1e-7  # RMSprop/Adam epsilon (Keras' default; inside the square root for RMSprop, as in Keras)
    opt.momentum = 0.0  # RMSprop/SGD momentum (0: none)
    opt.beta_1 = 0.9  # Adam: first-moment decay
    opt.beta_2 = 0.999  # Adam: second-moment decay
    opt.clip_norm = 0.0  # clip gradients to this global norm (0: no clipping)
    opt.schedule = "constant"  # constant | cosine | linear | exponential, after the warm-up
    opt.warmup_steps = 0  # linear warm-up from 0 to learning_rate, in steps
    opt.final_fraction = 0.0  # learning rate at the last step, as a fraction of the peak (decaying schedules)
    return opt


def _train() -> ml_collections.ConfigDict:
    """``config.train``."""
    train = ml_collections.ConfigDict()
    train.batch_size = 128  # examples per step
    train.eval_batch_size = 500  # examples per evaluation step (no gradients, so larger is faster)
    train.epochs = 5  # passes over the training split
    train.max_steps = 0  # stop after this many optimizer steps in total (0: epochs * steps per epoch)
    train.monitor = "val_loss"  # metric for the best checkpoint and early stopping (val_accuracy, loss, ...)
    train.patience = 0  # early stopping: epochs without improvement before stopping (0: never stop early)
    train.min_delta = 0.0  # early stopping: smallest change of the monitored metric that counts as improvement
    train.restore_best = False  # end with the best checkpoint's parameters instead of the last epoch's
    train.keep_checkpoints = 3  # most recent checkpoints kept (the best is kept separately)
    train.checkpoint_every_steps = 0  # also checkpoint every N steps within an epoch (0: at epoch ends only)
    train.log_every_steps = 50  # TensorBoard batch loss / learning rate every N steps (0: never)
    train.progress_bar = True  # Keras-like progress bar on a terminal (one line per epoch otherwise)
    train.evaluate_test = True  # evaluate the final parameters on the test split
    train.compute_dtype = "float32"  # float32 | bfloat16: forward/backward dtype (params and optimizer stay float32)
    train.data_parallel = False  # split every batch over devices (jax.sharding mesh; params replicated)
    train.num_devices = 0  # data_parallel: devices in the mesh (0: all); batch sizes must divide by it
    train.adversarial = "none"  # none | at | vat | at+vat: perturbations of the word vectors (Miyato et al.)
    train.adv_epsilon = 5.0  # norm of each review's perturbation (of its normalised word vectors)
    train.adv_weight = 1.0  # factor on each adversarial term of the loss
    train.vat_xi = 0.1  # VAT: norm of the power iteration's probe
    train.skip_nonfinite = False  # skip steps with a non-finite loss or gradient (params unchanged) instead of stopping
    return train

"""The Theano GRU tutorial's language model (WildML, "RNN tutorial, part 4: implementing a GRU/LSTM RNN with
Python and Theano") as a recipe: two stacked GRUs learn sentences, then write new ones.

Question: what does the tutorial's sentence model (a start and an end token around every sentence, an
8,000-id vocabulary, Embedding -> GRU(128) -> GRU(128) -> softmax, RMSprop at 1e-3) learn in a few minutes of
a 2-core CPU, and what sentences does it write?
Data: the tutorial's Reddit comments are not available here, so the text is IMDB's (the JSON-lines copy the
scripts find through RNNJAX_IMDB_DIR or ../shared/data/imdb): a seeded subset of 1,600 of the unlabelled and
training reviews, split into sentences (``lm_rows.split_sentences``: ``<br />`` becomes a space, a sentence
ends at . ! or ? followed by whitespace), 5% of the reviews held out for validation.
Vocabulary: ``num_words = 8000`` ids = pad 0, start 1, end 2, OOV 3 and the 7,996 most frequent words. The
tutorial's 8,000 are a mask id, UNKNOWN_TOKEN and the 7,998 most frequent tokens, SENTENCE_START and
SENTENCE_END among them: the same 7,996 real words.
Model: Embedding(8000, 128) -> GRU(128) -> GRU(128) -> Dense(8000) softmax. The GRUs are Keras' with
``reset_after=False, use_bias=False``, the tutorial's equations (U input, W recurrent weights, gates z, r, h):
    z = sigmoid(x U_z + s W_z),  r = sigmoid(x U_r + s W_r),  h = tanh(x U_h + (s * r) W_h),
    s_t = (1 - z) * h + z * s_{t-1}.
The embedding size is the hidden size, 128, as in the tutorial's code: its embedding matrix E is
hidden_dim x word_dim (its train.py's EMBEDDING_DIM = 48 only names the output file).
Training: RMSprop as the tutorial's (lr 1e-3, decay 0.9, epsilon 1e-6 inside the square root, no clipping),
one pass over batches of 16 sentences; rows hold up to 40 ids (about 7% of the sentences are longer and are
cut into rows that overlap by one id).

Command:
    python -m experiments.train_lm --config=experiments/configs/theano_gru_lm.py --workdir=runs/theano_gru_lm
    python -m experiments.generate --workdir=runs/theano_gru_lm --num_samples=5 --num_words=40
    python -m experiments.generate --workdir=runs/theano_gru_lm --prompt="the acting" --temperature=0.8

Result (this project's 2-core CPU, shared with other jobs throughout, load average 5-6; JAX 0.10.2): 1,520
training reviews gave 18,911 sentences (20,394 rows, 394k ids); 1,275 steps in 194 s of training, 224 s
(3.7 min) from command to result. Validation perplexity 458.2 on the 80 held-out reviews' sentences (21,536
tokens, next-word accuracy 8.3%; training loss 6.65 nats, validation 6.13): far from converged, as one pass at
lr 1e-3 is a small fraction of the tutorial's 20 epochs of one-sentence steps, and the samples show it.
Samples (seed 0; every one ended at the end id, shown without the start and end ids):
    >> dress horror were that great being and who take the scare in                  (from the start id)
    >> this are highly the car me life this how
    >> movie consistently angst would is even and this 60's inept mouthed a cents to and myself
    >> how is it that great being and the take the                                     (temperature 0.8)
    >> the the the the the the the the the the the the the                             (greedy)
    the acting >> that is it                                                           (temperature 0.8)

What differs from the tutorial, and why: the corpus (above); Keras' tokenizer (lower case, no punctuation)
and a simple sentence rule instead of NLTK's punkt and word_tokenize (no downloads; punctuation is no token);
sigmoid gates and no GRU biases as the tutorial's equations (its code uses hard_sigmoid and zero-initialised
biases); Keras' initialisers instead of uniform(+-1/sqrt(n)); batches of 16 sentences with the mean loss per
token instead of one sentence per step with the summed loss (a CPU needs batches); held-out perplexity instead
of the training loss; generation bans the OOV id instead of redrawing a sentence that contains it.

The fields below are the LM's own; ``opt`` is the classifier's optimizer block (rnnjax/configs/default.py).
"""

import ml_collections

from rnnjax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # the only seed: parameters, shuffling and the held-out reviews derive from it

    config.data = ml_collections.ConfigDict()
    config.data.name = "imdb_reviews"  # imdb_reviews | synthetic
    config.data.splits = ("unsupervised", "train")  # IMDB splits whose texts are read (never "test")
    config.data.data_dir = "~/tensorflow_datasets"  # TFDS data dir: prepared datasets are cached here
    config.data.source_dir = ""  # IMDB copy; "" = $RNNJAX_IMDB_DIR or ../shared/data/imdb (scripts set it)
    config.data.max_reviews = 1600  # keep a seeded random subset of this many reviews (0: all)
    config.data.validation_split = 0.05  # fraction of the reviews held out (with all their sentences)
    config.data.unit = "sentence"  # review | sentence: one sequence per review or per sentence
    config.data.end_token = True  # append the end id to every sequence (generation stops there)
    config.data.tokenizer = "keras"  # keras | porter, as the classifier's pipeline (rnnjax.data.text)
    config.data.strip_html = True  # replace <br /> by spaces before tokenizing
    config.data.num_words = 8000  # vocabulary size V including pad 0, start 1, end 2 and OOV 3
    config.data.maxlen = 40  # ids per row; longer sentences are cut into rows that overlap by one id
    config.data.synthetic_examples = 2000  # synthetic: reviews generated
    config.data.synthetic_length = 40  # synthetic: words in the longest review
    config.data.synthetic_distance = 5  # synthetic: words between the cue and the end
    config.data.reverse = False  # backward model: read every sequence from its last id to its first

    config.model = ml_collections.ConfigDict()
    config.model.cell = "gru"  # simple_rnn | lstm | gru
    config.model.embed_dim = 128  # embedding size E (the tutorial's E matrix is hidden_dim x word_dim)
    config.model.hidden_size = 128  # units H of every recurrent layer (the tutorial's hidden_dim)
    config.model.num_layers = 2  # stacked recurrent layers
    config.model.input_dropout = 0.0  # locked dropout on the embeddings
    config.model.dropout = 0.0  # locked dropout on each recurrent layer's outputs
    config.model.recurrent_dropout = 0.0  # Keras' recurrent_dropout (runs the slower plain scan)
    config.model.tie_embeddings = False  # the tutorial's output matrix V is its own
    config.model.reset_after = False  # GRU: reset gate before the recurrent product, h = tanh(x U + (s*r) W)
    config.model.use_bias = False  # GRU without biases, as the tutorial's equations (the softmax keeps one)
    config.model.num_sampled = 0  # sampled softmax: words drawn per training step (0: full softmax)
    config.model.sampler = "log_uniform"  # num_sampled's proposal: log_uniform (Zipfian ids) | unigram

    config.opt = default.get_config().opt
    config.opt.name = "rmsprop"  # the tutorial's SGD with an RMSprop cache
    config.opt.learning_rate = 1e-3  # the tutorial's learning rate
    config.opt.rho = 0.9  # the tutorial's decay of the mean squared gradient
    config.opt.eps = 1e-6  # the tutorial's epsilon, inside the square root: g / sqrt(v + 1e-6)
    config.opt.clip_norm = 0.0  # no clipping, as the tutorial
    config.opt.schedule = "constant"

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 16  # rows (sentences) per step; the tutorial took one sentence per step
    config.train.eval_batch_size = 256  # rows per evaluation step
    config.train.epochs = 1  # passes over the training rows
    config.train.max_steps = 0  # stop after this many optimizer steps in total (0: epochs * steps per epoch)
    config.train.restore_best = True  # end with the checkpoint of the lowest validation loss
    config.train.keep_checkpoints = 2  # most recent checkpoints kept (the best is kept separately)
    config.train.checkpoint_every_steps = 500  # also checkpoint every N steps in an epoch (0: at its end)
    config.train.log_every_steps = 50  # TensorBoard batch loss / learning rate every N steps (0: never)
    config.train.progress_bar = True  # progress line on a terminal
    return config

"""Word-level GRU language model on IMDB's 50,000 unlabelled reviews plus the 25,000 training reviews.

Question: how well does a modest GRU language model (20k-word vocabulary, tied input/output embeddings)
predict the next word of held-out reviews, and does it give a classifier a better start than random weights
(experiments/configs/imdb_pretrained.py)?
Model: Embedding(20000, 256) -> locked dropout 0.1 -> GRU(512) -> GRU(512) (locked dropout 0.2 after each)
-> Dense(512 -> 256) -> embeddings^T + bias (tied softmax over the vocabulary). Rows of up to 256 ids per
review (longer reviews are cut into overlapping rows); 2% of the reviews held out for validation.
Training: Adam(2e-3, warm-up 200 steps, cosine decay), gradients clipped to norm 1, batch 128.

Command:
    python -m experiments.train_lm --config=experiments/configs/lm_gru.py --workdir=runs/lm_gru
    python -m experiments.generate --workdir=runs/lm_gru --prompt="this movie" --num_words=30 --temperature=0.8
The backward model of ULMFiT's forward + backward pair adds --config.data.reverse=True; a sampled softmax
for the training loss (validation stays the full softmax) adds --config.model.num_sampled=1024.

Result (one NVIDIA H100, shared with two classifier runs; JAX 0.11): 6 epochs of 803 steps (73,500 reviews,
17.3M ids) in 178 s of training (25 s per epoch after the first); validation perplexity 170.3, 131.4, 119.3,
111.4, 107.2, 104.8 per epoch: 104.8 on 1,500 held-out reviews (348k tokens, next-word accuracy 21.9%),
still falling, so more epochs would help. Samples (temperature 0.8, seed 0, and greedy):
    this movie >> is just plain boring it is not just bad bad acting the plot is ridiculous and the acting is
        worse than the average but the script is a joke and
    the worst >> movie i have ever seen i have seen this movie on tv and i have to say that i am   (greedy)
    i think >> that is a good example of the use of digital projection and skin is always funny the cover of
        the film is very fake the audio commentary is amazing and

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

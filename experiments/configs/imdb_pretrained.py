"""IMDB sentiment from a pretrained GRU language model (experiments/configs/lm_gru.py), fine-tuned.

Question: does initialising the embedding and both GRU layers from a language model trained on IMDB's own
unlabelled and training reviews lift test accuracy past 90%, where the same model from random weights
(imdb_pretrained_scratch.py) stays below?
Model: Embedding(20000, 256) -> SpatialDropout1D(0.2) -> GRU(512) -> GRU(512, sequences) -> Attention(128)
-> Dropout(0.3) -> Dense(1, sigmoid); the embedding and GRU layers come from runs/lm_gru (its vocabulary
too: pad 0, start 1, OOV 2). The last 400 words of each review, right-padded and masked.
Training: Adam(1e-3, warm-up 100 steps, cosine decay), the pretrained layers at 0.3x the learning rate,
gradients clipped to norm 1, batch 64, 4 epochs, best epoch by validation accuracy restored.

Command (after the language model):
    python -m experiments.train_lm --config=experiments/configs/lm_gru.py --workdir=runs/lm_gru
    python -m experiments.train --config=experiments/configs/imdb_pretrained.py --workdir=runs/imdb_pretrained

Result (one NVIDIA H100 shared with another run, LM as in lm_gru.py): test accuracy 92.30% (loss 0.198,
25,000 reviews) from the epoch-2 parameters (validation accuracy per epoch 92.06, 92.58, 92.56, 92.46%);
78 s of training (313 steps per epoch), plus 178 s for the language model. The same model from random
weights (imdb_pretrained_scratch.py): 87.13%. With gradual unfreezing (imdb_pretrained_unfreeze.py): 91.94%.

``config.init`` is read by ``rnnjax.training.classifier`` (init_block / make_optimizer / initial_params).
"""

import ml_collections

from rnnjax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.data.num_words = 20000  # as the language model (its vocabulary.json is used)
    config.data.start_token = True  # the LM's vocabulary reserves id 1 for the start of a review
    config.data.maxlen = 400
    config.data.padding = "post"
    config.data.truncating = "pre"  # keep a long review's end

    config.model.cell = "gru"
    config.model.embed_dim = 256
    config.model.hidden_size = 512
    config.model.num_layers = 2
    config.model.spatial_dropout = 0.2
    config.model.dropout = 0.3
    config.model.attention_units = 128  # attention pooling over the top GRU's outputs

    config.opt.name = "adam"
    config.opt.learning_rate = 1e-3
    config.opt.clip_norm = 1.0
    config.opt.schedule = "cosine"
    config.opt.warmup_steps = 100
    config.opt.final_fraction = 0.0

    config.train.batch_size = 64
    config.train.epochs = 4
    config.train.monitor = "val_accuracy"
    config.train.restore_best = True
    config.train.progress_bar = False

    config.init = ml_collections.ConfigDict()
    config.init.from_lm_workdir = (
        "runs/lm_gru"  # language-model run whose embedding and GRU layers are copied
    )
    config.init.lm_checkpoint = "best"  # best | latest checkpoint of that run
    config.init.embeddings_file = ""  # alternatively, a GloVe/word2vec text file for the embedding only
    config.init.freeze_embeddings = False  # keep the embedding fixed (zero gradient, bit-identical)
    config.init.pretrained_lr_multiplier = 0.3  # factor on the pretrained layers' learning rate
    config.init.gradual_unfreezing = (
        False  # epoch 1 trains only the new layers, then one more layer per epoch
    )
    return config

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

Its fields are the LM defaults (rnnjax/configs/lm.py); ``opt`` is the classifier's optimizer block
(rnnjax/configs/default.py).
"""

import ml_collections

from rnnjax.configs import lm


def get_config() -> ml_collections.ConfigDict:
    return lm.get_config()  # the LM defaults, in rnnjax/configs/lm.py

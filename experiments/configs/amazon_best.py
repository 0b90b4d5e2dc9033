"""Amazon reviews, tuned: a bidirectional LSTM with attention pooling, trained to its best epoch.

Question: the chapter's recipe (amazon_stacked_lstm.py) reaches about 81% on this 6,459-review sample after
5 epochs of 33 steps; which model and training changes reach at least 82% test accuracy on the same seeded
80/20 split?
Text: as the chapter (Porter-stemmed, stop words dropped, 100 tokens), vocabulary 5000 (the 4,133 training
reviews rarely repeat the words beyond that). Model: Embedding(5000, 32) -> SpatialDropout1D(0.4) ->
Bidirectional(LSTM(32), return_sequences=True) -> Attention(32) -> Dropout(0.4) -> Dense(1, sigmoid).
Training: RMSprop(1e-3) with a cosine decay over 12 epochs, batch 32, gradients clipped to norm 1, early
stopping on val_loss (patience 4) with the best epoch restored.

Command:
    python -m experiments.train --config=experiments/configs/amazon_best.py --workdir=runs/amazon_best

Result (seed 0, post-padding masked by lengths): test accuracy 83.90% (loss 0.380), stopped after epoch 9,
best epoch 5 restored; 178,817 parameters; fit 23 s (1.5-5 s per epoch) on the shared 2-core CPU. Tried on the way (same split):
the chapter model with batch 32, 20 epochs, early stopping and clipping: 80.57%; the model above with the
vocabulary at 10000 and a constant rate: 82.04%; the same with Keras' tokenizer instead of the Porter
cleaning: 81.81%; with dropout 0.5 instead of a smaller vocabulary: 82.89%.
"""

from experiments.configs import amazon_stacked_lstm


def get_config():
    config = amazon_stacked_lstm.get_config()
    config.data.num_words = 5000
    config.model.hidden_size = 32
    config.model.num_layers = 1
    config.model.bidirectional = True
    config.model.attention_units = 32
    config.model.dense_units = ()
    config.model.dropout = 0.4
    config.opt.schedule = "cosine"
    config.opt.clip_norm = 1.0
    config.train.batch_size = 32
    config.train.epochs = 12
    config.train.patience = 4
    config.train.restore_best = True
    return config

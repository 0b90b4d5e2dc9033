"""The chapter's Amazon activity: a stacked LSTM with a dense head on Amazon product reviews.

Question: how well does the chapter's recipe do on the 6,459-review Amazon polarity sample
(../shared/data/amazon, or $RNNJAX_AMAZON_DIR), split 80/20 with a fixed seed?
Text: the chapter's cleaning (lower-case, stop words and punctuation dropped, Porter stems), vocabulary
10000, reviews cut to 100 tokens. Model: Embedding(10000, 32) -> SpatialDropout1D(0.4) -> LSTM(64,
return_sequences=True) -> LSTM(64) -> Dropout(0.4) -> Dense(32, relu) -> Dropout(0.5) -> Dense(32, relu)
-> Dropout(0.5) -> Dense(1, sigmoid); RMSprop(1e-3), batch 128, validation split 0.2, 5 epochs.

Command:
    python -m experiments.train --config=experiments/configs/amazon_stacked_lstm.py --workdir=runs/amazon_stacked_lstm

Result (seed 0, post-padding masked by lengths; 4,133 training, 1,034 validation, 1,292 test reviews): test
accuracy 81.11% (loss 0.446). Training only leaves chance level in epoch 4 (validation 50% after epochs 1-2,
77.7% after 4, 81.3% after 5). 381,025 parameters; fit 71 s (12-16 s per epoch) on the shared 2-core CPU.
"""

from rnnjax.configs import default


def get_config():
    config = default.get_config()
    config.data.name = "amazon_reviews"
    config.data.tokenizer = "porter"
    config.data.num_words = 10000
    config.data.maxlen = 100
    config.data.test_split = 0.2
    config.model.cell = "lstm"
    config.model.hidden_size = 64
    config.model.num_layers = 2
    config.model.dropout = 0.4
    config.model.dense_units = (32, 32)
    config.model.dense_dropout = 0.5
    config.train.epochs = 5
    return config

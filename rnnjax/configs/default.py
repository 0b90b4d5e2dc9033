"""The default configuration: every hyperparameter of a run, with its meaning; experiment configs derive from it."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Returns the default config: an LSTM sentiment classifier on IMDB (the chapter's LSTM model)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # the only seed: parameters, dropout, shuffling and splits derive from it

    config.data = ml_collections.ConfigDict()
    config.data.name = "imdb_reviews"  # imdb_reviews | amazon_reviews | csv | synthetic
    config.data.num_words = 8000  # vocabulary size including the reserved ids (Keras' num_words)
    config.data.maxlen = 200  # tokens per review after truncation
    config.data.padding = "post"  # post: right padding, masked by lengths; pre: Keras' default, unmasked
    config.data.truncating = "pre"  # pre keeps a long review's end (Keras' default); post keeps its start
    config.data.validation_split = 0.2  # fraction of the training set held out for validation

    config.model = ml_collections.ConfigDict()
    config.model.cell = "lstm"  # simple_rnn | lstm | gru
    config.model.embed_dim = 32  # embedding size E
    config.model.hidden_size = 32  # units H per recurrent layer
    config.model.num_layers = 1  # stacked recurrent layers
    config.model.bidirectional = False  # wrap each recurrent layer in Bidirectional
    config.model.spatial_dropout = 0.4  # SpatialDropout1D rate on the embeddings
    config.model.dropout = 0.4  # Dropout rate before the dense head

    config.opt = ml_collections.ConfigDict()
    config.opt.name = "rmsprop"  # rmsprop | adam | sgd
    config.opt.learning_rate = 1e-3  # peak learning rate

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 128  # examples per step
    config.train.epochs = 5  # passes over the training split
    return config

"""rnnjax: recurrent neural networks for text as pure JAX functions.

The package namespace holds the model side (cells, scans, models, Keras exchange, the text pipeline); it imports
only JAX and NumPy. Importing it also imports ``rnnjax.kernels``, which attaches the fast paths (hand-written
backward passes, native CPU kernels) to the stock cells. Training, data loading and evaluation pull in Optax,
Orbax, grain and TFDS, so they are imported as modules: ``from rnnjax.training import classifier``,
``from rnnjax.data import datasets``, ``from rnnjax.analysis import evaluate`` (``classifier.train_and_evaluate``,
``datasets.load_splits``, ``evaluate.load_run``, ``evaluate.predict_texts``).
"""

from rnnjax.attention import attention_pool, init_attention
from rnnjax.cells import CELLS, Cell, get_cell, register_cell, gru, gru_carry, init_gru, init_lstm, init_simple_rnn, lstm, lstm_carry, simple_rnn, simple_rnn_carry
from rnnjax.layers import Attention, Dense, Dropout, Embedding, Recurrent, SpatialDropout1D
from rnnjax.layers import ConcatPooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D
from rnnjax.models import ModelSpec, apply_model, count_params, init_model, layer_names, make_classifier, summary
from rnnjax.models import apply_model as apply
from rnnjax.models import init_model as init
from rnnjax import dropout
from rnnjax.data import synthetic
from rnnjax.data import text
from rnnjax.keras_export import export_keras
from rnnjax.keras_io import import_keras
from rnnjax.scan import bidirectional, merge, run, sequence_mask
from rnnjax import minimal_scan  # noqa: F401  (attaches the parallel scan to minGRU/minLSTM: scan.PARALLEL_FORMS)
from rnnjax import kernels  # noqa: F401  (attaches the fast paths to the stock cells: scan.FAST_PATHS)

__all__ = [
    "CELLS", "Cell", "get_cell", "register_cell", "Attention", "export_keras", "import_keras", "synthetic", "text", "Dense", "Dropout", "Embedding", "ModelSpec", "Recurrent", "SpatialDropout1D",
    "ConcatPooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
    "apply", "apply_model", "attention_pool", "bidirectional", "count_params", "gru", "gru_carry", "init",
    "init_attention", "init_gru", "init_lstm", "init_model", "init_simple_rnn", "layer_names", "lstm",
    "lstm_carry", "make_classifier", "merge", "run", "sequence_mask", "simple_rnn", "simple_rnn_carry", "summary",
]

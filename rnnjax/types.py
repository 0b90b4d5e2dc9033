"""Type aliases shared by the whole package, and the dimension letters used in docstrings.

Dimension letters (docstrings state shapes with them, e.g. ``x: [B, T, F] float32``):

    B  batch            T  time (sequence length)     F  input features
    E  embedding size   H  hidden units               G  gates (SimpleRNN 1, GRU 3, LSTM 4)
    V  vocabulary size  C  classes                    L  layers
    A  attention units  D  features of a layer's output (H, or 2H for a concatenated bidirectional layer)

Where a layout changes, names carry it as a suffix: ``xs_tbf`` is time-major, ``h_bh`` batch by hidden.
"""

from typing import Any

import jax
import numpy as np

Params = dict[str, Any]
"""A nested dict of arrays, named and laid out as in Keras (``kernel``, ``recurrent_kernel``, ``bias``)."""

Carry = tuple[jax.Array, ...]
"""A cell's recurrent state: ``(h,)`` for SimpleRNN and GRU, ``(h, c)`` for the LSTM; each ``[..., H]``."""

Batch = dict[str, np.ndarray]
"""``{"tokens": [B, T] int32, "lengths": [B] int32, "label": [B] int32}``; padding rows have label -1."""

PRNGKey = jax.Array
"""A key from ``jax.random.key`` (or a legacy ``PRNGKey``)."""

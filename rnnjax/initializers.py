"""Initializers of whole models beyond Keras' defaults: chrono initialisation of the gate biases.

``chrono_init`` is the chrono initialisation of Tallec & Ollivier (2018, "Can recurrent neural networks warp
time?"): the LSTM forget-gate bias (GRU update-gate bias) is drawn as ``log(U[1, max_distance - 1])`` so the
cells start with memory time scales spread up to ``max_distance`` steps instead of a few steps.

Each cell's default initialisers live with the cell (``cells.py``, ``minimal.py``) and each layer's in
``layers.py``; this file transforms the parameters of a built model.
"""

import jax
import jax.numpy as jnp

from rnnjax.layers import Recurrent
from rnnjax.models import ModelSpec, layer_names
from rnnjax.types import Params, PRNGKey


def chrono_init(params: Params, spec: ModelSpec, max_distance: int, key: PRNGKey) -> Params:
    """Chrono initialisation of every LSTM forget-gate bias and GRU update-gate bias in a model.

    LSTM (gates i, f, c, o): ``b_f = log(u)``, ``b_i = -b_f``, with ``u ~ U[1, max_distance - 1]`` per unit.
    GRU (gates z, r, h; ``h_t = z * h_{t-1} + (1 - z) * n``): z keeps the old state, so ``b_z = log(u)``; with
    ``reset_after`` the input-bias row gets it and the recurrent row's z part is zeroed. A unit whose gate is
    ``sigmoid(log u)`` forgets at rate ``1 / (1 + u)``, a time scale of about u steps. minGRU
    (``h_t = (1 - z) * h_{t-1} + z * h~``): z writes, so ``b_z = -log(u)``; minLSTM (gates f, i, h): as the
    LSTM. SimpleRNN and layers without a bias are left unchanged.

    Args:
        params: the model's parameters (not modified).
        spec: the model.
        max_distance: T_max, the longest dependency the model should start able to carry (>= 3).
        key: PRNG key; layer i (and direction) uses ``fold_in(key, i)``.

    Returns:
        New params with the gate biases replaced.

    Raises:
        ValueError: if max_distance < 3.
    """
    if max_distance < 3:
        raise ValueError(
            f"chrono_init: max_distance must be >= 3 (U[1, max_distance - 1]), got {max_distance}."
        )
    out = dict(params)
    for index, (name, layer) in enumerate(zip(layer_names(spec), spec.layers)):
        if not isinstance(layer, Recurrent) or layer.cell not in _CHRONO_CELLS or not layer.use_bias:
            continue
        layer_key = jax.random.fold_in(key, index)
        if layer.bidirectional:
            k_fw, k_bw = jax.random.split(layer_key)
            out[name] = {
                "forward": _chrono_cell(params[name]["forward"], layer.cell, max_distance, k_fw),
                "backward": _chrono_cell(params[name]["backward"], layer.cell, max_distance, k_bw),
            }
        else:
            out[name] = _chrono_cell(params[name], layer.cell, max_distance, layer_key)
    return out


_CHRONO_CELLS = ("lstm", "gru", "min_gru", "min_lstm")


def _chrono_cell(cell_params: Params, cell: str, max_distance: int, key: PRNGKey) -> Params:
    bias = cell_params["bias"]
    hidden = bias.shape[-1] // {"lstm": 4, "gru": 3, "min_gru": 2, "min_lstm": 3}[cell]
    log_u = jnp.log(jax.random.uniform(key, (hidden,), bias.dtype, 1.0, max_distance - 1.0))
    if cell == "min_gru":
        bias = bias.at[:hidden].set(-log_u)
    elif cell == "min_lstm":
        bias = bias.at[:hidden].set(log_u).at[hidden : 2 * hidden].set(-log_u)
    elif cell == "lstm":
        bias = bias.at[hidden : 2 * hidden].set(log_u).at[:hidden].set(-log_u)
    elif bias.ndim == 2:  # GRU reset_after: the gate sees b_i + b_r
        bias = bias.at[0, :hidden].set(log_u).at[1, :hidden].set(0.0)
    else:
        bias = bias.at[:hidden].set(log_u)
    return {**cell_params, "bias": bias}

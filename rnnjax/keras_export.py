"""Keras export: an rnnjax model (``ModelSpec`` and params) as the equivalent Keras 3 Sequential.

``export_keras`` builds the Keras layer for each layer spec (Embedding, SpatialDropout1D, Dropout, SimpleRNN,
LSTM, GRU, Bidirectional, GlobalAveragePooling1D, GlobalMaxPooling1D, Dense) with the same options and sets
its weights as they are: rnnjax keeps Keras' names and layouts. ``keras_io.import_keras`` is the other
direction and loads Keras for both; Keras is loaded inside the functions, never when this module is imported.
"""

from typing import Any

import jax
import numpy as np

from rnnjax.keras_io import keras_context, require_keras
from rnnjax.layers import (
    Attention,
    ConcatPooling1D,
    Dense,
    Dropout,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Layer,
    Recurrent,
    SpatialDropout1D,
    embedding_table,
)
from rnnjax.models import ModelSpec, layer_names
from rnnjax.types import Params


def _host(array: jax.Array) -> np.ndarray:
    return np.asarray(array, np.float32)


def _cell_weights(params: Params) -> list[np.ndarray]:
    names = ("kernel", "recurrent_kernel", "bias") if "bias" in params else ("kernel", "recurrent_kernel")
    return [_host(params[name]) for name in names]


def _export_recurrent(keras, layer: Recurrent, name: str, index: int, masked: bool) -> Any:
    where = f"export_keras: layer {index} {name!r} (Recurrent)"
    if layer.peephole:
        raise ValueError(f"{where}: Keras 3 has no peephole LSTM; export a model with peephole=False.")
    if layer.bidirectional and layer.go_backwards:
        raise ValueError(f"{where}: go_backwards has no Keras equivalent inside Bidirectional; set it False.")
    if masked and layer.bidirectional and layer.return_sequences and not layer.zero_output_for_mask:
        raise ValueError(
            f"{where}: Keras' Bidirectional always outputs zeros at masked steps when it returns sequences; "
            "export a model with zero_output_for_mask=True."
        )
    # weight_dropout is left out: Keras has none, and it changes nothing at inference.
    options = dict(
        units=layer.hidden_size,
        return_sequences=layer.return_sequences,
        go_backwards=layer.go_backwards,
        dropout=layer.dropout,
        recurrent_dropout=layer.recurrent_dropout,
        use_bias=layer.use_bias,
    )
    if not layer.bidirectional:  # Bidirectional sets it on its layers itself (True when returning sequences)
        # Keras' zero_output_for_mask=True would also zero the last output of a sequence ending in padding.
        options["zero_output_for_mask"] = layer.zero_output_for_mask and layer.return_sequences
    if layer.cell == "simple_rnn":
        cls = keras.layers.SimpleRNN
        options["activation"] = layer.activation
    elif layer.cell == "lstm":
        cls = keras.layers.LSTM
        options["unit_forget_bias"] = layer.unit_forget_bias
    elif layer.cell == "gru":
        cls = keras.layers.GRU
        options["reset_after"] = layer.reset_after
    else:
        raise ValueError(f"{where}: cell {layer.cell!r} has no Keras layer.")
    if layer.bidirectional:
        return keras.layers.Bidirectional(cls(**options), merge_mode=layer.merge_mode, name=name)
    return cls(**options, name=name)


def _export_layer(
    keras, layer: Layer, name: str, index: int, p: Params | None, masked: bool
) -> tuple[Any, list | None]:
    """One layer spec as ``(Keras layer, its weights for set_weights or None)``; ``masked``: mask_zero."""
    if isinstance(layer, Embedding):
        keras_layer = keras.layers.Embedding(
            layer.vocab_size, layer.embed_dim, mask_zero=layer.mask_zero, name=name
        )
        return keras_layer, [_host(embedding_table(layer, p))]  # normalised rows baked in: same predictions
    if isinstance(layer, SpatialDropout1D):
        return keras.layers.SpatialDropout1D(layer.rate, name=name), None
    if isinstance(layer, Dropout):
        return keras.layers.Dropout(layer.rate, name=name), None
    if isinstance(layer, GlobalAveragePooling1D):
        return keras.layers.GlobalAveragePooling1D(name=name), None
    if isinstance(layer, GlobalMaxPooling1D):
        return keras.layers.GlobalMaxPooling1D(name=name), None
    if isinstance(layer, Recurrent):
        keras_layer = _export_recurrent(keras, layer, name, index, masked)
        if layer.bidirectional:
            return keras_layer, _cell_weights(p["forward"]) + _cell_weights(p["backward"])
        return keras_layer, _cell_weights(p)
    if isinstance(layer, Dense):
        keras_layer = keras.layers.Dense(layer.units, layer.activation, use_bias=layer.use_bias, name=name)
        return keras_layer, [_host(p["kernel"])] + ([_host(p["bias"])] if "bias" in p else [])
    if isinstance(layer, (Attention, ConcatPooling1D)):
        raise ValueError(
            f"export_keras: layer {index} {name!r} ({type(layer).__name__}) has no Keras equivalent; export a "
            "model with GlobalAveragePooling1D, GlobalMaxPooling1D or the last output instead."
        )
    raise ValueError(f"export_keras: layer {index} {name!r} ({type(layer).__name__}) is unknown.")


def export_keras(spec: ModelSpec, params: Params) -> Any:
    """Builds the Keras 3 Sequential equivalent to an rnnjax model and sets its weights.

    The Keras layers are named as ``models.layer_names(spec)``. ``keras_model.predict(tokens)`` equals the
    final activation of ``apply_model(spec, params, tokens)`` (called without ``lengths``; see
    ``import_keras``): ``sigmoid(logits)`` as [B, 1] for a Dense(1, "sigmoid") head, ``softmax(logits)``
    for a Dense(C, "softmax") head. ``import_keras(keras_model)`` gives ``spec`` and ``params`` back.

    Args:
        spec: the model.
        params: its parameters, as from ``init_model`` or ``import_keras``.

    Returns:
        A built ``keras.Sequential`` whose input is ``[B, T]`` int32 token ids.

    Raises:
        ImportError: if Keras 3 is not installed.
        ValueError: for layers Keras cannot express (Attention, ConcatPooling1D, peephole LSTM, go_backwards
            inside Bidirectional, zero_output_for_mask=False on a masked Bidirectional returning sequences) or
            params whose shapes do not fit the spec.
    """
    keras = require_keras()
    masked = isinstance(spec.layers[0], Embedding) and spec.layers[0].mask_zero
    with keras_context():
        keras_layers, weights = [], []
        for index, (name, layer) in enumerate(zip(layer_names(spec), spec.layers)):
            keras_layer, layer_weights = _export_layer(keras, layer, name, index, params.get(name), masked)
            keras_layers.append(keras_layer)
            weights.append(layer_weights)
        model = keras.Sequential([keras.Input(shape=(None,), dtype="int32"), *keras_layers])
        for keras_layer, layer_weights in zip(keras_layers, weights):
            if layer_weights is None:
                continue
            try:
                keras_layer.set_weights(layer_weights)
            except ValueError as error:
                raise ValueError(
                    f"export_keras: layer {keras_layer.name!r}: params do not fit the spec ({error})."
                ) from error
    return model


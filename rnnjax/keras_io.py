"""Keras import: a Keras 3 text classifier as ``(ModelSpec, params)``; and the one place that loads Keras.

``import_keras`` reads a Sequential (or a functional model whose layers form one chain) made of InputLayer,
Embedding, SpatialDropout1D, Dropout, SimpleRNN, LSTM, GRU, Bidirectional, GlobalAveragePooling1D,
GlobalMaxPooling1D and Dense, translates each layer's config into the matching ``models`` layer spec (a
recurrent layer's ``zero_output_for_mask`` included), and copies its weights. rnnjax keeps Keras' names and
layouts (``kernel [F, G*H]``, ``recurrent_kernel [H, G*H]``, ``bias``; GRU reset_after ``bias [2, 3H]``; gate
orders i, f, c, o and z, r, h), so weights are copied as they are. The other direction, ``export_keras``,
lives in ``keras_export.py``, so a model can be checked against Keras both ways.

Keras is an optional dependency (the ``test`` extra): ``require_keras`` imports it inside the functions, never when
this module is imported. What the layers compute lives in ``layers.py``, ``scan.py`` and ``cells.py``.
"""

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.cells import ACTIVATIONS
from rnnjax.layers import (
    DENSE_ACTIVATIONS,
    Dense,
    Dropout,
    Embedding,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Layer,
    Recurrent,
    SpatialDropout1D,
)
from rnnjax.models import ModelSpec, layer_names
from rnnjax.types import Params

_CELL_CLASSES = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
_MERGE_MODES = ("concat", "sum", "mul", "ave")
_OUTPUT_ACTIVATIONS = ("linear", "sigmoid", "softmax")
_POOLING_CLASSES = {cls.__name__: cls for cls in (GlobalAveragePooling1D, GlobalMaxPooling1D)}  # Keras' own


def require_keras():
    """Imports Keras 3 on first use, so that rnnjax itself never depends on it.

    Raises:
        ImportError: if Keras 3 is not installed.
    """
    try:
        import keras
    except ImportError as error:
        raise ImportError(
            "rnnjax.keras_io needs Keras 3: `pip install 'rnnjax[test]'` (or `pip install keras`), and set "
            f"KERAS_BACKEND=jax before importing it if TensorFlow is not installed ({error})."
        ) from error
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(
            f"rnnjax.keras_io needs Keras 3, found keras {keras.__version__}; `pip install 'keras>=3.3'`."
        )
    return keras


def keras_context():
    """Keras' own code relies on implicit rank promotion, which callers (e.g. the tests) may set to raise."""
    return jax.numpy_rank_promotion("allow")


# ------------------------------------------------------------------------------------------------ import


def _kind(layer: Any) -> str:
    """The Keras class name of a layer, or "custom" for a user subclass (whose call may differ)."""
    cls = type(layer)
    return cls.__name__ if cls.__module__.startswith("keras.") else "custom"


def _where(layer: Any) -> str:
    return f"import_keras: layer {layer.name!r} ({type(layer).__name__})"


def _unsupported(layer: Any, what: str) -> ValueError:
    return ValueError(f"{_where(layer)}: {what}.")


def _activation_name(layer: Any, config: dict, key: str) -> str:
    """A config's activation as a plain name; serialised custom functions are unsupported."""
    value = config[key]
    if not isinstance(value, str):
        raise _unsupported(layer, f"{key}={value!r} is not a built-in activation")
    return value


def _weights(layer: Any, expected: tuple[str, ...]) -> dict[str, jax.Array]:
    """``{variable name: array}`` from ``layer.get_weights()``, which must hold exactly ``expected``."""
    names = tuple(weight.name for weight in layer.weights)
    if sorted(names) != sorted(expected):
        raise _unsupported(layer, f"weights {list(names)} differ from the expected {list(expected)}")
    return {name: jnp.asarray(np.asarray(value)) for name, value in zip(names, layer.get_weights())}


def _check_dtype(layer: Any) -> None:
    name = getattr(getattr(layer, "dtype_policy", None), "name", "float32")
    if name != "float32":
        raise _unsupported(layer, f"dtype policy {name!r} is unsupported; only float32 layers are imported")


def _recurrent_fields(layer: Any, *, masked: bool) -> dict[str, Any]:
    """The ``Recurrent`` fields of a SimpleRNN, LSTM or GRU layer, after rejecting what rnnjax cannot do."""
    config = layer.get_config()
    cell = _CELL_CLASSES[type(layer).__name__]
    if config.get("stateful"):
        raise _unsupported(layer, "stateful=True is unsupported; rnnjax starts every batch from a zero state")
    if config.get("return_state"):
        raise _unsupported(layer, "return_state=True is unsupported in a classifier; use return_sequences")
    activation = _activation_name(layer, config, "activation")
    if cell == "simple_rnn" and activation not in ACTIVATIONS:
        raise _unsupported(
            layer, f"activation={activation!r} is unsupported; use one of {sorted(ACTIVATIONS)}"
        )
    if cell != "simple_rnn":
        recurrent_activation = _activation_name(layer, config, "recurrent_activation")
        if (activation, recurrent_activation) != ("tanh", "sigmoid"):
            raise _unsupported(
                layer,
                f"activation={activation!r}, recurrent_activation={recurrent_activation!r} are unsupported; "
                "rnnjax's LSTM and GRU use tanh and sigmoid",
            )
    # Keras' unrolled loop repeats the previous output at a masked step whatever zero_output_for_mask says.
    zero_output = bool(config.get("zero_output_for_mask")) and not config["unroll"]
    if masked and zero_output and not config["return_sequences"]:
        # Keras then returns zeros for a sequence that ends in padding; rnnjax returns its last real output.
        raise _unsupported(layer, "zero_output_for_mask=True with return_sequences=False is unsupported")
    fields = dict(
        cell=cell,
        hidden_size=int(config["units"]),
        return_sequences=bool(config["return_sequences"]),
        go_backwards=bool(config["go_backwards"]),
        dropout=float(config["dropout"]),
        recurrent_dropout=float(config["recurrent_dropout"]),
        use_bias=bool(config["use_bias"]),
        # Only outputs returned per step differ; a layer returning its last output keeps the default.
        zero_output_for_mask=zero_output or not config["return_sequences"],
    )
    if cell == "simple_rnn":
        fields["activation"] = activation
    if cell == "lstm":
        fields["unit_forget_bias"] = bool(config["unit_forget_bias"])
    if cell == "gru":
        fields["reset_after"] = bool(config["reset_after"])
    return fields


def _cell_params(layer: Any, use_bias: bool) -> Params:
    names = ("kernel", "recurrent_kernel", "bias") if use_bias else ("kernel", "recurrent_kernel")
    return _weights(layer, names)


def _import_recurrent(layer: Any, *, masked: bool) -> tuple[Recurrent, Params]:
    # With go_backwards and return_sequences, Keras passes the input mask on unchanged with the reversed
    # outputs, so the layer above reads held (or zero) outputs at real steps: zero_output_for_mask gives them.
    fields = _recurrent_fields(layer, masked=masked)
    return Recurrent(**fields), _cell_params(layer, fields["use_bias"])


def _import_bidirectional(layer: Any, *, masked: bool) -> tuple[Recurrent, Params]:
    forward, backward = layer.forward_layer, layer.backward_layer
    if layer.merge_mode is None:
        raise _unsupported(
            layer, "merge_mode=None returns two tensors, which a Sequential classifier cannot use; "
            f"use one of {_MERGE_MODES}"
        )
    if layer.merge_mode not in _MERGE_MODES:
        raise _unsupported(
            layer, f"merge_mode={layer.merge_mode!r} is unsupported; use one of {_MERGE_MODES}"
        )
    for inner in (forward, backward):
        if _kind(inner) not in _CELL_CLASSES:
            raise _unsupported(
                layer, f"wrapped layer {inner.name!r} ({type(inner).__name__}) is not SimpleRNN, LSTM or GRU"
            )
        _check_dtype(inner)
    fw_fields = _recurrent_fields(forward, masked=masked)
    bw_fields = _recurrent_fields(backward, masked=masked)
    if fw_fields["go_backwards"] or not bw_fields["go_backwards"]:
        raise _unsupported(layer, "only a forward layer with go_backwards=False is supported")
    if type(forward) is not type(backward) or {**fw_fields, "go_backwards": True} != bw_fields:
        raise _unsupported(layer, "a backward_layer configured unlike the forward layer is unsupported")
    spec = Recurrent(**fw_fields, bidirectional=True, merge_mode=layer.merge_mode)
    params = {
        "forward": _cell_params(forward, fw_fields["use_bias"]),
        "backward": _cell_params(backward, bw_fields["use_bias"]),
    }
    return spec, params


def _import_layer(layer: Any, *, masked: bool) -> tuple[Layer, Params | None]:
    """One Keras layer as ``(layer spec, params or None)``.

    Raises:
        ValueError: for a layer type or option rnnjax cannot reproduce.
    """
    kind = _kind(layer)
    config = layer.get_config()
    _check_dtype(layer)
    if kind == "Embedding":
        mask_zero = bool(config["mask_zero"])
        spec = Embedding(int(config["input_dim"]), int(config["output_dim"]), mask_zero=mask_zero)
        return spec, _weights(layer, ("embeddings",))
    if kind == "SpatialDropout1D":
        return SpatialDropout1D(float(config["rate"])), None
    if kind == "Dropout":
        if config.get("noise_shape") is not None:
            raise _unsupported(
                layer, f"noise_shape={config['noise_shape']} is unsupported; use SpatialDropout1D"
            )
        return Dropout(float(config["rate"])), None
    if kind in _CELL_CLASSES:
        return _import_recurrent(layer, masked=masked)
    if kind == "Bidirectional":
        return _import_bidirectional(layer, masked=masked)
    if kind in _POOLING_CLASSES:
        if config.get("data_format", "channels_last") != "channels_last" or config.get("keepdims"):
            raise _unsupported(
                layer, "only data_format='channels_last' and keepdims=False ([B, T, D] -> [B, D]) work"
            )
        return _POOLING_CLASSES[kind](), None
    if kind == "Dense":
        activation = _activation_name(layer, config, "activation")
        if activation not in DENSE_ACTIVATIONS:
            raise _unsupported(
                layer, f"activation={activation!r} is unsupported; use one of {DENSE_ACTIVATIONS}"
            )
        use_bias = bool(config["use_bias"])
        spec = Dense(int(config["units"]), activation, use_bias=use_bias)
        return spec, _weights(layer, ("kernel", "bias") if use_bias else ("kernel",))
    raise _unsupported(
        layer,
        "layer type is unsupported; rnnjax imports InputLayer, Embedding, SpatialDropout1D, Dropout, "
        "SimpleRNN, LSTM, GRU, Bidirectional, GlobalAveragePooling1D, GlobalMaxPooling1D and Dense",
    )


def _check_output(last: Any) -> None:
    """Raises ValueError unless the last layer is Dense(1 or C) with an output activation rnnjax reads.

    ``apply_model`` returns the last Dense's pre-activation as logits, [B] for one unit (probability
    ``sigmoid(logits)``) and [B, C] for C units (``softmax(logits)`` under a softmax head).
    """
    config = last.get_config() if _kind(last) == "Dense" else {}
    if config.get("activation") not in _OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"{_where(last)}: the last layer must be Dense(1 or C) with a linear, sigmoid or softmax "
            "activation."
        )
    if config["activation"] == "softmax" and int(config["units"]) == 1:
        # Keras' softmax over one unit is always 1, while rnnjax reads a one-unit head as sigmoid(logits).
        raise ValueError(
            f"{_where(last)}: Dense(1, activation='softmax') always outputs 1; a binary classifier ends in "
            "Dense(1, activation='sigmoid') or Dense(2, activation='softmax')."
        )


def _chain(keras, model: Any) -> list[Any]:
    """The model's layers in order, without InputLayers; a functional model must be one straight chain.

    Raises:
        ValueError: for a functional model with branches, several inputs or outputs, or shared layers.
    """
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if isinstance(model, keras.Sequential):
        return layers
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"import_keras: model {model.name!r} is not a Sequential or functional model ({error})."
        ) from error
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"import_keras: model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "only a single chain of layers from one token input to one output is supported."
        )
    previous = inputs[0]
    for layer in layers:
        try:
            received = layer.input
        except (AttributeError, ValueError):  # a layer called more than once has no single input
            received = None
        if isinstance(received, (list, tuple)):
            # Layers whose call takes a mask (e.g. Bidirectional) also record the mask tensor as an input.
            connected = received[0] is previous and all(str(t.dtype) == "bool" for t in received[1:])
        else:
            connected = received is previous
        if not connected:
            raise ValueError(
                f"{_where(layer)}: its input is not the output of the layer before it; only models whose "
                "layers form a single chain (like a Sequential) are supported."
            )
        previous = layer.output
    if previous is not outputs[0]:
        raise ValueError(f"import_keras: model {model.name!r}'s output is not its last layer's output.")
    return layers


def import_keras(path_or_model: Any) -> tuple[ModelSpec, Params]:
    """Imports a Keras 3 text classifier as an rnnjax model with the same weights.

    ``rnnjax.apply_model(spec, params, tokens)`` then returns logits whose final activation (sigmoid for a
    Dense(1, "sigmoid") output, softmax for Dense(C, "softmax")) gives Keras' ``predict``. Call it without
    ``lengths``: Keras processes padding as ordinary tokens unless the Embedding has ``mask_zero=True``, and
    then the mask comes from ``tokens != 0``. Params are keyed by ``models.layer_names(spec)`` (``lstm``,
    ``lstm_1``, ...), not by the Keras layer names, which depend on what else the Keras session built.

    Args:
        path_or_model: a ``.keras`` file path, or a built ``keras.Sequential`` or functional ``keras.Model``
            whose layers form one chain: [InputLayer] -> Embedding -> SpatialDropout1D / Dropout / SimpleRNN
            / LSTM / GRU / Bidirectional / GlobalAveragePooling1D / GlobalMaxPooling1D / Dense ...
            -> Dense(1 or C), linear, sigmoid or softmax.

    Returns:
        ``(spec, params)``: the ``ModelSpec`` and ``{layer name: layer params}`` (float32 jax arrays).

    Raises:
        ImportError: if Keras 3 is not installed.
        TypeError: if the argument is neither a path nor a Keras model.
        ValueError: for an unbuilt model, or a layer (named with its class) whose type or options rnnjax
            cannot reproduce: other layer types, stateful or return_state RNNs, LSTM/GRU activations other
            than tanh/sigmoid, zero_output_for_mask=True on a masked layer returning its last output,
            pooling with keepdims or channels_first, Bidirectional merge_mode None or a
            differing backward_layer, Dense activations outside linear/relu/tanh/sigmoid/softmax, non-float32
            dtype policies, or a last layer that is not Dense (or is Dense(1) with a softmax, which Keras
            makes a constant 1).
    """
    keras = require_keras()
    if isinstance(path_or_model, (str, os.PathLike)):
        with keras_context():
            model = keras.models.load_model(path_or_model, compile=False)
    elif isinstance(path_or_model, keras.Model):
        model = path_or_model
    else:
        raise TypeError(
            f"import_keras: expected a .keras file path or a keras.Model, got {type(path_or_model).__name__}."
        )
    if not model.built:
        raise ValueError(
            f"import_keras: model {model.name!r} is not built, so it has no weights; start it with "
            "keras.Input(shape=(T,), dtype='int32') or call model.build((None, T))."
        )
    layers = _chain(keras, model)
    if not layers or _kind(layers[0]) != "Embedding":
        where = _where(layers[0]) if layers else f"import_keras: model {model.name!r}"
        raise ValueError(f"{where}: the first layer must be an Embedding (rnnjax models read token ids).")
    masked = bool(layers[0].get_config()["mask_zero"])
    specs, weights = [], []
    for layer in layers:
        spec_layer, layer_params = _import_layer(layer, masked=masked)
        specs.append(spec_layer)
        weights.append(layer_params)
    _check_output(layers[-1])
    try:
        spec = ModelSpec(tuple(specs))
    except ValueError as error:
        order = ", ".join(f"{index}: {layer.name}" for index, layer in enumerate(layers))
        raise ValueError(
            f"import_keras: model {model.name!r} cannot be built in rnnjax: {error} (layers {order})"
        ) from error
    params = {name: p for name, p in zip(layer_names(spec), weights) if p is not None}
    return spec, params


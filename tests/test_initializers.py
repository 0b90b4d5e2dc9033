"""Model initializers beyond Keras' defaults: chrono initialisation of the gate biases."""

import numpy as np
import pytest

from rnnjax import initializers, models

E, H = 4, 5


def test_chrono_init_sets_gate_biases_in_range(key):
    spec = models.ModelSpec(
        (
            models.Embedding(9, E),
            models.Recurrent("lstm", H, return_sequences=True),
            models.Recurrent("gru", H, bidirectional=True),
            models.Dense(1, "sigmoid"),
        )
    )
    params = models.init_model(spec, key)
    new = initializers.chrono_init(params, spec, 100, key)
    f = np.asarray(new["lstm"]["bias"][H : 2 * H])
    assert np.all((f >= 0.0) & (f <= np.log(99.0) + 1e-6)) and f.std() > 0
    np.testing.assert_array_equal(new["lstm"]["bias"][:H], -f)
    np.testing.assert_array_equal(new["lstm"]["bias"][2 * H :], params["lstm"]["bias"][2 * H :])
    for direction in ("forward", "backward"):
        bias = np.asarray(new["bidirectional"][direction]["bias"])
        assert np.all((bias[0, :H] >= 0.0) & (bias[0, :H] <= np.log(99.0) + 1e-6))
        np.testing.assert_array_equal(bias[1, :H], 0.0)
        np.testing.assert_array_equal(bias[:, H:], params["bidirectional"][direction]["bias"][:, H:])
    np.testing.assert_array_equal(new["lstm"]["kernel"], params["lstm"]["kernel"])
    with pytest.raises(ValueError, match="max_distance"):
        initializers.chrono_init(params, spec, 2, key)


def test_chrono_init_slows_the_min_cells_write_rate(key):
    spec = models.ModelSpec(
        (
            models.Embedding(9, E),
            models.Recurrent("min_gru", H, return_sequences=True),
            models.Recurrent("min_lstm", H),
            models.Dense(1, "sigmoid"),
        )
    )
    params = models.init_model(spec, key)
    names = models.layer_names(spec)
    new = initializers.chrono_init(params, spec, 100, key)
    z = np.asarray(new[names[1]]["bias"][:H])  # minGRU: h = (1 - z) h + z h~, so z starts small
    assert np.all((z <= 0.0) & (z >= -np.log(99.0) - 1e-6)) and z.std() > 0
    np.testing.assert_array_equal(new[names[1]]["bias"][H:], params[names[1]]["bias"][H:])
    f = np.asarray(new[names[2]]["bias"][:H])  # minLSTM: f = log u, i = -log u, as the LSTM
    assert np.all(f >= 0.0) and f.std() > 0
    np.testing.assert_array_equal(new[names[2]]["bias"][H : 2 * H], -f)
    np.testing.assert_array_equal(new[names[2]]["bias"][2 * H :], params[names[2]]["bias"][2 * H :])

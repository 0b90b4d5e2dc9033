"""Optimizers: RMSprop matches Keras' update rule, schedules and clipping behave, bad names raise."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax.training import optim
from rnnjax.configs import default


def _opt(**changes):
    config = default.get_config().opt
    config.update(changes)
    return config


def _keras_rmsprop_reference(grads, lr=1e-3, rho=0.9, eps=1e-7):
    """Keras 3 RMSprop (keras/src/optimizers/rmsprop.py), in float64: v from 0, epsilon inside the sqrt."""
    w, v = np.zeros_like(grads[0]), np.zeros_like(grads[0])
    for g in grads:
        v = rho * v + (1 - rho) * g**2
        w = w - lr * g / np.sqrt(v + eps)
    return w


def test_rmsprop_follows_keras_update_rule():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 4)) * scale for scale in (1.0, 1e-3, 1e-5, 2.0)]
    tx = optim.make_optimizer(_opt(), total_steps=10)
    params = jnp.zeros((3, 4))
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, _keras_rmsprop_reference(grads), rtol=1e-4, atol=1e-9)


@pytest.mark.slow  # importing Keras costs seconds; the float64 reference above pins the same rule
def test_rmsprop_matches_keras_optimizer():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(5,)).astype(np.float32) * scale for scale in (1.0, 1e-4, 3.0)]
    variable = keras.Variable(np.zeros(5, np.float32))
    keras_opt = keras.optimizers.RMSprop()
    for g in grads:
        keras_opt.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    tx = optim.make_optimizer(_opt(), total_steps=10)
    params = jnp.zeros(5)
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params, np.asarray(variable.value), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", ["rmsprop", "adam", "sgd"])
def test_each_optimizer_decreases_a_quadratic(name):
    tx = optim.make_optimizer(_opt(name=name, learning_rate=0.05), total_steps=100)
    params = jnp.array([1.0, -2.0])
    state = tx.init(params)
    loss = lambda p: jnp.sum(p**2)
    for _ in range(20):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert float(loss(params)) < 5.0 * 0.5


def test_clipping_bounds_the_update():
    tx = optim.make_optimizer(_opt(name="sgd", learning_rate=1.0, clip_norm=1.0), total_steps=1)
    updates, _ = tx.update(jnp.array([30.0, 40.0]), tx.init(jnp.zeros(2)), jnp.zeros(2))
    np.testing.assert_allclose(updates, [-0.6, -0.8], rtol=1e-6)


@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_schedules_start_at_peak_and_end_at_final_fraction(schedule):
    fn = optim.make_schedule(_opt(schedule=schedule, final_fraction=0.1), total_steps=100)
    assert float(fn(0)) == pytest.approx(1e-3)
    end = 1e-3 if schedule == "constant" else 1e-4
    assert float(fn(100)) == pytest.approx(end, rel=1e-4)


def test_warmup_ramps_up_linearly():
    fn = optim.make_schedule(_opt(warmup_steps=10, schedule="cosine"), total_steps=110)
    assert float(fn(0)) == 0.0
    assert float(fn(5)) == pytest.approx(5e-4)
    assert float(fn(10)) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "adagrad"}, "opt.name"),
        ({"schedule": "step"}, "opt.schedule"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"clip_norm": -1.0}, "clip_norm"),
    ],
)
def test_invalid_settings_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        optim.make_optimizer(_opt(**changes), total_steps=10)

"""Checkpoints and run files: round trips give equal pytrees, unfinished checkpoints are never restored."""

import jax
import numpy as np
import pytest

from rnnjax import models
from rnnjax.training import runs as checkpoint
from rnnjax.training import optim
from rnnjax.training import train
from rnnjax.configs import default


def _state(seed=0):
    spec = models.make_classifier(
        cell="gru", vocab_size=7, embed_dim=3, hidden_size=4, bidirectional=True, dropout=0.1
    )
    tx = optim.make_optimizer(default.get_config().opt, total_steps=10)
    return spec, train.create_train_state(spec, tx, seed)


def _host_leaves(tree):
    """Leaves as NumPy arrays; PRNG keys as their raw key data."""
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    return [np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in jax.tree.leaves(tree)]


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(_host_leaves(a), _host_leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_round_trip_gives_equal_pytrees(tmp_path):
    _, state = _state()
    state = state._replace(step=state.step + 7)
    manager = checkpoint.make_manager(tmp_path / "ckpt", max_to_keep=2)
    assert checkpoint.save(manager, 7, state, {"history": {"loss": [0.5]}, "epoch_sums": None})
    assert not checkpoint.save(manager, 7, state, {"history": {}})  # an existing step is kept as it is
    _, fresh = _state(seed=1)
    restored, meta = checkpoint.restore_latest(manager, fresh)
    _assert_trees_equal(restored, state)
    assert meta == {"history": {"loss": [0.5]}, "epoch_sums": None}
    assert isinstance(restored, train.TrainState)


def test_keeps_the_last_k(tmp_path):
    _, state = _state()
    manager = checkpoint.make_manager(tmp_path, max_to_keep=2)
    for step in (1, 2, 3):
        checkpoint.save(manager, step, state, {})
    assert manager.all_steps() == [2, 3]


def test_unfinished_checkpoint_is_never_restored(tmp_path):
    _, state = _state()
    manager = checkpoint.make_manager(tmp_path, max_to_keep=3)
    checkpoint.save(manager, 1, state, {})
    (tmp_path / "2.orbax-checkpoint-tmp-1234567").mkdir()  # what a save killed halfway leaves behind
    manager = checkpoint.make_manager(tmp_path, max_to_keep=3)
    assert manager.latest_step() == 1
    assert checkpoint.restore_latest(manager, state) is not None


def test_empty_directory_restores_nothing(tmp_path):
    _, state = _state()
    assert checkpoint.restore_latest(checkpoint.make_manager(tmp_path, max_to_keep=1), state) is None


def test_model_spec_and_config_round_trip(tmp_path):
    spec = models.make_classifier(
        cell="lstm",
        vocab_size=9,
        embed_dim=3,
        hidden_size=4,
        num_layers=2,
        attention_units=5,
        dense_units=(6, 7),
        dense_dropout=0.5,
        spatial_dropout=0.4,
    )
    checkpoint.write_model(tmp_path, spec, use_lengths=False)
    assert checkpoint.read_model(tmp_path) == (spec, False)
    config = default.get_config()
    config.model.dense_units = (32, 32)
    checkpoint.write_config(tmp_path, config)
    assert checkpoint.read_config(tmp_path).to_dict() == config.to_dict()


def test_missing_run_files_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="run directory"):
        checkpoint.read_model(tmp_path)
    with pytest.raises(ValueError, match="run directory"):
        checkpoint.read_config(tmp_path)

"""Checkpoints and run files (``runs.py``): round trips give equal pytrees, the last K are kept, unfinished
checkpoints are never restored, model descriptions and configs round-trip."""

import jax
import numpy as np
import pytest

from experiments import _cli
from rnnjax import models
from rnnjax.configs import default
from rnnjax.training import classifier, loop, optim, runs


def _state(seed=0):
    spec = models.make_classifier(
        cell="gru", vocab_size=7, embed_dim=3, hidden_size=4, bidirectional=True, dropout=0.1
    )
    tx = optim.make_optimizer(default.get_config().opt, total_steps=10)
    return spec, loop.create_state(classifier.classifier_task(classifier.ModelConfig(spec)), tx, seed)


def _rest(state: loop.TrainState) -> dict:
    """The state's items beside its params, as the fit loop saves them."""
    return {"step": state.step, "opt_state": state.opt_state, "key": state.key}


def _open(workdir, keep_checkpoints=3):
    return runs.open_run(
        workdir, kind="classifier", config={"seed": 0}, mutable=frozenset(), keep_checkpoints=keep_checkpoints
    )


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
    with _open(tmp_path, keep_checkpoints=2) as run:
        meta = {"history": {"loss": [0.5]}, "epoch_sums": None}
        assert runs.save(run, "latest", 7, state.params, _rest(state), meta)
        assert not runs.save(run, "latest", 7, state.params, _rest(state), {"history": {}})  # the saved one is kept
        _, fresh = _state(seed=1)
        params, rest, meta = runs.restore_latest(run, fresh.params, _rest(fresh))
    restored = loop.TrainState(rest["step"], params, rest["opt_state"], rest["key"])
    _assert_trees_equal(restored, state)
    assert meta == {"history": {"loss": [0.5]}, "epoch_sums": None, "run_id": run.run_id}


def test_keeps_the_last_k(tmp_path):
    _, state = _state()
    with _open(tmp_path, keep_checkpoints=2) as run:
        for step in (1, 2, 3):
            runs.save(run, "latest", step, state.params, _rest(state), {})
    assert runs.steps(tmp_path / runs.CHECKPOINTS) == [2, 3]


def test_unfinished_checkpoint_is_never_restored(tmp_path):
    _, state = _state()
    with _open(tmp_path) as run:
        runs.save(run, "latest", 1, state.params, _rest(state._replace(step=state.step + 1)), {})
        # What a save killed halfway leaves behind: Orbax's temporary folder, never renamed to its step.
        (tmp_path / runs.CHECKPOINTS / "2.orbax-checkpoint-tmp-1234567").mkdir()
        assert runs.steps(tmp_path / runs.CHECKPOINTS) == [1]
        restored = runs.restore_latest(run, state.params, _rest(state))
    assert restored is not None and int(restored[1]["step"]) == 1


def test_empty_directory_restores_nothing(tmp_path):
    _, state = _state()
    with _open(tmp_path, keep_checkpoints=1) as run:
        assert runs.restore_latest(run, state.params, _rest(state)) is None


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
    runs.write_json(tmp_path / runs.KINDS["classifier"], models.spec_to_dict(spec))
    assert models.spec_from_dict(runs.read_json(tmp_path / runs.KINDS["classifier"])) == spec
    config = default.get_config()
    config.model.dense_units = (32, 32)
    with runs.open_run(
        tmp_path / "run", kind="classifier", config=config.to_dict(), mutable=frozenset(), keep_checkpoints=1
    ):
        pass  # open_run writes the resolved config
    saved = runs.read_json(tmp_path / "run" / runs.CONFIG_FILE)
    assert _cli.as_config(saved).to_dict() == config.to_dict()


def test_missing_run_files_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="run directory"):
        runs.read_json(tmp_path / runs.KINDS["classifier"])
    with pytest.raises(ValueError, match="run directory"):
        runs.read_json(tmp_path / runs.CONFIG_FILE)
    with pytest.raises(ValueError, match="run directory"):
        runs.load_run(tmp_path)


def test_a_checkpoint_of_another_model_is_refused_not_moved(tmp_path, capfd):
    _, state = _state()
    other = models.make_classifier(cell="gru", vocab_size=7, embed_dim=3, hidden_size=5, bidirectional=True)
    other_params = models.init_model(other, jax.random.key(0))
    with _open(tmp_path) as run:
        runs.save(run, "latest", 1, state.params, _rest(state), {})
        with pytest.raises(runs.RunError, match=r"does not fit this model: params\['bidirectional'\]"):
            runs.restore_latest(run, other_params, None)
    assert runs.steps(tmp_path / runs.CHECKPOINTS) == [1]  # intact, so never moved aside
    assert "Traceback" not in capfd.readouterr().err  # refused before Orbax reads any array

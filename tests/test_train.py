"""Training steps and the fit loop: every param moves, tiny batches are overfit, runs are reproducible,
golden metrics are pinned, resume is exact, early stopping and restore-best work."""

import json

import jax
import numpy as np
import pytest

from rnnjax import models
from rnnjax.configs import default
from rnnjax.training import classifier, loop, optim

B, T, V = 4, 6, 11


def _model_config(**changes):
    options = {
        "cell": "lstm",
        "vocab_size": V,
        "embed_dim": 3,
        "hidden_size": 5,
        "spatial_dropout": 0.2,
        "dropout": 0.2,
    }
    options.update(changes)
    return classifier.ModelConfig(spec=models.make_classifier(**options), use_lengths=True)


def _batch(seed=0, batch_size=B):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, batch_size).astype(np.int32)
    tokens = rng.integers(1, V, (batch_size, T)).astype(np.int32)
    tokens[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return {"tokens": tokens, "lengths": lengths, "label": (np.arange(batch_size) % 2).astype(np.int32)}


_STEPS = {}


def _setup(model_cfg=None, learning_rate=1e-2, seed=0):
    """A fresh state and the train step; steps are cached per (model, lr) so each compiles once per session."""
    model_cfg = model_cfg or _model_config()
    opt_cfg = default.get_config().opt
    opt_cfg.learning_rate = learning_rate
    tx = optim.make_optimizer(opt_cfg, total_steps=100)
    task = classifier.classifier_task(model_cfg)
    if (model_cfg, learning_rate) not in _STEPS:
        _STEPS[model_cfg, learning_rate] = jax.jit(loop.train_step_fn(task, tx), donate_argnums=0)
    return loop.create_state(task, tx, seed), _STEPS[model_cfg, learning_rate]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        pytest.param({"cell": "gru", "bidirectional": True}, marks=pytest.mark.slow),
        pytest.param(
            {"cell": "simple_rnn", "num_layers": 2, "attention_units": 2, "dense_units": (3,)},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_one_step_changes_every_param_and_gives_finite_loss(changes):
    state, step = _setup(_model_config(**changes))
    before = jax.tree.map(np.asarray, state.params)
    state, metrics = step(state, _batch())
    assert int(state.step) == 1
    assert np.isfinite(float(metrics["loss_sum"]))
    assert int(metrics["n_examples"]) == B and int(metrics["n_steps"]) == 1
    unchanged = [
        jax.tree_util.keystr(path)
        for path, old, new in zip(
            [p for p, _ in jax.tree_util.tree_leaves_with_path(before)],
            jax.tree.leaves(before),
            jax.tree.leaves(state.params),
        )
        if np.array_equal(old, np.asarray(new))
    ]
    assert not unchanged, f"parameters not updated by one step: {unchanged}"


def test_tiny_batch_is_overfit():
    model_cfg = _model_config(spatial_dropout=0.0, dropout=0.0)
    state, step = _setup(model_cfg, learning_rate=3e-2)
    batch = _batch(1, batch_size=8)
    for _ in range(40):
        state, metrics = step(state, batch)
    assert float(metrics["loss_sum"]) / 8 < 0.1
    assert int(metrics["n_correct"]) == 8


def test_same_seed_gives_bitwise_equal_params():
    results = []
    for _ in range(2):
        state, step = _setup()
        for seed in range(3):
            state, _ = step(state, _batch(seed))
        results.append(jax.tree.map(np.asarray, state.params))
    jax.tree.map(np.testing.assert_array_equal, results[0], results[1])


def test_padding_rows_change_nothing():
    """Rows with label -1 (a padded final batch) do not affect the update, whatever they contain."""
    model_cfg = _model_config(spatial_dropout=0.0, dropout=0.0)
    outputs = []
    for seed in (5, 6):
        batch = _batch(1, batch_size=8)
        filler = _batch(seed, batch_size=8)
        for name in batch:
            batch[name][-3:] = filler[name][-3:]
        batch["label"][-3:] = -1
        state, step = _setup(model_cfg, learning_rate=3e-2)
        state, metrics = step(state, batch)
        assert int(metrics["n_examples"]) == 5
        outputs.append(jax.tree.map(np.asarray, state.params))
    jax.tree.map(np.testing.assert_array_equal, outputs[0], outputs[1])


GOLDEN_LOSS_SUMS = (2.7739394, 2.7824507, 2.7854123)


def test_golden_metrics_after_three_steps():
    state, step = _setup()
    loss_sums = []
    for seed in range(3):
        state, metrics = step(state, _batch(seed))
        loss_sums.append(float(metrics["loss_sum"]))
    np.testing.assert_allclose(
        loss_sums,
        GOLDEN_LOSS_SUMS,
        rtol=1e-5,
        err_msg="training numerics changed; update GOLDEN_LOSS_SUMS only for an intended change "
        "(cell maths, initialisers, optimizer, dropout keys)",
    )


def test_eval_step_counts_real_examples_only():
    model_cfg = _model_config()
    state, _ = _setup(model_cfg)
    eval_step = jax.jit(loop.eval_step_fn(classifier.classifier_task(model_cfg)))
    batch = _batch(3)
    batch["label"][-1] = -1
    counts = loop.evaluate(eval_step, state.params, [batch, _batch(4)])
    assert counts["n_examples"] == 2 * B - 1
    assert counts["true_pos"] + counts["false_pos"] + counts["true_neg"] + counts["false_neg"] == 2 * B - 1
    assert 0.0 <= classifier.classification_metrics(counts)["accuracy"] <= 1.0


def test_bad_batch_raises_value_error():
    state, step = _setup()
    batch = _batch()
    batch["label"] = batch["label"][:, None]
    with pytest.raises(ValueError, match="label"):
        step(state, batch)


@pytest.mark.parametrize(
    "values, monitor, expected",
    [
        ([0.5, 0.4, 0.45, 0.41], "val_loss", (2, 2)),
        ([0.5, 0.6, 0.6], "val_accuracy", (2, 1)),
        ([], "val_loss", (0, 0)),
    ],
)
def test_early_stopping_status(values, monitor, expected):
    assert loop.early_stopping_status({monitor: values}, monitor, 0.0) == expected


def _tiny_config(**train_changes):
    from experiments.configs import tiny

    config = tiny.get_config()
    config.train.update(train_changes)
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The tiny config trained without interruption: 2 epochs of 8 steps."""
    workdir = tmp_path_factory.mktemp("straight")
    state, results = classifier.train_and_evaluate(_tiny_config(), workdir)
    return workdir, jax.device_get(state.params), results


@pytest.mark.parametrize("stop", [6, 15])
def test_train_and_evaluate_resumes_exactly(tmp_path, capsys, straight_run, stop):
    """``stop`` steps (mid-epoch; 15 is one step before the last epoch's end), then a rerun to the full 16,
    resumes there and ends bitwise equal to the uninterrupted run: same parameters, same history. The run cut
    short still validates and writes its row (the fraction of the epoch as its epoch), history.json and the
    best checkpoint."""
    straight_dir, straight_params, _ = straight_run
    first, partial = classifier.train_and_evaluate(_tiny_config(max_steps=stop), tmp_path)
    assert int(first.step) == stop and partial["history"]["epoch"] == [*range(1, stop // 8 + 1), stop / 8]
    assert json.loads((tmp_path / "history.json").read_text()) == json.loads(json.dumps(partial["history"]))
    assert "val_loss" in partial["history"] and (tmp_path / "best").is_dir()
    _, again = classifier.train_and_evaluate(_tiny_config(max_steps=stop), tmp_path)  # already done: kept
    assert again["history"]["epoch"] == partial["history"]["epoch"]
    capsys.readouterr()
    resumed, results = classifier.train_and_evaluate(_tiny_config(), tmp_path)
    assert f"at step {stop}" in capsys.readouterr().out
    assert int(resumed.step) == 16 and results["step"] == 16
    jax.tree.map(np.testing.assert_array_equal, straight_params, jax.device_get(resumed.params))
    histories = [json.loads((run / "history.json").read_text()) for run in (straight_dir, tmp_path)]
    for name in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy"):
        assert histories[0][name] == histories[1][name], name


def test_run_directory_contents(straight_run):
    from rnnjax.training import tensorboard

    workdir, _, results = straight_run
    for name in (
        "config.json",
        "model.json",
        "vocabulary.json",
        "history.json",
        "results.json",
        "run.json",
    ):
        assert (workdir / name).exists(), name
    assert results["epochs_run"] == 2 and set(results["test"]) >= {"loss", "accuracy", "n_examples"}
    history = json.loads((workdir / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"} and len(history["loss"]) == 2
    events = list((workdir / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    scalars = tensorboard.read_scalars(events[0])
    assert [(step, tag) for step, tag, _ in scalars] == [
        (1, "epoch_loss"),
        (1, "epoch_accuracy"),
        (2, "epoch_loss"),
        (2, "epoch_accuracy"),
    ]
    assert scalars[0][2] == pytest.approx(history["val_loss"][0], rel=1e-6)


def test_rerunning_a_finished_run_trains_no_more(straight_run, capsys):
    workdir, params, _ = straight_run
    state, results = classifier.train_and_evaluate(_tiny_config(), workdir)
    assert int(state.step) == 16 and results["epochs_run"] == 2
    jax.tree.map(np.testing.assert_array_equal, params, jax.device_get(state.params))


def test_early_stopping_restores_the_best_epoch(tmp_path):
    """With min_delta too large to ever improve, the first epoch stays best: stop after patience, restore it."""
    config = _tiny_config(epochs=4, patience=1, min_delta=10.0, restore_best=True)
    state, results = classifier.train_and_evaluate(config, tmp_path)
    assert results["epochs_run"] == 2 and results["best_epoch"] == 1
    assert results["checkpoint"] == "best" and int(state.step) == 8

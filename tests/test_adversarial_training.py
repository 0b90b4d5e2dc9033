"""Adversarial and virtual adversarial training as options of the classifier task: the loss terms against
their definitions, unlabelled rows counted by VAT only, normalised embeddings kept in the model, settings
refused up front, and a tiny run end to end (with an exact resume)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import losses, model_api, models
from rnnjax.data import unlabelled
from rnnjax.training import adversarial, classifier, runs

B, T, V = 4, 6, 11


def _spec(**options):
    return models.make_classifier(cell="lstm", vocab_size=V, embed_dim=3, hidden_size=5, **options)


def _batch(labels=(1, 0, -1, 1)):
    rng = np.random.default_rng(0)
    lengths = np.array([6, 3, 4, 0], np.int32)  # the last row: a padding row, no real word
    tokens = rng.integers(1, V, (B, T)).astype(np.int32)
    tokens[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return {"tokens": tokens, "lengths": lengths, "label": np.array(labels, np.int32)}


def _task_loss(method, spec, params, batch, **options):
    task = classifier.classifier_task(
        model_api.spec_model(spec), adversarial.AdversarialOptions(method=method, **options)
    )
    return task.loss(params, batch, jax.random.key(7))


def test_none_is_the_plain_loss_and_at_adds_the_loss_at_the_perturbed_words(key):
    spec = _spec()
    params = models.init_model(spec, key)
    batch = _batch()
    plain, plain_sums = classifier.classifier_task(classifier.ModelConfig(spec)).loss(params, batch, key)
    none, _ = _task_loss("none", spec, params, batch)
    assert float(none) == float(plain)

    loss, sums = _task_loss("at", spec, params, batch, epsilon=2.0, weight=0.5)
    model = model_api.spec_model(spec)
    embedded, mask, labels = model.embed(params, batch), model.mask(batch), batch["label"]

    def ce(x):
        return losses.classification_loss(model.from_embedded(params, x, batch), labels)

    g = jax.grad(ce)(embedded)
    r = adversarial.scale_to_norm(g, mask, 2.0)
    expected_adv = float(ce(embedded + r))
    assert float(sums["adv_loss_sum"]) == pytest.approx(expected_adv * 3, rel=1e-5)  # three labelled rows
    assert float(loss) == pytest.approx(float(plain) + 0.5 * expected_adv, rel=1e-5)
    assert expected_adv > float(plain)  # the worst case direction raises the loss
    assert int(sums["n_examples"]) == int(plain_sums["n_examples"]) == 3  # labels 1, 0, 1; -1 is not counted


def test_vat_counts_unlabelled_rows_and_not_padding_rows(key):
    spec = _spec()
    params = models.init_model(spec, key)
    labelled = _batch(labels=(1, 0, 1, -1))
    loss, sums = _task_loss("vat", spec, params, labelled)
    assert int(sums["n_vat"]) == 3  # rows with a real word, whatever their label; the empty row is not one
    assert int(sums["n_examples"]) == 3
    clean, _ = _task_loss("none", spec, params, labelled)
    assert float(loss) == pytest.approx(float(clean) + float(sums["vat_loss_sum"]) / 3, rel=1e-6)
    assert float(sums["vat_loss_sum"]) > 0
    # Unlabelled: no classification term at all, VAT's unchanged (it never reads a label).
    _, unlabelled_sums = _task_loss("vat", spec, params, _batch(labels=(-1, -1, -1, -1)))
    assert int(unlabelled_sums["n_examples"]) == 0
    assert float(unlabelled_sums["vat_loss_sum"]) == pytest.approx(float(sums["vat_loss_sum"]), rel=1e-6)


def test_adversarial_gradients_are_finite_with_dropout_and_reach_every_parameter(key):
    spec = _spec(spatial_dropout=0.2, dropout=0.2)
    params = models.init_model(spec, key)

    def total(p):
        return _task_loss("at+vat", spec, p, _batch())[0]

    grads = jax.grad(total)(params)
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert jnp.all(jnp.isfinite(leaf)), path
        assert jnp.any(leaf != 0), path


def test_word_counts_ignore_padding():
    tokens = np.array([[3, 3, 1, 0], [2, 0, 0, 0]])
    assert unlabelled.word_counts(tokens, 5) == (0, 1, 1, 2, 0)


# ------------------------------------------------------------------------------------------ from a config


def _tiny(**changes):
    from experiments.configs import tiny

    config = tiny.get_config()
    config.train.epochs = 1
    config.train.progress_bar = False
    for name, value in changes.items():
        block, field = name.split("__")
        config[block][field] = value
    return config


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train__adversarial": "fgsm"}, "train.adversarial='fgsm' must be one of none, at, vat, at+vat"),
        ({"train__adversarial": "at", "train__adv_epsilon": 0.0}, "train.adv_epsilon=0.0 must be a positive"),
        ({"train__adversarial": "vat", "train__vat_xi": float("nan")}, "train.vat_xi=nan must be a positive"),
        ({"data__unlabelled": 50}, "data.unlabelled=50 adds unlabelled reviews, which only virtual adversarial"),
        ({"train__adversarial": "vat", "data__unlabelled": -2}, "data.unlabelled=-2 must be >= 0"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, changes, message):
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        classifier.train_and_evaluate(_tiny(**changes), workdir)
    assert message in str(error.value)
    assert not workdir.exists() or not any(workdir.iterdir())


def test_a_model_without_a_split_is_refused_for_adversarial_training(tmp_path):
    from rnnjax.baselines import bag_of_words

    with pytest.raises(ValueError, match="needs a model split around its word vectors"):
        classifier.train_and_evaluate(
            _tiny(train__adversarial="at"), tmp_path / "run",
            model_fn=bag_of_words,
        )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.fixture(scope="module")
def vat_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vat")
    config = _tiny(train__adversarial="at+vat", model__normalize_embeddings=True, data__unlabelled=64)
    config.train.epochs = 2
    state, results = classifier.train_and_evaluate(config, workdir)
    return config, workdir, jax.device_get(state.params), results


def test_a_tiny_vat_run_end_to_end(vat_run, capsys):
    config, workdir, params, results = vat_run
    history = json.loads((workdir / "history.json").read_text())
    assert len(history["vat_loss"]) == 2 and all(v > 0 for v in history["vat_loss"])
    assert len(history["adv_loss"]) == 2 and all(np.isfinite(history["adv_loss"]))
    # The normalisation belongs to the model: model.json keeps the counts, and load_run's model applies them.
    spec = models.spec_from_dict(json.loads((workdir / "model.json").read_text()))
    counts = spec.layers[0].frequencies
    assert len(counts) == spec.layers[0].vocab_size and counts[0] == 0 and sum(counts) > 0
    loaded = runs.load_run(workdir, which="final", kind="classifier")
    jax.tree.map(np.testing.assert_array_equal, params, jax.device_get(loaded.params))
    test = results["test"]
    assert test["n_examples"] == 40
    # The test accuracy of the run equals the loaded model's on the same rows: evaluation normalises too.
    from rnnjax.data import datasets

    split = datasets.load_splits(config.data, seed=int(config.seed), workdir=workdir)["test"]
    logits = loaded.model.apply(loaded.params, split)
    predicted = (np.asarray(logits) > 0).astype(int)
    assert np.mean(predicted == split["label"]) == pytest.approx(test["accuracy"])


def test_unlabelled_rows_only_where_a_dataset_has_them():
    from experiments.configs import tiny

    data = tiny.get_config().data
    data.name = "csv"
    with pytest.raises(ValueError, match="csv has no unlabelled reviews"):
        unlabelled.unlabelled_rows(data, None, count=5, seed=0)


def test_a_vat_run_resumes_exactly(tmp_path, vat_run):
    config, _, straight, _ = vat_run
    cut = config.copy_and_resolve_references()
    cut.train.max_steps = 7  # mid-epoch 1 of 2 (128 labelled + 64 unlabelled rows: 12 steps an epoch)
    classifier.train_and_evaluate(cut, tmp_path)
    resumed, _ = classifier.train_and_evaluate(config, tmp_path)
    jax.tree.map(np.testing.assert_array_equal, straight, jax.device_get(resumed.params))


@pytest.mark.parametrize(
    "options",
    [{"cell": "lstm"}, {"cell": "gru"}, {"cell": "gru", "reset_after": False}, {"cell": "lstm", "bidirectional": True},
     {"cell": "simple_rnn", "spatial_dropout": 0.2}],
    ids=["lstm", "gru", "gru-v1", "bilstm", "simple_rnn"],
)
def test_folded_moments_make_the_normalised_model_start_as_the_raw_one(key, options):
    from rnnjax.training import transfer

    raw = models.make_classifier(vocab_size=V, embed_dim=3, hidden_size=5, **options)
    counts = tuple(int(c) for c in np.random.default_rng(1).integers(0, 50, V))
    normalised = models.replace_layer(raw, 0, frequencies=counts)
    params = models.init_model(raw, key)
    params["embedding"]["embeddings"] = params["embedding"]["embeddings"] * 7 + 0.3  # far from unit moments
    folded, name = transfer.fold_embedding_moments(params, normalised)
    assert name == models.layer_names(raw)[2 if "spatial_dropout" in options else 1]
    batch = _batch()
    expected = models.apply_model(raw, params, batch["tokens"], batch["lengths"])
    got = models.apply_model(normalised, folded, batch["tokens"], batch["lengths"])
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
    assert not np.allclose(models.apply_model(normalised, params, batch["tokens"], batch["lengths"]), expected)
    assert transfer.fold_embedding_moments(params, raw) == (params, None)  # nothing to fold

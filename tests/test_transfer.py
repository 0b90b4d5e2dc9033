"""Transfer from a language model's run directory: arrays by value, clear mismatch errors, the fine-tuning
optimizer and the classifier builder's ``config.init`` functions (``make_optimizer``, ``initial_params``)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments.configs import imdb_pretrained, lm_gru
from rnnjax import lm, models
from rnnjax.data import text
from rnnjax.training import classifier, language_model, loop, optim, runs, transfer

E, H, LAYERS = 4, 6, 2


@pytest.fixture(scope="module")
def vocab() -> text.Vocabulary:
    words = [["good", "movie", "bad"], ["good", "movie"], ["good", "plot"]]
    return text.fit_vocabulary(words, None, oov=True, start=True)  # 0 pad, 1 start, 2 OOV, 3.. words


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory, vocab):
    """An LM run directory whose checkpointed parameters are known: returns (workdir, params)."""
    workdir = tmp_path_factory.mktemp("lm_run") / "lm"
    config = lm_gru.get_config()
    config.model.embed_dim, config.model.hidden_size, config.model.num_layers = E, H, LAYERS
    spec = language_model.make_lm_spec(config.model, vocab_size=vocab.size)
    tx = optim.make_optimizer(config.opt, 10)
    state = loop.create_state(language_model.lm_task(spec), tx, 0)
    params = jax.tree.map(lambda a: a + jax.random.normal(jax.random.key(a.size), a.shape), state.params)
    rest = {"step": state.step, "opt_state": state.opt_state, "key": state.key}
    with runs.open_run(
        workdir, kind="language_model", config=config.to_dict(), mutable=frozenset(), keep_checkpoints=1
    ) as run:
        runs.write_json(workdir / runs.KINDS["language_model"], lm.spec_to_dict(spec))
        text.save_vocabulary(vocab, workdir)
        runs.save(run, "best", 3, params, rest, {"history": {}})
    return workdir, jax.device_get(params)


def _classifier(vocab_size, **changes):
    fields = dict(
        cell="gru", vocab_size=vocab_size, embed_dim=E, hidden_size=H, num_layers=LAYERS, attention_units=3
    )
    fields.update(changes)
    return models.make_classifier(**fields)


def test_lm_layers_land_in_the_classifier_by_value(lm_run, vocab, key):
    workdir, lm_params = lm_run
    spec = _classifier(vocab.size)
    params = models.init_model(spec, key)
    new, copied = transfer.init_from_lm(params, spec, workdir, vocab)
    assert copied == {"embedding": "embedding", "gru": "gru", "gru_1": "gru_1"}
    np.testing.assert_array_equal(new["embedding"]["embeddings"], lm_params["embedding"]["embeddings"])
    for name in ("gru", "gru_1"):
        for leaf in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_array_equal(new[name][leaf], lm_params[name][leaf])
    for name in ("attention", "dense"):  # new layers keep their initialisation
        for a, b in zip(jax.tree.leaves(new[name]), jax.tree.leaves(params[name])):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        params["gru"]["kernel"], new["gru"]["kernel"]
    )  # the input was not modified in place
    # A one-layer classifier takes the LM's lower layer.
    one = _classifier(vocab.size, num_layers=1)
    one_params, copied = transfer.init_from_lm(models.init_model(one, key), one, workdir, vocab)
    assert copied == {"embedding": "embedding", "gru": "gru"}
    np.testing.assert_array_equal(one_params["gru"]["kernel"], lm_params["gru"]["kernel"])


def test_mismatches_are_clear_errors(lm_run, vocab, key):
    workdir, _ = lm_run
    other = text.fit_vocabulary([["good", "movie", "awful"]], None, oov=True, start=True)
    spec = _classifier(other.size, num_layers=1, attention_units=0)
    with pytest.raises(ValueError, match="vocabulary is not the language model's"):
        transfer.init_from_lm(models.init_model(spec, key), spec, workdir, other)
    with pytest.raises(ValueError, match="does not exist"):
        transfer.init_from_lm({}, spec, workdir / "missing", vocab)
    loaded = runs.load_run(workdir, which="best", kind="language_model")
    lm_spec, lm_params = loaded.spec, loaded.params
    cases = {
        "embed_dim": _classifier(vocab.size, embed_dim=E + 1),
        "num_layers": _classifier(vocab.size, num_layers=3),
        "bidirectional": _classifier(vocab.size, bidirectional=True),
        "cell": _classifier(vocab.size, cell="lstm"),
        "reset_after": _classifier(vocab.size, reset_after=False),
    }
    for fix, spec in cases.items():
        with pytest.raises(ValueError, match=fix):
            transfer.transfer_lm_params(models.init_model(spec, key), spec, lm_spec, lm_params)
    # Shapes are checked leaf by leaf too (here: a GRU without biases).
    no_bias = jax.tree.map(lambda a: a, lm_params)
    del no_bias["gru"]["bias"]
    spec = _classifier(vocab.size)
    with pytest.raises(ValueError, match="has shapes"):
        transfer.transfer_lm_params(models.init_model(spec, key), spec, lm_spec, no_bias)


def test_finetune_optimizer_multipliers_and_gradual_unfreezing():
    params = {"embedding": jnp.ones(3), "gru": jnp.ones(2), "dense": jnp.ones(2)}
    grads = jax.tree.map(jnp.ones_like, params)
    schedule = transfer.gradual_unfreezing(["embedding", "gru"], steps_per_epoch=2)
    assert schedule == {"gru": 2, "embedding": 4}
    tx = transfer.finetune_optimizer(optax.sgd(0.1), lr_multipliers={"gru": 0.5}, trainable_from=schedule)
    state = tx.init(params)
    moved = []
    for _ in range(5):
        updates, state = tx.update(grads, state, params)
        moved.append({name: float(u[0]) for name, u in updates.items()})
    assert [m["dense"] for m in moved] == pytest.approx([-0.1] * 5)
    assert [m["gru"] for m in moved] == pytest.approx([0, 0, -0.05, -0.05, -0.05])
    assert [m["embedding"] for m in moved] == pytest.approx([0, 0, 0, 0, -0.1])
    with pytest.raises(ValueError, match=">= 0"):
        transfer.finetune_optimizer(optax.sgd(0.1), lr_multipliers={"gru": -1.0})


def _finetune_config(lm_workdir) -> ml_collections.ConfigDict:
    config = imdb_pretrained.get_config()
    config.model.embed_dim, config.model.hidden_size, config.model.num_layers = E, H, LAYERS
    config.init.from_lm_workdir = str(lm_workdir)
    return config


def test_init_block_initialises_and_wraps_the_optimizer(lm_run, vocab):
    workdir, lm_params = lm_run
    config = _finetune_config(workdir)
    spec = _classifier(vocab.size, attention_units=config.model.attention_units)
    config.init.gradual_unfreezing = True
    config.opt.warmup_steps = 0  # a non-zero first learning rate, so that the trained layers move at step 0
    tx = classifier.make_optimizer(config, spec, total_steps=20, steps_per_epoch=10)
    params = classifier.initial_params(config, spec, vocab)
    np.testing.assert_array_equal(params["gru_1"]["kernel"], lm_params["gru_1"]["kernel"])
    state = loop.create_state(classifier.classifier_task(classifier.ModelConfig(spec)), tx, 0, params)
    grads = jax.tree.map(jnp.ones_like, state.params)
    updates, _ = jax.jit(tx.update)(grads, state.opt_state, state.params)
    assert not np.any(updates["gru"]["kernel"]) and not np.any(updates["embedding"]["embeddings"])
    assert np.all(updates["dense"]["kernel"] != 0)


def test_without_an_init_block_nothing_changes():
    config = imdb_pretrained.get_config()
    config.init.from_lm_workdir = ""
    spec = _classifier(20)
    assert classifier.init_block(config) is None
    plain, wrapped = optim.make_optimizer(config.opt, 10), classifier.make_optimizer(config, spec, 10, 5)
    # The initial params are the task's own initialisation (as a fresh, non-fine-tuned run starts).
    params = classifier.initial_params(config, spec, None)
    task = classifier.classifier_task(classifier.ModelConfig(spec))
    task_params = loop.create_state(task, plain, int(config.seed)).params
    jax.tree.map(np.testing.assert_array_equal, params, task_params)
    grads = jax.tree.map(jnp.ones_like, params)
    a, _ = jax.jit(plain.update)(grads, plain.init(params), params)
    b, _ = jax.jit(wrapped.update)(grads, wrapped.init(params), params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    config.init.embeddings_file = "vectors.txt"
    config.init.from_lm_workdir = "runs/lm"
    with pytest.raises(ValueError, match="not both"):
        classifier.make_optimizer(config, spec, 10, 5)

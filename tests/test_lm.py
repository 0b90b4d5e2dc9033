"""Language model: training signal, memorisation, masked loss and perplexity, generation, rows, the fit loop."""

import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import lm_gru
from rnnjax import lm
from rnnjax.data import lm_rows
from rnnjax.training import language_model, runs


def _tiny_spec(**changes) -> lm.LMSpec:
    fields = dict(cell="gru", vocab_size=11, embed_dim=6, hidden_size=7, num_layers=2)
    fields.update(changes)
    return lm.LMSpec(**fields)


def _fit(spec, tokens, lengths, key, steps, learning_rate=2e-2):
    params = lm.init_lm(spec, key)
    tx = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state):
        def loss_fn(p):
            counts = lm.lm_counts(spec, p, tokens, lengths)
            return counts["loss_sum"] / counts["n_tokens"]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    return params, losses


def test_loss_decreases_and_a_repeated_sentence_is_memorised(key):
    sentence = [1, 4, 7, 5, 9, 3, 8, 6, 10]  # start id 1, then 8 distinct words
    tokens = jnp.asarray([sentence + [0, 0], sentence[:6] + [0] * 5], jnp.int32)
    lengths = jnp.asarray([len(sentence), 6], jnp.int32)
    spec = _tiny_spec(hidden_size=16, num_layers=1)
    params, losses = _fit(spec, tokens, lengths, key, steps=120)
    assert losses[-1] < 0.5 * losses[0], losses[::15]
    assert losses[-1] < 0.05, f"the sentence was not memorised: final loss {losses[-1]:.3f}"
    out = lm.generate(
        spec, params, jnp.asarray([[1]], jnp.int32), key, num_steps=len(sentence) - 1, greedy=True
    )
    np.testing.assert_array_equal(np.asarray(out["tokens"][0]), sentence[1:])


def test_generation_is_deterministic_and_its_steps_equal_the_full_scan(key):
    spec = _tiny_spec(cell="lstm", tie_embeddings=True)  # two carried states per layer, tied softmax
    params = lm.init_lm(spec, key)
    params["dense"]["bias"] = jax.random.normal(
        jax.random.fold_in(key, 9), (spec.vocab_size,)
    )  # spread the logits
    prompt = jnp.asarray([[1, 4, 2], [1, 5, 6]], jnp.int32)
    sample_key = jax.random.key(3)
    kwargs = dict(num_steps=12, temperature=0.9, return_logits=True)
    out = lm.generate(spec, params, prompt, sample_key, **kwargs)
    again = lm.generate(spec, params, prompt, sample_key, **kwargs)
    other = lm.generate(spec, params, prompt, jax.random.key(4), **kwargs)
    np.testing.assert_array_equal(out["tokens"], again["tokens"])
    assert not np.array_equal(out["tokens"], other["tokens"])
    assert out["tokens"].shape == (2, 12) and out["tokens"].dtype == jnp.int32

    # The same words fed through the whole-sequence scan give the logits they were drawn from and the final state.
    full = jnp.concatenate([prompt, out["tokens"]], axis=1)
    logits, carries = lm.apply_lm(spec, params, full, return_carry=True)
    np.testing.assert_allclose(out["logits"], logits[:, prompt.shape[1] - 1 : -1], rtol=1e-5, atol=1e-5)
    for step_carry, scan_carry in zip(out["carry"], carries):
        for a, b in zip(step_carry, scan_carry):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sampling_options(key):
    spec = _tiny_spec()
    params = lm.init_lm(spec, key)
    params["dense"]["bias"] = jnp.linspace(-2.0, 2.0, spec.vocab_size)
    prompt = jnp.asarray([[1, 3]] * 4, jnp.int32)
    greedy = lm.generate(spec, params, prompt, key, num_steps=10, greedy=True)
    top1 = lm.generate(spec, params, prompt, jax.random.key(7), num_steps=10, top_k=1)
    np.testing.assert_array_equal(greedy["tokens"], top1["tokens"])
    banned = (0, 1, 2, 10)
    free = lm.generate(spec, params, prompt, key, num_steps=40, temperature=5.0, banned=banned)
    assert not np.isin(np.asarray(free["tokens"]), banned).any()
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(spec, params, prompt, key, num_steps=3, temperature=0.0)
    with pytest.raises(ValueError, match="prompt"):
        lm.generate(spec, params, jnp.zeros((2, 0), jnp.int32), key, num_steps=3)


def test_perplexity_is_exp_of_the_mean_masked_loss(key):
    k1, k2, k3 = jax.random.split(key, 3)
    logits = 3 * jax.random.normal(k1, (2, 5, 11))
    targets = jax.random.randint(k2, (2, 5), 0, 11)
    mask = jax.random.bernoulli(k3, 0.6, (2, 5)).at[0, 0].set(True)
    counts = lm.masked_counts(logits, targets, mask)
    z = np.asarray(logits, np.float64)
    log_probs = (
        z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    )
    picked = np.take_along_axis(log_probs, np.asarray(targets)[..., None], -1)[..., 0]
    m = np.asarray(mask)
    mean = -(picked * m).sum() / m.sum()
    assert int(counts["n_tokens"]) == m.sum()
    np.testing.assert_allclose(float(counts["loss_sum"]) / int(counts["n_tokens"]), mean, rtol=1e-5)
    np.testing.assert_allclose(
        lm.perplexity(float(counts["loss_sum"]), int(counts["n_tokens"])), math.exp(mean), rtol=1e-5
    )
    correct = ((np.argmax(z, -1) == np.asarray(targets)) & m).sum()
    assert int(counts["n_correct"]) == correct
    assert lm.perplexity(0.0, 0) == math.inf


def test_padding_changes_nothing(key):
    spec = _tiny_spec(cell="lstm", num_layers=1)
    params = lm.init_lm(spec, key)
    tokens = jnp.asarray([[1, 4, 5, 6, 0], [1, 7, 0, 0, 0]], jnp.int32)
    lengths = jnp.asarray([4, 2], jnp.int32)
    wide = jnp.concatenate([tokens, jnp.full((2, 3), 9, jnp.int32)], axis=1)  # junk beyond each length
    a = lm.lm_counts(spec, params, tokens, lengths)
    b = lm.lm_counts(spec, params, wide, lengths)
    assert int(a["n_tokens"]) == 4 == int(b["n_tokens"])
    np.testing.assert_allclose(float(a["loss_sum"]), float(b["loss_sum"]), rtol=1e-6)


def test_dropout_needs_a_key_and_bad_inputs_are_rejected(key):
    spec = _tiny_spec(dropout=0.3)
    params = lm.init_lm(spec, key)
    tokens = jnp.asarray([[1, 2, 3]], jnp.int32)
    with pytest.raises(ValueError, match="rng"):
        lm.apply_lm(spec, params, tokens, train=True)
    with pytest.raises(ValueError, match="integer array"):
        lm.apply_lm(spec, params, tokens.astype(jnp.float32))
    train_a = lm.apply_lm(spec, params, tokens, train=True, rng=jax.random.key(1))
    train_b = lm.apply_lm(spec, params, tokens, train=True, rng=jax.random.key(1))
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.allclose(train_a, lm.apply_lm(spec, params, tokens))
    with pytest.raises(ValueError, match="dropout"):
        _tiny_spec(dropout=1.0)


def test_tied_model_shares_the_embedding_table(key):
    spec = _tiny_spec(tie_embeddings=True)
    params = lm.init_lm(spec, key)
    assert set(params["dense"]) == {"bias"} and params["projection"]["kernel"].shape == (7, 6)
    h = jax.random.normal(key, (3, 7))
    expected = (
        h @ params["projection"]["kernel"] @ params["embedding"]["embeddings"].T
        + params["dense"]["bias"][None, :]
    )
    np.testing.assert_allclose(lm.readout(spec, params, h), expected, rtol=1e-5, atol=1e-6)
    assert lm.recurrent_names(spec) == ["gru", "gru_1"]
    assert lm.spec_from_dict(lm.spec_to_dict(spec)) == spec


def test_rows_overlap_by_one_id_so_every_target_is_predicted_once():
    rows = lm_rows.make_rows([[1, 2, 3, 4, 5, 6, 7], [1, 8], [1]], maxlen=4)
    np.testing.assert_array_equal(rows["tokens"], [[1, 2, 3, 4], [4, 5, 6, 7], [1, 8, 0, 0]])
    np.testing.assert_array_equal(rows["lengths"], [4, 4, 2])
    targets = sum(int(n) - 1 for n in rows["lengths"])
    assert targets == 6 + 1  # a single-id sequence has no target and gives no row
    with pytest.raises(ValueError, match="maxlen"):
        lm_rows.make_rows([[1, 2]], maxlen=1)


def _tiny_config(max_steps: int):
    config = lm_gru.get_config()
    config.data.name = "synthetic"
    config.data.synthetic_examples = 60
    config.data.synthetic_length = 20
    config.data.synthetic_distance = 2
    config.data.maxlen = 8
    config.data.validation_split = 0.2
    config.data.num_words = 40
    config.model.embed_dim = 4
    config.model.hidden_size = 5
    config.model.num_layers = 1
    config.model.cell = "simple_rnn"  # the cheapest to compile; the loop is the same for every cell
    config.opt.warmup_steps = 0
    config.opt.schedule = (
        "constant"  # the schedule must not depend on max_steps for a longer rerun to equal one run
    )
    config.train.batch_size = 16
    config.train.eval_batch_size = 64
    config.train.epochs = 3
    config.train.max_steps = max_steps
    config.train.checkpoint_every_steps = 0
    config.train.log_every_steps = 2
    config.train.restore_best = False
    return config


def test_train_lm_resumes_exactly_and_loads_back(tmp_path):
    config = _tiny_config(10)
    config.train.checkpoint_every_steps = 4  # inside the first epoch (9 steps)
    config.train.keep_checkpoints = 5
    straight, results = language_model.train_lm(config, tmp_path / "straight")
    assert int(straight.step) == 10
    # Cut the run short at step 4, inside the first epoch: keep only that checkpoint, as if killed there.
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "best")
    steps = sorted(int(p.name) for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert steps[0] == 4, steps
    for step in steps[1:]:
        shutil.rmtree(tmp_path / "resumed" / "checkpoints" / str(step))
    resumed, _ = language_model.train_lm(config, tmp_path / "resumed")
    assert int(resumed.step) == 10
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    for name in ("run.json", "config.json", "lm.json", "vocabulary.json", "history.json", "results.json"):
        assert (tmp_path / "resumed" / name).exists(), name
    val = results["validation"]
    assert val["perplexity"] == pytest.approx(math.exp(val["loss_sum"] / val["n_tokens"]))
    loaded = runs.load_run(tmp_path / "resumed", which="latest", kind="language_model")
    assert loaded.spec.vocab_size == loaded.vocabulary.size and loaded.vocabulary.start_id == 1
    assert loaded.step == 10
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not exist"):
        runs.load_run(tmp_path / "nothing", kind="language_model")
    with pytest.raises(ValueError, match="holds a language model run, not a classifier run"):
        runs.load_run(tmp_path / "resumed", kind="classifier")

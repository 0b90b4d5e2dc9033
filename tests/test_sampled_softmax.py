"""Sampled softmax: the loss against a NumPy float64 oracle of TensorFlow's formula, the full softmax as its
limit, the proposals and the sampler, gradients of a tied LM, and a tiny LM trained with it by train_lm."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import lm_gru
from rnnjax import lm, losses
from rnnjax.data import lm_rows
from rnnjax.training import language_model, runs


def _reference_loss(inputs, weights, biases, labels, sampled, q):
    """float64, one example at a time: tf.nn.sampled_softmax_loss with remove_accidental_hits and
    subtract_log_q, sampling with replacement (expected count S * Q)."""
    inputs, weights, biases, q = (np.asarray(a, np.float64) for a in (inputs, weights, biases, q))
    s = len(sampled)
    out = []
    for x, y in zip(inputs, np.asarray(labels)):
        true = x @ weights[y] + biases[y] - math.log(s * q[y])
        negatives = [
            -math.inf if k == y else x @ weights[k] + biases[k] - math.log(s * q[k])
            for k in np.asarray(sampled)
        ]
        logits = np.array([true, *negatives])
        top = logits.max()
        out.append(top + math.log(np.exp(logits - top).sum()) - true)
    return np.array(out)


def _problem(key, n=6, d=3, c=7, s=5, dtype=jnp.float32):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    inputs = jax.random.normal(k1, (n, d), dtype)
    weights = jax.random.normal(k2, (c, d), dtype)
    biases = jax.random.normal(k3, (c,), dtype)
    labels = jax.random.randint(k4, (n,), 0, c)
    sampled = jnp.asarray([labels[0], 2, 2, labels[1], 6][:s], jnp.int32)  # repeats and accidental hits
    return inputs, weights, biases, labels, sampled, jnp.asarray(losses.log_uniform_proposal(c).log_q)


def test_the_loss_is_tensorflows_formula_with_accidental_hits_removed(key):
    inputs, weights, biases, labels, sampled, log_q = _problem(key)
    got = losses.sampled_softmax_cross_entropy(inputs, weights, biases, labels, sampled, log_q)
    want = _reference_loss(inputs, weights, biases, labels, sampled, np.exp(np.asarray(log_q, np.float64)))
    assert got.shape == (6,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
    logits = losses.sampled_logits(inputs, weights, biases, labels, sampled, log_q)
    assert logits.shape == (6, 6)
    hits = np.asarray(labels)[:, None] == np.asarray(sampled)[None, :]
    assert hits.any() and np.all(np.isneginf(np.asarray(logits)[:, 1:][hits]))


def test_float64_inputs_agree_with_the_oracle(key, x64):
    inputs, weights, biases, labels, sampled, log_q = _problem(key, dtype=jnp.float64)
    inputs, weights, biases = (a.astype(jnp.float64) for a in (inputs, weights, biases))
    # The loss itself is computed in float32 by design; its inputs' products are float64 until then.
    got = losses.sampled_softmax_cross_entropy(inputs, weights, biases, labels, sampled, log_q)
    want = _reference_loss(inputs, weights, biases, labels, sampled, np.exp(np.asarray(log_q, np.float64)))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_every_class_once_with_a_uniform_proposal_is_the_full_softmax(key):
    inputs, weights, biases, labels, _, _ = _problem(key)
    uniform = jnp.full((7,), -math.log(7.0))
    got = losses.sampled_softmax_cross_entropy(inputs, weights, biases, labels, jnp.arange(7), uniform)
    full = losses.softmax_cross_entropy(inputs @ weights.T + biases[None, :], labels)
    np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-6)


def test_proposals_sum_to_one_and_the_sampler_follows_them(key):
    proposal = losses.log_uniform_proposal(50)
    q = np.exp(proposal.log_q.astype(np.float64))
    k = np.arange(50)
    np.testing.assert_allclose(q, np.log((k + 2) / (k + 1)) / np.log(51), rtol=1e-6)  # TF's formula
    np.testing.assert_allclose(proposal.cdf, np.cumsum(q), rtol=1e-6)
    draws = np.asarray(jax.jit(losses.sample_candidates, static_argnums=2)(key, proposal, 20000))
    assert draws.dtype == np.int32 and draws.min() >= 0 and draws.max() < 50
    frequencies = np.bincount(draws, minlength=50)[:5] / len(draws)
    np.testing.assert_allclose(frequencies, q[:5], atol=0.015)
    unigram = losses.unigram_proposal(np.asarray([0, 3, 1]))
    np.testing.assert_allclose(np.exp(unigram.log_q), [1 / 7, 4 / 7, 2 / 7], rtol=1e-6)
    once = np.asarray(losses.sample_candidates(key, unigram, 7000))
    np.testing.assert_allclose(np.bincount(once, minlength=3) / 7000, [1 / 7, 4 / 7, 2 / 7], atol=0.02)
    again = losses.sample_candidates(key, proposal, 20000)
    np.testing.assert_array_equal(draws, again)  # the key alone decides the draws
    with pytest.raises(ValueError, match="sampled_logits"):
        losses.sampled_logits(
            jnp.zeros((2, 3)),
            jnp.zeros((7, 4)),
            jnp.zeros(7),
            jnp.zeros(2, int),
            jnp.zeros(3, int),
            jnp.zeros(7),
        )


@pytest.mark.parametrize("tie", [True, False])
def test_a_tied_or_untied_lm_gets_finite_gradients_in_every_leaf(key, tie):
    spec = lm.LMSpec("simple_rnn", vocab_size=13, embed_dim=4, hidden_size=5, tie_embeddings=tie, dropout=0.1)
    params = lm.init_lm(spec, key)
    batch = {
        "tokens": jnp.asarray([[1, 5, 7, 9, 4, 0], [1, 3, 12, 0, 0, 0]], jnp.int32),
        "lengths": jnp.asarray([5, 3], jnp.int32),
    }
    task = language_model.lm_task(spec, num_sampled=6)
    (loss, counts), grads = jax.jit(jax.value_and_grad(task.loss, has_aux=True))(
        params, batch, jax.random.key(3)
    )
    assert np.isfinite(float(loss)) and int(counts["n_tokens"]) == 6
    assert float(loss) == pytest.approx(float(counts["loss_sum"]) / 6, rel=1e-6)
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(leaf)), path
        assert np.any(leaf != 0), path
    # Evaluation is the full softmax, whatever the training loss.
    full = lm.lm_counts(spec, params, batch["tokens"], batch["lengths"])
    for name, value in task.counts(params, batch).items():
        np.testing.assert_array_equal(value, full[name])


def test_sampled_counts_are_the_formula_on_the_models_outputs(key):
    spec = lm.LMSpec("simple_rnn", vocab_size=11, embed_dim=3, hidden_size=4, tie_embeddings=True)
    params = lm.init_lm(spec, key)
    params["dense"]["bias"] = jax.random.normal(key, (11,))
    tokens, lengths = (
        jnp.asarray([[1, 4, 9, 2, 0], [1, 6, 6, 6, 8]], jnp.int32),
        jnp.asarray([4, 5], jnp.int32),
    )
    rng, proposal = jax.random.key(7), losses.unigram_proposal(np.arange(11))
    counts = language_model.sampled_counts(
        spec, params, {"tokens": tokens, "lengths": lengths}, rng, num_sampled=4, proposal=proposal
    )
    sampled = losses.sample_candidates(jax.random.split(rng)[1], proposal, 4)
    h = lm.apply_lm(spec, params, tokens[:, :-1], lengths - 1, return_hidden=True)
    x = np.asarray(h) @ np.asarray(params["projection"]["kernel"])
    real = np.arange(4)[None, :] < (np.asarray(lengths) - 1)[:, None]
    want = _reference_loss(
        x[real],
        params["embedding"]["embeddings"],
        params["dense"]["bias"],
        np.asarray(tokens[:, 1:])[real],
        sampled,
        np.exp(proposal.log_q.astype(np.float64)),
    )
    assert int(counts["n_tokens"]) == 7
    np.testing.assert_allclose(float(counts["loss_sum"]), want.sum(), rtol=1e-5)


def test_sampling_options_default_to_the_full_softmax_and_are_checked():
    config = lm_gru.get_config()
    assert language_model.sampling_options(config.model) == (0, "log_uniform")
    del config.model["num_sampled"], config.model["sampler"]  # a config written before the option
    assert language_model.sampling_options(config.model) == (0, "log_uniform")
    config.model.num_sampled = -1
    with pytest.raises(ValueError, match="num_sampled"):
        language_model.sampling_options(config.model)
    config.model.num_sampled, config.model.sampler = 4, "uniform"
    with pytest.raises(ValueError, match="sampler"):
        language_model.sampling_options(config.model)


def _tiny_config(sampler: str):
    config = lm_gru.get_config()
    config.data.name = "synthetic"
    config.data.synthetic_examples, config.data.synthetic_length, config.data.synthetic_distance = 60, 20, 2
    config.data.maxlen, config.data.validation_split, config.data.num_words = 8, 0.2, 40
    config.model.embed_dim, config.model.hidden_size, config.model.num_layers = 4, 6, 1
    config.model.input_dropout = config.model.dropout = 0.0
    config.model.num_sampled, config.model.sampler = 8, sampler
    config.opt.warmup_steps, config.opt.schedule, config.opt.learning_rate = 0, "constant", 1e-2
    config.train.batch_size, config.train.eval_batch_size = 16, 64
    config.train.epochs, config.train.max_steps = 4, 0
    config.train.checkpoint_every_steps, config.train.restore_best, config.train.progress_bar = (
        0,
        False,
        False,
    )
    return config


def test_a_tiny_lm_trains_with_sampled_softmax_and_validates_with_the_full_one(tmp_path):
    config = _tiny_config("unigram")  # the log-uniform proposal is lm_task's default, tested above
    _, results = language_model.train_lm(config, tmp_path / "run")
    train_loss, val_loss = results["history"]["loss"], results["history"]["val_loss"]
    assert train_loss[-1] < train_loss[0] and val_loss[-1] < val_loss[0], (train_loss, val_loss)
    run = runs.load_run(tmp_path / "run", kind="language_model")
    rows = lm_rows.load_lm_splits(config.data, seed=0, workdir=tmp_path / "run")["validation"]
    full = lm.lm_counts(run.spec, run.params, rows["tokens"], rows["lengths"])
    val = results["validation"]
    assert val["n_tokens"] == int(full["n_tokens"])
    np.testing.assert_allclose(val["loss_sum"], float(full["loss_sum"]), rtol=1e-5)

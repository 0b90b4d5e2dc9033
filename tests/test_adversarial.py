"""Adversarial and virtual adversarial training: the perturbation's norm and direction, the KL against NumPy
float64, VAT's constant clean branch, normalised embeddings, and the ModelSpec split against apply_model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import embedding_norm, model_api, models
from rnnjax.training import adversarial

B, T, E, V = 2, 5, 3, 13  # distinct sizes, so transposed axes fail loudly


def _tiny_lstm(vocab_size: int = V, **options) -> models.ModelSpec:
    return models.make_classifier(cell="lstm", vocab_size=vocab_size, embed_dim=E, hidden_size=4, **options)


def _batch() -> dict:
    tokens = np.array([[3, 7, 1, 12, 5], [9, 2, 4, 0, 0]], np.int32)
    return {"tokens": tokens, "lengths": np.array([5, 3], np.int32), "label": np.array([1, 0], np.int32)}


def _unit_directions(key, count: int, mask, dtype) -> list:
    """Random directions [B, T, E], zero at padding, of norm 1 per example."""
    keys = jax.random.split(key, count)
    return [adversarial.scale_to_norm(jax.random.normal(k, (*mask.shape, E), dtype), mask, 1.0) for k in keys]


# ------------------------------------------------------------------------------------------- scale_to_norm


def test_perturbation_has_norm_epsilon_per_example_and_zero_padding(key):
    lengths = jnp.array([5, 3, 1])
    mask = jnp.arange(T)[None, :] < lengths[:, None]
    # Scales a sum of squares would underflow (1e-30² < float32's smallest) or overflow (1e30²) on.
    g = jax.random.normal(key, (3, T, E)) * jnp.array([1.0, 1e-30, 1e30])[:, None, None]
    r = adversarial.scale_to_norm(g, mask, 0.7)
    assert r.dtype == jnp.float32
    norms = np.sqrt(np.sum(np.square(np.asarray(r, np.float64)), axis=(1, 2)))
    np.testing.assert_allclose(norms, [0.7, 0.7, 0.7], rtol=1e-5)
    assert not jnp.any(jnp.where(mask[..., None], 0.0, r)), "padding positions must stay zero"
    # The direction is g's on the real words.
    np.testing.assert_allclose(r[0] / 0.7, g[0] / jnp.linalg.norm(g[0]), atol=1e-6)


def test_zero_gradient_gives_zero_perturbation_without_nan():
    mask = jnp.array([[True, True, False, False, False], [True] * T])
    g = jnp.zeros((2, T, E)).at[1, 0, 0].set(-2.0)  # example 0: zero; example 1: one non-zero entry
    r = adversarial.scale_to_norm(g, mask, 3.0)
    assert not jnp.any(jnp.isnan(r))
    assert not jnp.any(r[0])
    assert float(r[1, 0, 0]) == pytest.approx(-3.0)
    grad_of_sum = jax.jit(jax.grad(lambda x: jnp.sum(adversarial.scale_to_norm(x, mask, 3.0))))
    gradient = grad_of_sum(jnp.zeros((2, T, E)))
    assert jnp.all(jnp.isfinite(gradient))


def test_scale_to_norm_names_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, T, E\]"):
        adversarial.scale_to_norm(jnp.zeros((2, T)), jnp.ones((2, T), bool), 1.0)


# ------------------------------------------------------------------------------------------------------ KL


def _kl_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(p ‖ q) in float64 from probabilities written out: Bernoulli for [B], softmax for [B, C]."""
    if a.ndim == 1:
        p, q = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
        return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    p = np.exp(a - a.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = np.exp(b - b.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=-1)


@pytest.mark.parametrize("shape", [(4,), (4, 3)], ids=["binary", "3-class"])
def test_kl_matches_numpy_float64(shape):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=shape) * 3, rng.normal(size=shape) * 3
    expected = _kl_reference(a, b)
    got = adversarial.kl_divergence(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    summed = adversarial.kl_divergence(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), summed=True)
    np.testing.assert_allclose(summed, expected.sum(), rtol=1e-5)
    assert float(adversarial.kl_divergence(jnp.asarray(a), jnp.asarray(a), summed=True)) == 0.0
    with pytest.raises(ValueError, match="kl_divergence"):
        adversarial.kl_divergence(jnp.asarray(a), jnp.asarray(a)[:2])


# ------------------------------------------------------------------------------------ embedding normalisation


def test_normalised_embeddings_have_weighted_mean_zero_and_variance_one(key):
    offsets = jnp.arange(E, dtype=jnp.float32)[None, :]  # a different mean per dimension
    table = jax.random.uniform(key, (V, E), jnp.float32, -0.05, 0.05) + offsets
    frequencies = np.arange(V) % 4 * 10
    frequencies[0] = 10_000  # the padding id: must not count
    weights = frequencies.astype(np.float64)
    weights[0] = 0
    mean, std = embedding_norm.embedding_stats(table, frequencies)
    expected_mean = np.average(np.asarray(table, np.float64), axis=0, weights=weights)
    expected_var = np.average((np.asarray(table, np.float64) - expected_mean) ** 2, axis=0, weights=weights)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5)
    np.testing.assert_allclose(std, np.sqrt(expected_var), rtol=1e-4)

    normalised = np.asarray(embedding_norm.normalize_embeddings(table, frequencies, eps=0.0), np.float64)
    np.testing.assert_allclose(np.average(normalised, axis=0, weights=weights), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.average(normalised**2, axis=0, weights=weights), 1.0, rtol=1e-5)
    # The default eps shrinks the variance to Var / (Var + eps), as the paper's code does.
    shrunk = np.asarray(embedding_norm.normalize_embeddings(table, frequencies), np.float64)
    np.testing.assert_allclose(
        np.average(shrunk**2, axis=0, weights=weights), expected_var / (expected_var + 1e-6), rtol=1e-5
    )

    spec = models.replace_layer(_tiny_lstm(), 0, frequencies=tuple(int(f) for f in frequencies))
    model = model_api.spec_model(spec)
    params = {**models.init_model(spec, key), "embedding": {"embeddings": table}}
    tokens = _batch()["tokens"]
    embedded = model.embed(params, _batch())
    np.testing.assert_allclose(embedded, shrunk[tokens], rtol=1e-5, atol=1e-6)
    # The model itself reads the normalised rows: apply == from_embedded(embed).
    np.testing.assert_allclose(model.apply(params, _batch()), model.from_embedded(params, embedded, _batch()),
                               rtol=1e-6)
    plain = model_api.spec_model(_tiny_lstm()).apply(params, _batch())
    assert not np.allclose(plain, model.apply(params, _batch()))


# ---------------------------------------------------------------------------------------- the ModelSpec split


@pytest.mark.parametrize(
    "spec, use_lengths, train",
    [
        (_tiny_lstm(spatial_dropout=0.3, dropout=0.2), True, True),  # right padding, dropout keys
        (models.make_classifier(cell="gru", vocab_size=7, embed_dim=E, hidden_size=4, bidirectional=True,
                                mask_zero=True), False, False),  # pre-padding, mask_zero, folded embedding
    ],
    ids=["lstm-dropout", "bigru-mask-zero"],
)
def test_split_model_equals_apply_model(key, spec, use_lengths, train):
    params = models.init_model(spec, key)
    batch = _batch()
    if not use_lengths:
        batch["tokens"] = np.array([[3, 6, 1, 2, 5], [0, 0, 4, 2, 6]], np.int32)  # Keras-style pre-padding
    rng = jax.random.key(3)
    split = model_api.spec_model(spec, use_lengths=use_lengths)
    lengths = batch["lengths"] if use_lengths else None
    expected = models.apply_model(spec, params, batch["tokens"], lengths, train=train, rng=rng)
    embedded = split.embed(params, batch, train=train, rng=rng)
    got = split.from_embedded(params, embedded, batch, train=train, rng=rng)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split.apply(params, batch, train=train, rng=rng), expected, rtol=1e-6)
    np.testing.assert_array_equal(split.mask(batch), batch["tokens"] != 0)
    if train:  # the spatial dropout acts inside embed: each channel of a row dropped or scaled by 1 / 0.7
        ratio = np.asarray(embedded) / np.asarray(split.embed(params, batch))
        np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-6)
        assert np.all(np.isclose(ratio, 0.0) | np.isclose(ratio, 1 / 0.7, rtol=1e-6))


# ------------------------------------------------------------------------------------------------------ AT


def test_adversarial_direction_is_the_steepest_ascent(key, x64):
    spec = _tiny_lstm()
    params = jax.tree.map(lambda p: p.astype(jnp.float64), models.init_model(spec, key))
    batch = _batch()
    split = model_api.spec_model(spec)
    labels = jnp.asarray(batch["label"], jnp.float64)

    @jax.jit
    def loss_fn(p, embedded):  # summed binary cross-entropy in float64
        z = split.from_embedded(p, embedded, batch)
        return jnp.sum(jax.nn.softplus(z) - labels * z)

    embedded, mask = split.embed(params, batch), split.mask(batch)
    epsilon, h = 0.5, 1e-6
    r_hat = adversarial.adversarial_perturbation(loss_fn, params, embedded, mask, epsilon) / epsilon
    g = jax.grad(loss_fn, argnums=1)(params, embedded)
    assert not jnp.any(jnp.where(mask[..., None], 0.0, r_hat))

    @jax.jit
    def increase(direction):
        return (loss_fn(params, embedded + h * direction) - loss_fn(params, embedded)) / h

    # Its directional derivative is Σ_b ||g_b|| (a unit direction per example, the loss a sum over examples).
    steepest = float(jnp.sum(jnp.sqrt(jnp.sum(jnp.square(jnp.where(mask[..., None], g, 0.0)), axis=(1, 2)))))
    assert float(jnp.vdot(g, r_hat)) == pytest.approx(steepest, rel=1e-10)
    assert float(increase(r_hat)) == pytest.approx(steepest, rel=1e-4)
    for u in _unit_directions(jax.random.fold_in(key, 1), 8, mask, jnp.float64):
        assert float(increase(u)) == pytest.approx(float(jnp.vdot(g, u)), rel=1e-3, abs=1e-8)
        assert float(increase(u)) < float(increase(r_hat))


# ----------------------------------------------------------------------------------------------------- VAT


@pytest.mark.parametrize("classes", [0, 3], ids=["binary", "3-class"])
def test_vat_loss_is_zero_for_a_constant_model(key, classes):
    params = {"bias": jnp.arange(max(classes, 1), dtype=jnp.float32) * 0.3 - 0.2}

    def constant(p, embedded):  # ignores its input
        logits = jnp.broadcast_to(p["bias"], (embedded.shape[0], p["bias"].shape[0]))
        return logits if classes else logits[:, 0]

    embedded = jax.random.normal(key, (B, T, E))
    mask = jnp.arange(T)[None, :] < jnp.array([5, 2])[:, None]
    loss = adversarial.virtual_adversarial_loss(
        constant, params, embedded, mask, epsilon=2.0, xi=0.1, key=key
    )
    assert loss.shape == (B,)
    assert not jnp.any(jnp.isnan(loss))
    np.testing.assert_allclose(loss, 0.0, atol=1e-7)


def test_vat_loss_is_positive_and_its_gradient_flows_through_the_perturbed_branch_only(key):
    spec = _tiny_lstm()
    params = models.init_model(spec, key)
    batch = _batch()
    split = model_api.spec_model(spec)
    mask = split.mask(batch)
    options = {"epsilon": 3.0, "xi": 0.1, "key": jax.random.fold_in(key, 1)}
    compiled = jax.jit(split.from_embedded)
    seen = []  # the embedded batches the model is run on, to read r_vadv back

    def logits_fn(p, embedded):
        seen.append(embedded)
        return compiled(p, embedded, batch)

    def embed(p):
        return split.embed(p, batch)

    loss = adversarial.virtual_adversarial_loss(logits_fn, params, embed(params), mask, **options)
    assert loss.shape == (B,) and jnp.all(loss > 0)
    r = seen[-1] - embed(params)
    np.testing.assert_allclose(jnp.sqrt(jnp.sum(jnp.square(r), axis=(1, 2))), [3.0, 3.0], rtol=1e-5)
    # Stronger than random perturbations of the same norm, on average: the power iteration found a direction.
    clean = compiled(params, embed(params), batch)
    random_kl = [adversarial.kl_divergence(clean, compiled(params, embed(params) + 3 * u, batch), summed=True)
                 for u in _unit_directions(jax.random.fold_in(key, 2), 4, mask, jnp.float32)]
    assert float(jnp.sum(loss)) > float(np.mean(random_kl))

    def vat(p):
        return jnp.sum(adversarial.virtual_adversarial_loss(logits_fn, p, embed(p), mask, **options))

    def perturbed_branch(p):  # the clean prediction a constant, r_vadv the one read back
        return adversarial.kl_divergence(clean, compiled(p, embed(p) + r, batch), summed=True)

    def both_branches(p):  # the gradient if the clean prediction were not a constant
        clean_p = compiled(p, embed(p), batch)
        return adversarial.kl_divergence(clean_p, compiled(p, embed(p) + r, batch), summed=True)

    got, expected, wrong = (jax.grad(f)(params) for f in (vat, perturbed_branch, both_branches))
    for leaf_got, leaf_expected in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(leaf_got, leaf_expected, rtol=1e-4, atol=1e-7)
    leaves = zip(jax.tree.leaves(got), jax.tree.leaves(wrong))
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in leaves)
    assert difference > 1e-3, "the check must tell a constant clean branch from a differentiated one"

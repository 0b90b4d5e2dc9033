"""Data-parallel training on 4 host devices equals single-device training; bf16 compute keeps f32 state."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax import distributed, models, train

_SHARDED_VS_SINGLE = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np, optax
    from rnnjax import distributed, models, train

    assert len(jax.devices()) == 4, jax.devices()
    spec = models.make_classifier(cell="lstm", vocab_size=13, embed_dim=3, hidden_size=5, spatial_dropout=0.2)
    model_cfg = train.ModelConfig(spec=spec)
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(3):
        lengths = rng.integers(1, 7, size=8).astype(np.int32)
        tokens = np.where(np.arange(6)[None] < lengths[:, None], rng.integers(1, 13, size=(8, 6)), 0).astype(np.int32)
        batches.append({"tokens": tokens, "lengths": lengths, "label": rng.integers(0, 2, size=8).astype(np.int32)})

    single_step = train.make_train_step(model_cfg, tx)
    state = train.create_train_state(spec, tx, seed=0)
    for batch in batches:
        state, single_metrics = single_step(state, jax.device_put(batch))

    mesh = distributed.make_mesh()
    state_dp, step_dp, put = distributed.setup_data_parallel(model_cfg, tx, train.create_train_state(spec, tx, seed=0), mesh)
    shards = len(put(batches[0])["tokens"].addressable_shards)
    for batch in batches:
        state_dp, dp_metrics = step_dp(state_dp, put(batch))

    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, state_dp.params))
    print(json.dumps({
        "devices": len(mesh.devices.flat), "shards": shards, "max_abs_diff": max(diffs),
        "max_abs_param": max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(state.params)),
        "loss_single": float(single_metrics["loss_sum"]), "loss_dp": float(dp_metrics["loss_sum"]),
        "step": int(state_dp.step),
        "param_sharding_replicated": all(l.sharding.is_fully_replicated for l in jax.tree.leaves(state_dp.params)),
    }))
    """
)


@pytest.mark.slow  # a fresh interpreter with 4 host devices compiles both steps: ~15 s on an idle CPU
def test_sharded_training_on_four_devices_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED_VS_SINGLE],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4 and result["shards"] == 4 and result["step"] == 3
    assert result["param_sharding_replicated"]
    assert result["max_abs_diff"] < 1e-5, result
    np.testing.assert_allclose(result["loss_dp"], result["loss_single"], rtol=1e-5)


def test_shard_batch_rejects_an_indivisible_batch():
    mesh = distributed.make_mesh(1)
    out = distributed.shard_batch({"label": np.zeros(3, np.int32)}, mesh)
    assert out["label"].shape == (3,)
    with pytest.raises(ValueError, match="num_devices"):
        distributed.make_mesh(len(jax.devices()) + 1)


def test_cast_for_compute_casts_only_floating_leaves():
    tree = {"w": jnp.ones((2,), jnp.float32), "n": jnp.ones((2,), jnp.int32)}
    out = distributed.cast_for_compute(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["n"].dtype == jnp.int32


@pytest.mark.slow  # compiles three train steps
def test_mixed_precision_step_keeps_float32_state_and_tracks_the_float32_step(key):
    spec = models.make_classifier(cell="simple_rnn", vocab_size=11, embed_dim=3, hidden_size=4)
    model_cfg = train.ModelConfig(spec=spec)
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 6, size=4).astype(np.int32)
    batch = {
        "tokens": rng.integers(1, 11, size=(4, 5)).astype(np.int32),
        "lengths": lengths,
        "label": np.asarray([0, 1, 1, 0], np.int32),
    }
    bf16_state, bf16_metrics = distributed.make_mixed_precision_train_step(model_cfg, tx)(
        train.create_train_state(spec, tx, 0), batch
    )
    f32_state, f32_metrics = train.make_train_step(model_cfg, tx)(
        train.create_train_state(spec, tx, 0), batch
    )
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(bf16_state.params))
    assert all(leaf.dtype in (jnp.float32, jnp.int32) for leaf in jax.tree.leaves(bf16_state.opt_state))
    np.testing.assert_allclose(bf16_metrics["loss_sum"], f32_metrics["loss_sum"], rtol=2e-2)
    same = distributed.make_mixed_precision_train_step(model_cfg, tx, jnp.float32)(
        train.create_train_state(spec, tx, 0), batch
    )[0]
    for a, b in zip(jax.tree.leaves(same.params), jax.tree.leaves(f32_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

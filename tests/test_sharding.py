"""Data parallelism (``sharding.py``): training on 4 host devices equals single-device training; bf16 compute
keeps f32 state."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax import models
from rnnjax.training import classifier, loop, sharding

_SHARDED_VS_SINGLE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import jax, jax.numpy as jnp, numpy as np
    from experiments.configs import tiny
    from rnnjax.training import classifier

    assert len(jax.devices()) == 4, jax.devices()
    root = sys.argv[1]

    def config(**changes):
        cfg = tiny.get_config()
        cfg.model.cell = "lstm"
        cfg.train.progress_bar = False
        for name, value in changes.items():
            cfg.train[name] = value
        return cfg

    def run(name, **changes):
        with contextlib.redirect_stdout(io.StringIO()):
            return classifier.train_and_evaluate(config(**changes), f"{root}/{name}")

    single, single_results = run("single")
    parallel, parallel_results = run("parallel", data_parallel=True)
    run("resumed", data_parallel=True, max_steps=5)  # stopped inside the first epoch, then resumed
    resumed, _ = run("resumed", data_parallel=True)
    mixed, mixed_results = run("mixed", data_parallel=True, compute_dtype="bfloat16")

    def max_diff(a, b):
        return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    leaves = jax.tree.leaves(parallel.params)
    print(json.dumps({
        "devices_per_param": min(len(leaf.sharding.device_set) for leaf in leaves),
        "replicated": all(leaf.sharding.is_fully_replicated for leaf in leaves),
        "step": int(parallel.step),
        "max_abs_diff": max_diff(single.params, parallel.params),
        "resume_diff": max_diff(parallel.params, resumed.params),
        "max_abs_param": max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(single.params)),
        "loss_single": single_results["history"]["loss"], "loss_parallel": parallel_results["history"]["loss"],
        "test_single": single_results["test"]["loss"], "test_parallel": parallel_results["test"]["loss"],
        "val_single": single_results["history"]["val_loss"], "val_parallel": parallel_results["history"]["val_loss"],
        "mixed_dtypes": sorted({str(p.dtype) for p in jax.tree.leaves(mixed.params)}),
        "mixed_test": mixed_results["test"]["loss"], "mixed_examples": mixed_results["test"]["n_examples"],
        "test_examples": single_results["test"]["n_examples"],
    }))
    """
)


@pytest.mark.slow  # a fresh interpreter with 4 host devices trains the tiny config five times: ~30 s idle
def test_train_and_evaluate_on_four_devices_matches_single_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", _SHARDED_VS_SINGLE, str(tmp_path)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices_per_param"] == 4 and result["replicated"] and result["step"] == 16
    assert result["max_abs_diff"] < 1e-5 * max(1.0, result["max_abs_param"]), result
    np.testing.assert_allclose(result["loss_parallel"], result["loss_single"], rtol=1e-5)
    np.testing.assert_allclose(result["val_parallel"], result["val_single"], rtol=1e-5)
    np.testing.assert_allclose(result["test_parallel"], result["test_single"], rtol=1e-5)
    assert result["resume_diff"] == 0.0, result  # exact resume holds under data parallelism too
    assert result["mixed_dtypes"] == ["float32"] and result["mixed_examples"] == result["test_examples"]
    np.testing.assert_allclose(result["mixed_test"], result["test_single"], rtol=5e-2)


def test_data_parallel_settings_are_checked_before_training(tmp_path):
    from experiments.configs import tiny

    config = tiny.get_config()
    config.train.data_parallel = True
    config.train.num_devices = len(jax.devices()) + 1
    with pytest.raises(ValueError, match="train.num_devices"):
        classifier.train_and_evaluate(config, tmp_path / "a")
    config.train.num_devices = 0
    config.train.compute_dtype = "float8"
    with pytest.raises(ValueError, match="train.compute_dtype"):
        classifier.train_and_evaluate(config, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_shard_batch_rejects_an_indivisible_batch():
    mesh = sharding.make_mesh(1)
    out = sharding.shard_batch({"label": np.zeros(3, np.int32)}, mesh)
    assert out["label"].shape == (3,)
    with pytest.raises(ValueError, match="num_devices"):
        sharding.make_mesh(len(jax.devices()) + 1)


def test_cast_for_compute_casts_only_floating_leaves():
    tree = {"w": jnp.ones((2,), jnp.float32), "n": jnp.ones((2,), jnp.int32)}
    out = loop.cast_for_compute(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["n"].dtype == jnp.int32


@pytest.mark.slow  # compiles three train steps
def test_mixed_precision_step_keeps_float32_state_and_tracks_the_float32_step(key):
    spec = models.make_classifier(cell="simple_rnn", vocab_size=11, embed_dim=3, hidden_size=4)
    task = classifier.classifier_task(classifier.ModelConfig(spec=spec))
    tx = optax.adam(1e-2)
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 6, size=4).astype(np.int32)
    batch = {
        "tokens": rng.integers(1, 11, size=(4, 5)).astype(np.int32),
        "lengths": lengths,
        "label": np.asarray([0, 1, 1, 0], np.int32),
    }

    def one_step(dtype=None):
        step = jax.jit(loop.train_step_fn(task, tx, dtype), donate_argnums=0)
        return step(loop.create_state(task, tx, 0), batch)

    bf16_state, bf16_metrics = one_step(jnp.bfloat16)
    f32_state, f32_metrics = one_step()
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(bf16_state.params))
    assert all(leaf.dtype in (jnp.float32, jnp.int32) for leaf in jax.tree.leaves(bf16_state.opt_state))
    np.testing.assert_allclose(bf16_metrics["loss_sum"], f32_metrics["loss_sum"], rtol=2e-2)
    same = one_step(jnp.float32)[0]
    for a, b in zip(jax.tree.leaves(same.params), jax.tree.leaves(f32_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

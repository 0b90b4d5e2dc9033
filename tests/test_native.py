"""The native CPU SimpleRNN, LSTM and GRU kernels compute the same function as the XLA path: values and gradients,
masks, both directions in one call, carries; the library falls back to the XLA path when they cannot be built, and a
damaged cached library is rebuilt, never loaded."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import models, scan
from rnnjax.kernels import fused, native, native_calls

pytestmark = pytest.mark.skipif(
    not native.available(), reason="native kernels unavailable (no C++ compiler, or disabled)"
)
T, B, H = 7, 11, 6  # B not a multiple of the kernel's 6-row blocks, H not of its 16-float vectors


CELLS = {  # rule name -> (cell, gates, cell options)
    "lstm": ("lstm", 4, {}),
    "gru": ("gru", 3, {"reset_after": True}),
    "gru_v1": ("gru", 3, {"reset_after": False}),
    "simple_rnn_tanh": ("simple_rnn", 1, {}),
}


def _params(key, rule):
    cell, gates, options = CELLS[rule]
    k1, k2 = jax.random.split(key)
    params = {"recurrent_kernel": 0.4 * jax.random.normal(k1, (H, gates * H))}
    if cell == "gru":
        shape = (2, gates * H) if options["reset_after"] else (gates * H,)
        params["bias"] = 0.3 * jax.random.normal(k2, shape)
    return params


def _inputs(key, directions, rule="lstm", batch=B):
    cell, gates, _ = CELLS[rule]
    keys = jax.random.split(key, 6)
    lead = (T, batch) if directions is None else (T, directions, batch)
    carry_shape = (batch, H) if directions is None else (directions, batch, H)
    xw = jax.random.normal(keys[0], (*lead, gates * H))
    lengths = jax.random.randint(keys[1], (batch,), 0, T + 1).at[0].set(T).at[1].set(0)
    mask = scan.sequence_mask(lengths, T).T  # [T, B], random lengths including 0 and T
    if directions is not None:
        mask = jnp.stack([mask, mask[::-1]], 1)
    params = (
        _params(keys[2], rule) if directions is None else [_params(keys[2], rule), _params(keys[3], rule)]
    )
    n_states = 2 if cell == "lstm" else 1
    carry = tuple(0.5 * jax.random.normal(k, carry_shape) for k in keys[4 : 4 + n_states])
    return params, xw, mask, carry


def _loss(rule, with_outputs, masked, use_native, monkeypatch):
    return jax.jit(jax.value_and_grad(_scalar_loss(rule, with_outputs, masked, use_native, monkeypatch), (0, 1, 3)))


def _scalar_loss(rule, with_outputs, masked, use_native, monkeypatch):
    monkeypatch.setattr(fused, "_use_native", lambda name, dtype: use_native and name in fused._NATIVE)
    cell, _, options = CELLS[rule]

    def loss(params, xw, mask, carry):
        ys, carry = fused.run_fused(
            cell, params, xw, mask if masked else None, carry, return_sequences=with_outputs, **options
        )
        total = sum(jnp.sum(c * jnp.cos(c)) for c in carry)
        return total + (jnp.sum(jnp.sin(3 * ys)) if with_outputs else 0.0)

    return loss


@pytest.mark.parametrize("rule", list(CELLS))
@pytest.mark.parametrize("directions", [None, 2], ids=["one-direction", "two-directions"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("with_outputs", [True, False], ids=["sequences", "last"])
def test_native_kernels_equal_the_xla_path(key, monkeypatch, rule, directions, masked, with_outputs):
    args = _inputs(key, directions, rule)
    value, grads = _loss(rule, with_outputs, masked, True, monkeypatch)(*args)
    ref_value, ref_grads = _loss(rule, with_outputs, masked, False, monkeypatch)(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
@pytest.mark.parametrize("directions", [None, 2], ids=["one-direction", "two-directions"])
def test_native_simple_rnn_activations_equal_the_xla_path(key, monkeypatch, activation, directions):
    rule = f"simple_rnn_{activation}"
    monkeypatch.setitem(CELLS, rule, ("simple_rnn", 1, {"activation": activation}))
    args = _inputs(key, directions, rule)
    value, grads = _loss(rule, True, True, True, monkeypatch)(*args)
    ref_value, ref_grads = _loss(rule, True, True, False, monkeypatch)(*args)
    # the loss adds up T*B*H terms of order 1 that partly cancel (linear: unbounded states): rounding of the
    # terms, not of the sum, sets the absolute tolerance
    np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("rule", list(CELLS))
def test_native_kernels_equal_the_xla_path_with_packed_blocks(key, monkeypatch, rule):
    """Wider layers: gate widths with whole 64-column blocks (read from packed copies) and a remainder, and a
    thread's rows in 6-row register blocks plus a remainder."""
    cell, gates, options = CELLS[rule]
    # 4H = 160, 3H = 120 and the SimpleRNN's H = 88: 64-column blocks, then 32, 16 and fewer columns
    steps, batch, hidden = 5, 13, 88 if gates == 1 else 40
    keys = jax.random.split(key, 5)
    params = {"recurrent_kernel": 0.2 * jax.random.normal(keys[0], (hidden, gates * hidden))}
    if cell == "gru":
        shape = (2, gates * hidden) if options["reset_after"] else (gates * hidden,)
        params["bias"] = 0.3 * jax.random.normal(keys[1], shape)
    xw = jax.random.normal(keys[2], (steps, batch, gates * hidden))
    mask = scan.sequence_mask(jax.random.randint(keys[3], (batch,), 0, steps + 1), steps).T
    carry = tuple(0.5 * jax.random.normal(k, (batch, hidden)) for k in jax.random.split(keys[4], 2 if cell == "lstm" else 1))
    monkeypatch.setattr(native, "_settings", dict(native._settings))
    native.configure(threads=1)  # all 13 rows on one thread: two 6-row blocks and one row
    got = jax.jit(jax.value_and_grad(_scalar_loss(rule, True, True, True, monkeypatch), (0, 1, 3)))(params, xw, mask, carry)
    want = jax.jit(jax.value_and_grad(_scalar_loss(rule, True, True, False, monkeypatch), (0, 1, 3)))(params, xw, mask, carry)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("rule", ["lstm", "simple_rnn_tanh"])
def test_native_outputs_are_zero_at_masked_steps_and_carries_are_held(key, monkeypatch, rule):
    calls = []
    monkeypatch.setattr(fused, "_use_native", lambda name, dtype: calls.append(name) or name in fused._NATIVE)
    params, xw, mask, carry = _inputs(key, None, rule)
    ys, final = jax.jit(lambda *a: fused.run_fused(CELLS[rule][0], *a))(params, xw, mask, carry)
    assert calls == [rule]
    assert np.all(np.asarray(ys)[~np.asarray(mask)] == 0.0)
    assert np.all(np.asarray(ys)[np.asarray(mask)] != 0.0)
    empty = ~np.asarray(mask).any(0)  # rows of length 0 keep their initial carry exactly
    for got, initial in zip(final, carry, strict=True):
        np.testing.assert_array_equal(np.asarray(got)[empty], np.asarray(initial)[empty])


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_models_use_the_native_path_on_cpu_and_match_without_it(key, monkeypatch, cell):
    spec = models.make_classifier(cell=cell, vocab_size=50, embed_dim=5, hidden_size=H, bidirectional=True)
    params = models.init_model(spec, key)
    tokens = jax.random.randint(key, (B, T), 1, 50)
    lengths = jnp.arange(B) % (T + 1)
    calls = []
    real = native_calls.run_native
    monkeypatch.setattr(native_calls, "run_native", lambda *a: calls.append(1) or real(*a))
    with_native = models.apply_model(spec, params, tokens, lengths)
    assert calls, f"the CPU float32 {cell} did not take the native path"
    native.configure(enabled=False)
    try:
        assert not native.available()
        without = models.apply_model(spec, params, tokens, lengths)
    finally:
        native.configure(enabled=True)
    np.testing.assert_allclose(with_native, without, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", list(CELLS))
@pytest.mark.parametrize("directions", [None, 2], ids=["one-direction", "two-directions"])
def test_gathered_inputs_equal_the_gathered_array(key, monkeypatch, rule, directions):
    """Table rows read in place by the kernels: the values and gradients (the table's is a scatter-add) of the
    XLA path on the materialized array; ids outside the table read NaNs, as jnp.take does."""
    params, xw, mask, carry = _inputs(key, directions, rule)
    vocab, gates = 9, xw.shape[-1]
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    table = jax.random.normal(k1, (vocab, gates) if directions is None else (directions, vocab, gates))
    ids = jax.random.randint(k2, xw.shape[:-1], 0, vocab)
    gathered = scan.Gathered(table, ids)

    def value_and_grads(use_native, inputs):
        loss = _scalar_loss(rule, True, True, use_native, monkeypatch)
        with_table = lambda p, t, c: loss(p, inputs(scan.Gathered(t, ids)), mask, c)
        return jax.jit(jax.value_and_grad(with_table, (0, 1, 2)))(params, table, carry)

    value, grads = value_and_grads(True, lambda g: g)
    ref_value, ref_grads = value_and_grads(False, scan.materialize)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    assert scan.materialize(gathered).shape == gathered.shape == xw.shape

    monkeypatch.setattr(fused, "_use_native", lambda name, dtype: name in fused._NATIVE)
    cell, _, options = CELLS[rule]
    bad = ids.at[2, ..., 3].set(vocab)  # one row's third step reads past the table
    ys, _ = fused.run_fused(cell, params, scan.Gathered(table, bad), None, carry, **options)
    assert np.isnan(np.asarray(ys)[2:, ..., 3, :]).all() and np.isfinite(np.asarray(ys)[:2]).all()


@pytest.mark.parametrize("cell", ["lstm", "simple_rnn"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-direction", "bidirectional"])
def test_folded_embedding_gradients_match_without_native(key, monkeypatch, cell, bidirectional):
    """The classifier with its embedding folded into the projection (more tokens than rows): the table's
    gradient flows back through the kernels' in-place reads to the embeddings and the kernel, both directions."""
    spec = models.make_classifier(
        cell=cell, vocab_size=30, embed_dim=5, hidden_size=H, bidirectional=bidirectional
    )
    params = models.init_model(spec, key)
    tokens = jax.random.randint(key, (B, T), 0, 30)
    lengths = jnp.arange(B) % (T + 1)
    loss = lambda p: jnp.sum(jnp.sin(3 * models.apply_model(spec, p, tokens, lengths)))
    with_native = jax.grad(loss)(params)
    native.configure(enabled=False)
    try:
        without = jax.grad(loss)(params)
    finally:
        native.configure(enabled=True)
    for got, want in zip(jax.tree.leaves(with_native), jax.tree.leaves(without), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


def test_a_failed_build_falls_back_to_the_xla_path(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_settings", dict(native._settings))
    native.configure(cache_dir=tmp_path, compiler=str(tmp_path / "no-such-compiler"))
    with pytest.warns(UserWarning, match="native CPU kernels unavailable"):
        assert not native.available()
    assert not fused._use_native("lstm", jnp.float32)
    with pytest.raises(ValueError, match="threads"):
        native.configure(threads=-1)


@pytest.mark.parametrize("rule", ["lstm", "simple_rnn_tanh"])
@pytest.mark.parametrize("threads", [1, 3])
def test_any_thread_count_gives_the_same_numbers(key, monkeypatch, rule, threads):
    args = _inputs(key, 2, rule, batch=29)  # 3 threads at most one per 8 rows: chunks of 10, 10 and 9 rows
    reference = _loss(rule, True, True, True, monkeypatch)(*args)
    monkeypatch.setattr(native, "_settings", dict(native._settings))
    native.configure(threads=threads)
    got = _loss(rule, True, True, True, monkeypatch)(*args)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)  # each row's sequence is computed the same way on any thread


# ------------------------------------------------------------------------------------ a damaged kernel cache

REPO = Path(__file__).resolve().parents[1]
# Runs an LSTM through rnnjax.run with the kernels cached in argv[1] (built with argv[2] when given) and checks it
# against the plain scan; prints whether the native path ran. A crash while loading the kernels ends it with a
# signal, which fails the test instead of killing pytest.
_CHILD = """
import json, sys
import jax, numpy as np
import rnnjax
from rnnjax.kernels import native, native_calls

native.configure(cache_dir=sys.argv[1], compiler=sys.argv[2] if len(sys.argv) > 2 else None)
calls, real = [], native_calls.run_native
native_calls.run_native = lambda *a: calls.append(1) or real(*a)
k1, k2 = jax.random.split(jax.random.key(0))
params = rnnjax.init_lstm(k1, 3, 4)
xs = jax.random.normal(k2, (2, 5, 3))
got = rnnjax.run("lstm", params, xs)
want = rnnjax.run("lstm", params, xs, fused=False)
for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
print(json.dumps({"native": bool(calls)}))
"""


def _child(cache: Path, *compiler: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(cache), *compiler],
        cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen) -> tuple[bool, str]:
    """Whether the child took the native path, and its stderr; asserts it computed the right numbers and exited 0."""
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, f"exit status {child.returncode}:\n{err[-3000:]}"
    return json.loads(out.splitlines()[-1])["native"], err


def _assert_valid_entry(target: Path) -> None:
    """The cache holds the library and its digest, the digest matches, and no temporary file is left."""
    digest = native._digest_file(target)
    assert digest.read_text().split()[0] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, digest.name])


def _another_library() -> Path:
    import _ctypes

    candidates = [getattr(_ctypes, "__file__", ""), "/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/libm.so.6"]
    found = [Path(c) for c in candidates if c and Path(c).is_file()]
    if not found:
        pytest.skip("no other shared library found to put in the cache")
    return found[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder holding one valid build for the default compiler (copy it before damaging it)."""
    compiler = native._compiler()
    target = native._cache_file(compiler, tmp_path_factory.mktemp("native-cache"))
    native._build(target, compiler)
    _assert_valid_entry(target)
    return target


def _damage(target: Path, how: str) -> None:
    if how == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif how == "random-bytes":
        target.write_bytes(os.urandom(target.stat().st_size))
    elif how == "another-library":
        shutil.copyfile(_another_library(), target)
    else:
        native._digest_file(target).unlink()


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        *(pytest.param(h, marks=pytest.mark.slow) for h in ("random-bytes", "another-library", "no-digest")),
    ],
)
def test_a_damaged_cached_library_is_rebuilt_not_loaded(built, tmp_path, how):
    cache = tmp_path / "cache"
    shutil.copytree(built.parent, cache)
    target = cache / built.name
    _damage(target, how)
    assert not native._verified(target)
    took_native, err = _finish(_child(cache))
    assert took_native and "native CPU kernels unavailable" not in err, err[-3000:]
    _assert_valid_entry(target)
    assert native._verified(target)


def test_a_damaged_cache_that_cannot_be_rebuilt_falls_back_with_one_warning(built, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    compiler = "/nonexistent"
    target = native._cache_file(compiler, cache)
    damaged = built.read_bytes()[: built.stat().st_size // 2]
    target.write_bytes(damaged)
    shutil.copyfile(native._digest_file(built), native._digest_file(target))  # the digest of the whole file
    cache.chmod(0o555)  # read-only (root writes anyway: then the missing compiler alone fails the rebuild)
    try:
        took_native, err = _finish(_child(cache, compiler))
    finally:
        cache.chmod(0o755)
    assert not took_native
    warned = [line for line in err.splitlines() if "native CPU kernels unavailable" in line]
    assert len(warned) == 1 and str(target) in warned[0] and "XLA path" in warned[0], err[-3000:]
    assert target.read_bytes() == damaged  # the user's file is left as it was found
    assert sorted(p.name for p in cache.iterdir()) == sorted([target.name, native._digest_file(target).name])


@pytest.mark.slow
def test_processes_building_at_once_each_load_a_complete_library(tmp_path):
    children = [_child(tmp_path), _child(tmp_path)]
    for child in children:
        took_native, err = _finish(child)
        assert took_native, err[-3000:]
    (target,) = tmp_path.glob("*.so")
    _assert_valid_entry(target)

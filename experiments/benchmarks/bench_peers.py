"""Benchmark runners: one (framework, model, shape) measured in the current process, returned as a dict.

Every runner builds Embedding -> recurrent layer(s) -> Dense(1) at the given shape, trains it with RMSprop on
random tokens and labels (forward + backward + update; tokens/s after compilation, median of timed windows),
then measures inference. Peak memory is the peak resident set during the timed training windows (sampled
every millisecond by a thread) less the resident set before the model was built: parameters, optimizer state
and per-step buffers, plus for compiled frameworks whatever the compiler left behind (a conservative count).
``experiments.benchmarks.benchmark`` runs each measurement in a fresh process, so start-up footprints cancel out.

Frameworks: rnnjax; PyTorch (eager, and torch.compile; on the GPU when one is visible, i.e. cuDNN); Keras 3 on
JAX; Flax linen ``nn.RNN``; ``jax.experimental.rnn`` (cuDNN's LSTM from JAX, GPU only). A missing one raises
ImportError (or RuntimeError for a GPU-only peer on CPU), which the driver reports as skipped.
"""

import resource
import threading
import time
from collections.abc import Callable

import numpy as np

MODELS = ("simple_rnn", "lstm", "gru", "bilstm", "stacked_lstm")
SHAPES = {  # batch, time, embedding, units
    "A": (128, 200, 32, 32),
    "B": (64, 400, 128, 256),
    "C": (256, 200, 128, 1024),  # a GPU-sized layer
    "tiny": (4, 8, 8, 8),  # for tests of the benchmark itself
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _windows(
    fn: Callable[[], None], sync: Callable[[], None], repeats: int, steps: int
) -> tuple[float, float]:
    """Median seconds per call over ``repeats`` windows of ``steps`` calls, and the peak RSS in bytes meanwhile."""
    peak = [_rss_bytes()]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        times.append((time.perf_counter() - start) / steps)
    done.set()
    sampler.join()
    return float(np.median(times)), max(peak[0], _rss_bytes())


def _data(batch, time_steps, vocab, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, (batch, time_steps), dtype=np.int32)
    labels = rng.integers(0, 2, (batch,)).astype(np.float32)
    return tokens, labels


def _result(train, infer_s, compile_s, base_rss, batch, time_steps, **extra):
    """``train`` is (seconds per step, peak RSS bytes during training) from ``_windows``."""
    train_s, peak_rss = train
    return dict(
        train_tokens_per_s=batch * time_steps / train_s,
        infer_tokens_per_s=batch * time_steps / infer_s,
        compile_s=compile_s,
        peak_memory_mb=(peak_rss - base_rss) / 2**20,
        **extra,
    )


def _run_jax(loss_fn, logits_fn, params, *, repeats, steps, base_rss, batch, time_steps):
    """Times an RMSprop train step of ``loss_fn(params)`` (jitted, state donated) and ``logits_fn(params)``."""
    import jax
    import optax

    tx = optax.rmsprop(1e-3, decay=0.9, eps=1e-7)

    def train_step(state):
        params, opt_state = state
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = (params, tx.init(params))
    start = time.perf_counter()
    step = jax.jit(train_step, donate_argnums=0).lower(state).compile()
    compile_s = time.perf_counter() - start
    box = [state]

    def one():
        box[0] = step(box[0])

    one()
    train = _windows(one, lambda: jax.block_until_ready(box[0]), repeats, steps)
    infer = jax.jit(logits_fn)
    out = [infer(box[0][0])]
    infer_s, _ = _windows(
        lambda: out.__setitem__(0, infer(box[0][0])), lambda: jax.block_until_ready(out[0]), repeats, steps
    )
    return _result(train, infer_s, compile_s, base_rss, batch, time_steps)


def run_rnnjax(model, shape, *, vocab=8000, repeats=5, steps=5, dtype="float32", unroll=1):
    import jax
    import jax.numpy as jnp
    import optax

    import rnnjax

    batch, time_steps, embed, hidden = SHAPES[shape]
    base_rss = _rss_bytes()
    cell = "lstm" if model in ("bilstm", "stacked_lstm") else model
    spec = rnnjax.make_classifier(
        cell=cell,
        vocab_size=vocab,
        embed_dim=embed,
        hidden_size=hidden,
        bidirectional=model == "bilstm",
        num_layers=2 if model == "stacked_lstm" else 1,
        unroll=unroll,
    )
    compute = jnp.dtype(dtype)
    tokens, labels = (jnp.asarray(a) for a in _data(batch, time_steps, vocab))

    def logits_fn(params):
        cast = jax.tree_util.tree_map(lambda p: p.astype(compute), params)
        return rnnjax.apply(spec, cast, tokens).astype(jnp.float32)

    return _run_jax(
        lambda p: optax.sigmoid_binary_cross_entropy(logits_fn(p), labels).mean(),
        logits_fn,
        rnnjax.init(spec, jax.random.key(0)),
        repeats=repeats,
        steps=steps,
        base_rss=base_rss,
        batch=batch,
        time_steps=time_steps,
    )


def run_torch(model, shape, *, vocab=8000, repeats=5, steps=5, compiled=False, **_):
    import torch
    from torch import nn

    torch.manual_seed(0)
    batch, time_steps, embed, hidden = SHAPES[shape]
    base_rss = _rss_bytes()
    layer_cls = {"simple_rnn": nn.RNN, "gru": nn.GRU}.get(model, nn.LSTM)
    bidirectional = model == "bilstm"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, embed)
            self.rnn = layer_cls(
                embed,
                hidden,
                num_layers=2 if model == "stacked_lstm" else 1,
                batch_first=True,
                bidirectional=bidirectional,
            )
            self.dense = nn.Linear(hidden * (2 if bidirectional else 1), 1)

        def forward(self, tokens):
            _, state = self.rnn(self.embedding(tokens))
            h = state[0] if isinstance(state, tuple) else state  # [layers * directions, B, H]
            last = torch.cat([h[-2], h[-1]], -1) if bidirectional else h[-1]
            return self.dense(last).squeeze(-1)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    net = Net().to(device)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    tokens, labels = (torch.from_numpy(a).to(device) for a in _data(batch, time_steps, vocab))
    tokens = tokens.long()
    forward = torch.compile(net) if compiled else net

    def one():
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(tokens), labels).backward()
        opt.step()

    start = time.perf_counter()
    one()
    sync()
    compile_s = time.perf_counter() - start
    train = _windows(one, sync, repeats, steps)

    def infer():
        with torch.inference_mode():
            forward(tokens)

    infer()
    infer_s, _ = _windows(infer, sync, repeats, steps)
    return _result(
        train, infer_s, compile_s, base_rss, batch, time_steps, device=device, threads=torch.get_num_threads()
    )


def run_jax_cudnn(model, shape, *, vocab=8000, repeats=5, steps=5, **_):
    """cuDNN's LSTM through ``jax.experimental.rnn`` (LSTM models only, GPU only)."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.experimental import rnn

    if jax.default_backend() != "gpu" or model not in ("lstm", "bilstm", "stacked_lstm"):
        raise RuntimeError("jax.experimental.rnn needs a GPU and an LSTM model")
    batch, time_steps, embed, hidden = SHAPES[shape]
    base_rss = _rss_bytes()
    layers, bidirectional = (2 if model == "stacked_lstm" else 1), model == "bilstm"
    directions = 2 if bidirectional else 1
    k_e, k_w, k_d = jax.random.split(jax.random.key(0), 3)
    params = {
        "embeddings": jax.random.uniform(k_e, (vocab, embed), minval=-0.05, maxval=0.05),
        "lstm": rnn.init_lstm_weight(k_w, embed, hidden, layers, bidirectional),
        "dense": jax.random.normal(k_d, (hidden * directions,)) * 0.05,
    }
    tokens, labels = (jnp.asarray(a) for a in _data(batch, time_steps, vocab))
    lengths = jnp.full((batch,), time_steps, jnp.int32)
    zeros = jnp.zeros((directions * layers, batch, hidden))

    def logits_fn(p):
        _, h, _ = rnn.lstm(
            p["embeddings"][tokens],
            zeros,
            zeros,
            p["lstm"],
            lengths,
            embed,
            hidden,
            layers,
            0.0,
            bidirectional,
        )
        last = jnp.concatenate([h[-2], h[-1]], -1) if bidirectional else h[-1]
        return last @ p["dense"]

    return _run_jax(
        lambda p: optax.sigmoid_binary_cross_entropy(logits_fn(p), labels).mean(),
        logits_fn,
        params,
        repeats=repeats,
        steps=steps,
        base_rss=base_rss,
        batch=batch,
        time_steps=time_steps,
    )


def run_keras(model, shape, *, vocab=8000, repeats=5, steps=5, **_):
    import os

    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    batch, time_steps, embed, hidden = SHAPES[shape]
    base_rss = _rss_bytes()
    keras.utils.set_random_seed(0)
    rnn = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU}.get(model, keras.layers.LSTM)
    layers = [
        keras.Input((time_steps,), batch_size=batch, dtype="int32"),
        keras.layers.Embedding(vocab, embed),
    ]
    if model == "bilstm":
        layers.append(keras.layers.Bidirectional(rnn(hidden)))
    elif model == "stacked_lstm":
        layers += [rnn(hidden, return_sequences=True), rnn(hidden)]
    else:
        layers.append(rnn(hidden))
    net = keras.Sequential(layers + [keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="binary_crossentropy", jit_compile=True)
    tokens, labels = _data(batch, time_steps, vocab)
    start = time.perf_counter()
    net.train_on_batch(tokens, labels)
    compile_s = time.perf_counter() - start
    train = _windows(lambda: net.train_on_batch(tokens, labels), lambda: None, repeats, steps)
    net.predict_on_batch(tokens)
    infer_s, _ = _windows(lambda: net.predict_on_batch(tokens), lambda: None, repeats, steps)
    return _result(train, infer_s, compile_s, base_rss, batch, time_steps)


def run_flax(model, shape, *, vocab=8000, repeats=5, steps=5, **_):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn

    batch, time_steps, embed, hidden = SHAPES[shape]
    base_rss = _rss_bytes()
    cell_cls = {"simple_rnn": nn.SimpleCell, "gru": nn.GRUCell}.get(model, nn.OptimizedLSTMCell)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(vocab, embed)(tokens)
            if model == "bilstm":
                x = nn.Bidirectional(nn.RNN(cell_cls(hidden)), nn.RNN(cell_cls(hidden)), return_carry=False)(
                    x
                )
                last = jnp.concatenate([x[:, -1, :hidden], x[:, 0, hidden:]], -1)
            else:
                for _ in range(2 if model == "stacked_lstm" else 1):
                    x = nn.RNN(cell_cls(hidden))(x)
                last = x[:, -1]
            return nn.Dense(1)(last)[:, 0]

    net = Net()
    tokens, labels = (jnp.asarray(a) for a in _data(batch, time_steps, vocab))
    logits_fn = lambda p: net.apply(p, tokens)
    return _run_jax(
        lambda p: optax.sigmoid_binary_cross_entropy(logits_fn(p), labels).mean(),
        logits_fn,
        net.init(jax.random.key(0), tokens),
        repeats=repeats,
        steps=steps,
        base_rss=base_rss,
        batch=batch,
        time_steps=time_steps,
    )


RUNNERS = {
    "rnnjax": run_rnnjax,
    "torch": run_torch,
    "torch_compile": lambda *a, **k: run_torch(*a, compiled=True, **k),
    "keras": run_keras,
    "flax": run_flax,
    "jax_cudnn": run_jax_cudnn,
}

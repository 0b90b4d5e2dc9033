"""NumPy float64 oracles written from the equations; they share no code with rnnjax.

Each cell takes Keras-layout weights (kernel [F, G*H], recurrent_kernel [H, G*H], bias) and a single example
(x [F], state vectors [H]); the time loop visits the real steps of a 1-D mask one by one.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACT = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "sigmoid": sigmoid, "linear": lambda v: v}


def _f64(p):
    return {k: np.asarray(v, np.float64) for k, v in p.items()}


def simple_rnn_step(p, state, x, activation="tanh"):
    p = _f64(p)
    (h,) = state
    pre = x @ p["kernel"] + h @ p["recurrent_kernel"]
    if "bias" in p:
        pre = pre + p["bias"]
    h = ACT[activation](pre)
    return (h,), h


def lstm_step(p, state, x):
    p = _f64(p)
    h, c = state
    H = h.shape[-1]
    W, U = p["kernel"], p["recurrent_kernel"]
    b = p.get("bias", np.zeros(4 * H))
    gate = lambda k: x @ W[:, k * H : (k + 1) * H] + h @ U[:, k * H : (k + 1) * H] + b[k * H : (k + 1) * H]
    if "peephole" in p:
        pi, pf, po = p["peephole"]
        i = sigmoid(gate(0) + pi * c)
        f = sigmoid(gate(1) + pf * c)
        c_new = f * c + i * np.tanh(gate(2))
        o = sigmoid(gate(3) + po * c_new)
    else:
        i, f, o = sigmoid(gate(0)), sigmoid(gate(1)), sigmoid(gate(3))
        c_new = f * c + i * np.tanh(gate(2))
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new


def gru_step(p, state, x):
    p = _f64(p)
    (h,) = state
    H = h.shape[-1]
    W, U = p["kernel"], p["recurrent_kernel"]
    Wz, Wr, Wh = W[:, :H], W[:, H : 2 * H], W[:, 2 * H :]
    Uz, Ur, Uh = U[:, :H], U[:, H : 2 * H], U[:, 2 * H :]
    bias = p.get("bias")
    if bias is not None and bias.ndim == 2:  # reset_after: input bias row 0, recurrent bias row 1
        bi, br = bias
        z = sigmoid(x @ Wz + bi[:H] + h @ Uz + br[:H])
        r = sigmoid(x @ Wr + bi[H : 2 * H] + h @ Ur + br[H : 2 * H])
        n = np.tanh(x @ Wh + bi[2 * H :] + r * (h @ Uh + br[2 * H :]))
    else:
        b = np.zeros(3 * H) if bias is None else bias
        z = sigmoid(x @ Wz + h @ Uz + b[:H])
        r = sigmoid(x @ Wr + h @ Ur + b[H : 2 * H])
        n = np.tanh(x @ Wh + (r * h) @ Uh + b[2 * H :])
    h_new = z * h + (1.0 - z) * n
    return (h_new,), h_new


STEPS = {"simple_rnn": simple_rnn_step, "lstm": lstm_step, "gru": gru_step}
N_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}


def run_sequence(cell, p, xs, mask=None, reverse=False, state=None, **options):
    """One example: xs [T, F], mask [T] bool. Returns (final state, outputs [T, H] with zeros at masked steps)."""
    xs = np.asarray(xs, np.float64)
    T = xs.shape[0]
    H = np.asarray(p["recurrent_kernel"]).shape[0]
    mask = np.ones(T, bool) if mask is None else np.asarray(mask, bool)
    if state is None:
        state = tuple(np.zeros(H) for _ in range(N_STATES[cell]))
    outputs = np.zeros((T, H))
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        if not mask[t]:
            continue
        state, y = STEPS[cell](p, state, xs[t], **options)
        outputs[t] = y
    return state, outputs


def run_batch(cell, p, xs, mask=None, reverse=False, **options):
    """Batch version of run_sequence: xs [B, T, F], mask [B, T]. Returns (states tuple of [B, H], outputs [B, T, H])."""
    results = [
        run_sequence(cell, p, xs[b], None if mask is None else mask[b], reverse, **options) for b in range(xs.shape[0])
    ]
    states = tuple(np.stack([r[0][k] for r in results]) for k in range(N_STATES[cell]))
    return states, np.stack([r[1] for r in results])


def attention_pool(p, hs, mask=None):
    """hs [B, T, D], mask [B, T]. Returns (context [B, D], weights [B, T]) by an explicit loop."""
    p = _f64(p)
    hs = np.asarray(hs, np.float64)
    B, T, _ = hs.shape
    mask = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    weights = np.zeros((B, T))
    for b in range(B):
        real = np.flatnonzero(mask[b])
        if real.size == 0:
            continue
        scores = np.array([np.tanh(hs[b, t] @ p["kernel"] + p["bias"]) @ p["context"] for t in real])
        e = np.exp(scores - scores.max())
        weights[b, real] = e / e.sum()
    return np.einsum("bt,btd->bd", weights, hs), weights

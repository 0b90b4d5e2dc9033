"""Optimizers: ``make_optimizer(opt_cfg, total_steps)`` builds the Optax transformation a run trains with.

This builder reads ``config.opt`` and nothing else reads it. Choices are Keras-compatible where the chapter
depends on them: RMSprop with Keras' defaults (lr 1e-3, rho 0.9, epsilon 1e-7, epsilon inside the square
root, zero-initialised accumulator), Adam and SGD; optional clipping by global norm and a learning-rate
schedule. The training step that applies the transformation lives in ``tasks.py``.
"""

import math

import ml_collections
import optax
from absl import logging

OPTIMIZERS = ("rmsprop", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "exponential")


def make_schedule(opt_cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step: optional linear warm-up, then the chosen decay.

    Args:
        opt_cfg: ``config.opt`` (``learning_rate``, ``schedule``, ``warmup_steps``, ``final_fraction``).
        total_steps: steps of the whole run; the decay reaches ``final_fraction * learning_rate`` there.

    Returns:
        An Optax schedule (step -> learning rate).

    Raises:
        ValueError: for an invalid ``config.opt`` (``check_opt``).
    """
    check_opt(opt_cfg)
    peak = float(opt_cfg.learning_rate)
    warmup = int(opt_cfg.warmup_steps)
    if warmup >= int(total_steps) > 1:
        logging.warning(
            "opt.warmup_steps=%d is not shorter than the run's %d steps: the learning rate never reaches %g.",
            warmup, int(total_steps), peak,
        )
    decay_steps = max(int(total_steps) - warmup, 1)
    final = peak * float(opt_cfg.final_fraction)
    if opt_cfg.schedule == "constant":
        decay = optax.constant_schedule(peak)
    elif opt_cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=float(opt_cfg.final_fraction))
    elif opt_cfg.schedule == "linear":
        decay = optax.linear_schedule(peak, final, decay_steps)
    else:
        decay = optax.exponential_decay(peak, decay_steps, float(opt_cfg.final_fraction))
    if warmup <= 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def _finite(opt_cfg: ml_collections.ConfigDict, name: str) -> float:
    value = opt_cfg.get(name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"opt.{name}={value!r} must be a finite number.")
    return number


def check_opt(opt_cfg: ml_collections.ConfigDict) -> None:
    """Refuses, before anything is written, optimizer settings that could only fail (or go NaN) later.

    Raises:
        ValueError: naming the field, its value and the valid range.
    """
    if opt_cfg.name not in OPTIMIZERS:
        raise ValueError(f"opt.name must be one of {OPTIMIZERS}, got {opt_cfg.name!r}.")
    if opt_cfg.schedule not in SCHEDULES:
        raise ValueError(f"opt.schedule must be one of {SCHEDULES}, got {opt_cfg.schedule!r}.")
    if _finite(opt_cfg, "learning_rate") <= 0:
        raise ValueError(f"opt.learning_rate={opt_cfg.learning_rate} must be positive; Keras' RMSprop default is 1e-3.")
    if _finite(opt_cfg, "eps") <= 0:
        raise ValueError(f"opt.eps={opt_cfg.eps} must be positive (Keras' default 1e-7).")
    for name in ("rho", "beta_1", "beta_2"):
        if not 0 < _finite(opt_cfg, name) < 1:
            raise ValueError(f"opt.{name}={opt_cfg[name]} must be in (0, 1).")
    if not 0 <= _finite(opt_cfg, "momentum") < 1:
        raise ValueError(f"opt.momentum={opt_cfg.momentum} must be in [0, 1) (0: none).")
    if _finite(opt_cfg, "clip_norm") < 0:
        raise ValueError(f"opt.clip_norm={opt_cfg.clip_norm} must be >= 0 (0 disables clipping).")
    if not 0 <= _finite(opt_cfg, "final_fraction") <= 1:
        raise ValueError(f"opt.final_fraction={opt_cfg.final_fraction} must be in [0, 1].")
    if int(opt_cfg.warmup_steps) < 0:
        raise ValueError(f"opt.warmup_steps={opt_cfg.warmup_steps} must be >= 0 (0: no warm-up).")


def make_optimizer(opt_cfg: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """Builds the optimizer described by ``config.opt``.

    RMSprop follows Keras 3 (and TF's ``ApplyRMSProp``): ``v = rho v + (1 - rho) g^2`` from ``v = 0``, then
    ``update = -lr g / sqrt(v + eps)``, i.e. epsilon inside the square root, which is Optax's
    ``eps_in_sqrt=True``. Adam uses Keras' epsilon 1e-7; Keras adds it to the uncorrected ``sqrt(v)``
    and Optax to the bias-corrected one, which only differs while ``sqrt(v)`` is comparable to epsilon.

    Args:
        opt_cfg: ``config.opt``.
        total_steps: steps of the whole run, for the schedule.

    Returns:
        The Optax transformation: [clip by global norm ->] optimizer with the schedule.

    Raises:
        ValueError: for an unknown optimizer, schedule or invalid value.
    """
    schedule = make_schedule(opt_cfg, total_steps)
    name = opt_cfg.name
    momentum = float(opt_cfg.momentum)
    if name == "rmsprop":
        tx = optax.rmsprop(
            schedule,
            decay=float(opt_cfg.rho),
            eps=float(opt_cfg.eps),
            eps_in_sqrt=True,
            momentum=momentum or None,
        )
    elif name == "adam":
        tx = optax.adam(schedule, b1=float(opt_cfg.beta_1), b2=float(opt_cfg.beta_2), eps=float(opt_cfg.eps))
    elif name == "sgd":
        tx = optax.sgd(schedule, momentum=momentum or None)
    else:
        raise ValueError(f"opt.name must be one of {OPTIMIZERS}, got {name!r}.")
    clip_norm = float(opt_cfg.clip_norm)
    if clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx

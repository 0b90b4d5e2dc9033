"""Test-wide settings: Keras runs on JAX, rank promotion raises, and each test gets a fresh key."""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras, which would look for TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A persistent compilation cache shared by the test workers and the scripts they start as subprocesses, which
# compile the same small training steps many times.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "rnnjax-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key(request) -> jax.Array:
    """A PRNG key that differs per test (seeded by the test's name) but is the same on every run."""
    seed = sum(map(ord, request.node.name)) % (2**31)
    return jax.random.key(seed)


@pytest.fixture
def x64():
    """Enables 64-bit mode for one test only."""
    with jax.enable_x64(True):
        yield

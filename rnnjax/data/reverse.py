"""Backward reading of encoded texts: each right-padded row's real ids in reverse order, padding in place.

A backward language model (``data.reverse`` of an LM config) and a classifier fine-tuned from it read every
review from its last word to its first; averaging such a classifier with a forward one is ULMFiT's ensemble.
``reads_reversed`` reads the setting (``data.reverse``; absent: False) of a config; which rows are reversed,
and when, is left to the data paths that call ``reverse_rows``.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np


def reads_reversed(data_cfg: Mapping[str, Any]) -> bool:
    """Whether a run reads its texts backwards: ``data.reverse`` (configs without the field read forwards).

    Args:
        data_cfg: ``config.data`` (a ConfigDict, or the dict of a run's config.json).

    Raises:
        ValueError: ``data.reverse`` with Keras-style pre-padding, whose rows ``reverse_rows`` cannot reverse.
    """
    reverse = bool(data_cfg.get("reverse", False))
    if reverse and data_cfg.get("padding", "post") != "post":
        raise ValueError("config.data.reverse needs right-padded rows (data.padding = 'post'), got 'pre'.")
    return reverse


def reverse_rows(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverses the first ``lengths[i]`` ids of each right-padded row; the padding stays at the end.

    Args:
        tokens: [N, T] integer ids, right-padded.
        lengths: [N] integer, real ids per row, each in [0, T].

    Returns:
        [N, T] ids of ``tokens``' dtype: row i is ``tokens[i, :lengths[i]][::-1]`` followed by the row's own
        padding ``tokens[i, lengths[i]:]``. Reversing twice gives the rows back.

    Raises:
        ValueError: for tokens that are not [N, T], lengths that are not [N], or a length outside [0, T].
    """
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
        raise ValueError(
            f"reverse_rows: tokens must be [N, T] and lengths [N] with the same N, got tokens {tokens.shape} "
            f"and lengths {lengths.shape}."
        )
    if len(lengths) and (lengths.min() < 0 or lengths.max() > tokens.shape[1]):
        raise ValueError(
            f"reverse_rows: lengths must be in [0, T={tokens.shape[1]}], got {lengths.min()}..{lengths.max()}"
            "; rows are right-padded (data.padding = 'post')."
        )
    positions = np.arange(tokens.shape[1])[None, :]
    ends = lengths.astype(np.int64)[:, None]
    source = np.where(positions < ends, ends - 1 - positions, positions)
    return np.take_along_axis(tokens, source, axis=1)

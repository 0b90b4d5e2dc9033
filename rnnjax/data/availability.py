"""Which data a run trains on, decided before anything is written: the configured dataset or, only where
``data.fallback_to_synthetic`` allows it (the no-flag main job), the embedded synthetic set.

IMDB is sought in order: a prepared TFDS copy under ``data.data_dir``; the local copy ``data.source_dir``; the
official download (``sources.prepare_imdb``). A config that names a local copy never falls back: a missing or
unreadable one is an error, as is IMDB missing for any config without the fallback.
"""

import sys

import ml_collections

from rnnjax.data import sources
from rnnjax.data.text import DataError

HOW_TO_GET_IMDB = (
    "To train on IMDB, allow the download from ai.stanford.edu, or set RNNJAX_IMDB_DIR (or "
    "config.data.source_dir) to aclImdb_v1.tar.gz, an aclImdb/ folder or a folder of train/test.jsonl.gz"
)


def with_available_data(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` itself, or a copy whose ``data.name`` is ``synthetic`` when the config asks for IMDB's neg/pos
    with ``data.fallback_to_synthetic``, names no local copy, and IMDB can be neither found nor downloaded;
    that case is said in one line on stderr. The result is what the run records in its config.json.

    Raises:
      prepared.PreparationInterrupted: SIGINT/SIGTERM while IMDB was being prepared.
    """
    data = config.data
    fallback = data.get("fallback_to_synthetic", False) and data.get("label_column", "label") == "label"
    fallback = fallback and not data.get("source_dir")
    if data.name != "imdb_reviews" or not fallback or sources.imdb_copy(data.data_dir) is not None:
        return config
    try:
        sources.prepare_imdb(data_dir=data.data_dir)
    except DataError as error:
        print(
            f"IMDB is not available ({' '.join(str(error).split())}); using the embedded synthetic dataset "
            f"instead. {HOW_TO_GET_IMDB}.",
            file=sys.stderr,
            flush=True,
        )
        config = ml_collections.ConfigDict(config.to_dict())
        config.data.name = "synthetic"
    return config

"""Data: TFDS sources and readers, the text pipeline, synthetic sets, word vectors and batching."""

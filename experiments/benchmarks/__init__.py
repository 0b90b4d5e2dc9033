"""Peer benchmarks and Keras reference fits: measured beside rnnjax, not installed with it."""

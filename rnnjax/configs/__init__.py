"""Configurations: ``default.get_config()``, the single source of hyperparameters."""

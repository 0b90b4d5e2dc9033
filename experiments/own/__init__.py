"""A researcher's own code, as a user would write it: a cell registered by name and a model written by hand,
which configs in experiments/configs name (``model.cell``, ``model.factory``)."""

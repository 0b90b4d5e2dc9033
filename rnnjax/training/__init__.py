"""Training: the fit loop, tasks, the run directory, optimizers, sharding, transfer and TensorBoard."""

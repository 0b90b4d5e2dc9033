"""A researcher's own cell, model and config, as a user would write them, for the tests that train them."""

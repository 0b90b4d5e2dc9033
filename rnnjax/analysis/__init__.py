"""Using finished runs: evaluation, diagnostics and plots."""

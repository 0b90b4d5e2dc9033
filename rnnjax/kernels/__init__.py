"""Fast implementations attached to stock cell definitions: fused backward rules and native CPU kernels."""

"""Deterministic infinite-width theory: mean-field signal propagation, residual flows."""

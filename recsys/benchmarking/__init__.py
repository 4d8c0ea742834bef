"""Comparing models on the same data, split and metrics; the results report."""

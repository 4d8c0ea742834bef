"""Baselines in the same harness as the two-tower model: popularity, biases, EASE, zero-shot, MF."""

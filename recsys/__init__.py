"""recsys: a trainable two-tower neural recommender over review data."""

__version__ = "0.1.0"

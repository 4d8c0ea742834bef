"""Keys of a run's ``metrics.json`` that name checkpoints; free of heavy imports, so that readers
of run directories (the cross-validation driver, export) do not load torch to know them."""

# The best checkpoint's file name: the metrics under ``test/`` are of it.
CHECKPOINT_KEY = "checkpoint"
# The rating checkpoint's file name; its test metrics are kept under ``rating_checkpoint/test/``.
RATING_CHECKPOINT_KEY = "rating_checkpoint"

"""Training: the LightningModule, metrics, callbacks and the train() entry."""

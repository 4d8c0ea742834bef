"""A test-only callback: hold a training run at a chosen batch so that a test can kill it there."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pytorch_lightning import Callback


class PauseAtBatch(Callback):
    """At batch ``batch`` of epoch ``epoch``, write ``marker`` and sleep ``seconds``."""

    def __init__(self, epoch: int, batch: int, marker: str, seconds: float = 600.0) -> None:
        self.epoch, self.batch, self.marker, self.seconds = epoch, batch, Path(marker), seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.marker.write_text(f"epoch {trainer.current_epoch} batch {batch_idx} step {trainer.global_step}")
            time.sleep(self.seconds)


class InterruptAtBatch(Callback):
    """At batch ``batch`` of epoch ``epoch``, raise KeyboardInterrupt, as Ctrl-C does, or exit with
    ``exit_code`` where one is given; with ``testing``, at the test's first batch instead."""

    def __init__(self, epoch: int = 0, batch: int = 0, exit_code: int | None = None, testing: bool = False) -> None:
        self.epoch, self.batch, self.exit_code, self.testing = epoch, batch, exit_code, testing

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.testing:
            raise KeyboardInterrupt

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.testing and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            if self.exit_code is not None:
                sys.exit(self.exit_code)
            raise KeyboardInterrupt

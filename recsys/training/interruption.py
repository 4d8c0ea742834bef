"""A training run stopped by Ctrl-C or SIGTERM: what it left and how to go on.

Lightning ends an interrupted ``fit`` with ``SystemExit``: status 1 after Ctrl-C, and status 0 after
SIGTERM (its ``SIGTERMException`` carries no code), so a scheduler read a killed run as finished.
:func:`explained_interruption` around ``fit`` turns both into the shell's status for the signal and
one line naming the checkpoint to resume from and the command that resumes it
(:func:`interruption_message`); around the test after training, the checkpoint to test
(:func:`testing_interruption_message`). Every script's :func:`~recsys.cli.exit_on_user_error` does
the first for any stopped Lightning run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from recsys.cli import exit_status, lightning_interruption, signal_label
from recsys.training.checkpoints import load_checkpoint_config
from recsys.training.resume import resume_command

log = logging.getLogger(__name__)


@contextmanager
def explained_interruption(message: Callable[[str], str], speaks: bool = True) -> Iterator[None]:
    """Run the block; when Ctrl-C or SIGTERM stops Lightning inside it, log ``message(cause)`` (where
    ``speaks``: rank zero of a distributed run) and exit with the shell's status for the signal
    (130 or 143)."""
    try:
        yield
    except SystemExit as stopped:
        signalled = lightning_interruption(stopped)
        if signalled is None:
            raise
        if speaks:
            log.error(message(signal_label(signalled)))
        sys.exit(exit_status(signalled))


def testing_interruption_message(best: str | None, cause: str) -> str:
    """What a run stopped while testing, after training, has left: the checkpoint to test."""
    test = (f"test its best checkpoint with: python scripts/evaluate.py ckpt={best} split=test" if best
            else "it saved no checkpoint to test")
    return f"Testing stopped by {cause}: training had ended; {test}"


def interruption_message(trainer: pl.Trainer, cause: str) -> str:
    """Where the run stopped, the newest checkpoint it saved and the command that resumes from it."""
    stopped = (f"Training stopped by {cause} in epoch {trainer.current_epoch} (numbered from 0) at step "
               f"{trainer.global_step}, before its test and reports")
    latest = latest_checkpoint(trainer)
    if latest is None:
        return (f"{stopped}; it saved no checkpoint (none is saved before the first epoch ends, nor with "
                "callbacks=none): run it again")
    epoch = _saved_epoch(latest)
    held = f" holds the end of epoch {epoch}" if epoch is not None else " is the newest checkpoint"
    command = resume_command(latest) or f"python scripts/train.py <the run's overrides> ckpt_path={latest}"
    return f"{stopped}; {latest}{held}. Resume it with: {command}"


def latest_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The most recently written checkpoint of the run's checkpoint callbacks, or the one it resumed
    from (``last.ckpt`` where it and another were written in the same epoch); None when there is none."""
    saved = [path for callback in trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint)
             for path in (callback.last_model_path, callback.best_model_path)]
    paths = {Path(path) for path in (*saved, trainer.ckpt_path) if path}
    written = [path for path in paths if path.is_file()]
    if not written:
        return None
    return max(written, key=lambda path: (path.stat().st_mtime_ns, path.name == "last.ckpt"))


def _saved_epoch(path: Path) -> Any:
    try:
        return load_checkpoint_config(path)[1].get("epoch")
    except ValueError:  # a file it cannot read: the message names the file without its epoch
        return None

"""Callbacks that recsys adds to every training run."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning import Callback


class RandomStateCheckpoint(Callback):
    """Keep the process-wide random generators (torch, NumPy, Python) in every checkpoint.

    Lightning restores weights, optimiser and loop progress but not these generators, which drive
    the shuffling order and dropout. With them restored, a run resumed from an epoch-end
    checkpoint draws exactly what an uninterrupted run would (the negatives' generator is saved
    by the datamodule's own ``state_dict``), so it ends with the same metrics.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            # Plain lists and ints, so the checkpoint still loads with torch.load(weights_only=True).
            "numpy": [kind, keys.tolist(), position, has_gauss, cached_gaussian],
            "python": list(random.getstate()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))

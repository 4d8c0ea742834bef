"""TwoTowerModule: the LightningModule that trains and evaluates a :class:`TwoTowerModel`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import cast

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.types import OptimizerLRScheduler
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric

from recsys.data.batches import PairBatch
from recsys.data.catalog import Catalog
from recsys.data.negatives import UserItemSets
from recsys.models.losses import LossConfig, distillation_loss, in_batch_retrieval_loss, like_loss, rating_loss
from recsys.models.text_encoder import TextEncoder
from recsys.models.two_tower import TwoTowerModel
from recsys.settings import checked_number, is_whole_number
from recsys.training.optimization import (
    check_optimizer_settings,
    check_schedule,
    parameter_groups,
    resume_schedule,
    warmup_then_decay,
)
from recsys.training.ranking import RANKING_METRICS, fused_scores, ranking_metrics, standardised, top_k_from_scores
from recsys.training.teacher import EaseTeacher

EVAL_STAGES = ("val", "test")
# Where on_save_checkpoint keeps the run config (YAML, resolved); read back by recsys.training.checkpoints.
CONFIG_KEY = "recsys_config"
RANKING_CHUNK = 1024  # users scored at a time: memory is RANKING_CHUNK x num_items


def check_cutoffs(ks: tuple[int, ...] | list[int]) -> None:
    """Refuse ranking cut-offs (``model.module.ks``) that are none, or not whole numbers >= 1."""
    if not isinstance(ks, (list, tuple)) or not ks or any(not is_whole_number(k) or k < 1 for k in ks):
        shown = list(ks) if isinstance(ks, (list, tuple)) else ks
        raise ValueError(f"model.module.ks={shown!r} is not allowed: give a list of cut-offs >= 1, e.g. [5, 10, 20]")


def refuse_weight_averaging(callbacks: list[pl.Callback]) -> None:
    """Fail early, with a message, on Lightning's ``WeightAveraging`` callbacks.

    They copy the module when fitting is set up, before :meth:`TwoTowerModule.attach` fills the
    embedding-cache buffers, and then swap buffers as well as weights at validation, which fails
    deep inside Lightning on a shape mismatch.
    """
    weight_averaging = getattr(pl.callbacks, "WeightAveraging", None)  # Lightning >= 2.5
    if weight_averaging is None:
        return
    averaging = [type(c).__name__ for c in callbacks if isinstance(c, weight_averaging)]
    if averaging:
        raise ValueError(
            f"{', '.join(averaging)} is not supported by TwoTowerModule: Lightning's WeightAveraging callbacks "
            "swap buffers, and the model's embedding caches are buffers filled after the callback copies the "
            "module; remove it from callbacks (weight averaging measured no gain here, see README Ablations)"
        )


class TwoTowerModule(pl.LightningModule):
    """Losses, optimisation and metrics of the two-tower model.

    Args:
        net: the network.
        loss: :class:`LossConfig` fields (weights, temperature, like threshold, retrieval kind, logQ).
        optimizer: a partial optimizer (Hydra ``_partial_``) for the parameters outside the encoder.
        encoder_lr: learning rate of the fine-tuned encoder layers.
        warmup_ratio / decay: the learning-rate schedule (``cosine`` or ``linear`` decay after warmup).
        ks: cut-offs of the ranking metrics.
        peak_flops: FLOP/s that encoder utilisation is reported against.
        embedding_weight_decay: weight decay of embedding tables (None: the optimizer's). AdamW's
            decay shrinks every row at every step, so rows seen rarely (users' ids) fade between
            their updates; 0 keeps them.
        embedding_lr: learning rate of embedding tables (None: the optimizer's); sparse rows get few
            updates and may need a larger one. Both settings apply to id tables (not 1-d biases).
        ease_fusion: rank by cosine z-scores plus this weight times the EASE teacher's z-scores
            (each per user, over the user's unseen items); 0 = by cosine alone. The teacher (an
            items x items matrix, ``loss.teacher_l2``) is then fitted even without distillation.
    """

    def __init__(
        self, net: TwoTowerModel, loss: dict | LossConfig | None = None,
        optimizer: Callable[..., Optimizer] | None = None, encoder_lr: float = 5e-5, warmup_ratio: float = 0.1,
        decay: str = "cosine", ks: tuple[int, ...] | list[int] = (5, 10, 20),
        peak_flops: float = 1e12, embedding_weight_decay: float | None = None, embedding_lr: float | None = None,
        ease_fusion: float = 0.0,
    ) -> None:
        check_schedule(warmup_ratio, decay)
        check_cutoffs(ks)
        check_optimizer_settings(optimizer)
        encoder_lr = checked_number("model.module.encoder_lr", encoder_lr, above=0)
        peak_flops = checked_number("model.module.peak_flops", peak_flops, above=0)
        if embedding_weight_decay is not None:
            checked_number("model.module.embedding_weight_decay", embedding_weight_decay, least=0)
        if embedding_lr is not None:
            checked_number("model.module.embedding_lr", embedding_lr, above=0)
        ease_fusion = checked_number("model.module.ease_fusion", ease_fusion, least=0,
                                     note="(0 = rank by cosine alone)")
        super().__init__()
        # The optimizer partial is not saved: checkpoints must load with weights_only=True. The
        # full run config is saved instead (see on_save_checkpoint).
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.run_config: str | None = None
        self.net = net
        self.loss_config = loss if isinstance(loss, LossConfig) else LossConfig(**(loss or {}))
        self.optimizer_factory = optimizer or (lambda params: torch.optim.AdamW(params, lr=1e-3))
        self.encoder_lr = encoder_lr
        self.warmup_ratio = warmup_ratio
        self.decay = decay
        self.ks = sorted(int(k) for k in ks)
        self.peak_flops = peak_flops
        self.embedding_weight_decay = embedding_weight_decay
        self.embedding_lr = embedding_lr
        self.ease_fusion = ease_fusion
        self.rmse = torch.nn.ModuleDict({s: MeanSquaredError(squared=False) for s in EVAL_STAGES})
        self.mae = torch.nn.ModuleDict({s: MeanAbsoluteError() for s in EVAL_STAGES})
        self.register_buffer("item_popularity", torch.empty(0), persistent=False)
        self.catalog: Catalog | None = None
        self.teacher: EaseTeacher | None = None
        self._user_vectors: dict[int, torch.Tensor] = {}
        self._step_started = 0.0

    @property
    def encoder(self) -> TextEncoder | None:
        """The network's text encoder, or None (matrix factorisation has none)."""
        return getattr(self.net, "encoder", None)

    def attached_catalog(self) -> Catalog:
        """The catalog given to :meth:`attach`, or an error that says how to give it."""
        if self.catalog is None:
            raise RuntimeError("TwoTowerModule has no catalog: call attach(datamodule.catalog()) first (a Lightning "
                               "Trainer's setup does)")
        return self.catalog

    def fitted_teacher(self) -> EaseTeacher:
        """The EASE teacher that :meth:`attach` fitted, or an error that says when it is fitted."""
        if self.teacher is None:
            raise RuntimeError("TwoTowerModule has no EASE teacher: attach() fits one when "
                               "model.module.loss.distill_weight > 0 or model.module.ease_fusion > 0")
        return self.teacher

    # -- setup -----------------------------------------------------------------------------
    def attach(self, catalog: Catalog) -> None:
        """Cache catalog encodings and popularity; call before training or evaluation."""
        if self.catalog is None:
            self.catalog = catalog
            self.net.attach_catalog(catalog)
            counts = torch.from_numpy(catalog.item_train_counts).float() + 1.0
            self.item_popularity = counts / counts.sum()
            if self.loss_config.distill_weight > 0 or self.ease_fusion > 0:
                self.teacher = EaseTeacher(catalog.train_items, self.loss_config.teacher_l2)

    def setup(self, stage: str) -> None:
        if self._trainer is not None:
            refuse_weight_averaging(self.trainer.callbacks)  # type: ignore[attr-defined]  # set by Lightning's connector
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            # Lightning moves the module to its device only after setup: move it now, so that the
            # catalog's texts are encoded on the accelerator rather than on the CPU.
            self.to(self.trainer.strategy.root_device)
            self.attach(datamodule.catalog())

    def on_fit_start(self) -> None:
        # A fresh run starts predicting the training mean; a resumed one keeps its trained head.
        # (Lightning restores the step counter only after this hook: ask for the checkpoint instead.)
        if self.trainer.ckpt_path is None and self.catalog is not None:
            self.net.head.set_rating_prior(self.catalog.mean_rating)

    def on_train_start(self) -> None:
        # After Lightning restored a resumed run's optimizer and scheduler (after on_fit_start).
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, LambdaLR):
                resume_schedule(config.scheduler)

    # -- steps -----------------------------------------------------------------------------
    def pair_predictions(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """User vectors [B, d], the vectors of the batch's distinct items [U, d] (each encoded once),
        and each pair's predicted rating and like-logit [B]."""
        users = self.net.user_vectors(batch)
        items = self.net.item_vectors(batch.batch_items, batch.item_input_ids, batch.item_attention_mask)
        offset = self.net.user_offset(batch.history_ratings, batch.history_mask)
        rating, like = self.net.score(users, items[batch.item_slot], batch.item, offset)
        return users, items, rating, like

    def model_step(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        """Losses and predictions of one batch; each distinct item is encoded once."""
        config = self.loss_config
        users, items, rating, like_positive = self.pair_predictions(batch)
        negatives = items[batch.negative_slot]
        _, like_negative = self.net.score(users.unsqueeze(1).expand_as(negatives), negatives)
        needs_catalog = config.retrieval == "catalog_softmax" or config.distill_weight > 0
        catalog = self.catalog_view(batch) if needs_catalog else None
        losses = {
            "rating_loss": rating_loss(rating, batch.rating),
            "like_loss": like_loss(like_positive, like_negative, batch.rating, config.like_threshold),
            "retrieval_loss": self.retrieval_loss(batch, users, items, catalog),
        }
        losses["loss"] = (
            config.rating_weight * losses["rating_loss"]
            + config.like_weight * losses["like_loss"]
            + config.retrieval_weight * losses["retrieval_loss"]
        )
        if config.distill_weight > 0:
            view = catalog if catalog is not None else self.catalog_view(batch)  # made above: needs_catalog
            losses["distill_loss"] = self.distill_loss(users, view)
            losses["loss"] = losses["loss"] + config.distill_weight * losses["distill_loss"]
        return {**losses, "rating": rating, "users": users}

    def retrieval_loss(self, batch: PairBatch, users: torch.Tensor, items: torch.Tensor,
                       catalog: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """In-batch retrieval loss, or (``catalog_softmax``) a softmax over every catalog item,
        affordable when catalog vectors are cheap (a frozen or prefix-cached encoder); ``catalog``
        is this step's :meth:`catalog_view` when the caller has it."""
        config = self.loss_config
        if config.retrieval == "catalog_softmax":
            candidates, known = catalog if catalog is not None else self.catalog_view(batch)
            every_item = torch.arange(self.attached_catalog().num_items, device=batch.item.device)
            hits = known | (every_item[None, :] == batch.item[:, None])
            # Every item is a candidate, none is sampled: there is no sampling bias to correct.
            return in_batch_retrieval_loss(users, candidates, batch.item, hits, config.temperature, config.retrieval)
        log_q = self.candidate_log_q(batch) if config.logq_correction else None
        return in_batch_retrieval_loss(users, items, batch.item_slot, batch.user_has_batch_item, config.temperature,
                                       config.retrieval, log_q)

    def candidate_log_q(self, batch: PairBatch) -> torch.Tensor:
        """[U]: log of the probability that each batch item is one of the batch's candidates.

        A batch of B pairs draws its positives in proportion to popularity p_i and ``N`` uniform
        negatives per pair (each item with chance 1/I), and holds each distinct item once: item i
        is a candidate with probability 1 - (1 - p_i)^B (1 - 1/I)^(B N). Popularity alone
        over-penalises rare items, which mostly arrive as uniform negatives; the expected count
        B (p_i + N/I) over-penalises popular ones, which a batch holds once however often drawn.
        """
        pairs, negatives_per_pair = batch.negative_slot.shape
        popularity = self.item_popularity[batch.batch_items].double()
        log_absent = pairs * torch.log1p(-popularity)
        if negatives_per_pair:
            items = self.attached_catalog().num_items
            log_absent = log_absent + pairs * negatives_per_pair * math.log1p(-1.0 / items)
        return torch.log(-torch.expm1(log_absent)).float()

    def training_items_of(self, batch: PairBatch) -> torch.Tensor:
        """[B, num_items]: does the pair's user have the item in training?"""
        rows = self.attached_catalog().train_items.rows(batch.user.cpu().numpy())
        return torch.from_numpy(rows).to(batch.user.device)

    def catalog_view(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors [num_items, d] of every catalog item and the batch users' training rows
        [B, num_items]: what the catalog softmax and the distillation read, made once per step."""
        every_item = torch.arange(self.attached_catalog().num_items, device=batch.item.device)
        return self.net.item_vectors(every_item), self.training_items_of(batch)

    def distill_loss(self, users: torch.Tensor, catalog: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The EASE teacher's softmax (of per-user z-scores / ``distill_temperature``) over the
        user's non-training items as a soft target for the cosine softmax over the same items;
        ``catalog`` is this step's :meth:`catalog_view` (every catalog item is encoded: small catalogs)."""
        config = self.loss_config
        candidates, known = catalog
        student = users @ candidates.T / config.temperature
        teacher = standardised(self.fitted_teacher().scores(known), ~known) / config.distill_temperature
        return distillation_loss(student, teacher, ~known)

    def on_train_batch_start(self, batch: PairBatch, batch_idx: int) -> None:
        if self.encoder is not None:
            self.encoder.flops_counter = 0.0
        self._step_started = time.perf_counter()

    def training_step(self, batch: PairBatch, batch_idx: int) -> torch.Tensor:
        out = self.model_step(batch)
        for name in ("loss", "rating_loss", "like_loss", "retrieval_loss", "distill_loss"):
            if name in out:
                self.log(f"train/{name}", out[name], prog_bar=name == "loss", batch_size=len(batch))
        # Each epoch's mean too (over every process): a run of fewer steps than
        # trainer.log_every_n_steps logs no step.
        self.log("train/epoch_loss", out["loss"], on_step=False, on_epoch=True, batch_size=len(batch),
                 sync_dist=True)
        return out["loss"]

    def on_train_batch_end(self, outputs: object, batch: PairBatch, batch_idx: int) -> None:
        seconds = max(time.perf_counter() - self._step_started, 1e-9)
        self.log("train/samples_per_s", len(batch) / seconds, batch_size=len(batch))
        if self.encoder is not None:
            flops = self.encoder.flops_counter
            self.log("train/encoder_tflops", flops / seconds / 1e12, batch_size=len(batch))
            self.log("train/encoder_flop_utilisation", flops / seconds / self.peak_flops, batch_size=len(batch))

    @staticmethod
    def evaluation_metric_names(stage: str, ks: tuple[int, ...] | list[int]) -> list[str]:
        """The metrics that an evaluation of ``stage`` (``val`` or ``test``) logs with cut-offs ``ks``:
        what ``model.monitor`` can name."""
        ranking = [f"{name}@{k}" for k in sorted(int(k) for k in ks) for name in RANKING_METRICS]
        return [f"{stage}/{name}" for name in ("loss", "retrieval_loss", "rmse", "mae", *ranking, "ranked_users")]

    def _eval_step(self, batch: PairBatch, stage: str) -> None:
        out = self.model_step(batch)
        for error in self._rating_errors(stage):
            error.update(out["rating"], batch.rating)
        self.log(f"{stage}/loss", out["loss"], batch_size=len(batch), sync_dist=True)
        self.log(f"{stage}/retrieval_loss", out["retrieval_loss"], batch_size=len(batch), sync_dist=True)
        # A held-out pair's history does not depend on its item: one vector per user.
        for user, vector in zip(batch.user.tolist(), out["users"], strict=True):
            self._user_vectors[user] = vector

    def _rating_errors(self, stage: str) -> tuple[Metric, Metric]:
        """The RMSE and MAE accumulators of ``stage``."""
        return cast(Metric, self.rmse[stage]), cast(Metric, self.mae[stage])

    def validation_step(self, batch: PairBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: PairBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        # torchmetrics sums over every process before computing, and the ranking metrics are merged
        # below: every process holds the same values, which sync_dist keeps (their mean) and tells
        # Lightning about (it warned of unsynchronised epoch metrics for each of them).
        for name, error in zip(("rmse", "mae"), self._rating_errors(stage), strict=True):
            self.log(f"{stage}/{name}", error.compute(), sync_dist=True)
            error.reset()
        distributed = self.trainer.world_size > 1
        if (self._user_vectors or distributed) and not self.trainer.sanity_checking:
            metrics = self.rank(stage)
            if distributed:
                metrics = self._mean_over_processes(metrics)
            for name, value in metrics.items():
                self.log(f"{stage}/{name}", float(value), sync_dist=True)
        self._user_vectors = {}

    def _mean_over_processes(self, metrics: dict[str, float]) -> dict[str, float]:
        """Per-process means over disjoint users -> the mean over all users (each counted once)."""
        names = [k for k in metrics if k != "ranked_users"]
        count = float(metrics["ranked_users"])
        # On the module's device: NCCL reduces only CUDA tensors.
        sums = torch.tensor([metrics[k] * count for k in names] + [count], dtype=torch.float64, device=self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        total = float(sums[-1])
        result = {k: float(v) / total if total else 0.0 for k, v in zip(names, sums[:-1].tolist(), strict=True)}
        return {**result, "ranked_users": total}

    def rank(self, stage: str) -> dict[str, float]:
        """Ranking metrics of the users seen in this evaluation (by this process), over the whole catalog."""
        if not self._user_vectors:
            return ranking_metrics(torch.empty(0, max(self.ks), dtype=torch.long), np.empty(0, dtype=np.int64),
                                   self._held_out_items(stage), self.ks)
        users = np.array(sorted(self._user_vectors), dtype=np.int64)
        user_vectors = torch.stack([self._user_vectors[u] for u in users.tolist()]).float()
        catalog = self.attached_catalog()
        item_vectors = self.net.catalog_vectors(catalog.num_items).float()
        top = top_k_from_scores(
            lambda start, stop: self.ranking_scores(user_vectors[start:stop], users[start:stop], item_vectors),
            users, max(self.ks), catalog.train_items, RANKING_CHUNK, catalog.num_items)
        relevant = self._held_out_items(stage)
        return ranking_metrics(top, users, relevant, self.ks)

    def _held_out_items(self, stage: str) -> UserItemSets:
        datamodule = self.trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's connector
        return datamodule.held_out_items(stage)

    def ranking_scores(self, user_vectors: torch.Tensor, users: np.ndarray, item_vectors: torch.Tensor) -> torch.Tensor:
        """[len(users), num_items] scores that rank the catalog for ``users``: the cosine of user and
        item vectors or, with ``ease_fusion``, cosine z-scores + ``ease_fusion`` x the EASE teacher's
        z-scores (each over the user's unseen items; training items score 0, and rankings exclude them)."""
        cosines = user_vectors @ item_vectors.T
        if self.ease_fusion == 0:
            return cosines
        known = torch.from_numpy(self.attached_catalog().train_items.rows(users)).to(cosines.device)
        return fused_scores(cosines, self.fitted_teacher().scores(known), ~known, self.ease_fusion)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config

    # -- optimisation ----------------------------------------------------------------------
    def configure_optimizers(self) -> OptimizerLRScheduler:
        groups = parameter_groups(self, self.encoder, self.encoder_lr, self.embedding_weight_decay, self.embedding_lr)
        try:
            optimizer = self.optimizer_factory(groups)
        except ValueError as err:  # torch's "Invalid learning rate: -1" names no setting
            raise ValueError(f"model.module.optimizer: {err}") from err
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = LambdaLR(optimizer, warmup_then_decay(total, self.warmup_ratio, self.decay))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

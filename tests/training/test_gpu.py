"""Training and encoding on a CUDA GPU (skipped where there is none, as on CI's machines)."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import move_data_to_device

from recsys.models.text_encoder import TextEncoder
from tests.training.test_module import tiny_setup

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class CatalogDevices(pl.Callback):
    """Where the catalog's caches are when training starts (Lightning moves the module back to
    the CPU when fit ends)."""

    def on_train_start(self, trainer, module) -> None:
        net = module.net
        cache = net.item_tower.prefix_cache
        self.devices = {net.item_text.device.type, net.review_text.device.type, module.device.type,
                        *([cache.states.device.type] if cache is not None else [])}

    def on_validation_epoch_end(self, trainer, module) -> None:
        if module.net.review_encoder == "finetune":  # the reviews as the trained encoder embeds them
            self.devices.add(module.net.tuned_review_text.device.type)
            self.tuned_reviews = len(module.net.tuned_review_text)


@pytest.mark.parametrize(("trainable_layers", "review_encoder"),
                         [(0, "frozen"), (1, "frozen"), (-1, "frozen"), (1, "finetune")])
def test_catalog_is_encoded_on_the_gpu_and_training_lowers_the_loss(tiny_dataset, tmp_path, monkeypatch,
                                                                    trainable_layers, review_encoder):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=trainable_layers,
                            review_encoder=review_encoder)
    batch = dm.collator("train")(list(range(len(dm.data.pairs["train"]))))
    devices = CatalogDevices()
    fit = pl.Trainer(max_epochs=15, accelerator="gpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     callbacks=[devices])
    # The loss before training, on the CPU; setup() attaches the catalog again, on the GPU.
    module.attach(dm.catalog())
    module.eval()
    with torch.no_grad():
        before = float(module.model_step(batch)["loss"])
    module.catalog = None
    encoded_on = []
    pretrained = TextEncoder.forward_pretrained

    def recording(encoder, input_ids, attention_mask):
        encoded_on.append(input_ids.device.type)
        return pretrained(encoder, input_ids, attention_mask)

    monkeypatch.setattr(TextEncoder, "forward_pretrained", recording)
    fit.fit(module, dm)
    assert encoded_on and set(encoded_on) == {"cuda"}
    assert devices.devices == {"cuda"}
    if review_encoder == "finetune":
        assert devices.tuned_reviews == len(dm.data.train_reviews)
    module.eval()
    with torch.no_grad():
        after = float(module.model_step(move_data_to_device(batch, module.device))["loss"])
    assert after < 0.8 * before
    metrics = fit.test(module, dm, verbose=False)[0]
    assert 0.0 <= metrics["test/recall@5"] <= 1.0 and metrics["test/rmse"] < 4.0


def test_encoding_on_the_gpu_matches_the_cpu(tiny_dataset, tmp_path):
    files, data_dir = tiny_dataset
    dm, module = tiny_setup(files, data_dir, tmp_path, trainable_layers=1)
    tokens = dm.catalog().item_tokens
    encoder = module.net.encoder.eval()
    on_cpu = encoder.encode(tokens)
    on_gpu = encoder.cuda().encode(tokens)
    assert on_gpu.device.type == "cpu"
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=1e-4)
    tower = module.net.item_tower.cuda().eval()
    cold = tower.cold_vectors(tokens, on_gpu)
    assert cold.device.type == "cuda" and torch.allclose(cold.norm(dim=-1), torch.ones(len(tokens), device="cuda"))

"""The judges' domain check: synthetic images and their reconstructions pass, photos do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semcom.data.synthetic import SyntheticWorld
from semcom.experiments.receiver import describe_task
from semcom.models.domain import domain_features, fit_domain, load_domain_check
from semcom.models.zoo import file_sha256, load_pretrained, zoo_dir, zoo_entry
from semcom.schemes import create_scheme

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo_like(seed: int) -> torch.Tensor:
    """Smooth natural-looking colour fields (a stand-in for a photo: no flat shapes)."""
    small = np.random.default_rng(seed).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def check():
    info = zoo_entry("shape-classifier")["domain_check"]
    path = zoo_dir() / info["file"]
    assert file_sha256(path) == info["sha256"]
    return load_domain_check(path), load_pretrained("shape-classifier").eval()


def test_synthetic_images_and_reconstructions_pass_photos_are_flagged(check):
    dom, model = check
    world = SyntheticWorld()
    images = world.generate(world.split_seeds("test", 64)).images
    inside = [ok for _, ok in dom.check(model, images.float() / 255)]
    assert sum(inside) >= 60  # ~1 % of in-domain images are flagged
    jpeg = create_scheme("jpeg")
    rebuilt = torch.stack([jpeg.decompress(jpeg.compress(x, 900))["x_hat"] for x in images[:16]])
    assert sum(ok for _, ok in dom.check(model, rebuilt.float() / 255)) >= 15
    photos = torch.stack([_photo_like(s) for s in range(8)])
    assert not any(ok for _, ok in dom.check(model, photos.float() / 255))


def test_receiver_output_names_the_judge_and_the_domain():
    out = describe_task(_photo_like(0))
    assert out["classifier"]["name"] == "shape-classifier"
    assert "synthetic shapes world" in out["classifier"]["trained on"]
    assert "synthetic shapes world" in out["segmenter"]["trained on"]
    assert out["domain"]["in_domain"] is False and "FAR FROM" in out["domain"]["verdict"]
    world = SyntheticWorld()
    ok = describe_task(world.generate(world.split_seeds("test", 1)).images[0])
    assert ok["domain"]["in_domain"] is True


def test_fit_domain_threshold_is_the_heldout_quantile():
    model = load_pretrained("shape-classifier").eval()
    world = SyntheticWorld()
    fit = world.generate(world.split_seeds("train", 600)).images
    held = world.generate(world.split_seeds("val", 200)).images
    dom = fit_domain(model, fit, held)
    d = dom.distance(domain_features(model, held.float() / 255))
    assert float((d > dom.threshold).float().mean()) <= 0.01
    assert dom.mean.shape == (domain_features(model, held[:1].float() / 255).shape[1],)

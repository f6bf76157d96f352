"""GOS-VAE (``gos-vae-synth``): the task terms, the frozen segmenter and LPIPS, and
fine-tuning from a trained VQ-VAE."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from semcom.errors import InputError
from semcom.models.checkpoint import save_checkpoint
from semcom.train.recipes.gos_vae import GosVaeRecipe, load_segmenter, task_term

pytestmark = pytest.mark.usefixtures("one_thread")

VQ_KW = {"r": 2, "K": 64, "widths": [8], "code_dim": 8, "depth": 0}


def test_task_terms_are_their_definitions() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3)
    p, q = a.softmax(1), b.softmax(1)
    m = 0.5 * (p + q)
    kl = lambda u, v: (u * (u / v).log()).sum(1).mean()  # noqa: E731
    assert float(task_term("jsd", a, b)) == pytest.approx(
        float(0.5 * kl(p, m) + 0.5 * kl(q, m)), rel=1e-5
    )
    assert float(task_term("jsd", a, b)) == pytest.approx(float(task_term("jsd", b, a)), rel=1e-5)
    assert float(task_term("kld", a, b)) == pytest.approx(float(kl(p, q)), rel=1e-5)
    ce = torch.nn.functional.cross_entropy(b, a.argmax(1))
    assert float(task_term("ce", a, b)) == pytest.approx(float(ce), rel=1e-5)
    for kind in ("jsd", "kld"):
        assert float(task_term(kind, a, a)) == pytest.approx(0.0, abs=1e-6)
    far = torch.zeros(1, 2, 1, 1)
    far[0, 0] = 50.0
    near = far.flip(1)
    assert float(task_term("jsd", far, near)) == pytest.approx(math.log(2), rel=1e-4)  # bounded
    assert float(task_term("none", a, b)) == 0.0
    b.requires_grad_(True)
    task_term("jsd", a, b).backward()
    assert b.grad is not None and float(b.grad.abs().sum()) > 0
    with pytest.raises(InputError, match="task_loss"):
        task_term("mse", a, b)


def _segmenter(tmp_path: Path) -> Path:
    from semcom.models.registry import create_model

    torch.manual_seed(0)
    seg = create_model("shape-segmenter", widths=[4, 4, 4, 4])
    path = tmp_path / "seg.safetensors"
    save_checkpoint(seg, path, name="shape-segmenter")
    return path


def test_fine_tuning_from_a_vqvae_keeps_the_segmenter_frozen(tmp_path: Path) -> None:
    from semcom.models.registry import create_model
    from semcom.train.loop import fit

    seg = _segmenter(tmp_path)
    torch.manual_seed(1)
    vq = create_model("vqvae", **VQ_KW)
    vq_path = tmp_path / "vq.safetensors"
    save_checkpoint(vq, vq_path, name="vqvae")
    r = GosVaeRecipe(
        model_kw=VQ_KW, image_size=16, prior_images=8, segmenter=str(seg), init=str(vq_path)
    )
    built = r.build()
    assert torch.equal(
        built.state_dict()["quantizer.codebook"], vq.state_dict()["quantizer.codebook"]
    )
    res = fit(r, tmp_path / "run", steps=3, batch_size=4, eval_n=4, quiet=True, ckpt_every=0)
    assert r.segmenter is not None and not r.segmenter.training
    frozen = load_segmenter(str(seg))
    for (k, v), (_, w) in zip(
        frozen.state_dict().items(), r.segmenter.state_dict().items(), strict=True
    ):
        assert torch.equal(v, w), k  # the task model never moved (weights, running stats)
    assert "psnr" in res.metrics and res.model.prior.fitted
    # the task term drives the codec: a step changes the decoder
    before = {k: v.clone() for k, v in res.model.state_dict().items()}
    assert any(not torch.equal(before[k], v) for k, v in vq.state_dict().items() if k in before)


def test_bad_settings_are_input_errors(tmp_path: Path) -> None:
    from semcom.train.loop import fit

    def run(**kw):
        r = GosVaeRecipe(model_kw=VQ_KW, image_size=16, prior_images=0, **kw)
        fit(r, tmp_path / "x", steps=1, batch_size=2, eval_n=0, quiet=True, ckpt_every=0)

    with pytest.raises(InputError, match="task-loss"):
        run(task_loss="mse")
    with pytest.raises(InputError, match="perceptual"):
        run(perceptual="vgg")
    with pytest.raises(InputError, match="needs a task"):
        run(task_loss="none")
    with pytest.raises(InputError, match="does not segment"):
        run(segmenter="shape-classifier")
    vq_other = tmp_path / "other.safetensors"
    from semcom.models.registry import create_model

    save_checkpoint(create_model("vqvae", **{**VQ_KW, "K": 128}), vq_other, name="vqvae")
    with pytest.raises(InputError, match="--init"):
        run(segmenter=str(_segmenter(tmp_path)), init=str(vq_other))
    with pytest.raises(InputError):
        run(perceptual=f"lpips-alex={tmp_path}")  # no weights in that folder


MODELS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "models"


@pytest.mark.skipif(
    not (MODELS / "lpips_v0.1_alex_lin.safetensors").is_file(),
    reason=f"the shared LPIPS weights are not beside this checkout ({MODELS})",
)
def test_the_lpips_term_trains_through_the_frozen_network(tmp_path: Path) -> None:
    from semcom.train.loop import fit

    r = GosVaeRecipe(
        model_kw=VQ_KW, image_size=32, prior_images=0, task_loss="none",
        perceptual=f"lpips-alex={MODELS}",
    )  # fmt: skip
    fit(r, tmp_path, steps=2, batch_size=2, eval_n=0, quiet=True, ckpt_every=0)
    assert r.lpips is not None and r.segmenter is None
    assert not any(p.requires_grad for p in r.lpips.parameters())


def test_lpips_refuses_images_smaller_than_its_trunk_takes() -> None:
    from semcom.metrics.lpips_net import LPIPS

    with pytest.raises(InputError, match="at least 31"):
        LPIPS("alex")(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert LPIPS("vgg")(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)).shape == (1,)


def test_gos_vae_scheme_is_the_vqvae_codec_under_its_own_wire_id(tmp_path: Path) -> None:
    from semcom.data.synthetic import SyntheticWorld
    from semcom.models.registry import create_model
    from semcom.schemes import create_receiver, create_scheme

    torch.manual_seed(0)
    vq = create_model("vqvae", **VQ_KW).eval()
    path = tmp_path / "g.safetensors"
    save_checkpoint(vq, path, name="vqvae")
    sch = create_scheme(f"gos-vae[model={path},coding=adaptive]")
    assert sch.role == "proposed" and sch.name == "gos-vae"
    img = SyntheticWorld(size=16).generate(range(1)).images[0]
    msg = sch.compress(img, 1)
    from semcom.codec.container import unpack
    from semcom.errors import BitstreamError

    assert unpack(msg).scheme_name == "gosvae"
    plain = create_scheme(f"vqvae[model={path},coding=adaptive]")
    with pytest.raises(BitstreamError, match="gosvae"):
        plain.decompress(msg)  # a VQ-VAE receiver does not take GOS-VAE messages
    same = plain.decompress(plain.compress(img, 1)).x_hat
    assert torch.equal(same, sch.decompress(msg).x_hat)  # the same codec otherwise
    assert create_scheme("gos-vae").unavailable_reason() is None  # the zoo's
    assert type(create_receiver("vqvae")).__name__ == "VQVAEScheme"
    # `semcom receive` of a GOS-VAE message builds the GOS-VAE receiver (zoo model)
    assert type(create_receiver("gosvae")).__name__ == "GosVaeScheme"


def test_auto_coding_sends_the_shorter_of_prior_and_adaptive(tmp_path: Path) -> None:
    from semcom.data.synthetic import SyntheticWorld
    from semcom.models.registry import create_model
    from semcom.schemes import create_scheme

    torch.manual_seed(0)
    vq = create_model("vqvae", **VQ_KW).eval()
    imgs = SyntheticWorld(size=16).generate(range(4)).images
    with torch.no_grad():
        vq.fit_prior(vq.encode(imgs.float() / 255))
    schemes = {c: create_scheme("vqvae", model=vq, coding=c) for c in ("prior", "adaptive", "auto")}
    for img in imgs:
        sizes = {c: len(s.compress(img, 1)) for c, s in schemes.items()}
        assert sizes["auto"] == min(sizes["prior"], sizes["adaptive"])
        back = schemes["prior"].decompress(schemes["auto"].compress(img, 1))
        assert torch.equal(
            back.x_hat, schemes["prior"].decompress(schemes["prior"].compress(img, 1)).x_hat
        )

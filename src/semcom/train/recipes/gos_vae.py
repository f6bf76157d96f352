"""``gos-vae-synth``: GOS-VAE (Chao et al.), a VQ-VAE whose reconstruction is trained to
make a *frozen* segmenter answer on it as it answers on the original.

* model: a :class:`~semcom.models.vqvae.VQVAE` (``--arch vqvae`` / ``vqvae-res``), from
  scratch or (``init``, ``--init CKPT``) fine-tuned from a trained VQ-VAE -- the paper's
  best, and more stable at high compression;
* loss: ``perceptual_weight * LPIPS(x, x_hat) + task_weight * T(S, S_hat) +
  mse_weight * MSE + beta ||z_e - sg[e]||^2`` (the commitment term; the codebook
  follows by EMA), where ``S`` / ``S_hat`` are the frozen segmenter's per-pixel softmax
  on ``x`` / ``x_hat`` and the task term ``T`` (``task_loss``) is one of

  - ``jsd``: Jensen-Shannon divergence ``(KL(S||M) + KL(S_hat||M)) / 2``, ``M`` the mean
    of the two (the paper's), per pixel, averaged, in nats;
  - ``kld``: ``KL(S || S_hat)``;
  - ``ce``: cross-entropy of the segmenter's logits on ``x_hat`` against its own argmax
    on ``x`` (the teacher's hard labels: no ground truth is needed);
  - ``none``: no task term (LPIPS only, or MSE);

  gradients flow through the frozen segmenter and the frozen LPIPS network into
  ``x_hat``; their weights never change (batch norms in eval mode);
* ``perceptual``: ``lpips-vgg=DIR`` (the paper's; :mod:`semcom.metrics.lpips_net` on the
  shared weights), ``lpips-alex=DIR`` (the cheaper one: about 20x fewer FLOPs on 64 x
  64 images, what the CPU runs use -- results name which), or ``none``;
* ``segmenter``: the frozen task model -- a zoo name or semcom checkpoint (default the
  zoo's ``shape-segmenter``), or ``espnet=PATH`` for the authors' ESPNet CamVid file
  (:mod:`semcom.models.espnet`);
* after the last step the static index prior is fitted (as ``vqvae-synth``); the
  evaluation is ``vqvae-synth``'s (PSNR, codebook use, bits per index, bytes).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.train.recipes.base import Batch
from semcom.train.recipes.vqvae import VQVAERecipe

__all__ = ["TASK_LOSSES", "GosVaeRecipe", "load_segmenter", "task_term"]

#: The task terms ``task_loss`` takes (module docstring).
TASK_LOSSES = ("jsd", "kld", "ce", "none")


def load_segmenter(spec: str | nn.Module) -> nn.Module:
    """A frozen segmenter (eval mode, no parameter gradients) whose forward maps float
    ``(N, 3, H, W)`` in ``[0, 1]`` to logits ``(N, K, H', W')``: a module, ``espnet=PATH``
    (the authors' ESPNet CamVid checkpoint) or a zoo name / semcom checkpoint."""
    from semcom.train.patch import load_frozen

    if isinstance(spec, str) and spec.startswith("espnet="):
        from semcom.models.espnet import load_espnet

        model: nn.Module = load_espnet(spec.split("=", 1)[1])
    else:
        model = load_frozen(spec)
    if getattr(model, "task", None) != "segment":
        raise InputError(
            f"--segmenter {spec}: a {type(model).__name__} does not segment "
            "(a zoo/semcom segmenter, or espnet=PATH)"
        )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def task_term(kind: str, logits: Tensor, logits_hat: Tensor) -> Tensor:
    """The task term (scalar) between the frozen segmenter's logits on the original
    (``logits``, no gradient needed) and on the reconstruction (``logits_hat``), both
    float ``(N, K, H, W)``; ``kind`` in :data:`TASK_LOSSES` (module docstring)."""
    if kind == "none":
        return logits_hat.new_zeros(())
    logp_hat = F.log_softmax(logits_hat, 1)
    logp = F.log_softmax(logits.detach(), 1)
    if kind == "ce":
        return F.nll_loss(logp_hat, logp.argmax(1))
    if kind == "kld":
        return (logp.exp() * (logp - logp_hat)).sum(1).mean()
    if kind == "jsd":
        p, q = logp.exp(), logp_hat.exp()
        logm = torch.log((0.5 * (p + q)).clamp_min(1e-12))
        return 0.5 * ((p * (logp - logm)).sum(1) + (q * (logp_hat - logm)).sum(1)).mean()
    raise InputError(f"task_loss must be one of {', '.join(TASK_LOSSES)}, got {kind!r}")


class GosVaeRecipe(VQVAERecipe):
    """``gos-vae-synth`` (see the module docstring)."""

    name: ClassVar[str] = "gos-vae-synth"

    def __init__(
        self,
        *,
        segmenter: str = "shape-segmenter",
        task_loss: str = "jsd",
        task_weight: float = 1.0,
        perceptual: str = "none",
        lpips_weight: float = 1.0,
        mse_weight: float = 0.0,
        init: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.cfg.update(
            segmenter=str(segmenter), task_loss=str(task_loss), task_weight=float(task_weight),
            perceptual=str(perceptual or "none"), lpips_weight=float(lpips_weight),
            mse_weight=float(mse_weight), init=str(init or ""),
        )  # fmt: skip
        self.segmenter: nn.Module | None = None
        self.lpips: nn.Module | None = None

    def check(self) -> None:
        super().check()
        c = self.cfg
        if c["task_loss"] not in TASK_LOSSES:
            raise InputError(
                f"--task-loss must be one of {', '.join(TASK_LOSSES)}, got {c['task_loss']!r}"
            )
        for key in ("task_weight", "lpips_weight", "mse_weight"):
            if not 0.0 <= c[key] < float("inf"):
                raise InputError(f"--{key.replace('_', '-')} must be >= 0, got {c[key]}")
        p = c["perceptual"]
        if p != "none" and not p.startswith(("lpips-vgg=", "lpips-alex=")):
            raise InputError(
                f"--perceptual must be lpips-vgg=DIR, lpips-alex=DIR or none, got {p!r}"
            )
        active = (
            (c["task_loss"] != "none" and c["task_weight"] > 0)
            or (p != "none" and c["lpips_weight"] > 0)
            or c["mse_weight"] > 0
        )
        if not active:
            raise InputError("gos-vae-synth needs a task, perceptual or MSE term with weight > 0")

    def build(self) -> nn.Module:
        model = super().build()
        if self.cfg["init"]:
            from semcom.train.patch import init_from

            init_from(model, self.cfg["init"])
        return model

    def prepare(self) -> None:
        super().prepare()
        c = self.cfg
        if c["task_loss"] != "none" and c["task_weight"] > 0:
            self.segmenter = load_segmenter(c["segmenter"])
        if c["perceptual"] != "none" and c["lpips_weight"] > 0:
            from semcom.metrics.lpips_net import load_lpips

            net, folder = c["perceptual"].split("=", 1)
            lp = load_lpips(net.removeprefix("lpips-"), folder).eval()
            for p in lp.parameters():
                p.requires_grad_(False)
            self.lpips = lp

    def distortion(self, x: Tensor, x_hat: Tensor, batch: Batch) -> Tensor:
        c = self.cfg
        loss = x_hat.new_zeros(())
        if c["mse_weight"] > 0:
            loss = loss + c["mse_weight"] * F.mse_loss(x_hat, x)
        if self.lpips is not None:
            loss = loss + c["lpips_weight"] * self.lpips(x_hat, x).mean()
        if self.segmenter is not None:
            with torch.no_grad():
                s = self.segmenter(x)
            term = task_term(c["task_loss"], s, self.segmenter(x_hat))
            loss = loss + c["task_weight"] * term
        return loss

"""``balle-synth``: Ballé et al.'s factorized-prior / scale-hyperprior codecs
(:mod:`semcom.models.balle`) trained for rate and distortion -- the learned-codec baseline
of the GOS-VAE comparison.

* model: ``--arch balle-hyperprior`` (default) or ``balle-factorized``, ``--model-kw
  '{"N": 64, "M": 96}'``;
* loss: ``bpp + lmbda * 255^2 * D``, ``bpp`` the rate of the latents' likelihoods per
  pixel (uniform noise in place of rounding while training) and ``D`` the distortion of
  :class:`~semcom.train.recipes.gos_vae.GosVaeRecipe` -- so ``--task-loss none
  --mse-weight 1`` is CompressAI's MSE objective (``lmbda`` on its scale: 0.0018 ..
  0.0483), and ``--task-loss jsd --perceptual lpips-alex=DIR`` the task-aware variant
  with GOS-VAE's loss (JSD of the frozen segmenter + LPIPS);
* ``--init``: fine-tune from a trained codec of the same architecture and config;
* after the last step the coding tables are computed (``update()``, stored in the
  checkpoint);
* evaluation (:meth:`BalleRecipe.score`): ``psnr`` (dB), ``bpp_ideal`` (the likelihoods'
  rate), and the real messages of the ``balle`` scheme: ``bytes_per_image`` (header
  included) and ``bpp``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.recipes.base import Batch
from semcom.train.recipes.gos_vae import GosVaeRecipe

__all__ = ["BalleRecipe"]


class BalleRecipe(GosVaeRecipe):
    """``balle-synth`` (see the module docstring).

    Args:
        lmbda: the rate-distortion trade-off (``> 0``; CompressAI's scale).
        kw: :class:`~semcom.train.recipes.gos_vae.GosVaeRecipe`'s distortion settings
            (``task_loss``, ``perceptual``, ``mse_weight``, ...) and ``init``.
    """

    name: ClassVar[str] = "balle-synth"
    arch: ClassVar[str] = "balle-hyperprior"
    zoo_metrics = ("psnr", "bpp_ideal", "bytes_per_image", "bpp")

    def __init__(self, *, lmbda: float = 0.013, **kw: Any) -> None:
        super().__init__(**kw)
        self.cfg["lmbda"] = float(lmbda)

    def check(self) -> None:
        super().check()
        if not 0.0 < self.cfg["lmbda"] < float("inf"):
            raise InputError(f"--lmbda must be > 0, got {self.cfg['lmbda']}")

    def build(self) -> nn.Module:
        arch = self.cfg["arch"]
        if arch not in ("balle-factorized", "balle-hyperprior"):
            raise InputError(
                f"{self.name} trains balle-factorized or balle-hyperprior, not {arch!r}"
            )
        model = create_model(arch, **self.model_kw)
        if self.cfg["init"]:
            from semcom.train.patch import init_from

            init_from(model, self.cfg["init"])
        return model

    def objective(self, out: dict[str, Any], batch: Batch) -> Tensor:
        """``bpp + lmbda * 255^2 * distortion`` of one step."""
        from semcom.models.balle import rate_bits

        x = batch.x
        bpp = rate_bits(out) / (x.shape[0] * x.shape[-2] * x.shape[-1])
        return bpp + self.cfg["lmbda"] * 255.0**2 * self.distortion(x, out["x_hat"], batch)

    def finish(self, model: nn.Module, run: dict[str, Any]) -> None:
        """Compute the coding tables from the trained densities."""
        model.update()  # type: ignore[operator]

    @classmethod
    def score(
        cls,
        model: nn.Module,
        *,
        split: str = "val",
        n: int | None = 512,
        batch_size: int = 64,
        image_size: int = 64,
        data: Any = None,
        **frozen: Any,
    ) -> dict[str, Any]:
        """PSNR, the ideal and the real rate on ``n`` images of the synthetic ``split``
        (or of dataset ``data``)."""
        from semcom.data.convert import to_uint8
        from semcom.metrics import psnr
        from semcom.models.balle import rate_bits
        from semcom.schemes.balle import BalleScheme

        scheme = BalleScheme(model=model)
        psnr_sum, bits, size, count, pixels = 0.0, 0.0, 0, 0, 0
        stride = int(getattr(model, "stride", 1))
        for x in cls.eval_images(model, frozen, split, n, batch_size, image_size, data):
            h, w = x.shape[-2:]
            ph, pw = -h % stride, -w % stride  # as the scheme does: edge pixels repeated
            out = model(F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x)
            x_hat = out["x_hat"][..., :h, :w]
            psnr_sum += float(psnr(x_hat.clamp(0, 1), x).clamp(max=100).sum())
            bits += float(rate_bits(out))
            size += sum(len(m) for m in scheme.compress_batch(to_uint8(x), 1.0))
            count += len(x)
            pixels += x.shape[-2] * x.shape[-1] * len(x)
        res: dict[str, Any] = {"split": split if data is None else "dataset", "n": count}
        res.update(
            psnr=psnr_sum / max(count, 1),
            bpp_ideal=bits / max(pixels, 1),
            bytes_per_image=size / max(count, 1),
            bpp=8.0 * size / max(pixels, 1),
        )
        if not all(math.isfinite(v) for v in res.values() if isinstance(v, float)):
            raise InputError(f"{cls.name}: non-finite evaluation {res}")
        return res

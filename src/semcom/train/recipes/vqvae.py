"""``vqvae-synth``: a VQ-VAE image codec (:mod:`semcom.models.vqvae`) on the synthetic world.

* model: :class:`~semcom.models.vqvae.VQVAE` (``arch="vqvae"``, or ``"vqvae-res"``;
  ``--model-kw '{"r": 4, "K": 512}'``);
* loss (:meth:`VQVAERecipe.objective`): ``distortion(x, x_hat, batch)`` -- here the MSE
  to the clean image -- plus the quantiser's commitment loss ``beta ||z_e - sg[e]||^2``
  (the codebook follows the encoder by EMA, not by a loss term). A recipe that judges
  reconstructions differently (GOS-VAE: a perceptual term plus the JSD of a frozen
  segmenter's predictions) subclasses this one and overrides :meth:`~VQVAERecipe.distortion`
  (and :meth:`~semcom.train.recipes.base.Recipe.build` / ``frozen`` for its models);
* after the last step (:meth:`VQVAERecipe.finish`) the static prior is fitted on the
  indices of the first ``prior_images`` training images and stored in the model, so the
  final checkpoint carries it (``prior.probs``);
* evaluation (:meth:`VQVAERecipe.score`, on the same images): ``psnr`` (dB, of
  ``decode(encode(x))``), the codebook's ``codes_used`` / ``usage`` (fraction of the K
  codes the images use), ``index_entropy_bits`` (empirical entropy of their indices) and
  ``perplexity`` against ``log2_k``; ``prior_bits_per_index`` (ideal code length under
  the static prior), and the real messages of the ``vqvae`` scheme: ``bytes_per_image``
  (coding=prior, header included), ``bits_per_index`` (its ``idx`` section per index),
  ``bpp`` and ``bytes_fixed`` (coding=fixed, ``ceil(log2 K)`` bits per index); with a
  fitted context model (``--model-kw '{"context": 64}'``: :mod:`semcom.models.index_context`,
  fitted in :meth:`VQVAERecipe.finish` with the prior) also ``bytes_context``
  (coding=context).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models.registry import create_model
from semcom.train.recipes.base import Batch
from semcom.train.recipes.patch import PatchRecipe
from semcom.train.sources import CroppedSource, eval_batches

__all__ = ["VQVAERecipe"]

#: Images of the training set whose indices fit the static prior (default).
PRIOR_IMAGES = 2048
#: Optimiser steps of the context model's fit (a model built with ``context > 0``).
CONTEXT_STEPS = 1500


class VQVAERecipe(PatchRecipe):
    """``vqvae-synth`` (see the module docstring).

    Args:
        prior_images: training images whose indices fit the static prior after the last
            step (0: leave the prior uniform).
        prior_alpha: Laplace smoothing of the prior's counts (``> 0``).
        crop: train on random ``crop`` x ``crop`` windows of a real dataset's images
            (0: whole images; the synthetic world is always whole). The codec is fully
            convolutional: it codes whole images of any size that ``r`` divides.
        kw: the family's settings (:class:`~semcom.train.recipes.patch.PatchRecipe`);
            ``arch`` (``"vqvae"`` or ``"vqvae-res"``), ``model_kw``, ``dataset`` /
            ``data`` / ``eval_data`` and ``image_size`` are the ones that matter here.
    """

    name: ClassVar[str] = "vqvae-synth"
    arch: ClassVar[str] = "vqvae"
    task = "codec"
    metric = "psnr"
    weights: ClassVar[tuple[str, ...]] = ()
    depends: ClassVar[dict[str, str]] = {}
    zoo_metrics = (
        "psnr",
        "usage",
        "index_entropy_bits",
        "prior_bits_per_index",
        "bytes_per_image",
        "bytes_fixed",
        "bytes_context",  # a model with a fitted context prior only
    )

    def __init__(
        self,
        *,
        prior_images: int = PRIOR_IMAGES,
        prior_alpha: float = 1.0,
        context_steps: int = CONTEXT_STEPS,
        crop: int = 0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.cfg["crop"] = crop
        self.cfg["prior_images"] = prior_images
        self.cfg["prior_alpha"] = prior_alpha
        self.cfg["context_steps"] = context_steps

    # ------------------------------------------------------------------ setup
    def check(self) -> None:
        super().check()
        for key in ("prior_images", "context_steps"):
            n = self.cfg[key]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InputError(f"{key} must be an int >= 0, got {n!r}")
        crop = self.cfg["crop"]
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0 or crop % 8:
            raise InputError(f"crop must be 0 (whole images) or a multiple of 8, got {crop!r}")
        a = self.cfg["prior_alpha"]
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < float("inf"):
            raise InputError(f"prior_alpha must be a number > 0, got {a!r}")

    def build(self) -> nn.Module:
        model = create_model(self.cfg["arch"], **self.model_kw)
        if not all(hasattr(model, a) for a in ("encode", "decode", "fit_prior", "quantizer")):
            raise InputError(
                f"{self.name} trains a VQ-VAE (arch vqvae or vqvae-res), not {self.cfg['arch']!r}"
            )
        return model

    def source(self, seed: int) -> Any:
        """The training batches; with ``crop`` and a real dataset, random ``crop`` x
        ``crop`` windows of its images, mirrored at random when ``flip``
        (:class:`~semcom.train.sources.CroppedSource`)."""
        src = super().source(seed)
        if self.cfg["crop"] and self.data is not None:
            return CroppedSource(src, self.cfg["crop"], seed=seed, flip=self.cfg["flip"])
        return src

    # ------------------------------------------------------------------- steps
    def distortion(self, x: Tensor, x_hat: Tensor, batch: Batch) -> Tensor:
        """The reconstruction term (scalar): the MSE of ``x_hat`` to ``x`` (both float32
        ``(b, 3, H, W)`` in ``[0, 1]``). The hook a subclass replaces (GOS-VAE: perceptual
        + segmentation JSD); ``batch`` gives it the masks and labels."""
        return F.mse_loss(x_hat, x)

    def objective(self, out: dict[str, Tensor], batch: Batch) -> Tensor:
        """A step's loss from the model's forward ``out``: ``distortion + commit_loss``."""
        return self.distortion(batch.x, out["x_hat"], batch) + out["commit_loss"]

    def loss(self, net: nn.Module, model: nn.Module, batch: Batch) -> Tensor:
        return self.objective(net(batch.x), batch)

    def finish(self, model: nn.Module, run: dict[str, Any]) -> None:
        """Fit the static prior -- and the context model, when the VQ-VAE has one -- on
        the indices of the first ``prior_images`` training images (the run's first
        batches, in order); the context fit's figures go to ``run["context_fit"]``."""
        total = self.cfg["prior_images"]
        if not total:
            return
        source = self.source(int(run["seed"]))
        bs = 64
        was = model.training
        model.eval()
        with torch.no_grad():
            grids = [
                model.encode(source.batch(step, bs)[0][: total - step * bs])
                for step in range((total + bs - 1) // bs)
            ]
        model.train(was)
        model.fit_prior(grids, alpha=float(self.cfg["prior_alpha"]))
        if getattr(model, "context", None) is not None and self.cfg["context_steps"]:
            run["context_fit"] = model.fit_context(
                grids, steps=self.cfg["context_steps"], seed=int(run["seed"])
            )

    # -------------------------------------------------------------- evaluation
    @classmethod
    def eval_images(
        cls,
        model: nn.Module,
        frozen: dict[str, Any],
        split: str,
        n: int | None,
        batch_size: int,
        image_size: int,
        data: Any,
    ) -> Iterator[Tensor]:
        """The evaluation images float ``(b, 3, H, W)``, batch by batch, with ``model`` in
        eval mode and no gradients (its mode is restored afterwards); a codec recipe
        depends on no frozen models (InputError if ``frozen`` names any)."""
        if frozen:
            raise InputError(f"{cls.name} depends on no frozen models, got {sorted(frozen)}")
        was = model.training
        model.eval()
        try:
            for batch in eval_batches(split, n, batch_size, image_size, data):
                with torch.no_grad():
                    yield batch.x
        finally:
            model.train(was)

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
        """The figures of the module docstring, on ``n`` images of the synthetic ``split``
        (or of dataset ``data``)."""
        from semcom.codec.container import unpack
        from semcom.data.convert import to_uint8
        from semcom.metrics import psnr
        from semcom.models.vqvae import index_statistics
        from semcom.schemes.vqvae import VQVAEScheme

        k = int(model.num_codes)
        counts = torch.zeros(k, dtype=torch.int64)
        psnr_sum, count, pixels = 0.0, 0, 0
        sizes = {"prior": 0, "fixed": 0}
        ctx_model = getattr(model, "context", None)
        if ctx_model is not None and ctx_model.fitted:
            sizes["context"] = 0
        idx_bits = 0.0
        schemes = {c: VQVAEScheme(model=model, coding=c) for c in sizes}
        for x in cls.eval_images(model, frozen, split, n, batch_size, image_size, data):
            idx = model.encode(x)
            counts += model.index_counts(idx)
            x_hat = model.decode(idx)
            psnr_sum += float(psnr(x_hat, x).clamp(max=100.0).double().sum())
            images = to_uint8(x)
            for coding, sch in schemes.items():
                msgs = sch.compress_batch(images, 1.0)
                sizes[coding] += sum(len(m) for m in msgs)
                if coding == "prior":
                    idx_bits += sum(8.0 * len(unpack(m).sections["idx"]) for m in msgs)
            count += len(x)
            pixels += x.shape[-2] * x.shape[-1] * len(x)
        stats = index_statistics(counts)
        n_idx = max(int(counts.sum()), 1)
        logp = np.log2(model.prior.table())
        res: dict[str, Any] = {"split": split if data is None else "dataset", "n": count}
        res.update(
            psnr=psnr_sum / max(count, 1),
            codes_used=stats["codes_used"],
            usage=stats["usage"],
            index_entropy_bits=stats["entropy_bits"],
            perplexity=stats["perplexity"],
            log2_k=stats["log2_k"],
            prior_bits_per_index=float(-(counts.double().numpy() * logp).sum() / n_idx),
            bits_per_index=idx_bits / n_idx,
            bytes_per_image=sizes["prior"] / max(count, 1),
            bytes_fixed=sizes["fixed"] / max(count, 1),
            bpp=8.0 * sizes["prior"] / max(pixels, 1),
        )
        if "context" in sizes:
            res["bytes_context"] = sizes["context"] / max(count, 1)
        return res

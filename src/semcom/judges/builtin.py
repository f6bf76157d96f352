"""The built-in judges: pixel formulas, deep-feature distance, and semcom's torch models
(from the zoo or from a checkpoint file).

================  =============  ===========================================
name              yields         metrics
================  =============  ===========================================
psnr              distance       ``psnr`` (dB, capped at 100)
ssim              distance       ``ssim``
featdist[=PATH]   distance       ``featdist[<backbone>]`` (zoo classifier's or PATH's features)
shape-classifier  logits         ``accuracy`` (zoo)
shape-classifier-ft logits       ``accuracy_ft`` (zoo, fine-tuned on masked images)
shape-segmenter   segmentation   ``miou``, ``pixel_accuracy`` (zoo)
lpips-alex=DIR    distance       ``lpips-alex`` (our LPIPS; DIR holds the safetensors weights)
lpips-vgg=DIR     distance       ``lpips-vgg``
fd-alex=DIR       distribution   ``fd-alex``: Fréchet distance of AlexNet features (not FID)
classifier=PATH   logits         ``accuracy`` (a semcom classifier checkpoint)
segmenter=PATH    segmentation   ``miou``, ``pixel_accuracy`` (a semcom segmenter checkpoint)
espnet-camvid=PATH segmentation  ``miou``, ``pixel_accuracy`` (the authors' ESPNet CamVid .pth)
================  =============  ===========================================
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semcom.errors import InputError
from semcom.judges.base import Judge, register_judge

ZOO_INPUT_SIZE = 64  # the zoo's judges were trained on 64 x 64 images


# --------------------------------------------------------------------------- formulas
class PsnrJudge(Judge):
    """PSNR in dB of each reconstruction against its original (capped at 100 dB)."""

    yields = "distance"

    def __init__(self) -> None:
        super().__init__("psnr", ("psnr",), domain="any image (a formula)", source="formula")

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        from semcom.metrics import psnr

        return psnr(x, ref).clamp(max=100.0)


class SsimJudge(Judge):
    """Mean SSIM of each reconstruction against its original."""

    yields = "distance"

    def __init__(self) -> None:
        super().__init__("ssim", ("ssim",), domain="any image (a formula)", source="formula")

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        from semcom.metrics import ssim

        return ssim(x, ref)


class FeatureDistanceJudge(Judge):
    """Distance between a backbone's features of reconstruction and original."""

    yields = "distance"
    higher_is_better = False

    def __init__(self, backbone: Any, backbone_name: str, domain: str, source: str) -> None:
        from semcom.metrics import FeatureDistance

        self.featdist = FeatureDistance(backbone, name=backbone_name)
        super().__init__(self.featdist.name, (self.featdist.name,), domain=domain, source=source)

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.featdist(x, ref)


# --------------------------------------------------------------------------- models
class ModelJudge(Judge):
    """A frozen torch model judging ``x_hat`` (its output: logits or per-pixel scores)."""

    def __init__(self, model: nn.Module, name: str, metrics: tuple[str, ...], **kw: Any) -> None:
        super().__init__(name, metrics, **kw)
        self.model = model.eval()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        out = self.model(self.fit_size(x))
        return out["logits"] if isinstance(out, dict) else out

    def _class_name(self, c: int) -> str:
        names = self.class_names
        return names[c] if names is not None and 0 <= c < len(names) else f"class {c}"


class ClassifierJudge(ModelJudge):
    """A classifier: ``logits (B, C)`` -> accuracy."""

    yields = "logits"

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        x = self.fit_size(x)
        probs = self(x, x).softmax(1)[0]
        top = int(probs.argmax())
        out: dict[str, Any] = {
            "class": self._class_name(top),
            "confidence": round(float(probs[top]), 4),
            "classifier": self.info(),
        }
        check = domain_check(self.model, x)
        if check is not None:
            out["domain"] = check
        return out


class SegmenterJudge(ModelJudge):
    """A segmenter: ``scores (B, K, H, W)`` (channel 0 background) -> mIoU, pixel accuracy.
    Scores of a judge trained at another size come back at the image's size (bilinear)."""

    yields = "segmentation"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        out = super().__call__(x, ref)
        if tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
            import torch.nn.functional as F

            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        x = self.fit_size(x)
        seg = self(x, x).argmax(1)[0]
        names = self.class_names  # the zoo's: shape names; class c + 1 is shape c
        counts = torch.bincount(seg.flatten(), minlength=len(names) + 1 if names else 0)
        shares = {}
        for c in range(1, len(counts)):
            if counts[c] > 0:
                label = names[c - 1] if names is not None and c - 1 < len(names) else f"class {c}"
                shares[label] = round(float(counts[c]) / seg.numel(), 4)
        return {"segmentation (fraction of pixels)": shares, "segmenter": self.info()}


# --------------------------------------------------------------------------- domain check
@lru_cache(maxsize=8)
def _verified_domain_check(path: str, mtime_ns: int, size: int, sha256: str) -> Any:
    """The domain check stored at ``path`` if its sha256 is ``sha256``, else None
    (cached by path, modification time and size: read and hashed once per process)."""
    from semcom.models.domain import load_domain_check
    from semcom.models.zoo import file_sha256

    if file_sha256(path) != sha256:
        return None
    return load_domain_check(path)


def domain_check(model: Any, x: torch.Tensor) -> dict[str, Any] | None:
    """The zoo model's domain check (:mod:`semcom.models.domain`) on float ``(1, 3, H, W)``,
    or None when ``model`` is not a zoo model with one."""
    from semcom.models.zoo import zoo_dir, zoo_entry

    name = getattr(model, "zoo_name", None)
    info = zoo_entry(name).get("domain_check") if name else None
    if not info:
        return None
    path = zoo_dir() / info["file"]
    if not path.is_file():
        return None
    st = path.stat()
    dom = _verified_domain_check(str(path), st.st_mtime_ns, st.st_size, info["sha256"])
    if dom is None:
        return None
    ((distance, inside),) = dom.check(model, x)
    return {
        "distance": round(distance, 3),
        "threshold": float(info["threshold"]),
        "in_domain": inside,
        "verdict": "inside the judge's training domain"
        if inside
        else "FAR FROM the judge's training domain: its answers say little about this image",
    }


# --------------------------------------------------------------------------- factories
def _no_path(name: str, path: str | None) -> None:
    if path is not None:
        raise InputError(f"judge {name} takes no file (got {name}={path})")


@lru_cache(maxsize=8)
def _zoo_model(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """A frozen zoo model and its entry, loaded (and verified) once per process: the
    feature distance and the classifier judge share ``shape-classifier``."""
    from semcom.models.zoo import list_zoo, load_pretrained, zoo_entry

    if name not in set(list_zoo()):
        raise InputError(f"judge {name}: the zoo has no weights for it here")
    return load_pretrained(name).eval(), zoo_entry(name)


def _checkpoint_model(kind: str, path: str | None, task: str) -> nn.Module:
    """The model in checkpoint ``path``, refused unless its ``task`` is ``task`` (a model
    that records none, e.g. a ViT classifier, is taken at its word)."""
    from semcom.models.checkpoint import load_checkpoint

    if path is None:
        raise InputError(f"judge {kind} needs a checkpoint file: --judge {kind}=PATH")
    if not Path(path).is_file():
        raise InputError(f"judge {kind}: no such file: {path}")
    model = load_checkpoint(path)[0].eval()
    got = getattr(model, "task", None)
    if got is not None and got != task:
        raise InputError(f"judge {kind}: {path} holds a {got!r} model, not a {task!r} one")
    return model


def _zoo_judge(cls: type[ModelJudge], name: str, metrics: tuple[str, ...]) -> ModelJudge:
    from semcom.data.synthetic import CLASS_NAMES

    model, entry = _zoo_model(name)
    return cls(
        model,
        name,
        metrics,
        domain=entry.get("domain", "not recorded"),
        source="zoo",
        input_size=ZOO_INPUT_SIZE,
        class_names=CLASS_NAMES,
    )


@register_judge("psnr", "PSNR (dB) against the original image")
def _psnr(path: str | None) -> Judge:
    _no_path("psnr", path)
    return PsnrJudge()


@register_judge("ssim", "SSIM against the original image")
def _ssim(path: str | None) -> Judge:
    _no_path("ssim", path)
    return SsimJudge()


@register_judge(
    "featdist", "deep-feature distance on the zoo classifier's features (=PATH: a checkpoint's)"
)
def _featdist(path: str | None) -> Judge:
    if path is None:
        model, entry = _zoo_model("shape-classifier")
        return FeatureDistanceJudge(
            model.features, "semcom-classifier", entry.get("domain", "not recorded"), "zoo"
        )
    model = _checkpoint_model("featdist", path, "classify")
    if not hasattr(model, "features"):
        raise InputError(f"judge featdist: {path} has no feature backbone")
    return FeatureDistanceJudge(model.features, Path(path).stem, "not recorded", path)


@register_judge("shape-classifier", "the zoo's synthetic-world classifier: accuracy")
def _shape_classifier(path: str | None) -> Judge:
    _no_path("shape-classifier", path)
    return _zoo_judge(ClassifierJudge, "shape-classifier", ("accuracy",))


@register_judge(
    "shape-classifier-ft", "the zoo's classifier fine-tuned on masked images: accuracy_ft"
)
def _shape_classifier_ft(path: str | None) -> Judge:
    _no_path("shape-classifier-ft", path)
    return _zoo_judge(ClassifierJudge, "shape-classifier-ft", ("accuracy_ft",))


@register_judge("shape-segmenter", "the zoo's synthetic-world segmenter: miou, pixel_accuracy")
def _shape_segmenter(path: str | None) -> Judge:
    _no_path("shape-segmenter", path)
    return _zoo_judge(SegmenterJudge, "shape-segmenter", ("miou", "pixel_accuracy"))


@register_judge("classifier", "a semcom classifier checkpoint (=PATH): accuracy")
def _classifier(path: str | None) -> Judge:
    model = _checkpoint_model("classifier", path, "classify")
    return ClassifierJudge(model, f"classifier[{path}]", ("accuracy",), source=str(path))


@register_judge("segmenter", "a semcom segmenter checkpoint (=PATH): miou, pixel_accuracy")
def _segmenter(path: str | None) -> Judge:
    model = _checkpoint_model("segmenter", path, "segment")
    return SegmenterJudge(model, f"segmenter[{path}]", ("miou", "pixel_accuracy"), source=str(path))


class EspnetJudge(SegmenterJudge):
    """ESPNet on CamVid (the authors' checkpoint, :mod:`semcom.models.espnet`): scores
    ``(B, 12, H, W)`` of CamVid's 11 classes and void; predictions are CamVid class ids
    among the 11 (void, the checkpoint's channel 11, is never predicted: ``class_map``)."""

    def __init__(self, path: str) -> None:
        from semcom.data.folders import CAMVID_CLASSES
        from semcom.models.espnet import load_espnet

        model = load_espnet(path)
        k = int(model.num_classes)
        names = list(CAMVID_CLASSES)
        if k < len(names):
            raise InputError(
                f"judge espnet-camvid: {path} has {k} classes, CamVid needs {len(names)}"
            )
        cmap = list(range(len(names))) + [-1] * (k - len(names))
        super().__init__(
            model, "espnet-camvid", ("miou", "pixel_accuracy"), domain="CamVid street scenes",
            source=str(path), class_names=names, class_map=cmap,
        )  # fmt: skip

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        ph, pw = -h % 8, -w % 8  # ESPNet takes multiples of 8: pad (replicate), then crop
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        return self.model(xp)[..., :h, :w]

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        ids = self.predict(x[:1], x[:1])[0]
        counts = torch.bincount(ids.flatten(), minlength=len(self.class_names or ()))
        names = self.class_names or []
        shares = {
            names[c]: round(float(counts[c]) / ids.numel(), 4)
            for c in torch.argsort(counts, descending=True).tolist()
            if counts[c] > 0
        }
        return {"segmentation (fraction of pixels)": shares, "segmenter": self.info()}


@register_judge(
    "espnet-camvid",
    "ESPNet (Mehta et al. 2018) on CamVid (=PATH: the authors' espnet_p2_q8_camvid.pth): "
    "miou, pixel_accuracy",
)
def _espnet_camvid(path: str | None) -> Judge:
    if path is None:
        raise InputError(
            "judge espnet-camvid needs the checkpoint: "
            "--judge espnet-camvid=espnet_p2_q8_camvid.pth"
        )
    return EspnetJudge(path)


class LpipsJudge(Judge):
    """LPIPS (our own network, :mod:`semcom.metrics.lpips_net`) against the original."""

    yields = "distance"
    higher_is_better = False

    def __init__(self, net: str, folder: str) -> None:
        from semcom.metrics.lpips_net import load_lpips

        self.lpips = load_lpips(net, folder)
        super().__init__(
            f"lpips-{net}", (f"lpips-{net}",), domain="ImageNet features, BAPPS-trained heads",
            source=folder,
        )  # fmt: skip

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.lpips(x, ref)


def _lpips_factory(net: str) -> Any:
    def make(path: str | None) -> Judge:
        if path is None:
            raise InputError(
                f"judge lpips-{net} needs the folder of its weights: --judge lpips-{net}=DIR"
            )
        return LpipsJudge(net, path)

    return make


register_judge("lpips-alex", "LPIPS, AlexNet (=DIR: the folder of its safetensors weights)")(
    _lpips_factory("alex")
)
register_judge("lpips-vgg", "LPIPS, VGG16 (=DIR: the folder of its safetensors weights)")(
    _lpips_factory("vgg")
)


class FrechetAlexJudge(Judge):
    """A Fréchet distance between the reconstructions' and the originals' features, on
    AlexNet's last convolutional stage (the ImageNet-trained trunk LPIPS-Alex uses, its
    input scaling included): conv5 after its ReLU, averaged over the image to 256
    numbers per image. The formula is FID's (:mod:`semcom.metrics.frechet`); the network
    is not FID's Inception-v3, so the figure is named ``fd-alex`` and is comparable only
    with itself. It compares sets: with few images (fewer than 256) the covariances are
    rank-deficient and the value is biased upwards, so compare schemes on the same
    images and count."""

    yields = "distribution"
    higher_is_better = False

    def __init__(self, folder: str) -> None:
        from semcom.metrics.lpips_net import load_lpips

        self.lpips = load_lpips("alex", folder)
        super().__init__(
            "fd-alex", ("fd-alex",), domain="ImageNet features (AlexNet conv5, 256-d)",
            source=folder,
        )  # fmt: skip

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        from semcom.metrics.lpips_net import MIN_SIDE

        if min(x.shape[-2:]) < MIN_SIDE["alex"]:
            raise InputError(
                f"fd-alex needs images of at least {MIN_SIDE['alex']} pixels a side, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.lpips._taps(x)[-1].mean((2, 3)).double()


@register_judge(
    "fd-alex",
    "Fréchet distance of AlexNet conv5 features, reconstructions vs originals over the "
    "set (=DIR: the LPIPS weights' folder; not the Inception FID)",
)
def _fd_alex(path: str | None) -> Judge:
    if path is None:
        raise InputError(
            "judge fd-alex needs the folder of the AlexNet weights: --judge fd-alex=DIR"
        )
    return FrechetAlexJudge(path)


#: The judges the synthetic world is scored with (each when its zoo weights are here).
ZOO_JUDGES: tuple[str, ...] = (
    "featdist",
    "shape-classifier",
    "shape-classifier-ft",
    "shape-segmenter",
)
#: Always on when the receiver reconstructs (formulas: no model, any image).
FORMULA_JUDGES: tuple[str, ...] = ("psnr", "ssim")

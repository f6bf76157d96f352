"""Judges that run TFLite files (optional extra ``litert``): an image classifier
(``tflite-classifier``, e.g. the quantised ImageNet MobileNetV2) and a segmenter
(``tflite-segmenter``, e.g. the Cityscapes DeepLab), mapped onto the dataset's labels.

Spec: ``NAME=MODEL.tflite[,synsets=FILE][,labels=FILE][,map=FILE]``:

- ``synsets``: the class ids, one per line, that :meth:`Judge.bind` matches against the
  dataset's (ImageNet wnids for a classifier; for 1000 ids and 1001 outputs, output 0 is
  ``background``). Default: ``imagenet_synsets.txt`` beside the model, if there.
- ``labels``: class names, one per line (a 1001-line list for 1001 outputs, or one
  fewer). Default: ``imagenet_labels.txt`` (classifier) or ``cityscapes_labels.txt``
  (segmenter) beside the model. A segmenter's names are also its class ids.
- ``map``: a JSON object ``{judge class: dataset class}`` used instead of the matching
  rule (equal ids, or a table of :mod:`semcom.data.classmaps`).

Images reach the model as :mod:`semcom.models.tflite` feeds them: resized (bilinear) to
the model's input size, rounded to uint8 (raw pixels). The classifier ranks by the
pre-softmax logits when the graph has a softmax (fewer ties than the uint8
probabilities; argmax takes the first of equal scores), the segmenter's argmax ids come
back at the image's size (nearest, pixel centres).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from semcom.errors import InputError
from semcom.judges.base import Judge, register_judge

__all__ = ["TFLiteClassifierJudge", "TFLiteSegmenterJudge", "parse_tflite_spec"]

_OPTIONS = ("synsets", "labels", "map")


def parse_tflite_spec(name: str, spec: str | None) -> tuple[Path, dict[str, Path]]:
    """``MODEL[,key=FILE...]`` -> ``(model path, {key: path})``; InputError if malformed."""
    if spec is None:
        raise InputError(f"judge {name} needs its model file: --judge {name}=MODEL.tflite")
    model, *rest = [p.strip() for p in spec.split(",")]
    if not model:
        raise InputError(f"judge {name}: empty model path in {spec!r}")
    opts: dict[str, Path] = {}
    for item in rest:
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in _OPTIONS or not value.strip():
            raise InputError(
                f"judge {name}: bad option {item!r}; options are "
                + ", ".join(f"{k}=FILE" for k in _OPTIONS)
            )
        opts[key.strip()] = Path(value.strip()).expanduser()
    return Path(model).expanduser(), opts


def _beside(model: Path, given: Path | None, default: str) -> Path | None:
    if given is not None:
        return given
    p = model.parent / default
    return p if p.is_file() else None


def _to_uint8_nhwc(x: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """float ``(B, 3, H, W)`` in [0, 1] -> uint8 ``(B, h, w, 3)`` at ``size`` (bilinear)."""
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    q = (x.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return q.permute(0, 2, 3, 1).contiguous().numpy()


class _TFLiteJudge(Judge):
    """Shared set-up: the model, its class names (read once) and ids, the user's mapping."""

    #: the class-name list looked for beside the model when ``labels=`` is not given
    labels_file: ClassVar[str]

    def __init__(
        self, name: str, metrics: tuple[str, ...], model: Any, opts: dict[str, Path], domain: str
    ) -> None:
        from semcom.data.classmaps import read_class_list, read_mapping_file

        self.model = model
        path = _beside(model.path, opts.get("labels"), self.labels_file)
        labels = None if path is None else read_class_list(path, f"judge {name} labels")
        self.num_outputs = self._num_outputs(name, labels)
        h, w = model.input_size
        super().__init__(
            name, metrics, domain=domain, source=str(model.path),
            input_size=h if h == w else None,
        )  # fmt: skip
        self.class_names = self._fit(labels, path, "labels")
        self.class_ids = self._ids(opts)
        if "map" in opts:
            self.mapping = read_mapping_file(opts["map"])

    def _num_outputs(self, name: str, labels: list[str] | None) -> int:
        raise NotImplementedError

    def _ids(self, opts: dict[str, Path]) -> list[str] | None:
        raise NotImplementedError

    def _fit(self, lines: list[str] | None, path: Path | None, what: str) -> list[str] | None:
        """A class list made one per output (``background`` first when one short)."""
        if lines is None:
            return None
        n = self.num_outputs
        if len(lines) == n - 1:
            lines = ["background", *lines]
        if len(lines) != n:
            raise InputError(f"{what} {path}: {len(lines)} lines for a model with {n} classes")
        return lines

    def _name_of(self, c: int) -> str:
        names = self.class_names
        return names[c] if names is not None and 0 <= c < len(names) else f"class {c}"


class TFLiteClassifierJudge(_TFLiteJudge):
    """A TFLite image classifier (one ``(1, C)`` output): logits ``(B, C)`` -> accuracy."""

    yields = "logits"
    labels_file = "imagenet_labels.txt"

    def __init__(self, model: Any, opts: dict[str, Path], name: str = "tflite-classifier"):
        if len(model.output_shape) != 1 or model.output_shape[0] < 2:
            raise InputError(
                f"judge {name}: {model.path.name} outputs {list(model.output_shape)}, not "
                "class scores (1, C)"
            )
        super().__init__(name, ("accuracy",), model, opts, "ImageNet-1k photos (224 x 224)")

    def _num_outputs(self, name: str, labels: list[str] | None) -> int:
        return int(self.model.output_shape[0])

    def _ids(self, opts: dict[str, Path]) -> list[str] | None:
        from semcom.data.classmaps import read_class_list

        path = _beside(self.model.path, opts.get("synsets"), "imagenet_synsets.txt")
        lines = None if path is None else read_class_list(path, f"judge {self.name} synsets")
        return self._fit(lines, path, "synsets")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        m = self.model
        out = m.run(_to_uint8_nhwc(x, m.input_size), logits=m.has_logits)
        return torch.from_numpy(out).float()

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        scores = self(x[:1], x[:1])[0]
        # the softmax of the dequantised logits (finer than the uint8 output), or the output
        probs = scores.softmax(0) if self.model.has_logits else scores
        top = int(probs.argmax())
        out: dict[str, Any] = {
            "class": self._name_of(top),
            "confidence": round(float(probs[top]), 4),
            "classifier": self.info(),
        }
        if self.class_ids is not None:
            out["class id"] = self.class_ids[top]
        return out


class TFLiteSegmenterJudge(_TFLiteJudge):
    """A TFLite segmenter whose output is per-pixel class ids ``(1, h, w)`` (an ArgMax) or
    scores ``(1, h, w, K)``: dataset class ids ``(B, H, W)`` -> mIoU, pixel accuracy."""

    yields = "segmentation"
    labels_file = "cityscapes_labels.txt"

    def __init__(self, model: Any, opts: dict[str, Path], name: str = "tflite-segmenter"):
        shape = model.output_shape
        if len(shape) not in (2, 3):
            raise InputError(
                f"judge {name}: {model.path.name} outputs {list(shape)}, not a label map "
                "(1, h, w) or scores (1, h, w, K)"
            )
        super().__init__(name, ("miou", "pixel_accuracy"), model, opts, "Cityscapes street scenes")

    def _num_outputs(self, name: str, labels: list[str] | None) -> int:
        shape = self.model.output_shape
        if len(shape) == 3:
            return int(shape[-1])
        if labels is None:
            raise InputError(
                f"judge {name}: {self.model.path.name} gives class ids only; name its "
                "classes with labels=FILE"
            )
        return len(labels)

    def _ids(self, opts: dict[str, Path]) -> list[str] | None:
        return self.class_names  # a segmenter's class names are its ids

    @torch.no_grad()
    def scores_or_ids(self, x: torch.Tensor) -> torch.Tensor:
        """The model's class ids int64 ``(B, H, W)`` at ``x``'s size (judge classes)."""
        m = self.model
        out = torch.from_numpy(m.run(_to_uint8_nhwc(x, m.input_size)))
        if out.ndim == 4:  # scores (B, h, w, K)
            out = out.argmax(-1)
        out = out.long().clamp_(0, self.num_outputs - 1)
        if tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
            out = F.interpolate(out[:, None].float(), size=x.shape[-2:], mode="nearest-exact")
            out = out[:, 0].long()
        return out

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """One-hot scores float ``(B, K, H, W)`` of the judge's ``K`` classes."""
        ids = self.scores_or_ids(x)
        return F.one_hot(ids, self.num_outputs).permute(0, 3, 1, 2).float()

    def predict(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        ids = self.scores_or_ids(x)
        return ids if self.class_map is None else self.class_map[ids]

    @torch.no_grad()
    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        ids = self.scores_or_ids(x[:1])[0]
        counts = torch.bincount(ids.flatten(), minlength=self.num_outputs)
        shares = {
            self._name_of(c): round(float(counts[c]) / ids.numel(), 4)
            for c in torch.argsort(counts, descending=True).tolist()
            if counts[c] > 0
        }
        return {"segmentation (fraction of pixels)": shares, "segmenter": self.info()}


def _open(name: str, spec: str | None) -> tuple[Any, dict[str, Path]]:
    from semcom.models.tflite import TFLiteModel

    path, opts = parse_tflite_spec(name, spec)
    return TFLiteModel(path), opts


@register_judge(
    "tflite-classifier",
    "a TFLite classifier (=MODEL[,synsets=F][,labels=F][,map=F]; needs semcom[litert])",
)
def _tflite_classifier(spec: str | None) -> Judge:
    model, opts = _open("tflite-classifier", spec)
    return TFLiteClassifierJudge(model, opts)


@register_judge(
    "tflite-segmenter",
    "a TFLite segmenter (=MODEL[,labels=F][,map=F]; needs semcom[litert])",
)
def _tflite_segmenter(spec: str | None) -> Judge:
    model, opts = _open("tflite-segmenter", spec)
    return TFLiteSegmenterJudge(model, opts)

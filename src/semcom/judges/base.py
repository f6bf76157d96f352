"""The judge contract: what turns a receiver's reconstruction into task metrics.

A judge is a frozen model or a formula that looks at the receiver's ``x_hat`` and
yields one of three things, which :mod:`semcom.judges.scoring` turns into metrics:

- ``"logits"``: class scores ``float (B, C)`` -> top-1 accuracy against the labels;
- ``"segmentation"``: class scores per pixel ``float (B, K, H, W)`` -> mIoU and pixel
  accuracy against the masks;
- ``"distance"``: one number per image ``float (B,)`` against the original image (PSNR,
  SSIM, deep-feature distance), averaged;
- ``"distribution"``: a feature vector per image ``float (B, D)``, of the reconstructions
  and of the originals alike; the metric compares the two *sets* (a Fréchet distance), so
  it exists for an evaluation set, never for one image.

Judges are registered by name (``register_judge``) and built from a spec
``NAME`` or ``NAME=PATH`` (``create_judge``), the form ``--judge`` takes. A judge whose
label set is not the dataset's carries a ``class_map``: for each of the judge's classes
the dataset class it means, or -1; predictions are then restricted to mapped classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from semcom.errors import InputError

YIELDS: tuple[str, ...] = ("logits", "segmentation", "distance", "distribution")


class Judge:
    """Base class of every judge.

    Attributes:
        name: what the judge is called in results (registry name or the spec's name).
        yields: one of :data:`YIELDS`.
        metrics: the metric names it gives (``("accuracy",)``, ``("miou",
            "pixel_accuracy")``, ``("psnr",)``, ...).
        domain: the data it was trained on, in words ("not recorded" when unknown).
        source: where it comes from (``"zoo"``, a file path, ``"formula"``).
        consumes: the receiver output it reads (``"x_hat"``).
        higher_is_better: False for a distance whose smaller values are better.
        input_size: side length it was trained at (images of another size are resized,
            bilinear), or None for any size.
        class_names: names of its classes (index = class id), or None.
        class_map: int64 ``(C,)``: the dataset class each of its classes means (-1: none),
            or None when its classes are the dataset's.
        class_ids: ids of its classes for :meth:`bind` to match against a dataset's
            (ImageNet wnids, Cityscapes names), or None when it has none to match.
    """

    yields: ClassVar[str] = "distance"
    consumes: ClassVar[str] = "x_hat"
    #: For ``distance`` judges: False when a smaller value is better (a distance).
    higher_is_better: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        metrics: Sequence[str],
        *,
        domain: str = "not recorded",
        source: str = "",
        input_size: int | None = None,
        class_names: Sequence[str] | None = None,
        class_map: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        if self.yields not in YIELDS:
            raise TypeError(f"{type(self).__name__}.yields must be one of {YIELDS}")
        self.name = name
        self.metrics = tuple(metrics)
        self.domain = domain
        self.source = source
        self.input_size = input_size
        self.class_names = list(class_names) if class_names is not None else None
        self.class_map = None if class_map is None else torch.as_tensor(class_map).long()
        self.class_ids: list[str] | None = None
        #: a judge-class -> dataset-class table given by the user (``map=FILE``)
        self.mapping: dict[str, str] | None = None

    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(B, 3, H, W)`` in ``[0, 1]`` (the receiver's output), ``ref`` the
        originals, same shape -> logits ``(B, C)``, scores ``(B, K, H, W)``, ``(B,)``, or
        a ``distribution`` judge's features of ``x`` ``(B, D)``."""
        raise NotImplementedError

    def predict(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Dataset class ids of ``x``: int64 ``(B,)`` for ``logits`` judges, ``(B, H, W)``
        for ``segmentation`` judges (default: :meth:`labels` of the call's scores)."""
        return self.labels(self(x, ref))

    def bind(self, dataset_classes: Sequence[str] | None, dataset: str = "the dataset") -> None:
        """Map the judge's classes onto a dataset's (``class_map``), for judges with
        :attr:`class_ids`; InputError when the judge's classes do not cover the
        dataset's labels. Judges without ``class_ids``, and calls without the dataset's
        classes, keep the map they have."""
        if self.class_ids is None or not dataset_classes:
            return
        from semcom.data.classmaps import class_map

        self.class_map = class_map(
            self.class_ids, dataset_classes, table=self.mapping, judge=self.name, dataset=dataset
        )

    def fit_size(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` resized (bilinear) to ``input_size`` when it has another size."""
        s = self.input_size
        if s is None or tuple(x.shape[-2:]) == (s, s):
            return x
        import torch.nn.functional as F

        return F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)

    def labels(self, scores: torch.Tensor) -> torch.Tensor:
        """Class scores ``(B, C, ...)`` -> dataset class ids ``(B, ...)`` (through
        ``class_map``, among the mapped classes only, when there is one)."""
        if self.class_map is None:
            return scores.argmax(1)
        if self.class_map.numel() != scores.shape[1]:
            raise InputError(
                f"judge {self.name}: class map has {self.class_map.numel()} entries for "
                f"{scores.shape[1]} classes"
            )
        shape = [1, -1] + [1] * (scores.ndim - 2)
        keep = (self.class_map >= 0).view(shape)
        masked = scores.masked_fill(~keep, float("-inf"))
        return self.class_map[masked.argmax(1)]

    def info(self) -> dict[str, str]:
        """Name, source and training domain, for answers that say who judged."""
        return {"name": self.name, "source": self.source, "trained on": self.domain}

    def describe(self, x: torch.Tensor) -> dict[str, Any]:
        """What the judge sees in one received image ``x`` float ``(1, 3, H, W)`` (for
        ``semcom receive``); ``{}`` for judges that need the original."""
        return {}


JudgeFactory = Callable[[str | None], Judge]
_JUDGES: dict[str, tuple[JudgeFactory, str]] = {}


def register_judge(name: str, help: str = "") -> Callable[[JudgeFactory], JudgeFactory]:
    """Decorator: ``factory(path_or_None) -> Judge`` becomes ``create_judge(name[=path])``."""

    def wrap(factory: JudgeFactory) -> JudgeFactory:
        if name in _JUDGES:
            raise ValueError(f"judge {name!r} registered twice")
        _JUDGES[name] = (factory, help or (factory.__doc__ or "").strip().split("\n")[0])
        return factory

    return wrap


def list_judges() -> dict[str, str]:
    """Registered judge names -> one line of help, sorted."""
    return {k: _JUDGES[k][1] for k in sorted(_JUDGES)}


def parse_judge_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME"`` -> ``(NAME, None)``; ``"NAME=PATH"`` -> ``(NAME, PATH)``."""
    name, eq, path = str(spec).strip().partition("=")
    name = name.strip()
    if not name or (eq and not path.strip()):
        raise InputError(f"malformed judge spec {spec!r}; expected NAME or NAME=PATH")
    return name, (path.strip() if eq else None)


def create_judge(spec: str) -> Judge:
    """Build the judge ``spec`` names (``NAME`` or ``NAME=PATH``); InputError if unknown."""
    name, path = parse_judge_spec(spec)
    if name not in _JUDGES:
        known = ", ".join(sorted(_JUDGES))
        raise InputError(f"unknown judge {name!r}; known judges: {known}")
    return _JUDGES[name][0](path)

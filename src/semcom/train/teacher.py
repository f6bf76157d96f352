"""A teacher's answers on augmented views of a dataset, computed once and kept on disk,
for distillation (:mod:`semcom.train.recipes.distill`).

A *view* is a crop of the image resized back to its size, maybe mirrored: int64
``(x0, y0, w, h, flip)`` in the pixels of the ``S x S`` image. View 0 of every image is
the whole image unflipped; views ``1..K-1`` are random-resized crops (area 30-100 %,
aspect 3/4-4/3, mirrored half the time) drawn from the cache's seed. The teacher is any
``logits`` judge (:mod:`semcom.judges`), bound to the dataset's classes; its scores
over the dataset classes are the log of the probability mass of the judge classes that
map to each (for a one-to-one map, the logits themselves).

File (safetensors): ``boxes`` int64 ``(N, K, 5)``, ``logits`` float16 ``(N, K, C)``;
metadata: the teacher's name and source sha256, the dataset's size, classes digest, K
and seed -- a cache whose metadata differs from the run's is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from semcom.errors import InputError

__all__ = ["TeacherCache", "dataset_logits", "render_views", "view_boxes"]


def view_boxes(n: int, k: int, size: int, seed: int) -> Tensor:
    """int64 ``(n, k, 5)`` views ``(x0, y0, w, h, flip)`` of ``size x size`` images
    (view 0 the whole image; see the module docstring)."""
    g = torch.Generator().manual_seed(int(seed))
    area = torch.empty(n, k).uniform_(0.30, 1.0, generator=g) * size * size
    lo, hi = (float(torch.log(torch.tensor(r))) for r in (3 / 4, 4 / 3))
    logr = torch.empty(n, k).uniform_(lo, hi, generator=g)
    ratio = logr.exp()
    w = (area * ratio).sqrt().round().clamp(8, size).long()
    h = (area / ratio).sqrt().round().clamp(8, size).long()
    x0 = (torch.rand(n, k, generator=g) * (size - w + 1)).long()
    y0 = (torch.rand(n, k, generator=g) * (size - h + 1)).long()
    flip = (torch.rand(n, k, generator=g) < 0.5).long()
    boxes = torch.stack([x0, y0, w, h, flip], dim=-1)
    boxes[:, 0] = torch.tensor([0, 0, size, size, 0])
    return boxes


def render_views(images: Tensor, boxes: Tensor) -> Tensor:
    """uint8 ``(B, 3, S, S)`` images and int64 ``(B, 5)`` boxes -> uint8 ``(B, 3, S, S)``:
    each crop resized (bilinear) back to ``S x S`` and mirrored where ``flip``."""
    s = images.shape[-1]
    out = torch.empty_like(images)
    for i, (x0, y0, w, h, flip) in enumerate(boxes.tolist()):
        crop = images[i : i + 1, :, y0 : y0 + h, x0 : x0 + w]
        if (w, h) != (s, s):
            crop = F.interpolate(crop.float(), size=(s, s), mode="bilinear", align_corners=False)
            crop = crop.round().clamp_(0, 255).to(torch.uint8)
        out[i] = crop[0].flip(-1) if flip else crop[0]
    return out


def dataset_logits(scores: Tensor, class_map: Tensor | None, num_classes: int) -> Tensor:
    """Judge scores ``(B, J)`` -> scores over the dataset's ``num_classes`` ``(B, C)``: the
    log-sum-exp of the judge classes mapped to each dataset class (``-inf`` for none)."""
    if class_map is None:
        if scores.shape[1] != num_classes:
            raise InputError(f"teacher gives {scores.shape[1]} classes, the data has {num_classes}")
        return scores.float()
    out = scores.new_full((scores.shape[0], num_classes), float("-inf")).float()
    for c in range(num_classes):
        cols = (class_map == c).nonzero().flatten()
        if cols.numel() == 1:
            out[:, c] = scores[:, cols[0]].float()
        elif cols.numel() > 1:
            out[:, c] = torch.logsumexp(scores[:, cols].float(), dim=1)
    return out


def _digest(classes: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(map(str, classes)).encode()).hexdigest()[:16]


class TeacherCache:
    """The teacher's scores on ``K`` views of every image of a dataset.

    Attributes: ``boxes`` int64 ``(N, K, 5)``, ``logits`` float16 ``(N, K, C)``,
    ``meta`` (what the cache was made from).
    """

    def __init__(self, boxes: Tensor, logits: Tensor, meta: dict[str, str]) -> None:
        self.boxes, self.logits, self.meta = boxes, logits, meta

    @property
    def views(self) -> int:
        return int(self.boxes.shape[1])

    @staticmethod
    def key(teacher: Any, data: Any, views: int, seed: int, size: int) -> dict[str, str]:
        """The metadata a cache for these settings carries."""
        source = str(getattr(teacher, "source", ""))
        sha = getattr(getattr(teacher, "model", None), "sha256", None) or source
        return {
            "format": "semcom-teacher-cache/1",
            "teacher": str(teacher.name),
            "teacher_sha256": str(sha),
            "n": str(len(data)),
            "classes": _digest(getattr(data, "classes", None) or []),
            "views": str(int(views)),
            "seed": str(int(seed)),
            "size": str(int(size)),
        }

    @classmethod
    def load(cls, path: Path, expect: dict[str, str]) -> TeacherCache | None:
        """The cache at ``path`` if it exists and was made with ``expect``, else None."""
        from semcom.models.tensor_files import read_safetensors

        if not path.is_file():
            return None
        tensors, meta = read_safetensors(path.read_bytes(), f"teacher cache {path}")
        if {k: meta.get(k) for k in expect} != expect:
            return None
        if set(tensors) != {"boxes", "logits"}:
            raise InputError(f"teacher cache {path}: expected tensors boxes and logits")
        return cls(tensors["boxes"], tensors["logits"], meta)

    def save(self, path: Path) -> None:
        from semcom.models.tensor_files import atomic_write, serialize_safetensors

        data = serialize_safetensors({"boxes": self.boxes, "logits": self.logits}, self.meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    @classmethod
    def build(
        cls,
        teacher: Any,
        data: Any,
        images: Tensor,
        *,
        views: int,
        seed: int,
        batch_size: int = 64,
        quiet: bool = False,
    ) -> TeacherCache:
        """Run ``teacher`` (bound to ``data``'s classes) on ``views`` views of ``images``
        uint8 ``(N, 3, S, S)``; progress lines on stderr unless ``quiet``."""
        n, size = images.shape[0], images.shape[-1]
        num_classes = len(data.classes)
        boxes = view_boxes(n, views, size, seed)
        flat = boxes.reshape(n * views, 5)
        logits = torch.empty(n * views, num_classes, dtype=torch.float16)
        t0 = last = time.monotonic()
        with torch.no_grad():
            for lo in range(0, n * views, batch_size):
                rows = torch.arange(lo, min(lo + batch_size, n * views))
                x = render_views(images[rows // views], flat[rows]).float() / 255.0
                scores = teacher(x, x)
                logits[rows] = dataset_logits(scores, teacher.class_map, num_classes).half()
                now = time.monotonic()
                if not quiet and (now - last > 30 or rows[-1] + 1 == n * views):
                    last = now
                    done = int(rows[-1]) + 1
                    sys.stderr.write(
                        f"teacher {teacher.name}: {done}/{n * views} views, "
                        f"{done / max(now - t0, 1e-9):.0f} views/s\n"
                    )
        meta = cls.key(teacher, data, views, seed, size)
        meta["built_s"] = json.dumps(round(time.monotonic() - t0, 1))
        return cls(boxes, logits.reshape(n, views, num_classes), meta)

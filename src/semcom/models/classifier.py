"""``shape-classifier``: a small CNN classifying synthetic-world images.

Input ``float32 (N, 3, H, W)`` in ``[0, 1]`` (``H``, ``W`` divisible by ``8 * s`` are the
tidy case, ``s = stem_stride``; any size >= 8 works thanks to global average pooling);
output logits
``float32 (N, C)`` with ``C = num_classes`` (defaults to ``len(semcom.data.CLASS_NAMES)``).

Layout (default ``widths=(24, 32, 64, 128)``, ~0.3 M parameters; ``s = stem_stride``,
default 2; ``edge_stem=False`` feeds the normalised 3-channel image to the stem instead
of ``edges``)::

    edges       fixed [x, |sobel_x|, |sobel_y|] (no params)  (N, 9,  H,       W)
    stem        3x3 stride-s conv (9 -> w0) + norm + ReLU    (N, w0, H/s,     W/s)
    stages.0    3x3 stride-2 conv (w0 -> w1) + norm + ReLU,  (N, w1, H/(2s),  W/(2s))
                then relu(y + norm(3x3 conv(y)))
    stages.1    same, w1 -> w2                               (N, w2, H/(4s),  W/(4s))
    stages.2    same, w2 -> w3                               (N, w3, H/(8s),  W/(8s))
    head        global average pool -> dropout -> linear     (N, C)
    aux         1x1 conv on stages.2, w3 -> C + 1            (N, C+1, H/(8s), W/(8s))

The stride-2 stem sees full-resolution edges but runs everything after it on a quarter
of the pixels: 4x cheaper per image, and on a CPU budget more images beat more pixels.

The ``aux`` head (``aux_head=True``, the default) predicts the segmentation mask at
the last stage's resolution. It is used only in training (``forward(x, return_aux=True)``): dense
supervision from ``batch.masks`` makes the shape features emerge in far fewer steps
than the single label per image would. Inference ignores it.

Stable state-dict keys (``norm.*`` are BatchNorm ``weight``/``bias``/``running_mean``/
``running_var``/``num_batches_tracked`` with ``norm="batch"``, ``weight``/``bias`` with
``norm="group"``, absent with ``norm="none"``, in which case convs carry a ``bias``)::

    stem.conv.weight, stem.norm.*
    stages.{i}.down.conv.weight, stages.{i}.down.norm.*      i = 0, 1, 2
    stages.{i}.block.conv.weight, stages.{i}.block.norm.*
    head.fc.weight, head.fc.bias
    aux.weight, aux.bias                                       (aux_head=True only)

``features(x)`` returns the post-activation maps ``[stem, stages.0, stages.1, stages.2]``
(float32, shapes as above), the backbone of a deep-feature perceptual distance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from semcom.errors import InputError
from semcom.models._common import ConvNormAct, EdgeFeatures, check_shape_cnn, image_input
from semcom.models.registry import register_model

__all__ = ["ShapeClassifier"]


class _Stage(nn.Module):
    """Stride-2 conv, then ``relu(y + norm(conv(y)))``: (N, cin, H, W) -> (N, cout, H/2, W/2).

    The residual branch's norm scale starts at zero (the block starts as identity); the
    ReLU comes *after* the sum so that scale still receives gradient.
    """

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.down = ConvNormAct(cin, cout, norm, stride=2)
        self.block = ConvNormAct(cout, cout, norm, act=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.down(x)
        return torch.relu(y + self.block(y))


class _Head(nn.Module):
    """Global average pool -> dropout -> linear: (N, c, h, w) -> (N, C)."""

    def __init__(self, cin: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(x.mean(dim=(2, 3))))


@register_model("shape-classifier")
class ShapeClassifier(nn.Module):
    """Small CNN classifier; see the module docstring for layout and key names.

    Args:
        num_classes: number of output classes (``None``: ``len(semcom.data.CLASS_NAMES)``).
        widths: channels of the stem and the three stages (4 ints).
        norm: ``"batch"`` (default), ``"group"`` (batch-independent) or ``"none"``.
        dropout: dropout before the final linear layer.
        aux_head: add the training-only 1/8-resolution mask head ``aux``.
        edge_stem: expand the input with fixed colour-channel Sobel edge magnitudes
            (``semcom.models._common.EdgeFeatures``) before the stem.
        stem_stride: stride of the stem conv (1 or 2).
    """

    task = "classify"

    def __init__(
        self,
        num_classes: int | None = None,
        widths: tuple[int, ...] | list[int] = (24, 32, 64, 128),
        norm: str = "batch",
        dropout: float = 0.1,
        aux_head: bool = True,
        edge_stem: bool = True,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        num_classes, widths = check_shape_cnn(num_classes, widths, norm, stem_stride)
        if not 0.0 <= float(dropout) < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {dropout!r}")
        self.num_classes = num_classes
        self.config: dict = {
            "num_classes": num_classes,
            "widths": list(widths),
            "norm": norm,
            "dropout": float(dropout),
            "aux_head": bool(aux_head),
            "edge_stem": bool(edge_stem),
            "stem_stride": int(stem_stride),
        }
        self.edges = EdgeFeatures() if edge_stem else None
        cin = EdgeFeatures.out_channels if edge_stem else 3
        self.stem = ConvNormAct(cin, widths[0], norm, stride=int(stem_stride))
        self.stages = nn.ModuleList(
            _Stage(widths[i], widths[i + 1], norm) for i in range(len(widths) - 1)
        )
        self.head = _Head(widths[-1], num_classes, float(dropout))
        self.aux = nn.Conv2d(widths[-1], num_classes + 1, 1) if aux_head else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Residual blocks start close to identity.
        for stage in self.stages:
            norm = stage.block.norm
            if isinstance(norm, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.zeros_(norm.weight)

    def features(self, x: Tensor) -> list[Tensor]:
        """Intermediate maps ``[stem, stages.0, stages.1, stages.2]`` for ``x`` (N, 3, H, W)."""
        h = self.stem(image_input(x, self.edges))
        feats = [h]
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    @property
    def has_aux(self) -> bool:
        """Whether the training-only mask head exists."""
        return self.aux is not None

    def forward(self, x: Tensor, return_aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits ``float32 (N, C)`` for images ``float32 (N, 3, H, W)`` in ``[0, 1]``.

        With ``return_aux=True`` also the aux mask logits ``(N, C + 1, H/8, W/8)``.
        """
        h = self.features(x)[-1]
        logits = self.head(h)
        if not return_aux:
            return logits
        if self.aux is None:
            raise InputError("this classifier was built with aux_head=False")
        return logits, self.aux(h)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted class indices ``int64 (N,)``."""
        return self.forward(x).argmax(dim=1)

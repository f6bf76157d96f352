"""The shape classes of the synthetic world, as signed distance functions.

Every shape lives in *local* coordinates ``(u, v)``: centred on the origin, unrotated and
scaled so that it fits inside the unit circle (circumradius <= 1). ``signed_distance``
returns an (approximate) distance to the outline in those units: positive inside,
negative outside. Rasterising a shape is then one evaluation on a pixel grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

CLASS_NAMES: tuple[str, ...] = (
    "circle",
    "ring",
    "triangle",
    "square",
    "diamond",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "heart",
    "crescent",
    "arrow",
)
"""Shape class names; a class index ``c`` appears in masks as ``c + 1``."""

NUM_CLASSES = len(CLASS_NAMES)

_RING_INNER = 0.55
_DIAMOND_ASPECT = 0.6
_STAR_POINTS = 5
_STAR_INNER = 0.45
_CROSS_HALF_WIDTH = 0.3
_CRESCENT_OFFSET = 0.45
_CRESCENT_INNER = 0.8


def _circle(u: Tensor, v: Tensor) -> Tensor:
    return 1.0 - torch.hypot(u, v)


def _ring(u: Tensor, v: Tensor) -> Tensor:
    r = torch.hypot(u, v)
    return torch.minimum(1.0 - r, r - _RING_INNER)


def _polygon(n: int) -> Callable[[Tensor, Tensor], Tensor]:
    """Regular n-gon with a vertex on the +u axis: apothem - distance along the sector normal."""
    sector = 2.0 * math.pi / n
    apothem = math.cos(math.pi / n)

    def sdf(u: Tensor, v: Tensor) -> Tensor:
        phi = torch.remainder(torch.atan2(v, u), sector) - (sector / 2.0)
        return apothem - torch.hypot(u, v) * torch.cos(phi)

    return sdf


def _diamond(u: Tensor, v: Tensor) -> Tensor:
    q = _DIAMOND_ASPECT
    norm = math.sqrt(1.0 + 1.0 / (q * q))
    return (1.0 - u.abs() - v.abs() * (1.0 / q)) * (1.0 / norm)


def _star_edge() -> tuple[float, float, float, float]:
    """Inward unit normal (nx, ny) and offset of the edge tip->inner vertex in the folded wedge."""
    half = math.pi / _STAR_POINTS
    ax, ay = 1.0, 0.0
    bx, by = _STAR_INNER * math.cos(half), _STAR_INNER * math.sin(half)
    ex, ey = bx - ax, by - ay
    length = math.hypot(ex, ey)
    nx, ny = -ey / length, ex / length
    if nx * (0.0 - ax) + ny * (0.0 - ay) < 0:  # make the origin side positive
        nx, ny = -nx, -ny
    return nx, ny, -(nx * ax + ny * ay), half


_STAR_NX, _STAR_NY, _STAR_C, _STAR_HALF = _star_edge()


def _star(u: Tensor, v: Tensor) -> Tensor:
    # fold the angle into [0, pi/5]: 0 at a tip, pi/5 at an inner vertex
    psi = (torch.remainder(torch.atan2(v, u), 2.0 * _STAR_HALF) - _STAR_HALF).abs()
    psi = _STAR_HALF - psi
    r = torch.hypot(u, v)
    return r * (_STAR_NX * torch.cos(psi) + _STAR_NY * torch.sin(psi)) + _STAR_C


def _cross(u: Tensor, v: Tensor) -> Tensor:
    w = _CROSS_HALF_WIDTH
    arm = math.sqrt(1.0 - w * w)
    au, av = u.abs(), v.abs()
    a, b = torch.maximum(au, av), torch.minimum(au, av)
    return torch.minimum(arm - a, w - b)


def _heart_geometry() -> tuple[float, float, float, float]:
    """Heart geometry at unit circumradius: square side, its centre (on v), lobe centre (x, y)."""
    r2 = math.sqrt(2.0)
    shift = -((1.0 / (2.0 * r2) + 0.5) - 1.0 / r2) / 2.0  # centre the bounding box vertically
    ccx, ccy = 1.0 / (2.0 * r2), shift + 1.0 / (2.0 * r2)
    circum = max(math.hypot(ccx, ccy) + 0.5, 1.0 / r2 - shift)
    s = 1.0 / circum
    return s, shift * s, ccx * s, ccy * s


_HEART_S, _HEART_C, _HEART_CX, _HEART_CY = _heart_geometry()


def _heart(u: Tensor, v: Tensor) -> Tensor:
    # tilted square (point towards -v) plus two lobes on its upper edges; +v is "up" here
    h = _HEART_S / math.sqrt(2.0)
    au = u.abs()
    square = (h - au - (v - _HEART_C).abs()) * (1.0 / math.sqrt(2.0))
    lobe = 0.5 * _HEART_S - torch.hypot(au - _HEART_CX, v - _HEART_CY)
    return torch.maximum(square, lobe)


def _crescent(u: Tensor, v: Tensor) -> Tensor:
    outer = 1.0 - torch.hypot(u, v)
    bite = torch.hypot(u - _CRESCENT_OFFSET, v) - _CRESCENT_INNER
    return torch.minimum(outer, bite)


_ARROW_TAIL, _ARROW_NECK, _ARROW_SHAFT = -0.95, 0.15, 0.2
_ARROW_BASE, _ARROW_HALF = 0.05, 0.62


def _arrow_edge() -> tuple[float, float]:
    ex, ey = 1.0 - _ARROW_BASE, -_ARROW_HALF
    length = math.hypot(ex, ey)
    nx, ny = ey / length, -ex / length  # points down-left, into the head
    return nx, ny


_ARROW_NX, _ARROW_NY = _arrow_edge()


def _arrow(u: Tensor, v: Tensor) -> Tensor:
    av = v.abs()
    shaft = torch.minimum(torch.minimum(u - _ARROW_TAIL, _ARROW_NECK - u), _ARROW_SHAFT - av)
    edge = (u - 1.0) * _ARROW_NX + av * _ARROW_NY
    head = torch.minimum(u - _ARROW_BASE, edge)
    return torch.maximum(shaft, head)


_SDFS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    _circle,
    _ring,
    _polygon(3),
    _polygon(4),
    _diamond,
    _polygon(5),
    _polygon(6),
    _star,
    _cross,
    _heart,
    _crescent,
    _arrow,
)


def signed_distance(cls: int, u: Tensor, v: Tensor) -> Tensor:
    """Signed distance (float, positive inside) of shape ``cls`` at local points ``u, v``.

    ``u`` and ``v`` are float tensors of one shape (any); the result has that shape.
    """
    if not 0 <= cls < NUM_CLASSES:
        raise ValueError(f"shape class {cls} out of range 0..{NUM_CLASSES - 1}")
    return _SDFS[cls](u, v)


def measure_unit_areas(res: int = 400) -> tuple[float, ...]:
    """Area of each shape at circumradius 1, measured on a ``res x res`` grid (for checks)."""
    t = (torch.arange(res, dtype=torch.float64) + 0.5) * (2.0 / res) - 1.0
    v, u = torch.meshgrid(t, t, indexing="ij")
    cell = (2.0 / res) ** 2
    return tuple(float((f(u, v) > 0).sum()) * cell for f in _SDFS)


UNIT_AREAS: tuple[float, ...] = (
    3.1416,
    2.1914,
    1.2990,
    1.9995,
    1.1997,
    2.3788,
    2.5981,
    1.3225,
    1.9296,
    1.9742,
    1.4509,
    0.9890,
)
"""Area of each shape at circumradius 1 (``measure_unit_areas(1000)``, rounded)."""

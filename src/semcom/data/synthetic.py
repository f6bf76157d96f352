"""The synthetic world: seeded scenes of coloured shapes on textured backgrounds.

Each sample is a pure function of its integer seed and the world's settings: every random
parameter comes from a counter-based hash of ``(world key, seed, parameter id)``
(:mod:`semcom.data.hashing`), never from a global RNG, so a sample never depends on the
batch it is generated in. Geometry is defined in resolution-independent coordinates
(``[-1, 1]`` across the image, y pointing down), so one seed gives the same scene at any
``size``.

A scene has a textured background whose texture and colour carry no class information,
one large *main* object whose shape is the label, and up to ``max_distractors`` small
objects of other shapes placed so that they never overlap the main object (which
therefore stays the largest visible object). Objects have equal *area* for equal size
parameter whatever their shape, so size does not leak the class either.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from semcom.data.hashing import seed_keys, uniforms
from semcom.data.shapes import CLASS_NAMES, NUM_CLASSES, UNIT_AREAS, signed_distance
from semcom.errors import InputError

__all__ = [
    "CLASS_NAMES",
    "COLOR_NAMES",
    "NUM_CLASSES",
    "SPLITS",
    "TEXTURE_NAMES",
    "SyntheticBatch",
    "SyntheticWorld",
    "split_seeds",
]

SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 10**9),
    "val": (10**9, 10**9 + 10**6),
    "test": (2 * 10**9, 2 * 10**9 + 10**6),
}
"""Disjoint half-open seed ranges ``[start, stop)`` of the splits."""

COLOR_NAMES: tuple[str, ...] = (
    "red", "green", "blue", "yellow", "orange", "purple",
    "cyan", "pink", "white", "black", "gray", "brown",
)  # fmt: skip
_PALETTE = np.array(
    [
        (220, 30, 30), (40, 160, 50), (35, 75, 215), (240, 215, 35), (245, 135, 25),
        (135, 55, 175), (45, 205, 215), (245, 135, 190), (242, 242, 242), (22, 22, 22),
        (128, 128, 128), (125, 80, 40),
    ],
    dtype=np.float64,
)  # fmt: skip

TEXTURE_NAMES: tuple[str, ...] = ("plain", "striped", "checkered", "mottled", "shaded")
_PLAIN, _STRIPED, _CHECKERED, _MOTTLED, _SHADED = range(5)

_COLOR_JITTER = 12.0  # +- per channel, small enough to keep the colour name truthful
_SHADE_RANGE = (0.2, 0.35)  # how far the texture's second colour moves to white/black
_MIN_CONTRAST = 75.0
_MOTTLE_WAVES = 3
_CHUNK_PIXELS = 1 << 21  # pixels rendered at once (bounds temporary memory)
_CANDIDATES = 8  # placement tries per distractor
_GAP = 0.04  # minimum gap between bounding circles (normalised units)
_POSITIONS = (
    ("at the top left", "at the top", "at the top right"),
    ("on the left", "in the center", "on the right"),
    ("at the bottom left", "at the bottom", "at the bottom right"),
)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _color_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return np.sqrt((2 * d[..., 0] ** 2 + 4 * d[..., 1] ** 2 + 3 * d[..., 2] ** 2) / 9.0)


def _shade_targets(rgb: np.ndarray) -> np.ndarray:
    """The colour a background's texture moves towards: white for dark colours, else black."""
    return np.where(_luma(rgb)[..., None] < 128.0, 255.0, 0.0) * np.ones_like(rgb)


def _contrast_table() -> tuple[np.ndarray, np.ndarray]:
    """For each background colour: how many object colours contrast with it, and which."""
    ok = np.ones((len(_PALETTE), len(_PALETTE)), dtype=bool)  # [background, object]
    target = _shade_targets(_PALETTE)
    for m in (0.0, *_SHADE_RANGE):
        shade = _PALETTE + m * (target - _PALETTE)
        ok &= _color_distance(_PALETTE[None, :, :], shade[:, None, :]) > _MIN_CONTRAST
    counts = ok.sum(axis=1)
    table = np.zeros_like(ok, dtype=np.int64)
    for b in range(len(_PALETTE)):
        idx = np.flatnonzero(ok[b])
        table[b, : len(idx)] = idx
    return counts, table


_CONTRAST_COUNT, _CONTRAST_TABLE = _contrast_table()

# hash stream ids: scene fields in slot 0, object j (0 = main) in slot j + 1
_SLOT = 64
(_F_CLASS, _F_COUNT, _F_TEX, _F_BG, _F_SHADE, _F_ANGLE, _F_PERIOD, _F_PHASE, _F_PHASE2) = range(9)
_F_WAVES = 9  # 3 numbers per mottle wave
_F_BG_JITTER = 9 + 3 * _MOTTLE_WAVES
(_O_CLASS, _O_SIZE, _O_ROT, _O_COLOR, _O_JIT, _O_X, _O_Y) = (0, 1, 2, 3, 4, 7, 8)
_O_CANDIDATES = 9


@dataclass
class SyntheticBatch:
    """A batch of synthetic samples.

    Attributes:
        images: uint8 ``(N, 3, H, W)``.
        labels: int64 ``(N,)``, class of the main (largest) object, index into CLASS_NAMES.
        masks: int64 ``(N, H, W)``, 0 = background, ``1 + class`` where an object is visible.
        captions: one English sentence per sample, or None when not asked for.
        seeds: int64 ``(N,)``, the seeds the samples were generated from.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    captions: list[str] | None = None
    seeds: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class _Scene:
    """Sampled parameters of N scenes (numpy); objects are ``(N, 1 + max_distractors)``."""

    tex: np.ndarray
    bg_color: np.ndarray
    bg_rgb: np.ndarray  # (N, 3)
    shade_rgb: np.ndarray  # (N, 3)
    tex_params: np.ndarray  # (N, 4 + 3 * waves)
    cls: np.ndarray
    radius: np.ndarray  # circumradius, normalised units
    size: np.ndarray  # side of the equal-area square, normalised units
    cx: np.ndarray
    cy: np.ndarray
    rot: np.ndarray
    color: np.ndarray
    rgb: np.ndarray  # (N, K, 3)
    active: np.ndarray  # bool


def _as_seeds(seeds: Tensor | np.ndarray | Sequence[int] | range | Iterable[int]) -> np.ndarray:
    """Seeds as a 1-D int64 numpy array, or InputError."""
    if isinstance(seeds, Tensor):
        if seeds.dtype.is_floating_point or seeds.dtype.is_complex or seeds.dtype == torch.bool:
            raise InputError(f"seeds must be integers, got a {seeds.dtype} tensor")
        arr = seeds.detach().cpu().numpy()
    elif isinstance(seeds, range):
        arr = np.arange(seeds.start, seeds.stop, seeds.step, dtype=np.int64)
    else:
        try:
            arr = np.asarray(seeds if isinstance(seeds, np.ndarray) else list(seeds))
        except (TypeError, ValueError) as e:
            raise InputError(f"seeds must be a 1-D sequence of integers: {e}") from None
        if arr.size == 0:
            arr = arr.astype(np.int64)
    if arr.ndim != 1:
        raise InputError(f"seeds must be 1-D, got shape {tuple(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"seeds must be integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InputError("seeds must fit in int64")
    return arr.astype(np.int64)


def split_seeds(split: str, n: int, offset: int = 0) -> Tensor:
    """The seeds ``offset .. offset + n - 1`` of a split, as int64 ``(n,)``."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    start, stop = SPLITS[split]
    if n < 0 or offset < 0 or start + offset + n > stop:
        raise InputError(f"split {split!r} holds {stop - start} seeds; asked for {offset}+{n}")
    return torch.arange(start + offset, start + offset + n, dtype=torch.int64)


class SyntheticWorld:
    """Generator of seeded synthetic scenes (see the module docstring).

    Args:
        size: image side in pixels (square images).
        max_distractors: most small objects per image (0..4).
        p_distractors: probability that an image has at least one small object.
        main_size: range of the main object's size (side of the equal-area square, in
            normalised units where the image is 2 wide).
        small_size: the same for the small objects; its top must stay below ``main_size``'s
            bottom so that the main object is always the largest.
        antialias: soft object edges (masks are unaffected).
        key: world key; different keys give different worlds for the same seeds.
    """

    def __init__(
        self,
        size: int = 64,
        max_distractors: int = 2,
        *,
        p_distractors: float = 0.8,
        main_size: tuple[float, float] = (0.5, 0.8),
        small_size: tuple[float, float] = (0.22, 0.34),
        antialias: bool = True,
        key: int = 0,
    ) -> None:
        if not isinstance(size, int) or not 8 <= size <= 4096:
            raise InputError(f"size must be an int in 8..4096, got {size!r}")
        if not isinstance(max_distractors, int) or not 0 <= max_distractors <= 4:
            raise InputError(f"max_distractors must be an int in 0..4, got {max_distractors!r}")
        if not 0.0 <= p_distractors <= 1.0:
            raise InputError(f"p_distractors must be in [0, 1], got {p_distractors}")
        lo, hi = main_size
        slo, shi = small_size
        max_main = min(math.sqrt(a) for a in UNIT_AREAS) * 0.95  # circumradius must stay < 1
        if not (0 < slo <= shi < lo <= hi <= max_main):
            raise InputError(
                f"need 0 < small_size <= {shi} < main_size <= {max_main:.2f}; "
                f"got small_size={small_size}, main_size={main_size}"
            )
        self.size = size
        self.max_distractors = max_distractors
        self.p_distractors = float(p_distractors)
        self.main_size = (float(lo), float(hi))
        self.small_size = (float(slo), float(shi))
        self.antialias = bool(antialias)
        self.key = int(key)
        self.num_classes = NUM_CLASSES
        self.class_names = CLASS_NAMES
        self._scratch = threading.local()  # per-thread work buffers, reused across calls

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_scratch", None)  # buffers are not worth pickling (DataLoader workers)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    def _buffers(self, chunk: int) -> tuple[Tensor, Tensor, Tensor]:
        """Float ``(chunk, 3, S, S)``, float ``(chunk, S, S)`` and uint8 ``(chunk, S, S)`` scratch.

        Kept per thread: allocating fresh large buffers on every call costs more (page
        faults) than filling them.
        """
        s = self.size
        bufs = getattr(self._scratch, "bufs", None)
        if bufs is None or bufs[0].shape[0] < chunk:
            bufs = (
                torch.empty(chunk, 3, s, s),
                torch.empty(chunk, s, s),
                torch.empty(chunk, s, s, dtype=torch.uint8),
            )
            self._scratch.bufs = bufs
        return bufs

    def __repr__(self) -> str:
        return (
            f"SyntheticWorld(size={self.size}, max_distractors={self.max_distractors}, "
            f"p_distractors={self.p_distractors}, key={self.key})"
        )

    @staticmethod
    def split_seeds(split: str, n: int, offset: int = 0) -> Tensor:
        """The seeds ``offset .. offset + n - 1`` of a split, as int64 ``(n,)``."""
        return split_seeds(split, n, offset)

    # ------------------------------------------------------------------ sampling
    def _sample(self, seeds: np.ndarray) -> _Scene:
        n, k = len(seeds), 1 + self.max_distractors
        keys = seed_keys(seeds, self.key)
        u = uniforms(keys, np.arange(_F_BG_JITTER + 3))

        tex = np.minimum((u[:, _F_TEX] * len(TEXTURE_NAMES)).astype(np.int64), 4)
        bg_color = np.minimum((u[:, _F_BG] * len(_PALETTE)).astype(np.int64), len(_PALETTE) - 1)
        jitter = (u[:, _F_BG_JITTER : _F_BG_JITTER + 3] * 2.0 - 1.0) * _COLOR_JITTER
        bg_rgb = np.clip(_PALETTE[bg_color] + jitter, 0.0, 255.0)
        m = _SHADE_RANGE[0] + (_SHADE_RANGE[1] - _SHADE_RANGE[0]) * u[:, _F_SHADE]
        shade_rgb = bg_rgb + m[:, None] * (_shade_targets(bg_rgb) - bg_rgb)
        tex_params = u[:, _F_ANGLE : _F_WAVES + 3 * _MOTTLE_WAVES]

        cls = np.zeros((n, k), dtype=np.int64)
        size = np.zeros((n, k))
        radius = np.zeros((n, k))
        cx = np.zeros((n, k))
        cy = np.zeros((n, k))
        rot = np.zeros((n, k))
        color = np.zeros((n, k), dtype=np.int64)
        rgb = np.zeros((n, k, 3))
        active = np.zeros((n, k), dtype=bool)

        main_cls = np.minimum((u[:, _F_CLASS] * NUM_CLASSES).astype(np.int64), NUM_CLASSES - 1)
        if self.max_distractors:
            has_any = u[:, _F_COUNT] < self.p_distractors
            frac = u[:, _F_COUNT] / max(self.p_distractors, 1e-12)
            count = np.where(has_any, 1 + (frac * self.max_distractors).astype(np.int64), 0)
            count = np.minimum(count, self.max_distractors)
        else:
            count = np.zeros(n, dtype=np.int64)

        n_fields = _O_CANDIDATES + 2 * _CANDIDATES
        areas = np.asarray(UNIT_AREAS)
        for j in range(k):
            o = uniforms(keys, (j + 1) * _SLOT + np.arange(n_fields))
            if j == 0:
                c = main_cls
                lo, hi = self.main_size
            else:
                offset = 1 + (o[:, _O_CLASS] * (NUM_CLASSES - 1)).astype(np.int64)
                c = (main_cls + np.minimum(offset, NUM_CLASSES - 1)) % NUM_CLASSES
                lo, hi = self.small_size
            s = lo + (hi - lo) * o[:, _O_SIZE]
            r = s / np.sqrt(areas[c])
            nc = _CONTRAST_COUNT[bg_color]
            pick = np.minimum((o[:, _O_COLOR] * nc).astype(np.int64), nc - 1)
            col = _CONTRAST_TABLE[bg_color, pick]
            jit = (o[:, _O_JIT : _O_JIT + 3] * 2.0 - 1.0) * _COLOR_JITTER
            cls[:, j], size[:, j], radius[:, j], color[:, j] = c, s, r, col
            rot[:, j] = o[:, _O_ROT] * (2.0 * math.pi)
            rgb[:, j] = np.clip(_PALETTE[col] + jit, 0.0, 255.0)
            if j == 0:
                cx[:, 0] = (o[:, _O_X] * 2.0 - 1.0) * (1.0 - r)
                cy[:, 0] = (o[:, _O_Y] * 2.0 - 1.0) * (1.0 - r)
                active[:, 0] = True
                continue
            # small object: first candidate position clear of every placed object
            reach = 1.0 - 0.7 * r
            px = (o[:, _O_CANDIDATES::2] * 2.0 - 1.0) * reach[:, None]  # (N, candidates)
            py = (o[:, _O_CANDIDATES + 1 :: 2] * 2.0 - 1.0) * reach[:, None]
            ok = np.ones_like(px, dtype=bool)
            for i in range(j):
                dist = np.hypot(px - cx[:, i : i + 1], py - cy[:, i : i + 1])
                clear = dist > (radius[:, i : i + 1] + r[:, None] + _GAP)
                ok &= clear | ~active[:, i : i + 1]
            first = ok.argmax(axis=1)
            placed = ok.any(axis=1) & (j <= count)
            cx[:, j] = px[np.arange(n), first]
            cy[:, j] = py[np.arange(n), first]
            active[:, j] = placed
        return _Scene(
            tex, bg_color, bg_rgb, shade_rgb, tex_params,
            cls, radius, size, cx, cy, rot, color, rgb, active,
        )  # fmt: skip

    # ----------------------------------------------------------------- rendering
    def _coords(self) -> Tensor:
        s = self.size
        return (torch.arange(s, dtype=torch.float32) + 0.5) * (2.0 / s) - 1.0

    def _background(self, sc: _Scene, img: Tensor, t: Tensor) -> None:
        """Fill float ``img (N, 3, S, S)`` with backgrounds in [0, 255]; ``t (N, S, S)`` is scratch.

        Each background is its base colour blended towards its shade by a texture in [0, 1].
        """
        n, s = len(sc.tex), self.size
        xs = self._coords()
        x, y = xs.view(1, 1, s), xs.view(1, s, 1)
        t.zero_()
        p = torch.from_numpy(sc.tex_params).float()
        half = torch.tensor(0.5)

        def wave(ang: Tensor, freq: Tensor, phase: Tensor) -> Tensor:
            # cos(freq * (x cos(ang) + y sin(ang)) + phase): broadcast small factors, one big add
            return torch.cos(x * (torch.cos(ang) * freq) + (y * (torch.sin(ang) * freq) + phase))

        for kind in (_STRIPED, _CHECKERED, _MOTTLED, _SHADED):
            idx_np = np.flatnonzero(sc.tex == kind)
            if idx_np.size == 0:
                continue
            idx = torch.from_numpy(idx_np)
            q = p[idx].view(len(idx), -1, 1, 1)
            ang = q[:, 0] * math.pi
            if kind in (_STRIPED, _CHECKERED):
                period = 0.15 + 0.35 * q[:, 1]
                freq = 2.0 * math.pi / period
                sharp = period * (s / (4.0 * math.pi))  # ~1 pixel wide transitions
                w = wave(ang, freq, q[:, 2] * (2.0 * math.pi))
                if kind == _STRIPED:
                    tk = torch.addcmul(half, w, sharp * 0.5).clamp_(0.0, 1.0)
                else:
                    w2 = wave(ang + math.pi / 2.0, freq, q[:, 3] * (2.0 * math.pi))
                    w.mul_(sharp).clamp_(-1.0, 1.0)
                    w2.mul_(sharp).clamp_(-1.0, 1.0)
                    tk = torch.addcmul(half, w, w2, value=0.5)
            elif kind == _MOTTLED:  # smooth noise: a few low-frequency plane waves
                tk = torch.full((len(idx), s, s), 0.5)
                for i in range(_MOTTLE_WAVES):
                    a = q[:, 4 + 3 * i] * (2.0 * math.pi)
                    f = (0.5 + 1.5 * q[:, 5 + 3 * i]) * (2.0 * math.pi)
                    tk.add_(
                        wave(a, f, q[:, 6 + 3 * i] * (2.0 * math.pi)), alpha=0.5 / _MOTTLE_WAVES
                    )
            else:  # shaded: linear gradient across the image
                ang2 = ang * 2.0
                g = x * (torch.cos(ang2) * 0.5) + (y * (torch.sin(ang2) * 0.5) + 0.5)
                tk = g.clamp_(0.0, 1.0)
            t[idx] = tk
        base = torch.from_numpy(sc.bg_rgb).float().view(n, 3, 1, 1)
        diff = torch.from_numpy(sc.shade_rgb).float().view(n, 3, 1, 1) - base
        torch.addcmul(base, diff, t.unsqueeze(1), out=img)

    def _coverage(self, c: int, obj: tuple[np.ndarray, ...], x: Tensor, y: Tensor) -> Tensor:
        """Coverage in [0, 1] (float32) of M objects of class ``c`` on pixel centres ``x, y``.

        ``obj``: numpy ``(M,)`` arrays ``(cx, cy, radius, rotation)``; ``x``: ``(M or 1, 1, w)``
        and ``y``: ``(M or 1, h, 1)`` normalised coordinates. Returns ``(M, h, w)``.
        """
        cx, cy, r, rot = (torch.from_numpy(a).float().view(-1, 1, 1) for a in obj)
        cos, sin = torch.cos(rot) / r, torch.sin(rot) / r
        dx, dy = x - cx, y - cy
        u = dx * cos + dy * sin
        v = dy * cos - dx * sin
        d = signed_distance(c, u, v)
        if not self.antialias:
            return (d > 0).float()
        # distance in pixels + 0.5, clamped: ~1 pixel wide soft edge, 0.5 exactly on the outline
        return torch.addcmul(torch.tensor(0.5), d, r * (self.size / 2.0)).clamp_(0.0, 1.0)

    def _draw_main(self, img: Tensor, mask: Tensor, sc: _Scene) -> None:
        """Draw the main objects; samples must be sorted by main class (contiguous slices)."""
        s = self.size
        xs = self._coords()
        x, y = xs.view(1, 1, s), xs.view(1, s, 1)
        cls = sc.cls[:, 0]
        for c in np.unique(cls):
            a, b = np.searchsorted(cls, c, "left"), np.searchsorted(cls, c, "right")
            obj = (sc.cx[a:b, 0], sc.cy[a:b, 0], sc.radius[a:b, 0], sc.rot[a:b, 0])
            cov = self._coverage(int(c), obj, x, y)
            col = torch.from_numpy(sc.rgb[a:b, 0]).float().view(-1, 3, 1, 1)
            img[a:b].lerp_(col.expand(-1, -1, s, s), cov.unsqueeze(1))
            mask[a:b].masked_fill_(cov > 0.5, int(c) + 1)

    def _draw_small(self, img: Tensor, mask: Tensor, sc: _Scene, slot: int) -> None:
        """Draw object ``slot`` of every sample that has it, inside a window around it."""
        sel = np.flatnonzero(sc.active[:, slot])
        if sel.size == 0:
            return
        s = self.size
        max_r = self.small_size[1] / math.sqrt(min(UNIT_AREAS))
        win = min(s, int(math.ceil(max_r * s)) + 4)
        ar = torch.arange(win)
        # window origin in pixels, kept inside the image
        x0 = np.clip(np.floor((sc.cx[sel, slot] + 1.0) * (s / 2.0)) - win // 2, 0, s - win)
        y0 = np.clip(np.floor((sc.cy[sel, slot] + 1.0) * (s / 2.0)) - win // 2, 0, s - win)
        px = torch.from_numpy(x0.astype(np.int64)).view(-1, 1, 1) + ar.view(1, 1, win)
        py = torch.from_numpy(y0.astype(np.int64)).view(-1, 1, 1) + ar.view(1, win, 1)
        scale = 2.0 / s
        x, y = (px + 0.5) * scale - 1.0, (py + 0.5) * scale - 1.0  # (M, 1, win), (M, win, 1)
        cov = torch.empty(len(sel), win, win)
        cls = sc.cls[sel, slot]
        for c in np.unique(cls):
            rows = np.flatnonzero(cls == c)
            i = sel[rows]
            obj = (sc.cx[i, slot], sc.cy[i, slot], sc.radius[i, slot], sc.rot[i, slot])
            tr = torch.from_numpy(rows)
            cov[tr] = self._coverage(int(c), obj, x[tr], y[tr])
        # composite only the pixels the objects touch (a small part of each window)
        plane = s * s
        pix = py * s + px + torch.from_numpy(sel).view(-1, 1, 1) * plane  # into (N, S, S)
        touched = cov > 0.0
        k_pix, k_cov = pix[touched], cov[touched]
        k_obj = touched.view(len(sel), -1).sum(1)
        chan = (k_pix // plane) * (2 * plane) + k_pix  # offset into (N, 3, S, S), channel 0
        idx = chan.unsqueeze(1) + torch.arange(3).unsqueeze(0) * plane  # (K, 3)
        col = torch.from_numpy(sc.rgb[sel, slot]).float().repeat_interleave(k_obj, dim=0)
        flat = img.view(-1)
        flat[idx] = flat[idx].lerp_(col, k_cov.unsqueeze(1))
        inside = cov > 0.5
        lab = (
            torch.from_numpy(cls + 1)
            .to(torch.uint8)
            .repeat_interleave(inside.view(len(sel), -1).sum(1))
        )
        mask.view(-1)[pix[inside]] = lab

    # ------------------------------------------------------------------- public
    def generate(
        self,
        seeds: Tensor | np.ndarray | Sequence[int] | range,
        captions: bool = False,
    ) -> SyntheticBatch:
        """Generate the samples of ``seeds`` (1-D integers, any order, repeats allowed).

        Returns a :class:`SyntheticBatch`: images uint8 ``(N, 3, S, S)``, labels int64
        ``(N,)``, masks int64 ``(N, S, S)``, captions (list of N strings) if asked for.
        """
        arr = _as_seeds(seeds)
        n, s = len(arr), self.size
        sc = self._sample(arr)
        images = torch.empty(n, 3, s, s, dtype=torch.uint8)
        masks = torch.empty(n, s, s, dtype=torch.int64)
        # render in chunks that stay in cache, each sorted by main class so that every class
        # is one contiguous slice; results go straight to their place in the output
        chunk = max(1, min(n, _CHUNK_PIXELS // (s * s)))
        img_buf, t_buf, mask_buf = self._buffers(chunk)
        with torch.no_grad():
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                order = start + np.argsort(sc.cls[start:stop, 0], kind="stable")
                part = _Scene(*(getattr(sc, f.name)[order] for f in fields(_Scene)))
                img, mask = img_buf[: stop - start], mask_buf[: stop - start].zero_()
                self._background(part, img, t_buf[: stop - start])
                self._draw_main(img, mask, part)
                for slot in range(1, 1 + self.max_distractors):
                    self._draw_small(img, mask, part, slot)
                # values are convex combinations of colours in [0, 255]: +0.5 then truncate
                back = torch.from_numpy(np.argsort(order))  # undo the sort
                images[start:stop] = img.add_(0.5).to(torch.uint8).index_select(0, back)
                masks[start:stop] = mask.index_select(0, back)
        return SyntheticBatch(
            images=images,
            labels=torch.from_numpy(sc.cls[:, 0].copy()),
            masks=masks,
            captions=_captions(sc, self.main_size) if captions else None,
            seeds=torch.from_numpy(arr.copy()),
        )

    def labels(self, seeds: Tensor | np.ndarray | Sequence[int] | range) -> Tensor:
        """The labels of ``seeds`` without rendering anything: int64 ``(N,)``."""
        arr = _as_seeds(seeds)
        u = uniforms(seed_keys(arr, self.key), [_F_CLASS])[:, 0]
        return torch.from_numpy(np.minimum((u * NUM_CLASSES).astype(np.int64), NUM_CLASSES - 1))

    def caption(self, seed: int) -> str:
        """The caption of one seed (same text as ``generate([seed], captions=True)``)."""
        return _captions(self._sample(_as_seeds([seed])), self.main_size)[0]


def _position(x: float, y: float) -> str:
    col = 0 if x < -1.0 / 3.0 else (2 if x > 1.0 / 3.0 else 1)
    row = 0 if y < -1.0 / 3.0 else (2 if y > 1.0 / 3.0 else 1)
    return _POSITIONS[row][col]


def _captions(sc: _Scene, main_size: tuple[float, float]) -> list[str]:
    """One sentence per scene: objects (size, colour, shape, position), then the background."""
    large_from = main_size[0] + 0.5 * (main_size[1] - main_size[0])
    out = []
    for n in range(len(sc.tex)):
        parts = []
        for j in np.flatnonzero(sc.active[n]):
            if j == 0:
                word = "large" if sc.size[n, 0] >= large_from else "medium"
            else:
                word = "small"
            parts.append(
                f"a {word} {COLOR_NAMES[sc.color[n, j]]} {CLASS_NAMES[sc.cls[n, j]]} "
                f"{_position(sc.cx[n, j], sc.cy[n, j])}"
            )
        objects = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        bg = f"{TEXTURE_NAMES[sc.tex[n]]} {COLOR_NAMES[sc.bg_color[n]]}"
        out.append(f"{objects} on a {bg} background")
    return out

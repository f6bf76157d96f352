"""The synthetic world: determinism, contract shapes, labels vs masks, captions, splits."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import semcom.data.synthetic as synthetic
from semcom.data import (
    CLASS_NAMES,
    COLOR_NAMES,
    SPLITS,
    TEXTURE_NAMES,
    SyntheticWorld,
    split_seeds,
)
from semcom.data.shapes import UNIT_AREAS, measure_unit_areas, signed_distance
from semcom.errors import InputError

N = 400


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the test machine is shared: one intra-op thread avoids oversubscription stalls
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(size=64)


@pytest.fixture(scope="module")
def batch(world: SyntheticWorld) -> synthetic.SyntheticBatch:
    return world.generate(split_seeds("val", N), captions=True)


def test_contract_shapes_and_dtypes(batch: synthetic.SyntheticBatch) -> None:
    assert batch.images.shape == (N, 3, 64, 64) and batch.images.dtype == torch.uint8
    assert batch.labels.shape == (N,) and batch.labels.dtype == torch.int64
    assert batch.masks.shape == (N, 64, 64) and batch.masks.dtype == torch.int64
    assert isinstance(batch.captions, list) and len(batch.captions) == N
    assert len(batch) == N
    assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) < len(CLASS_NAMES)
    assert int(batch.masks.min()) == 0 and int(batch.masks.max()) <= len(CLASS_NAMES)
    assert len(CLASS_NAMES) >= 10
    for name in ("circle", "ring", "pentagon", "hexagon", "star", "cross"):
        assert name in CLASS_NAMES


def test_odd_sizes_and_no_distractors() -> None:
    w = SyntheticWorld(size=37, max_distractors=0)
    b = w.generate([5, 6, 7])
    assert b.images.shape == (3, 3, 37, 37) and b.masks.shape == (3, 37, 37)
    assert b.captions is None
    for m, y in zip(b.masks, b.labels, strict=True):  # only the main object
        assert set(m.unique().tolist()) == {0, int(y) + 1}


def test_deterministic_and_independent_of_batch(world: SyntheticWorld) -> None:
    seeds = [11, 3, 10**9 + 7, 42, 0, 2 * 10**9 + 5]
    a = world.generate(seeds, captions=True)
    perm = [3, 0, 5, 1, 4, 2]
    b = world.generate(torch.tensor([seeds[i] for i in perm]), captions=True)
    for j, i in enumerate(perm):
        assert torch.equal(a.images[i], b.images[j])
        assert torch.equal(a.masks[i], b.masks[j])
        assert a.labels[i] == b.labels[j] and a.captions[i] == b.captions[j]
    alone = world.generate([42])
    assert torch.equal(alone.images[0], a.images[3]) and torch.equal(alone.masks[0], a.masks[3])
    torch.manual_seed(123)
    np.random.seed(123)
    again = SyntheticWorld(size=64).generate(seeds)
    assert torch.equal(again.images, a.images) and torch.equal(again.masks, a.masks)


def test_chunked_rendering_matches(world: SyntheticWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = list(range(40))
    whole = world.generate(seeds)
    monkeypatch.setattr(synthetic, "_CHUNK_PIXELS", 64 * 64 * 7)  # chunks of 7 images
    parts = world.generate(seeds)
    assert torch.equal(whole.images, parts.images) and torch.equal(whole.masks, parts.masks)


def test_world_key_and_size_change_as_documented() -> None:
    seeds = list(range(16))
    a = SyntheticWorld(size=64).generate(seeds, captions=True)
    other = SyntheticWorld(size=64, key=1).generate(seeds)
    assert not torch.equal(a.labels, other.labels)
    small = SyntheticWorld(size=32).generate(seeds, captions=True)
    assert torch.equal(a.labels, small.labels) and a.captions == small.captions  # same scenes


def test_label_is_largest_visible_object(batch: synthetic.SyntheticBatch) -> None:
    k = len(CLASS_NAMES) + 1
    counts = torch.stack([torch.bincount(m.flatten(), minlength=k) for m in batch.masks])
    main = counts[torch.arange(N), batch.labels + 1]
    others = counts[:, 1:].clone()
    others[torch.arange(N), batch.labels] = 0
    assert bool((main > 0).all())
    assert bool((main > others.max(dim=1).values).all())
    # the main object is big: at least 4% of the image
    assert int(main.min()) >= 0.04 * 64 * 64


def test_classes_balanced(world: SyntheticWorld, batch: synthetic.SyntheticBatch) -> None:
    assert torch.equal(world.labels(split_seeds("val", N)), batch.labels)
    labels = world.labels(range(6000))
    freq = torch.bincount(labels, minlength=len(CLASS_NAMES))
    expected = 6000 / len(CLASS_NAMES)
    assert bool((freq > 0.85 * expected).all()) and bool((freq < 1.15 * expected).all())


def test_small_objects_are_common(batch: synthetic.SyntheticBatch) -> None:
    k = len(CLASS_NAMES) + 1
    with_small = 0
    small_classes = set()
    for m, y in zip(batch.masks, batch.labels, strict=True):
        present = set(torch.bincount(m.flatten(), minlength=k).nonzero().flatten().tolist())
        extra = present - {0, int(y) + 1}
        with_small += bool(extra)
        small_classes |= extra
        assert int(y) + 1 in present
    assert with_small / N >= 0.6
    assert len(small_classes) == len(CLASS_NAMES)  # every shape also appears small


_PALETTE_NAMES = {n: i for i, n in enumerate(COLOR_NAMES)}
_OBJ = re.compile(
    r"a (small|medium|large) (\w+) (\w+) (?:at|on|in) the (top left|top right|bottom left|"
    r"bottom right|top|bottom|left|right|center)"
)


def test_captions_are_truthful(batch: synthetic.SyntheticBatch) -> None:
    palette = torch.tensor(synthetic._PALETTE, dtype=torch.float32)
    for img, m, y, cap in zip(batch.images, batch.masks, batch.labels, batch.captions, strict=True):
        objs = _OBJ.findall(cap)
        assert objs, cap
        size, colour, shape, _ = objs[0]
        assert size in ("medium", "large") and shape == CLASS_NAMES[int(y)]
        assert all(o[0] == "small" for o in objs[1:])
        # the shapes named are exactly the shapes in the mask
        named = {CLASS_NAMES.index(o[2]) + 1 for o in objs}
        assert named == set(m.unique().tolist()) - {0}, cap
        bg = re.search(r"on a (\w+) (\w+) background$", cap)
        assert bg and bg.group(1) in TEXTURE_NAMES and bg.group(2) in COLOR_NAMES
        # the main object's colour is nearest to the palette colour its caption names
        inside = m == int(y) + 1
        core = inside.clone()  # erode by one pixel to skip antialiased edges
        core[1:] &= inside[:-1]
        core[:-1] &= inside[1:]
        core[:, 1:] &= inside[:, :-1]
        core[:, :-1] &= inside[:, 1:]
        mean = img[:, core].float().mean(dim=1)
        nearest = int(((palette - mean) ** 2).sum(dim=1).argmin())
        assert COLOR_NAMES[nearest] == colour, (cap, mean.tolist())


def test_caption_positions_match_symmetric_shapes(batch: synthetic.SyntheticBatch) -> None:
    symmetric = {"circle", "ring", "square", "pentagon", "hexagon", "star", "cross", "diamond"}
    words = {0: "left", 2: "right"}
    vwords = {0: "top", 2: "bottom"}
    checked = 0
    for m, y, cap in zip(batch.masks, batch.labels, batch.captions, strict=True):
        if CLASS_NAMES[int(y)] not in symmetric:
            continue
        ys, xs = torch.nonzero(m == int(y) + 1, as_tuple=True)
        cx, cy = (xs.float().mean() + 0.5) / 32 - 1, (ys.float().mean() + 0.5) / 32 - 1
        if min(abs(abs(cx) - 1 / 3), abs(abs(cy) - 1 / 3)) < 0.05:
            continue  # too close to a cell border to judge
        col = 0 if cx < -1 / 3 else (2 if cx > 1 / 3 else 1)
        row = 0 if cy < -1 / 3 else (2 if cy > 1 / 3 else 1)
        pos = _OBJ.findall(cap)[0][3]
        expected = " ".join(w for w in (vwords.get(row), words.get(col)) if w) or "center"
        assert pos == expected, cap
        checked += 1
    assert checked > 50


def test_objects_contrast_with_background(batch: synthetic.SyntheticBatch) -> None:
    for img, m, y in zip(batch.images[:100], batch.masks[:100], batch.labels[:100], strict=True):
        obj = img[:, m == int(y) + 1].float().mean(dim=1)
        bg = img[:, m == 0].float().mean(dim=1)
        assert float((obj - bg).abs().max()) > 40


def test_splits_disjoint_and_seeds() -> None:
    ranges = sorted(SPLITS.values())
    for (a0, a1), (b0, _) in zip(ranges, ranges[1:], strict=False):
        assert a0 < a1 <= b0
    assert SPLITS["train"] == (0, 10**9)
    s = split_seeds("test", 5)
    assert s.dtype == torch.int64 and s.tolist() == list(range(2 * 10**9, 2 * 10**9 + 5))
    assert SyntheticWorld.split_seeds("val", 3, offset=2).tolist() == [
        10**9 + 2,
        10**9 + 3,
        10**9 + 4,
    ]
    with pytest.raises(InputError):
        split_seeds("holdout", 3)
    with pytest.raises(InputError):
        split_seeds("val", 10**6 + 1)


@pytest.mark.parametrize(
    "seeds", [torch.tensor([1.0, 2.0]), [[1, 2]], ["a"], np.zeros((2, 2), dtype=np.int64), 3]
)
def test_bad_seeds(world: SyntheticWorld, seeds: object) -> None:
    with pytest.raises(InputError):
        world.generate(seeds)  # type: ignore[arg-type]


def test_empty_and_bad_settings(world: SyntheticWorld) -> None:
    b = world.generate([], captions=True)
    assert b.images.shape == (0, 3, 64, 64) and b.masks.shape == (0, 64, 64) and b.captions == []
    for kw in ({"size": 4}, {"max_distractors": 9}, {"main_size": (0.2, 0.3)}):
        with pytest.raises(InputError):
            SyntheticWorld(**kw)  # type: ignore[arg-type]
    assert world.caption(7) == world.generate([7], captions=True).captions[0]


def test_shape_geometry() -> None:
    measured = measure_unit_areas(200)
    for a, b in zip(UNIT_AREAS, measured, strict=True):
        assert abs(a - b) / a < 0.02
    t = torch.linspace(-1.3, 1.3, 131)
    v, u = torch.meshgrid(t, t, indexing="ij")
    r = torch.hypot(u, v)
    for c in range(len(CLASS_NAMES)):
        inside = signed_distance(c, u, v) > 0
        assert float(r[inside].max()) <= 1.0 + 1e-6  # fits in the unit circle
        assert bool(inside[65, 65]) or c in (1, 10)  # centre inside (ring/crescent: hollow)

    # the hard pairs really differ
    def area(c: int) -> torch.Tensor:
        return signed_distance(c, u, v) > 0

    for a, b in (("pentagon", "hexagon"), ("star", "cross"), ("circle", "ring")):
        diff = (area(CLASS_NAMES.index(a)) ^ area(CLASS_NAMES.index(b))).float().mean()
        assert float(diff) > 0.01

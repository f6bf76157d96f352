"""Torch datasets over the synthetic world, the batch iterator and uint8/float conversion."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from semcom.data import (
    IGNORE_INDEX,
    SyntheticDataset,
    SyntheticWorld,
    iter_batches,
    split_seeds,
    to_float,
    to_uint8,
)
from semcom.errors import InputError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared test machine: avoid oversubscription stalls
    yield
    torch.set_num_threads(before)


def test_dataset_items_match_world() -> None:
    ds = SyntheticDataset("val", length=20, size=32, captions=True, offset=3)
    assert len(ds) == 20 and len(ds.classes) >= 10
    assert ds.seeds.tolist() == split_seeds("val", 20, offset=3).tolist()
    ref = SyntheticWorld(size=32).generate(ds.seeds, captions=True)
    item = ds[4]
    assert set(item) == {"image", "label", "mask", "seed", "caption"}
    assert item["seed"] == int(ds.seeds[4])
    assert torch.equal(item["image"], ref.images[4]) and torch.equal(item["mask"], ref.masks[4])
    assert item["label"].dtype == torch.int64 and int(item["label"]) == int(ref.labels[4])
    assert item["caption"] == ref.captions[4]
    assert torch.equal(ds[-1]["image"], ref.images[19])
    with pytest.raises(IndexError):
        ds[20]


def test_dataloader_uses_batched_fetch() -> None:
    ds = SyntheticDataset("test", length=10, size=32)
    batches = list(DataLoader(ds, batch_size=4, shuffle=False))
    assert [b["image"].shape[0] for b in batches] == [4, 4, 2]
    b0 = batches[0]
    assert b0["image"].shape == (4, 3, 32, 32) and b0["image"].dtype == torch.uint8
    assert b0["mask"].shape == (4, 32, 32) and b0["label"].shape == (4,)
    ref = ds.batch(range(4))
    assert torch.equal(b0["image"], ref.images) and torch.equal(b0["label"], ref.labels)


def test_dataset_bad_args() -> None:
    with pytest.raises(InputError):
        SyntheticDataset("nope", length=3)
    with pytest.raises(InputError):
        SyntheticDataset("val", length=-1)
    with pytest.raises(InputError):
        SyntheticDataset("val", length=10**6 + 1)


def test_iter_batches_fresh_and_epochs() -> None:
    world = SyntheticWorld(size=16)
    fresh = list(iter_batches("train", 8, num_batches=3, world=world))
    assert [len(b) for b in fresh] == [8, 8, 8]
    assert torch.cat([b.seeds for b in fresh]).tolist() == list(range(24))

    kw = {"length": 10, "shuffle_seed": 5, "world": world}
    run = list(iter_batches("val", 4, 6, **kw))
    assert [len(b) for b in run] == [4, 4, 2, 4, 4, 2]
    epoch1 = torch.cat([b.seeds for b in run[:3]])
    epoch2 = torch.cat([b.seeds for b in run[3:]])
    pool = split_seeds("val", 10).tolist()
    assert sorted(epoch1.tolist()) == pool and sorted(epoch2.tolist()) == pool
    assert epoch1.tolist() != pool and epoch1.tolist() != epoch2.tolist()  # shuffled, per epoch
    torch.manual_seed(0)  # global RNG plays no part
    again = list(iter_batches("val", 4, 6, **kw))
    assert all(torch.equal(a.seeds, b.seeds) for a, b in zip(run, again, strict=True))
    assert all(torch.equal(a.images, b.images) for a, b in zip(run, again, strict=True))
    dropped = list(iter_batches("val", 4, length=10, drop_last=True, world=world))
    assert [len(b) for b in dropped] == [4, 4]
    with pytest.raises(InputError):
        next(iter_batches("val", 4))
    with pytest.raises(InputError):
        next(iter_batches("val", 0, 2))


def test_to_float_to_uint8() -> None:
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16)
    f = to_float(x)
    assert f.dtype == torch.float32 and float(f.min()) == 0.0 and float(f.max()) == 1.0
    assert torch.equal(to_uint8(f), x)
    odd = torch.tensor([-0.5, 0.5 / 255, 1.49 / 255, 1.51 / 255, 2.0, float("nan")])
    assert to_uint8(odd).tolist() == [0, 0, 1, 2, 255, 0]
    assert to_uint8(torch.tensor([0.5], dtype=torch.float64)).dtype == torch.uint8
    with pytest.raises(InputError):
        to_float(f)
    with pytest.raises(InputError):
        to_uint8(x)
    assert IGNORE_INDEX == 255


def test_world_and_dataset_pickle() -> None:
    import pickle

    ds = SyntheticDataset("val", length=4, size=16)
    ds[0]  # fills the world's per-thread buffers
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy[2]["image"], ds[2]["image"])

"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster, and immune to a shared, busy CPU.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def point_record(**fields):
    """A made-up sweep point (a ``PointRecord``) for the report tests: every field has a
    default (synthetic/test on the ideal channel, 128 images, seed 0, 100-byte messages of
    a 64x64 image, no metrics, one fixed version / commit / time stamp); ``fields``
    override them. ``bpp`` and ``mean_channel_bytes`` follow ``mean_bytes`` unless given.
    """
    from semcom.experiments.records import PointRecord

    nbytes = float(fields.get("mean_bytes", 100.0))
    defaults = dict(
        scheme="scheme",
        settings={},
        rate_label="",
        channel="ideal",
        channel_config={"type": "ideal", "seed": 0},
        dataset="synthetic",
        split="test",
        n_images=128,
        seed=0,
        mean_bytes=nbytes,
        mean_channel_bytes=nbytes,
        bpp=nbytes * 8 / 64**2,
        metrics={},
        failure_rate=0.0,
        timing={},
        version="0.1.0",
        git_commit="abc1234",
        created="2026-05-09T07:35:25+00:00",
    )
    return PointRecord(**{**defaults, **fields})

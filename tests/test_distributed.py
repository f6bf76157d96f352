"""Several processes on one sweep (torch.distributed, gloo on CPU) give the records of one."""

from __future__ import annotations

import dataclasses

import pytest

from semcom.experiments.sweep import SweepConfig, run_sweep, run_sweep_processes, synthetic_evalset
from semcom.judges import default_judges


def comparable(rec) -> dict:
    """A record without what may differ between runs: timings and timestamps."""
    d = dataclasses.asdict(rec)
    d.pop("timing"), d.pop("created")
    return d


@pytest.mark.usefixtures("one_thread")
def test_two_processes_give_the_same_records() -> None:
    evalset = synthetic_evalset(12)
    cfg = SweepConfig(
        schemes=["jpeg", "raw", "patch-mean[pixels=q2]", "patch-random"],
        channels=["ideal", "bsc:1e-3", "erasure:0.2:64"],
        rates={"jpeg": [500, 900], "patch-mean[pixels=q2]": [0.25, 0.5], "patch-random": [0.5]},
        batch_size=4,  # 3 chunks of images: uneven shares for 2 processes
    )
    judges = default_judges()
    one = run_sweep(cfg, evalset, judges, progress=False)
    two = run_sweep_processes(2, cfg, evalset, judges)
    assert len(one) == len(two) == (2 + 1 + 2 + 1) * 3
    for a, b in zip(one, two, strict=True):
        assert comparable(a) == comparable(b)
    assert any(r.failure_rate > 0 for r in one)  # the channels did hit something
